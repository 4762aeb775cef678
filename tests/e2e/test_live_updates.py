"""The dashboard's live updates on the local stack: a change in the table reaches the local
WebSocket through the stream poller, the ``updates`` function and the management API."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from websockets.exceptions import InvalidStatus
from websockets.sync.client import ClientConnection, connect

from local.runtime import InvocationResult
from local.stack import LocalStack
from local.stream_poller import first_failure, matches
from merge_assist.adapters.dynamodb_store import DynamoDBStore
from merge_assist.adapters.live import connections_from_settings
from merge_assist.platform.config import ProjectConfig
from merge_assist.queue.models import MergeRequestState, StatusCategory

pytestmark = pytest.mark.e2e

STACK_SETTINGS = {"websocket_port": 0, "poll_interval_seconds": 0.05}
PROJECT_ID = 4242
TIMEOUT = 5.0


def _token(stack: LocalStack, group: str) -> str:
    assert stack.provisioned is not None
    user = next(u for u in stack.provisioned.demo_users if u.group == group)
    return stack.sign_in(user.username, user.password)["access_token"]


def _url(stack: LocalStack, **query: str) -> str:
    url = str(stack.endpoints()["websocket"])
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def _store(stack: LocalStack) -> DynamoDBStore:
    assert stack.session is not None
    return DynamoDBStore(
        stack.session.resource("dynamodb").Table(stack.names.table), history=timedelta(days=1)
    )


def _next(socket: ClientConnection, kind: str, **expected: Any) -> dict[str, Any]:
    """The next message of a type (with these fields in its data), skipping others."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        message = json.loads(socket.recv(timeout=max(0.0, deadline - time.monotonic())))
        data = message["data"]
        if message["type"] == kind and all(data.get(k) == v for k, v in expected.items()):
            return dict(message)


def test_a_change_in_the_table_reaches_an_admin_and_its_event_follows(stack: LocalStack) -> None:
    store = _store(stack)
    with (
        connect(_url(stack, token=_token(stack, "admin")), open_timeout=TIMEOUT) as admin,
        connect(_url(stack, token=_token(stack, "viewer")), open_timeout=TIMEOUT) as viewer,
    ):
        config = store.save_project(ProjectConfig(project_id=PROJECT_ID, path="group/live"))
        project = _next(admin, "project")
        assert project == {
            "type": "project",
            "project_id": PROJECT_ID,
            "data": config.model_dump(mode="json"),
        }

        store.save_merge_request(
            MergeRequestState(
                project_id=PROJECT_ID,
                iid=7,
                sha="a" * 40,
                source_branch="feature/7",
                target_branch="main",
                status=StatusCategory.QUEUED,
                ready_since=datetime.now(UTC),
            )
        )
        update = _next(admin, "merge_request")
        # The entry the updates function wrote comes back through the stream as the event.
        event = _next(admin, "event")

        assert update["data"]["status"] == "queued"
        assert event["project_id"] == PROJECT_ID
        assert event["data"]["id"] == "mr-7-v1"
        assert event["data"]["action"] == "status_changed"
        assert event["data"]["summary"] == "!7 new → queued"
        [entry], _ = store.list_audit(PROJECT_ID, limit=10)
        assert entry.id == "mr-7-v1"

        # A viewer without a grant on the project hears none of it.
        with pytest.raises(TimeoutError):
            viewer.recv(timeout=0.3)

        admin.send(json.dumps({"action": "ping"}))
        assert json.loads(admin.recv(timeout=TIMEOUT)) == {"type": "pong"}


def test_connections_need_a_valid_token_and_a_visible_project(stack: LocalStack) -> None:
    for query in ({}, {"token": "not-a-token"}):
        with pytest.raises(InvalidStatus) as refused:
            connect(_url(stack, **query), open_timeout=TIMEOUT)
        assert refused.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as forbidden:
        connect(
            _url(stack, token=_token(stack, "viewer"), project=str(PROJECT_ID)),
            open_timeout=TIMEOUT,
        )
    assert forbidden.value.response.status_code == 403


def test_a_closed_socket_is_forgotten(stack: LocalStack) -> None:
    connections = connections_from_settings()
    before = {c.connection_id for c in connections.all()}

    with connect(_url(stack, token=_token(stack, "admin")), open_timeout=TIMEOUT):
        opened = {c.connection_id for c in connections.all()} - before
        assert len(opened) == 1

    deadline = time.monotonic() + TIMEOUT
    while opened & {c.connection_id for c in connections.all()}:
        assert time.monotonic() < deadline, "the connection outlived its socket"
        time.sleep(0.05)


def test_a_record_that_keeps_failing_is_reported_and_does_not_hold_up_the_rest(
    stack: LocalStack,
) -> None:
    store = _store(stack)
    sqs = stack.client("sqs")
    failures = sqs.get_queue_url(QueueName=stack.names.stream_failures_queue("updates"))
    with connect(_url(stack, token=_token(stack, "admin")), open_timeout=TIMEOUT) as admin:
        # An MR item its model cannot read, then a good change behind it.
        assert stack.session is not None
        stack.session.resource("dynamodb").Table(stack.names.table).put_item(
            Item={"pk": "PROJECT#77", "sk": "MR#0000000001", "kind": "merge_request", "iid": 1}
        )
        store.save_project(ProjectConfig(project_id=77, path="group/after"))

        assert _next(admin, "project", project_id=77)["project_id"] == 77

    messages = sqs.receive_message(QueueUrl=failures["QueueUrl"], WaitTimeSeconds=1)
    [reported] = [json.loads(m["Body"]) for m in messages["Messages"]]
    assert reported["requestContext"]["condition"] == "RetryAttemptsExhausted"
    assert reported["DDBStreamBatchInfo"]["batchSize"] == 1


def test_the_stream_filter_judges_only_exact_values() -> None:
    pattern = {"dynamodb": {"NewImage": {"kind": {"S": ["project"]}}}}

    assert matches(pattern, {"dynamodb": {"NewImage": {"kind": {"S": "project"}}}})
    assert not matches(pattern, {"dynamodb": {"NewImage": {"kind": {"S": "grant"}}}})
    assert not matches(pattern, {"dynamodb": {"OldImage": {"kind": {"S": "project"}}}})
    with pytest.raises(ValueError, match="not supported"):
        matches({"eventName": [{"prefix": "INS"}]}, {"eventName": "INSERT"})


def test_a_retry_starts_at_the_first_failed_record() -> None:
    sequence = ["11", "12", "13"]
    answer = json.dumps({"batchItemFailures": [{"itemIdentifier": "13"}, {"itemIdentifier": "12"}]})

    assert first_failure(InvocationResult(answer.encode()), sequence, reported=True) == 1
    assert first_failure(InvocationResult(b"null"), sequence, reported=True) == 3
    assert first_failure(InvocationResult(answer.encode()), sequence, reported=False) == 3
    assert first_failure(InvocationResult(b"{}", function_error="Unhandled"), sequence, True) == 0
    unknown = json.dumps({"batchItemFailures": [{"itemIdentifier": "99"}]}).encode()
    assert first_failure(InvocationResult(unknown), sequence, reported=True) == 0


def _initiate_auth(
    config: dict[str, Any], origin: str, flow: str, parameters: dict[str, str]
) -> requests.Response:
    """Cognito's InitiateAuth as the dashboard's sign-in form posts it from its origin."""
    return requests.post(
        config["signIn"]["endpoint"],
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
            "Origin": origin,
        },
        data=json.dumps(
            {"AuthFlow": flow, "ClientId": config["clientId"], "AuthParameters": parameters}
        ),
        timeout=5,
    )


def test_the_dashboards_config_signs_in_as_the_dashboard_does(stack: LocalStack) -> None:
    """config.json names a Cognito endpoint the browser can reach from the dashboard's
    origin (CORS preflight included), and what it signs in with the API accepts."""
    config = requests.get(f"{stack.url}/config.json", timeout=5).json()
    assert config["apiUrl"] == "/api/v1"
    assert config["websocketUrl"] == stack.endpoints()["websocket"]
    assert config["signIn"]["kind"] == "password"
    assert stack.provisioned is not None
    user = stack.provisioned.demo_users[0]

    preflight = requests.options(
        config["signIn"]["endpoint"],
        headers={
            "Origin": stack.url,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-amz-target",
        },
        timeout=5,
    )
    wrong = _initiate_auth(
        config,
        stack.url,
        "USER_PASSWORD_AUTH",
        {"USERNAME": user.username, "PASSWORD": "not-it-1A!"},
    )
    signed_in = _initiate_auth(
        config,
        stack.url,
        "USER_PASSWORD_AUTH",
        {"USERNAME": user.username, "PASSWORD": user.password},
    )
    tokens = signed_in.json()["AuthenticationResult"]
    refreshed = _initiate_auth(
        config, stack.url, "REFRESH_TOKEN_AUTH", {"REFRESH_TOKEN": tokens["RefreshToken"]}
    ).json()["AuthenticationResult"]
    me = requests.get(
        f"{stack.url}{config['apiUrl']}/me",
        headers={"Authorization": f"Bearer {refreshed['AccessToken']}"},
        timeout=5,
    )

    assert preflight.status_code == 200
    assert preflight.headers["Access-Control-Allow-Origin"] in ("*", stack.url)
    assert wrong.status_code == 400
    assert wrong.json()["__type"].endswith("NotAuthorizedException")
    assert signed_in.headers["Access-Control-Allow-Origin"] in ("*", stack.url)
    assert me.status_code == 200
    assert me.json()["username"] == user.username

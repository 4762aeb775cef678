"""The webhook receiver against moto: what GitLab gets back and what reaches the queue."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.webhook import app as webhook
from functions.webhook import enqueue
from functions.webhook.projects import clear_config_cache
from local import gitlab_payloads as payloads
from local.http_front import http_api_event
from local.provision import create_table
from local.runtime import make_context
from merge_assist.adapters.aws import clear_caches, store_from_settings
from merge_assist.adapters.project_queues import send_event
from merge_assist.models import ProjectConfig
from merge_assist.resources import ResourceNames

PROJECT = 7
TOKEN = "s3cret-token-for-project-7"
NAMES = ResourceNames("test")


@dataclass
class Deployment:
    queue_url: str
    sqs: Any
    sends: list[str]

    def deliver(
        self,
        body: dict[str, Any] | bytes,
        headers: dict[str, str] | None = None,
        *,
        base64_body: bool = False,
    ) -> tuple[int, dict[str, Any]]:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        kind = body.get("object_kind", "merge_request") if isinstance(body, dict) else "push"
        sent_headers = headers if headers is not None else payloads.delivery_headers(kind, TOKEN)
        event = http_api_event(
            method="POST",
            raw_path="/webhook/gitlab",
            raw_query="",
            headers=sent_headers,
            body=raw,
            route_key="POST /webhook/gitlab",
            path_parameters={},
            source_ip="203.0.113.9",
            claims=None,
            account_id="123456789012",
        )
        if base64_body:
            event["body"] = base64.b64encode(raw).decode()
            event["isBase64Encoded"] = True
        context = make_context("test-webhook", 256, 10)
        response = webhook.handler(event, context)
        return response["statusCode"], json.loads(response["body"])

    def queued(self) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                MessageSystemAttributeNames=["All"],
            ).get("Messages", [])
            if not batch:
                return messages
            for message in batch:
                messages.append(
                    {
                        "body": json.loads(message["Body"]),
                        "group": message["Attributes"]["MessageGroupId"],
                        "dedup": message["Attributes"]["MessageDeduplicationId"],
                    }
                )
                self.sqs.delete_message(
                    QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"]
                )


def _reset_caches() -> None:
    clear_caches()
    clear_config_cache()
    enqueue.clear_enqueue_cache()


@pytest.fixture
def deployment(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Deployment]:
    monkeypatch.setenv("MERGE_ASSIST_RESOURCE_PREFIX", NAMES.prefix)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    with mock_aws():
        _reset_caches()
        session = boto3.Session()
        create_table(session, NAMES)
        store_from_settings().save_project(
            ProjectConfig(project_id=PROJECT, target_branches=["main", "release/1.x"])
        )
        session.client("secretsmanager").create_secret(
            Name=NAMES.webhook_secret(PROJECT), SecretString=json.dumps({"secret_token": TOKEN})
        )
        sqs = session.client("sqs")
        queue_url = sqs.create_queue(
            QueueName=NAMES.project_queue(PROJECT), Attributes={"FifoQueue": "true"}
        )["QueueUrl"]
        sends: list[str] = []

        def counting_send(names: ResourceNames, event: Any) -> str:
            sends.append(event.idempotency_key)
            return send_event(names, event)

        monkeypatch.setattr("functions.webhook.enqueue.send_event", counting_send)
        yield Deployment(queue_url=queue_url, sqs=sqs, sends=sends)
        _reset_caches()


@pytest.mark.parametrize("legacy", [False, True], ids=["gitlab-18", "gitlab-16"])
def test_merge_request_event_is_normalized_onto_the_branch_group(
    deployment: Deployment, legacy: bool
) -> None:
    body = payloads.merge_request_event(PROJECT, 3, legacy=legacy, labels=("backend",))
    headers = payloads.delivery_headers("merge_request", TOKEN, legacy=legacy)

    status, answer = deployment.deliver(body, headers)

    assert status == 202
    assert answer["status"] == "queued"
    [message] = deployment.queued()
    assert message["group"] == f"{PROJECT}:main"
    assert message["dedup"] == answer["idempotency_key"]
    event = message["body"]
    assert event["kind"] == "merge_request"
    assert event["merge_request"]["iid"] == 3
    assert event["merge_request"]["sha"] == payloads.SHA_A
    assert event["merge_request"]["labels"] == ["backend"]
    assert event["merge_request"]["assignee_ids"] == [7]
    assert event["merge_request"]["draft"] is False
    if legacy:
        assert answer["idempotency_key"].startswith("derived:")
    else:
        assert answer["idempotency_key"] == headers["idempotency-key"]


def test_each_handled_event_type_is_queued(deployment: Deployment) -> None:
    bodies = [
        payloads.note_event(PROJECT, 4, "/merge please"),
        payloads.pipeline_event(PROJECT, 500, status="failed", iid=4),
        payloads.pipeline_event(PROJECT, 501, ref="release/1.x"),
        payloads.push_event(PROJECT, ref="refs/heads/release/1.x"),
        payloads.job_event(PROJECT, 9001),
    ]
    for body in bodies:
        status, _ = deployment.deliver(body)
        assert status == 202, body["object_kind"]

    events = {m["body"]["kind"]: m for m in deployment.queued()}

    assert set(events) == {"note", "pipeline", "push", "job"}
    assert events["note"]["body"]["note"]["body"] == "/merge please"
    assert events["note"]["group"] == f"{PROJECT}:main"
    assert events["push"]["body"]["push"]["branch"] == "release/1.x"
    assert events["push"]["group"] == f"{PROJECT}:release/1.x"
    assert events["job"]["body"]["job"]["status"] == "failed"


def test_pipelines_keep_their_merge_request_and_status(deployment: Deployment) -> None:
    deployment.deliver(payloads.pipeline_event(PROJECT, 500, status="failed", iid=4))

    [message] = deployment.queued()

    assert message["body"]["pipeline"]["status"] == "failed"
    assert message["body"]["merge_request"]["iid"] == 4
    assert message["group"] == f"{PROJECT}:main"


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (payloads.note_event(PROJECT, 4, noteable="Issue"), "notes on a Issue"),
        (payloads.push_event(PROJECT, ref="refs/heads/feature/x"), "not a target branch"),
        (payloads.push_event(PROJECT, ref="refs/tags/v1.0"), "tag pushes"),
        ({"object_kind": "issue", "project": {"id": PROJECT}}, "events are not used"),
    ],
)
def test_events_that_do_not_concern_the_queue_get_200_with_a_reason(
    deployment: Deployment, body: dict[str, Any], reason: str
) -> None:
    headers = payloads.delivery_headers("note", TOKEN)
    headers["x-gitlab-event"] = {"issue": "Issue Hook", "tag_push": "Tag Push Hook"}.get(
        body["object_kind"], payloads.EVENT_HEADERS.get(body["object_kind"], "Issue Hook")
    )

    status, answer = deployment.deliver(body, headers)

    assert status == 200
    assert answer["status"] == "ignored"
    assert reason in answer["reason"]
    assert deployment.queued() == []


def test_a_system_hook_without_project_is_ignored(deployment: Deployment) -> None:
    body = {"event_name": "user_create", "user_id": 41, "username": "someone"}
    headers = payloads.delivery_headers("push", TOKEN)
    headers["x-gitlab-event"] = "System Hook"

    status, answer = deployment.deliver(body, headers)

    assert (status, answer["status"]) == (200, "ignored")


@pytest.mark.parametrize(
    ("token", "status"),
    [(None, 401), ("", 401), ("wrong", 401), (TOKEN + "x", 401), (TOKEN.upper(), 401)],
)
def test_wrong_or_missing_token_is_401_and_queues_nothing(
    deployment: Deployment, token: str | None, status: int
) -> None:
    headers = payloads.delivery_headers("merge_request", TOKEN)
    if token is None:
        del headers["x-gitlab-token"]
    else:
        headers["x-gitlab-token"] = token

    answered, answer = deployment.deliver(payloads.merge_request_event(PROJECT, 1), headers)

    assert answered == status
    assert "X-Gitlab-Token" in answer["message"]
    assert deployment.queued() == []
    assert deployment.sends == []


def test_unknown_project_is_404(deployment: Deployment) -> None:
    status, answer = deployment.deliver(payloads.merge_request_event(999, 1))

    assert status == 404
    assert "999" in answer["message"]
    assert deployment.sends == []


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not JSON"),
        (json.dumps(payloads.merge_request_event(PROJECT, 1)).encode()[:-40], "not JSON"),
        (b"[1, 2, 3]", "not a JSON object"),
        (b"\xff\xfe\x00", "not JSON"),
        (json.dumps({"object_kind": "merge_request"}).encode(), "without a project id"),
    ],
    ids=["garbage", "truncated", "array", "binary", "no-project"],
)
def test_malformed_bodies_are_400(deployment: Deployment, raw: bytes, message: str) -> None:
    status, answer = deployment.deliver(raw, payloads.delivery_headers("merge_request", TOKEN))

    assert status == 400
    assert message in answer["message"]
    assert deployment.sends == []


def test_an_event_missing_required_fields_is_400_naming_the_field(deployment: Deployment) -> None:
    body = payloads.merge_request_event(PROJECT, 1)
    del body["object_attributes"]["iid"]

    status, answer = deployment.deliver(body)

    assert status == 400
    assert "object_attributes.iid" in answer["message"]


def test_header_that_contradicts_the_body_is_400(deployment: Deployment) -> None:
    headers = payloads.delivery_headers("push", TOKEN)

    status, answer = deployment.deliver(payloads.merge_request_event(PROJECT, 1), headers)

    assert status == 400
    assert "does not match" in answer["message"]


def test_oversized_body_is_413(deployment: Deployment) -> None:
    body = payloads.merge_request_event(PROJECT, 1)
    body["object_attributes"]["description"] = "x" * (webhook.MAX_BODY_BYTES + 1)

    status, _ = deployment.deliver(body)

    assert status == 413
    assert deployment.sends == []


def test_base64_encoded_bodies_are_read_and_bad_base64_is_400(deployment: Deployment) -> None:
    body = payloads.merge_request_event(PROJECT, 2)
    assert deployment.deliver(body, base64_body=True)[0] == 202

    headers = payloads.delivery_headers("merge_request", TOKEN)
    event = http_api_event(
        method="POST",
        raw_path="/webhook/gitlab",
        raw_query="",
        headers=headers,
        body=b"x",
        route_key="POST /webhook/gitlab",
        path_parameters={},
        source_ip="1.2.3.4",
        claims=None,
        account_id="1",
    )
    event.update(body="!!not base64!!", isBase64Encoded=True)
    context = make_context("test-webhook", 256, 10)
    assert webhook.handler(event, context)["statusCode"] == 400


def test_redelivery_with_the_same_idempotency_key_is_queued_once(deployment: Deployment) -> None:
    body = payloads.merge_request_event(PROJECT, 5)
    headers = payloads.delivery_headers("merge_request", TOKEN, idempotency_key="resend-me")

    first = deployment.deliver(body, headers)
    second = deployment.deliver(body, dict(headers, **{"x-gitlab-event-uuid": "another"}))

    assert first[0] == second[0] == 202
    assert deployment.sends == ["resend-me"]
    assert len(deployment.queued()) == 1


def test_legacy_deliveries_are_deduplicated_by_event_uuid_name_and_body(
    deployment: Deployment,
) -> None:
    body = payloads.merge_request_event(PROJECT, 6, legacy=True)
    headers = payloads.delivery_headers("merge_request", TOKEN, legacy=True)

    deployment.deliver(body, headers)
    deployment.deliver(body, headers)
    deployment.deliver(body, dict(headers, **{"x-gitlab-event-uuid": "a-later-event"}))

    assert len(deployment.sends) == 2
    assert len(set(deployment.sends)) == 2


def test_concurrent_duplicate_deliveries_queue_exactly_once(deployment: Deployment) -> None:
    body = payloads.merge_request_event(PROJECT, 8)
    headers = payloads.delivery_headers("merge_request", TOKEN, idempotency_key="burst")
    statuses: list[int] = []
    lock = threading.Lock()

    def deliver() -> None:
        status, _ = deployment.deliver(body, dict(headers))
        with lock:
            statuses.append(status)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert deployment.sends == ["burst"]
    assert len(deployment.queued()) == 1
    assert set(statuses) <= {202, 409}
    assert statuses.count(202) >= 1


def _signed(headers: dict[str, str], body: bytes, key: bytes, sent_at: int) -> dict[str, str]:
    webhook_id = headers["idempotency-key"]
    digest = hmac.new(key, f"{webhook_id}.{sent_at}.".encode() + body, hashlib.sha256).digest()
    return dict(
        headers,
        **{
            "webhook-id": webhook_id,
            "webhook-timestamp": str(sent_at),
            "webhook-signature": "v1," + base64.b64encode(digest).decode(),
        },
    )


def test_projects_with_a_signing_token_need_a_valid_recent_signature(
    deployment: Deployment,
) -> None:
    signing = base64.b64encode(b"signing-key-bytes-0123456789").decode()
    boto3.client("secretsmanager").put_secret_value(
        SecretId=NAMES.webhook_secret(PROJECT),
        SecretString=json.dumps({"secret_token": TOKEN, "signing_token": f"whsec_{signing}"}),
    )
    clear_caches()
    body = payloads.merge_request_event(PROJECT, 9)
    raw = json.dumps(body).encode()
    headers = payloads.delivery_headers("merge_request", TOKEN)
    now = int(time.time())
    key = b"signing-key-bytes-0123456789"

    unsigned = deployment.deliver(raw, headers)[0]
    wrong_key = deployment.deliver(raw, _signed(headers, raw, b"another key", now))[0]
    stale = deployment.deliver(raw, _signed(headers, raw, key, now - 3600))[0]
    tampered = deployment.deliver(raw + b" ", _signed(headers, raw, key, now))[0]
    valid = deployment.deliver(raw, _signed(headers, raw, key, now))[0]

    assert (unsigned, wrong_key, stale, tampered) == (401, 401, 401, 401)
    assert valid == 202
    assert len(deployment.queued()) == 1


def test_the_token_never_appears_in_the_logs(
    deployment: Deployment, caplog: pytest.LogCaptureFixture
) -> None:
    # The level the functions run at; botocore's own DEBUG log prints response bodies.
    caplog.set_level("INFO")
    deployment.deliver(payloads.merge_request_event(PROJECT, 10))
    bad = payloads.delivery_headers("merge_request", TOKEN)
    bad["x-gitlab-token"] = TOKEN[:-1]
    deployment.deliver(payloads.merge_request_event(PROJECT, 10), bad)

    # Every attribute of every record, structured fields included.
    logged = " ".join(str(vars(record)) for record in caplog.records)
    assert "refused: wrong or missing token" in logged
    assert "queued" in logged
    assert TOKEN[:-1] not in logged


def _emf(out: str) -> list[tuple[str, dict[str, str]]]:
    """The metrics Powertools printed (EMF documents among the log lines): each metric
    name with its dimensions, once per value."""
    found = []
    for line in out.splitlines():
        if not line.startswith("{"):
            continue
        document = json.loads(line)
        if "_aws" not in document:
            continue
        for directive in document["_aws"]["CloudWatchMetrics"]:
            assert directive["Namespace"] == "MergeAssist"
            (names,) = directive["Dimensions"]
            dimensions = {name: document[name] for name in names}
            for metric in directive["Metrics"]:
                found += [(metric["Name"], dimensions)] * len(document[metric["Name"]])
    return found


def test_each_delivery_is_counted_received_by_type_and_by_outcome(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    queued, _ = deployment.deliver(payloads.merge_request_event(PROJECT, 1))
    ignored, _ = deployment.deliver(
        {"object_kind": "issue", "project": {"id": PROJECT}},
        {**payloads.delivery_headers("note", TOKEN), "x-gitlab-event": "Issue Hook"},
    )
    refused, _ = deployment.deliver(
        payloads.pipeline_event(PROJECT, 9001, iid=1),
        {**payloads.delivery_headers("pipeline", TOKEN), "x-gitlab-token": "wrong"},
    )
    unreadable, _ = deployment.deliver(b"{not json")
    invented, _ = deployment.deliver(
        {"object_kind": "a" * 200, "project": {"id": PROJECT}},
        {**payloads.delivery_headers("note", TOKEN), "x-gitlab-event": "Made Up Hook"},
    )
    assert (queued, ignored, refused, unreadable, invented) == (202, 200, 401, 400, 200)

    metrics = _emf(capsys.readouterr().out)
    service = {"service": "merge-assist"}
    received = [dims for name, dims in metrics if name == "EventsReceived"]
    # A made-up kind is counted as unknown: callers cannot mint new metrics.
    assert received == [
        {**service, "EventType": kind}
        for kind in ("merge_request", "issue", "pipeline", "unknown", "unknown")
    ]
    assert [dims for name, dims in metrics if name == "EventsIgnored"] == [service] * 2
    assert [dims for name, dims in metrics if name == "EventsRefused"] == [service] * 2

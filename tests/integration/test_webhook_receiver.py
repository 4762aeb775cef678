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
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from moto import mock_aws

from bench import gitlab_payloads as payloads
from cli import main as cli
from cli import project as cli_project
from cli.deployment import AdminContext
from functions.webhook import app as webhook
from functions.webhook import enqueue
from functions.webhook.http import MAX_BODY_BYTES
from functions.webhook.projects import clear_config_cache
from local.http_front import http_api_event
from local.provision import create_table
from local.runtime import make_context
from merge_assist.adapters import webhook_secrets
from merge_assist.adapters.aws import clear_caches, store_from_settings
from merge_assist.adapters.project_infra import AwsProjectInfrastructure
from merge_assist.adapters.project_queues import send_event
from merge_assist.platform.config import ProjectConfig, ProjectRef
from merge_assist.platform.resources import ResourceNames

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

    def connect(self, project_id: int, token: str) -> str:
        """Another connected project, as onboarding leaves it; its queue's URL."""
        store_from_settings().save_project(ProjectConfig(project_id=project_id))
        boto3.client("secretsmanager").create_secret(
            Name=NAMES.webhook_secret(project_id), SecretString=json.dumps({"secret_token": token})
        )
        queue_url: str = self.sqs.create_queue(
            QueueName=NAMES.project_queue(project_id), Attributes={"FifoQueue": "true"}
        )["QueueUrl"]
        return queue_url

    def queued(self, queue_url: str | None = None) -> list[dict[str, Any]]:
        messages: list[dict[str, Any]] = []
        while True:
            batch = self.sqs.receive_message(
                QueueUrl=queue_url or self.queue_url,
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
                    QueueUrl=queue_url or self.queue_url, ReceiptHandle=message["ReceiptHandle"]
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
def test_merge_request_event_is_normalized_onto_its_source_branch_group(
    deployment: Deployment, legacy: bool
) -> None:
    body = payloads.merge_request_event(PROJECT, 3, legacy=legacy, labels=("backend",))
    headers = payloads.delivery_headers("merge_request", TOKEN, legacy=legacy)

    status, answer = deployment.deliver(body, headers)

    assert status == 202
    assert answer["status"] == "queued"
    [message] = deployment.queued()
    assert message["group"] == f"{PROJECT}:branch:feature/3"
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
        assert answer["idempotency_key"] == f"{PROJECT}:{headers['idempotency-key']}"


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
    assert events["note"]["group"] == f"{PROJECT}:branch:feature/4"
    assert events["push"]["body"]["push"]["branch"] == "release/1.x"
    assert events["push"]["group"] == f"{PROJECT}:branch:release/1.x"
    assert events["job"]["body"]["job"]["status"] == "failed"
    assert events["job"]["group"] == f"{PROJECT}:branch:main"


def test_pipelines_keep_their_merge_request_and_status(deployment: Deployment) -> None:
    deployment.deliver(payloads.pipeline_event(PROJECT, 500, status="failed", iid=4))

    [message] = deployment.queued()

    assert message["body"]["pipeline"]["status"] == "failed"
    assert message["body"]["merge_request"]["iid"] == 4
    # With its MR's source branch, so the MR and its own pipeline are judged in order.
    assert message["group"] == f"{PROJECT}:branch:feature/4"


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
        (b'{"project_id": 7, not json', "not JSON"),
        (json.dumps(payloads.merge_request_event(PROJECT, 1)).encode()[:-40], "not JSON"),
        (b'[{"project_id": 7}]', "not a JSON object"),
        (b"\xff\xfe\x00", "not JSON"),
        (json.dumps({"object_kind": "merge_request"}).encode(), "without a project id"),
        (b"{not json", "without a project id"),
        (b'{"project_id": 7, "deep": ' + b"[" * 5000 + b"]" * 5000 + b"}", "nests deeper"),
    ],
    ids=["garbage", "truncated", "array", "binary", "no-project", "no-project-garbage", "deep"],
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
    body["object_attributes"]["description"] = "x" * (MAX_BODY_BYTES + 1)

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
    assert deployment.sends == [f"{PROJECT}:resend-me"]
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

    assert deployment.sends == [f"{PROJECT}:burst"]
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
    # The type is the X-Gitlab-Event header's, known before the body is read; a made-up
    # one is counted as unknown: callers cannot mint new metrics.
    assert received == [
        {**service, "EventType": kind}
        for kind in ("merge_request", "issue", "pipeline", "push", "unknown")
    ]
    assert [dims for name, dims in metrics if name == "EventsIgnored"] == [service] * 2
    assert [dims for name, dims in metrics if name == "EventsRefused"] == [service] * 2


# --- rotating a project's secret ------------------------------------------------------------

NEW_TOKEN = "n3w-token-for-project-7-after-rotation"


def _store_secret(document: dict[str, Any]) -> None:
    boto3.client("secretsmanager").put_secret_value(
        SecretId=NAMES.webhook_secret(PROJECT), SecretString=json.dumps(document)
    )


def _rotated(valid_for: timedelta) -> dict[str, Any]:
    return {
        "secret_token": NEW_TOKEN,
        "previous_secret_token": TOKEN,
        "previous_valid_until": (datetime.now(UTC) + valid_for).isoformat(),
    }


def _with_token(token: str) -> dict[str, str]:
    return payloads.delivery_headers("merge_request", token)


def test_a_receiver_that_cached_the_old_secret_accepts_both_tokens_after_a_rotation(
    deployment: Deployment,
) -> None:
    assert deployment.deliver(payloads.merge_request_event(PROJECT, 1))[0] == 202  # cached now

    _store_secret(_rotated(timedelta(hours=1)))
    with_new = deployment.deliver(payloads.merge_request_event(PROJECT, 2), _with_token(NEW_TOKEN))
    with_old = deployment.deliver(payloads.merge_request_event(PROJECT, 3), _with_token(TOKEN))
    clear_caches()  # a container started after the rotation
    fresh_old = deployment.deliver(payloads.merge_request_event(PROJECT, 4), _with_token(TOKEN))

    assert (with_new[0], with_old[0], fresh_old[0]) == (202, 202, 202)
    assert len(deployment.queued()) == 4


def test_the_replaced_token_is_refused_once_its_grace_period_ended(
    deployment: Deployment,
) -> None:
    _store_secret(_rotated(timedelta(seconds=-1)))
    clear_caches()

    old = deployment.deliver(payloads.merge_request_event(PROJECT, 1), _with_token(TOKEN))
    new = deployment.deliver(payloads.merge_request_event(PROJECT, 2), _with_token(NEW_TOKEN))

    assert (old[0], new[0]) == (401, 202)


def test_wrong_tokens_read_the_secret_again_only_once_in_a_while(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = webhook_secrets._provider()
    reads: list[str] = []
    read = provider._get

    def counting(name: str, **options: Any) -> Any:
        reads.append(name)
        return read(name, **options)

    monkeypatch.setattr(provider, "_get", counting)

    statuses = [
        deployment.deliver(payloads.merge_request_event(PROJECT, 1), _with_token("wrong" * 5))[0]
        for _ in range(5)
    ]

    assert statuses == [401] * 5
    # The first delivery's cached read and its one re-read; the others use the cache.
    assert len(reads) == 2


class RotatingGitLab:
    """GitLab's side of a rotation: the project, and its hook's token. When the hook is
    given its new token, the receiver must already accept it, and still the old one."""

    def __init__(self, deployment: Deployment, token: str) -> None:
        self.deployment = deployment
        self.hook_token = token
        self.answers_while_updating: list[tuple[int, int]] = []

    def find_project(self, ref: int | str) -> ProjectRef:
        return ProjectRef(id=PROJECT, path_with_namespace="acme/service-7")

    def ensure_hook(self, project_id: int, url: str, token: str) -> int:
        iid = 100 + len(self.answers_while_updating)
        self.answers_while_updating.append(
            (
                self.deployment.deliver(
                    payloads.merge_request_event(PROJECT, iid), _with_token(self.hook_token)
                )[0],
                self.deployment.deliver(
                    payloads.merge_request_event(PROJECT, iid + 50), _with_token(token)
                )[0],
            )
        )
        self.hook_token = token
        return 4242


def _rotate_secret(
    deployment: Deployment,
    gitlab: RotatingGitLab,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *options: str,
) -> dict[str, Any]:
    context = AdminContext(
        names=NAMES, webhook_url="https://hooks.example/webhook/gitlab", gitlab_url="https://x"
    )
    monkeypatch.setattr(cli_project, "local_context", lambda data_dir: context)
    monkeypatch.setattr(
        cli_project,
        "_services",
        lambda context: (store_from_settings(), AwsProjectInfrastructure(NAMES), gitlab),
    )
    capsys.readouterr()
    argv = ["project", "rotate-secret", "acme/service-7", "--local", "unused", "--json"]
    assert cli.main([*argv, *options]) == 0
    # The CLI prints its document last, indented; the receiver's metric lines come before.
    lines = capsys.readouterr().out.splitlines()
    start = max(index for index, line in enumerate(lines) if line == "{")
    output: dict[str, Any] = json.loads("\n".join(lines[start:]))
    return output


def _stored_secret() -> dict[str, Any]:
    value = boto3.client("secretsmanager").get_secret_value(SecretId=NAMES.webhook_secret(PROJECT))
    document: dict[str, Any] = json.loads(value["SecretString"])
    return document


def test_rotate_secret_stores_the_new_token_before_gitlab_sends_it(
    deployment: Deployment,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gitlab = RotatingGitLab(deployment, TOKEN)
    assert deployment.deliver(payloads.merge_request_event(PROJECT, 1))[0] == 202  # cached

    rotated = _rotate_secret(deployment, gitlab, monkeypatch, capsys)

    stored = _stored_secret()
    assert rotated["secret_token"] == stored["secret_token"] == gitlab.hook_token
    assert rotated["secret_token"] != TOKEN
    assert stored["previous_secret_token"] == TOKEN
    until = datetime.fromisoformat(stored["previous_valid_until"])
    assert timedelta(minutes=59) < until - datetime.now(UTC) <= timedelta(hours=1)
    assert (rotated["hook_id"], rotated["resumed"]) == (4242, False)
    # While GitLab's hook changed, deliveries with the old and the new token were queued.
    assert gitlab.answers_while_updating == [(202, 202)]
    assert TOKEN not in capsys.readouterr().err


def test_rotate_secret_run_again_finishes_the_same_rotation(
    deployment: Deployment,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gitlab = RotatingGitLab(deployment, TOKEN)
    first = _rotate_secret(deployment, gitlab, monkeypatch, capsys)
    gitlab.hook_token = TOKEN  # as if setting the hook had failed the first time

    again = _rotate_secret(deployment, gitlab, monkeypatch, capsys)

    assert again["resumed"] is True
    assert again["secret_token"] == first["secret_token"] == gitlab.hook_token
    assert again["previous_valid_until"] == first["previous_valid_until"]
    assert _stored_secret()["previous_secret_token"] == TOKEN
    assert gitlab.answers_while_updating == [(202, 202), (202, 202)]


def test_rotate_secret_restart_begins_another_rotation(
    deployment: Deployment,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    gitlab = RotatingGitLab(deployment, TOKEN)
    first = _rotate_secret(deployment, gitlab, monkeypatch, capsys)

    second = _rotate_secret(
        deployment, gitlab, monkeypatch, capsys, "--restart", "--grace-minutes", "15"
    )

    stored = _stored_secret()
    assert second["resumed"] is False
    assert second["secret_token"] not in (first["secret_token"], TOKEN)
    assert stored["previous_secret_token"] == first["secret_token"]
    until = datetime.fromisoformat(stored["previous_valid_until"])
    assert until - datetime.now(UTC) <= timedelta(minutes=15)
    assert gitlab.answers_while_updating == [(202, 202), (202, 202)]
    refused = deployment.deliver(payloads.merge_request_event(PROJECT, 9), _with_token(TOKEN))
    assert refused[0] == 401


def test_rotate_secret_refuses_a_grace_period_shorter_than_the_caches(
    deployment: Deployment,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit):
        _rotate_secret(
            deployment,
            RotatingGitLab(deployment, TOKEN),
            monkeypatch,
            capsys,
            "--grace-minutes",
            "2",
        )

    assert _stored_secret() == {"secret_token": TOKEN}


# --- idempotency keys are the project's -----------------------------------------------------

OTHER_PROJECT = 8
OTHER_TOKEN = "s3cret-token-for-project-8"


def test_one_projects_idempotency_key_does_not_silence_another_project(
    deployment: Deployment,
) -> None:
    other_queue = deployment.connect(OTHER_PROJECT, OTHER_TOKEN)
    key = "0f3c2e7a-shared-key"

    ours = deployment.deliver(
        payloads.merge_request_event(PROJECT, 1),
        payloads.delivery_headers("merge_request", TOKEN, idempotency_key=key),
    )
    theirs = deployment.deliver(
        payloads.merge_request_event(OTHER_PROJECT, 1),
        payloads.delivery_headers("merge_request", OTHER_TOKEN, idempotency_key=key),
    )

    assert ours[0] == theirs[0] == 202
    assert len(deployment.queued()) == 1
    [message] = deployment.queued(other_queue)
    assert message["body"]["project_id"] == OTHER_PROJECT


def test_a_resend_with_a_new_webhook_uuid_is_still_a_redelivery(deployment: Deployment) -> None:
    body = payloads.merge_request_event(PROJECT, 5)
    headers = payloads.delivery_headers("merge_request", TOKEN, idempotency_key="resend-me")

    deployment.deliver(body, headers)
    # GitLab draws X-Gitlab-Webhook-UUID anew for every request, "Resend" included.
    deployment.deliver(body, {**headers, "x-gitlab-webhook-uuid": "another-request"})

    assert len(deployment.queued()) == 1


def test_a_reused_key_with_another_body_is_queued_and_counted(
    deployment: Deployment, capsys: pytest.CaptureFixture[str]
) -> None:
    headers = payloads.delivery_headers("merge_request", TOKEN, idempotency_key="reused")
    first_body = payloads.merge_request_event(PROJECT, 1)
    second_body = payloads.merge_request_event(PROJECT, 2)
    capsys.readouterr()

    first = deployment.deliver(first_body, headers)
    second = deployment.deliver(second_body, headers)
    second_again = deployment.deliver(second_body, headers)
    first_again = deployment.deliver(first_body, headers)

    assert [answer[0] for answer in (first, second, second_again, first_again)] == [202] * 4
    messages = deployment.queued()
    assert sorted(m["body"]["merge_request"]["iid"] for m in messages) == [1, 2]
    assert len({m["dedup"] for m in messages}) == 2
    assert second[1]["idempotency_key"] == second_again[1]["idempotency_key"]
    assert second[1]["idempotency_key"] != first[1]["idempotency_key"]
    assert first_again[1]["idempotency_key"] == first[1]["idempotency_key"]
    conflicts = [
        name for name, _ in _emf(capsys.readouterr().out) if name == "IdempotencyKeyConflicts"
    ]
    assert len(conflicts) == 2


# --- nothing is parsed before it is authenticated, and nothing answers 500 ----------------


def test_two_hundred_thousand_open_brackets_are_refused_not_an_error(
    deployment: Deployment,
) -> None:
    headers = payloads.delivery_headers("merge_request", TOKEN)
    del headers["x-gitlab-token"]

    status, _ = deployment.deliver(b"[" * 200_000, headers)

    assert status in (400, 401)
    assert deployment.sends == []


def test_an_authenticated_body_nested_too_deep_is_400(deployment: Deployment) -> None:
    body = b'{"object_kind": "merge_request", "project_id": 7, "deep": '
    body += b"[" * 200_000 + b"]" * 200_000 + b"}"

    status, answer = deployment.deliver(body, payloads.delivery_headers("merge_request", TOKEN))

    assert status == 400
    assert "nests deeper" in answer["message"]


def test_a_delivery_without_the_right_token_is_not_parsed(
    deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = json.dumps(payloads.merge_request_event(PROJECT, 1)).encode()
    parsed: list[object] = []
    loads = json.loads

    def watching(document: str | bytes, **options: Any) -> Any:
        if document in (raw, raw.decode()):
            parsed.append(document)
        return loads(document, **options)

    monkeypatch.setattr(json, "loads", watching)

    status, _ = deployment.deliver(raw, _with_token("x" * 20))

    assert status == 401
    assert parsed == []


def test_a_body_that_names_another_project_first_must_prove_the_project_it_is_for(
    deployment: Deployment,
) -> None:
    deployment.connect(OTHER_PROJECT, OTHER_TOKEN)
    body = payloads.merge_request_event(PROJECT, 1)
    # The other project's id comes first, so the scan authenticates with its token.
    forged = {"object_kind": "merge_request", "user": {"project_id": OTHER_PROJECT}, **body}
    real_order = {"object_kind": "merge_request", "labels": [{"project_id": PROJECT}], **body}

    with_other_token = deployment.deliver(
        forged, payloads.delivery_headers("merge_request", OTHER_TOKEN)
    )
    with_own_token = deployment.deliver(real_order, _with_token(TOKEN))

    assert with_other_token[0] == 401
    assert with_own_token[0] == 202
    assert len(deployment.queued()) == 1


def test_a_project_id_written_in_a_description_is_not_the_project(
    deployment: Deployment,
) -> None:
    body = payloads.merge_request_event(PROJECT, 1)
    body = {
        "object_kind": "merge_request",
        "object_attributes": {**body["object_attributes"], "description": '"project_id": 8'},
        **{k: v for k, v in body.items() if k != "object_attributes"},
    }

    assert deployment.deliver(body)[0] == 202


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/jsonp"],
)
def test_a_body_that_is_not_sent_as_json_is_400(
    deployment: Deployment, content_type: str | None
) -> None:
    headers = payloads.delivery_headers("merge_request", TOKEN)
    if content_type is None:
        del headers["content-type"]
    else:
        headers["content-type"] = content_type

    status, answer = deployment.deliver(payloads.merge_request_event(PROJECT, 1), headers)

    assert status == 400
    assert "application/json" in answer["message"]
    assert deployment.sends == []


def test_json_with_a_charset_is_json(deployment: Deployment) -> None:
    headers = {
        **payloads.delivery_headers("merge_request", TOKEN),
        "content-type": "application/json; charset=utf-8",
    }

    assert deployment.deliver(payloads.merge_request_event(PROJECT, 1), headers)[0] == 202


@pytest.mark.parametrize("event_name", ["Made Up Hook", "Subgroup Hook", "System Hook"])
def test_unknown_event_types_are_ignored_with_a_reason_without_authentication(
    deployment: Deployment, event_name: str
) -> None:
    headers = {**_with_token("not the token at all"), "x-gitlab-event": event_name}

    status, answer = deployment.deliver(b"[" * 1000, headers)

    assert (status, answer["status"]) == (200, "ignored")
    assert event_name in answer["reason"]
    assert deployment.sends == []


def test_a_delivery_without_an_event_type_is_400(deployment: Deployment) -> None:
    headers = _with_token(TOKEN)
    del headers["x-gitlab-event"]

    status, answer = deployment.deliver(payloads.merge_request_event(PROJECT, 1), headers)

    assert status == 400
    assert "X-Gitlab-Event" in answer["message"]

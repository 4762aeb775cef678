"""``POST /webhook/gitlab``: GitLab's project hooks land here.

GitLab waits at most 10 s and disables a hook after repeated failures, so the receiver only
authenticates, deduplicates and queues; the dispatcher does the work. Bad input gets a
clear 4xx and changes nothing; an event type Merge Assist does not handle gets a 200 with
the reason, because any 4xx would count against the hook.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from functions.webhook.enqueue import QueueResult, enqueue_once, register_context
from functions.webhook.projects import project_config
from merge_assist.adapters.meter import PowertoolsMeter, lambda_metrics
from merge_assist.adapters.webhook_secrets import read_webhook_secret
from merge_assist.errors import NotFoundError
from merge_assist.gitlab_events import EVENT_HEADERS, GitLabHook, parse_hook
from merge_assist.intake import Enqueue, decide, idempotency_key, signature_valid, token_matches
from merge_assist.metrics import Metric
from merge_assist.models import ProjectConfig, utc_now
from merge_assist.ports import Meter
from merge_assist.settings import get_settings

# One route and a cold start that GitLab waits for: no router and no tracing SDK here (the
# function's X-Ray tracing is switched on in its configuration).
logger = Logger()
metrics = lambda_metrics()
meter: Meter = PowertoolsMeter(metrics)

# Lambda's synchronous payload limit is 6 MB for the whole event; leave room for headers.
MAX_BODY_BYTES = 5 * 1024 * 1024
HANDLED_KINDS = frozenset({"merge_request", "note", "pipeline", "push", "tag_push", "build"})
# The EventType dimension takes only GitLab's own kinds: anyone can POST here, and each new
# value an unauthenticated caller made up would be one more CloudWatch metric to pay for.
KNOWN_KINDS = HANDLED_KINDS | frozenset(
    {"issue", "wiki_page", "deployment", "release", "feature_flag", "emoji", "member"}
)
UNKNOWN_KIND = "unknown"


Answer = tuple[int, dict[str, Any]]


class Reply(Exception):
    """Ends a delivery early with this answer (a refusal, or a reasoned "ignored")."""

    def __init__(self, http_status: int, **document: Any) -> None:
        super().__init__(http_status)
        self.answer: Answer = (http_status, document)


@dataclass(frozen=True)
class Delivery:
    headers: dict[str, str]
    body: bytes
    payload: dict[str, Any]

    @property
    def kind(self) -> Any:
        return self.payload.get("object_kind")

    @property
    def event_name(self) -> str:
        return self.headers.get("x-gitlab-event", "")


def _raw_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if not event.get("isBase64Encoded"):
        return str(body).encode()
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise Reply(400, message="the body is not valid base64") from None


def read_delivery(event: dict[str, Any]) -> Delivery:
    method = event.get("requestContext", {}).get("http", {}).get("method", "POST")
    if method != "POST":
        raise Reply(405, message="GitLab webhooks are POSTed")
    body = _raw_body(event)
    if len(body) > MAX_BODY_BYTES:
        raise Reply(413, message=f"the body is larger than {MAX_BODY_BYTES} bytes")
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise Reply(400, message="the body is not JSON") from None
    if not isinstance(payload, dict):
        raise Reply(400, message="the body is not a JSON object")
    headers = {name.lower(): value for name, value in (event.get("headers") or {}).items()}
    return Delivery(headers=headers, body=body, payload=payload)


def _project_id(delivery: Delivery) -> int:
    project = delivery.payload.get("project")
    if isinstance(project, dict):
        candidate = project.get("id")
    else:
        candidate = delivery.payload.get("project_id")
    if isinstance(candidate, int) and candidate > 0:
        return candidate
    if delivery.kind in HANDLED_KINDS:
        raise Reply(400, message=f"a {delivery.kind} event without a project id")
    raise Reply(200, status="ignored", reason="not a project event Merge Assist handles")


def authenticate(delivery: Delivery) -> ProjectConfig:
    """The connected project the delivery is for, if it proves it comes from its hook."""
    project_id = _project_id(delivery)
    try:
        config = project_config(project_id)
        secret = read_webhook_secret(get_settings().names, project_id)
    except NotFoundError:
        raise Reply(404, message=f"project {project_id} is not connected to Merge Assist") from None
    if not token_matches(delivery.headers.get("x-gitlab-token"), secret.secret_token):
        logger.warning("refused: wrong or missing token", project_id=project_id)
        raise Reply(401, message="wrong or missing X-Gitlab-Token")
    signing_token = secret.signing_token
    if signing_token and not signature_valid(
        delivery.headers, delivery.body, signing_token, utc_now()
    ):
        logger.warning("refused: bad signature", project_id=project_id)
        raise Reply(401, message="missing or invalid webhook-signature")
    return config


def parse(delivery: Delivery) -> GitLabHook:
    kind, event_name = delivery.kind, delivery.event_name
    if kind not in HANDLED_KINDS:
        raise Reply(200, status="ignored", reason=f"{event_name or kind} events are not used")
    if event_name and EVENT_HEADERS.get(event_name) not in (None, kind):
        raise Reply(400, message=f"X-Gitlab-Event {event_name!r} does not match {kind!r}")
    try:
        return parse_hook(delivery.payload)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"][1:])
        raise Reply(400, message=f"unreadable {kind} event: {where}: {first['msg']}") from None


def event_type(delivery: Delivery) -> str:
    kind = delivery.kind
    return kind if isinstance(kind, str) and kind in KNOWN_KINDS else UNKNOWN_KIND


def receive(event: dict[str, Any]) -> Answer:
    """The status and JSON document GitLab gets for one delivery, counted by outcome."""
    kind = UNKNOWN_KIND
    refused = False
    try:
        delivery = read_delivery(event)
        kind = event_type(delivery)
        status, document = _answer(delivery)
    except Reply as reply:
        status, document = reply.answer
        refused = 400 <= status < 500
    meter.record(Metric.EVENTS_RECEIVED, EventType=kind)
    if refused:
        meter.record(Metric.EVENTS_REFUSED)
    elif status == 200 and document.get("status") == "ignored":
        meter.record(Metric.EVENTS_IGNORED)
    return status, document


def _answer(delivery: Delivery) -> Answer:
    config = authenticate(delivery)
    hook = parse(delivery)
    decision = decide(hook, config, idempotency_key(delivery.headers, delivery.body))
    if not isinstance(decision, Enqueue):
        return 200, {"status": "ignored", "reason": decision.reason}
    try:
        result: QueueResult = enqueue_once(decision.event)
    except IdempotencyAlreadyInProgressError:
        # The same delivery is being queued right now; it holds the event, this copy must not.
        # Not a refusal: the delivery was good, and GitLab's retry of it is answered 202.
        return 409, {"message": "this delivery is already being processed"}
    logger.info(
        "queued",
        project_id=config.project_id,
        kind=decision.event.kind,
        merge_request=decision.event.mr_iid,
        idempotency_key=decision.event.idempotency_key,
        duplicate=result.duplicate,
    )
    return 202, {"status": "queued", "idempotency_key": decision.event.idempotency_key}


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    register_context(context)
    status, document = receive(event)
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(document),
    }

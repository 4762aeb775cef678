"""``POST /webhook/gitlab``: GitLab's project hooks land here.

GitLab waits at most 10 s and disables a hook after repeated failures, so the receiver only
authenticates, deduplicates and queues; the dispatcher does the work. Bad input gets a
clear 4xx and changes nothing; an event type Merge Assist does not handle gets a 200 with
the reason, because any 4xx would count against the hook.

Anyone can POST here, so a delivery is authenticated before its body is parsed: the
project is found by a linear scan of the text, and only a body that proved it comes from
that project's hook is decoded, with a bound on its nesting. What a delivery is before it
is trusted, and the shape of the answer, are ``http``'s; the adapters are ``wiring``'s.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

from functions.webhook import wiring
from functions.webhook.enqueue import QueueResult, enqueue_once, register_context
from functions.webhook.http import (
    Answer,
    Delivery,
    Reply,
    event_type,
    headers_of,
    read_delivery,
    response,
)
from functions.webhook.projects import project_config
from merge_assist.platform.clock import utc_now
from merge_assist.platform.config import ProjectConfig, WebhookSecret
from merge_assist.platform.errors import NotFoundError
from merge_assist.platform.gitlab_events import GitLabHook, parse_hook
from merge_assist.platform.intake import (
    Enqueue,
    TokenMatch,
    UnreadableBody,
    accepted_token,
    body_digest,
    decide,
    idempotency_key,
    load_json_object,
    project_id_hint,
    signature_valid,
)
from merge_assist.platform.metrics import Metric

# One route and a cold start that GitLab waits for: no router and no tracing SDK here (the
# function's X-Ray tracing is switched on in its configuration).
logger = Logger()
metrics = wiring.metrics
meter = wiring.meter


@dataclass(frozen=True)
class Refusal:
    logged: str
    message: str


WRONG_TOKEN = Refusal("refused: wrong or missing token", "wrong or missing X-Gitlab-Token")
BAD_SIGNATURE = Refusal("refused: bad signature", "missing or invalid webhook-signature")


def _verdict(delivery: Delivery, secret: WebhookSecret, now: datetime) -> TokenMatch | Refusal:
    match = accepted_token(delivery.headers.get("x-gitlab-token"), secret, now)
    if match is None:
        return WRONG_TOKEN
    signing_token = secret.signing_token
    if signing_token and not signature_valid(delivery.headers, delivery.body, signing_token, now):
        return BAD_SIGNATURE
    return match


def authenticate(delivery: Delivery, project_id: int) -> ProjectConfig:
    """``project_id``'s config, if the delivery proves it comes from that project's hook.

    An unknown project (404) and a wrong token (401) stay distinct: the hook's maintainers
    read the answer in GitLab's "Recent events" and must know whether to connect the project
    or fix its token, and a connected project's id tells a stranger nothing they can use."""
    try:
        config = project_config(project_id)
        verdict = _verdict(delivery, wiring.webhook_secret(project_id), utc_now())
        if isinstance(verdict, Refusal):
            # The secret may have been rotated since this container cached it.
            fresh = wiring.webhook_secret(project_id, refresh=True)
            verdict = _verdict(delivery, fresh, utc_now())
    except NotFoundError:
        raise Reply(404, message=f"project {project_id} is not connected to Merge Assist") from None
    if isinstance(verdict, Refusal):
        logger.warning(verdict.logged, project_id=project_id)
        raise Reply(401, message=verdict.message)
    if verdict is TokenMatch.PREVIOUS:
        logger.info("accepted with the token a rotation replaced", project_id=project_id)
    return config


def _project_id(payload: dict[str, Any], delivery: Delivery) -> int:
    project = payload.get("project")
    candidate = project.get("id") if isinstance(project, dict) else payload.get("project_id")
    if isinstance(candidate, int) and not isinstance(candidate, bool) and candidate > 0:
        return candidate
    raise Reply(400, message=f"a {delivery.kind} event without a project id")


def parse(delivery: Delivery, payload: dict[str, Any]) -> GitLabHook:
    kind = payload.get("object_kind")
    if kind != delivery.kind:
        raise Reply(
            400, message=f"X-Gitlab-Event {delivery.event_name!r} does not match {str(kind)[:80]!r}"
        )
    try:
        return parse_hook(payload)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"][1:])
        raise Reply(400, message=f"unreadable {kind} event: {where}: {first['msg']}") from None


def receive(event: dict[str, Any]) -> Answer:
    """The status and JSON document GitLab gets for one delivery, counted by outcome."""
    headers = headers_of(event)
    kind = event_type(headers.get("x-gitlab-event", "").strip())
    refused = False
    try:
        status, document = _answer(event, headers)
    except Reply as reply:
        status, document = reply.answer
        refused = 400 <= status < 500
    meter.record(Metric.EVENTS_RECEIVED, EventType=kind)
    if refused:
        meter.record(Metric.EVENTS_REFUSED)
    elif status == 200 and document.get("status") == "ignored":
        meter.record(Metric.EVENTS_IGNORED)
    return status, document


def _answer(event: dict[str, Any], headers: dict[str, str]) -> Answer:
    delivery = read_delivery(event, headers)
    hinted = project_id_hint(delivery.text)
    if hinted is None:
        raise Reply(400, message=f"a {delivery.kind} event without a project id")
    config = authenticate(delivery, hinted)
    try:
        payload = load_json_object(delivery.text)
    except UnreadableBody as error:
        raise Reply(400, message=str(error)) from None
    project_id = _project_id(payload, delivery)
    if project_id != config.project_id:
        # The scan found another project's id first: the body must prove this one too.
        config = authenticate(delivery, project_id)
    hook = parse(delivery, payload)
    key = idempotency_key(delivery.headers, delivery.body, config.project_id)
    decision = decide(hook, config, key)
    if not isinstance(decision, Enqueue):
        return 200, {"status": "ignored", "reason": decision.reason}
    try:
        result: QueueResult = enqueue_once(decision.event, body_digest(delivery.body))
    except IdempotencyAlreadyInProgressError:
        # The same delivery is being queued right now; it holds the event, this copy must not.
        # Not a refusal: the delivery was good, and GitLab's retry of it is answered 202.
        return 409, {"message": "this delivery is already being processed"}
    if result.conflicting:
        meter.record(Metric.IDEMPOTENCY_KEY_CONFLICTS)
        logger.warning(
            "Idempotency-Key reused with another body; queued under its own key",
            project_id=config.project_id,
            idempotency_key=key,
        )
    logger.info(
        "queued",
        project_id=config.project_id,
        kind=decision.event.kind,
        merge_request=decision.event.mr_iid,
        idempotency_key=result.key,
        duplicate=result.duplicate,
    )
    return 202, {"status": "queued", "idempotency_key": result.key}


@metrics.log_metrics
@logger.inject_lambda_context
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    register_context(context)
    return response(receive(event))

"""What the webhook receiver decides about a delivery, free of AWS: who may send it, how
far its body is read before that is known, which key makes it idempotent, and what (if
anything) goes on the project's queue."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from merge_assist.platform.config import ProjectConfig, WebhookSecret
from merge_assist.platform.events import (
    NOTE_EXCERPT_CHARS,
    EventKind,
    JobSnapshot,
    MergeRequestSnapshot,
    NoteSnapshot,
    PipelineSnapshot,
    PushSnapshot,
    QueueEvent,
    fifo_token,
)
from merge_assist.platform.gitlab_events import (
    GitLabHook,
    JobHook,
    MergeRequestAttributes,
    MergeRequestHook,
    NoteHook,
    PipelineHook,
    PushHook,
)

# Standard Webhooks (which GitLab's signing tokens follow) allow this much clock skew.
SIGNATURE_TOLERANCE_SECONDS = 300
# How long a rotated-out token is still accepted: far longer than any receiver caches the
# secret, so no container refuses GitLab while it moves to the new one.
ROTATION_GRACE = timedelta(hours=1)
# GitLab's payloads nest six or seven levels deep; Python's JSON decoder recurses once per
# level and gives up near a thousand.
MAX_JSON_DEPTH = 64


@dataclass(frozen=True)
class Enqueue:
    event: QueueEvent


@dataclass(frozen=True)
class Ignore:
    reason: str


class TokenMatch(StrEnum):
    CURRENT = "current"
    PREVIOUS = "previous"


class UnreadableBody(ValueError):
    """The body is not a JSON object the receiver will read; the message says why."""


def token_matches(presented: str | None, expected: str) -> bool:
    if not presented or not expected:
        return False
    return hmac.compare_digest(presented.encode(), expected.encode())


def accepted_token(
    presented: str | None, secret: WebhookSecret, now: datetime
) -> TokenMatch | None:
    """Which of the project's tokens ``presented`` is, if it is acceptable at ``now``: the
    current one always, the one a rotation replaced only until its grace period ends."""
    if token_matches(presented, secret.secret_token):
        return TokenMatch.CURRENT
    previous = secret.previous_secret_token
    if previous and secret.previous_accepted(now) and token_matches(presented, previous):
        return TokenMatch.PREVIOUS
    return None


def signature_valid(
    headers: Mapping[str, str], body: bytes, signing_token: str, now: datetime
) -> bool:
    """GitLab's signed webhooks: ``webhook-signature: v1,<base64 HMAC-SHA256>`` over
    ``{webhook-id}.{webhook-timestamp}.{body}``; several space-separated signatures may be
    sent while a token rotates."""
    webhook_id = headers.get("webhook-id")
    timestamp = headers.get("webhook-timestamp")
    signatures = headers.get("webhook-signature")
    if not (webhook_id and timestamp and signatures):
        return False
    try:
        sent_at = int(timestamp)
    except ValueError:
        return False
    if abs(now.timestamp() - sent_at) > SIGNATURE_TOLERANCE_SECONDS:
        return False
    key = (
        base64.b64decode(signing_token.removeprefix("whsec_"))
        if signing_token.startswith("whsec_")
        else signing_token.encode()
    )
    signed = webhook_id.encode() + b"." + timestamp.encode() + b"." + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for candidate in signatures.split():
        version, _, value = candidate.partition(",")
        if version == "v1" and hmac.compare_digest(value.encode(), expected.encode()):
            return True
    return False


def idempotency_key(headers: Mapping[str, str], body: bytes, project_id: int) -> str:
    """GitLab 17.4+ sends ``Idempotency-Key`` and keeps it on "Resend"; older versions only
    have the per-event ``X-Gitlab-Event-UUID``, so the key is derived from it, the event name
    and the body. Either way the key is the project's: a key is only GitLab's promise about
    one hook's deliveries, and one project's sender must not silence another's.

    ``X-Gitlab-Webhook-UUID`` is not part of it: GitLab draws a fresh one for every request,
    "Resend" included, so it would make every redelivery look new."""
    key = headers.get("idempotency-key", "").strip()
    if key:
        return fifo_token(f"{project_id}:{key}")
    material = "\n".join(
        (str(project_id), headers.get("x-gitlab-event-uuid", ""), headers.get("x-gitlab-event", ""))
    ).encode()
    return "derived:" + hashlib.sha256(material + b"\n" + body).hexdigest()


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()


def variant_key(key: str, digest: str) -> str:
    """The key for a body that came with an already used key: its own, so it is queued and
    deduplicated like any delivery without replacing the first one's record."""
    return fifo_token(f"{key}~{digest[:16]}")


# The top-level project of every project hook payload: ``project_id``, or the ``project``
# object, which GitLab always starts with its id. Inside JSON strings quotes are escaped, so
# text in a description or a note cannot look like either.
_PROJECT_ID = re.compile(
    r'"project_id"\s*:\s*(\d{1,18})(?!\d)|"project"\s*:\s*\{\s*"id"\s*:\s*(\d{1,18})(?!\d)'
)
# Escapes first, so every quote left delimits a string; then the strings; then all but the
# brackets, which are made one kind (only their depth matters here).
_ESCAPE = re.compile(r"\\.", re.DOTALL)
_JSON_STRING = re.compile(r'"[^"]*"')
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_ONE_KIND = str.maketrans("{}", "[]")


def project_id_hint(text: str) -> int | None:
    """The project a body names, found without parsing it, so a delivery is authenticated
    before the receiver spends more than a linear scan on it. Only a hint: the parsed body
    decides, and is authenticated again if it names another project."""
    found = _PROJECT_ID.search(text)
    if found is None:
        return None
    project_id = int(found.group(1) or found.group(2))
    return project_id if project_id > 0 else None


def _within_depth(text: str, max_depth: int) -> bool | None:
    """Whether the brackets outside strings nest at most ``max_depth`` deep; ``None`` when
    they plainly do not pair up. Each pass removes the innermost pairs, so it takes at most
    ``max_depth`` linear passes, none of them in Python's own loop. Pairs of mismatched kinds
    pass here and fail in the decoder, at no greater depth."""
    if text.count("[") + text.count("{") <= max_depth:
        return True  # not enough brackets to go deeper: most of GitLab's payloads
    brackets = _NOT_BRACKETS.sub("", _JSON_STRING.sub("", _ESCAPE.sub("", text)))
    brackets = brackets.translate(_ONE_KIND)
    for _ in range(max_depth):
        if not brackets:
            return True
        reduced = brackets.replace("[]", "")
        if len(reduced) == len(brackets):
            return None
        brackets = reduced
    return not brackets


def load_json_object(text: str, max_depth: int = MAX_JSON_DEPTH) -> dict[str, Any]:
    """``text`` as a JSON object, checked to nest at most ``max_depth`` deep before it is
    decoded; ``UnreadableBody`` for anything else."""
    within = _within_depth(text, max_depth)
    if within is False:
        raise UnreadableBody(f"the body nests deeper than {max_depth} levels")
    if within is None:  # brackets that do not pair up are never JSON
        raise UnreadableBody("the body is not JSON")
    try:
        payload = json.loads(text)
    except ValueError:
        raise UnreadableBody("the body is not JSON") from None
    if not isinstance(payload, dict):
        raise UnreadableBody("the body is not a JSON object")
    return payload


def _snapshot(
    attributes: MergeRequestAttributes,
    labels: list[str] | None = None,
    assignee_ids: list[int] | None = None,
    *,
    changed: tuple[str, ...] = (),
) -> MergeRequestSnapshot:
    return MergeRequestSnapshot(
        iid=attributes.iid,
        title=attributes.title,
        state=attributes.state,
        sha=attributes.sha,
        source_branch=attributes.source_branch,
        target_branch=attributes.target_branch,
        draft=attributes.is_draft,
        labels=labels or [],
        assignee_ids=assignee_ids if assignee_ids is not None else attributes.all_assignee_ids,
        reviewer_ids=attributes.reviewer_ids,
        detailed_merge_status=attributes.detailed_merge_status,
        merge_status=attributes.merge_status,
        blocking_discussions_resolved=attributes.blocking_discussions_resolved,
        head_pipeline_id=attributes.head_pipeline_id,
        web_url=attributes.url,
        action=attributes.action,
        changed=changed,
    )


def _merge_request(hook: MergeRequestHook, common: dict[str, Any]) -> Enqueue:
    attributes = hook.object_attributes
    return Enqueue(
        QueueEvent(
            kind=EventKind.MERGE_REQUEST,
            target_branch=attributes.target_branch,
            merge_request=_snapshot(
                attributes,
                [label.title for label in hook.labels],
                hook.assignee_ids,
                changed=tuple(sorted(hook.changes)),
            ),
            actor=hook.user.username if hook.user else None,
            actor_id=hook.user.id if hook.user else None,
            **common,
        )
    )


def _note(hook: NoteHook, common: dict[str, Any]) -> Enqueue | Ignore:
    note = hook.object_attributes
    if note.noteable_type != "MergeRequest" or hook.merge_request is None:
        return Ignore(f"notes on a {note.noteable_type} are not for the queue")
    return Enqueue(
        QueueEvent(
            kind=EventKind.NOTE,
            target_branch=hook.merge_request.target_branch,
            merge_request=_snapshot(hook.merge_request),
            note=NoteSnapshot(
                id=note.id, body=note.note[:NOTE_EXCERPT_CHARS], system=bool(note.system)
            ),
            actor=hook.user.username if hook.user else None,
            actor_id=hook.user.id if hook.user else None,
            **common,
        )
    )


def _pipeline(hook: PipelineHook, common: dict[str, Any]) -> Enqueue | Ignore:
    pipeline = hook.object_attributes
    if pipeline.tag:
        return Ignore("tag pipelines do not concern the queue")
    merge_request = hook.merge_request
    return Enqueue(
        QueueEvent(
            kind=EventKind.PIPELINE,
            target_branch=merge_request.target_branch if merge_request else pipeline.ref,
            merge_request=MergeRequestSnapshot(
                iid=merge_request.iid,
                source_branch=merge_request.source_branch,
                target_branch=merge_request.target_branch,
                web_url=merge_request.url,
            )
            if merge_request
            else None,
            pipeline=PipelineSnapshot(
                id=pipeline.id,
                sha=pipeline.sha,
                ref=pipeline.ref,
                status=pipeline.status,
                source=pipeline.source,
                web_url=pipeline.url,
            ),
            actor=hook.user.username if hook.user else None,
            actor_id=hook.user.id if hook.user else None,
            **common,
        )
    )


def _push(hook: PushHook, config: ProjectConfig, common: dict[str, Any]) -> Enqueue | Ignore:
    if hook.object_kind == "tag_push" or not hook.ref.startswith("refs/heads/"):
        return Ignore("tag pushes do not concern the queue")
    branch = hook.ref.removeprefix("refs/heads/")
    if branch not in config.target_branches:
        # Pushes to MR source branches arrive again as merge request "update" events.
        return Ignore(f"{branch} is not a target branch of this project")
    return Enqueue(
        QueueEvent(
            kind=EventKind.PUSH,
            target_branch=branch,
            push=PushSnapshot(branch=branch, before=hook.before, after=hook.after),
            actor=hook.user_username,
            actor_id=hook.user_id,
            **common,
        )
    )


def _job(hook: JobHook, common: dict[str, Any]) -> Enqueue:
    return Enqueue(
        QueueEvent(
            kind=EventKind.JOB,
            target_branch=None if hook.tag else hook.ref,
            job=JobSnapshot(
                id=hook.build_id,
                name=hook.build_name,
                stage=hook.build_stage,
                status=hook.build_status,
                pipeline_id=hook.pipeline_id,
                sha=hook.sha,
                ref=hook.ref,
                allow_failure=bool(hook.build_allow_failure),
            ),
            actor=hook.user.username if hook.user else None,
            actor_id=hook.user.id if hook.user else None,
            **common,
        )
    )


def decide(hook: GitLabHook, config: ProjectConfig, key: str) -> Enqueue | Ignore:
    """What to do with a parsed, authenticated delivery for ``config``'s project."""
    common: dict[str, Any] = {"idempotency_key": key, "project_id": config.project_id}
    if isinstance(hook, MergeRequestHook):
        return _merge_request(hook, common)
    if isinstance(hook, NoteHook):
        return _note(hook, common)
    if isinstance(hook, PipelineHook):
        return _pipeline(hook, common)
    if isinstance(hook, PushHook):
        return _push(hook, config, common)
    return _job(hook, common)

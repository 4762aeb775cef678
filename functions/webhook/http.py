"""The receiver's HTTP plumbing: what a delivery is before anything in it is trusted (its
method, headers, body and event header), the early answers to one that is malformed or
not wanted, and the response API Gateway's proxy integration expects."""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

from merge_assist.platform.gitlab_events import EVENT_HEADERS

# Lambda's synchronous payload limit is 6 MB for the whole event; leave room for headers.
MAX_BODY_BYTES = 5 * 1024 * 1024
# X-Gitlab-Event of the hooks the queue reads → the object_kind their body carries.
HANDLED_EVENTS: dict[str, str] = {**EVENT_HEADERS, "Confidential Note Hook": "note"}
# GitLab's other project hook events: answered "ignored", counted under their own type.
OTHER_EVENTS: dict[str, str] = {
    "Issue Hook": "issue",
    "Confidential Issue Hook": "issue",
    "Wiki Page Hook": "wiki_page",
    "Deployment Hook": "deployment",
    "Release Hook": "release",
    "Feature Flag Hook": "feature_flag",
    "Emoji Hook": "emoji",
    "Member Hook": "member",
}
# The EventType dimension takes only GitLab's own kinds: anyone can POST here, and each new
# value an unauthenticated caller made up would be one more CloudWatch metric to pay for.
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
    text: str
    event_name: str

    @property
    def kind(self) -> str:
        """The object_kind the X-Gitlab-Event header promises."""
        return HANDLED_EVENTS[self.event_name]


def event_type(event_name: str) -> str:
    """The kind an X-Gitlab-Event header names, as counted."""
    return HANDLED_EVENTS.get(event_name) or OTHER_EVENTS.get(event_name) or UNKNOWN_KIND


def headers_of(event: dict[str, Any]) -> dict[str, str]:
    """The request's headers, by lower-case name."""
    return {str(name).lower(): str(value) for name, value in (event.get("headers") or {}).items()}


def _raw_body(event: dict[str, Any]) -> bytes:
    body = event.get("body") or ""
    if not event.get("isBase64Encoded"):
        return str(body).encode()
    try:
        return base64.b64decode(body, validate=True)
    except (binascii.Error, ValueError):
        raise Reply(400, message="the body is not valid base64") from None


def read_delivery(event: dict[str, Any], headers: dict[str, str]) -> Delivery:
    """What can be known of a delivery without trusting it: nothing here reads the body
    beyond its size and encoding."""
    method = event.get("requestContext", {}).get("http", {}).get("method", "POST")
    if method != "POST":
        raise Reply(405, message="GitLab webhooks are POSTed")
    media_type = headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type != "application/json":
        raise Reply(400, message="the content-type must be application/json, as GitLab sends")
    body = _raw_body(event)
    if len(body) > MAX_BODY_BYTES:
        raise Reply(413, message=f"the body is larger than {MAX_BODY_BYTES} bytes")
    event_name = headers.get("x-gitlab-event", "").strip()
    if not event_name:
        raise Reply(400, message="X-Gitlab-Event is missing")
    if event_name not in HANDLED_EVENTS:
        raise Reply(200, status="ignored", reason=f"{event_name[:80]} events are not used")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Reply(400, message="the body is not JSON") from None
    return Delivery(headers=headers, body=body, text=text, event_name=event_name)


def response(answer: Answer) -> dict[str, Any]:
    """``answer`` as API Gateway's proxy integration expects it."""
    status, document = answer
    return {
        "statusCode": status,
        "headers": {"content-type": "application/json"},
        "body": json.dumps(document),
    }

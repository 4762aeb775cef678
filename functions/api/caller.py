"""The authenticated caller of the request being handled, and the request's identity."""

from __future__ import annotations

from contextvars import ContextVar

from merge_assist.admin.administration import Actor
from merge_assist.platform.access import Action, Principal
from merge_assist.platform.clock import utc_now
from merge_assist.platform.errors import Forbidden

_principal: ContextVar[Principal] = ContextVar("principal")
_request_id: ContextVar[str] = ContextVar("request_id")


def begin(principal: Principal, request_id: str) -> None:
    _principal.set(principal)
    _request_id.set(request_id)


def current() -> Principal:
    return _principal.get()


def require(action: Action, project_id: int | None = None) -> Principal:
    principal = current()
    if not principal.may(action, project_id):
        where = f" on project {project_id}" if project_id is not None else ""
        raise Forbidden(f"{principal.username} may not {action.value}{where}")
    return principal


def actor() -> Actor:
    """Who makes a change; the request id makes its event-log entry written once however
    often the request is retried by API Gateway or the client."""
    return Actor(username=current().username, request_id=_request_id.get(), at=utc_now())

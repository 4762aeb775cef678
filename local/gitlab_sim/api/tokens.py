"""/personal_access_tokens/self: the token the request authenticates with, its rotation and
its revocation, with GitLab's reuse detection."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from werkzeug.wrappers import Request

from local.gitlab_sim.api.core import Ctx, Reply, Router
from local.gitlab_sim.errors import ApiError
from local.gitlab_sim.models import AccessToken
from local.gitlab_sim.store import Store

ROTATE_PATH = "/personal_access_tokens/self/rotate"
# GitLab's default when a token must expire and no date is given.
DEFAULT_ROTATED_LIFETIME = timedelta(weeks=1)
# Scopes that let a token rotate itself.
SELF_ROTATE_SCOPES = frozenset({"api", "self_rotate"})


def request_token(request: Request) -> str | None:
    """The token a REST request authenticates with, where GitLab looks for it."""
    token = request.headers.get("PRIVATE-TOKEN")
    if token is None:
        auth = request.headers.get("Authorization", "")
        if auth.startswith("Bearer "):
            token = auth[7:]
    if token is None:
        token = request.args.get("private_token")
    return token or None


def refused(store: Store, request: Request, path: str) -> None:
    """Told of every request answered 401: a revoked token asked to rotate is taken for a
    leaked one, and its whole family is revoked (GitLab 16.3+)."""
    token = request_token(request)
    if request.method == "POST" and path == ROTATE_PATH and token:
        store.revoke_family(token)


def serialize(store: Store, record: AccessToken) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "revoked": record.revoked,
        "created_at": record.created_at,
        "description": record.description,
        "scopes": list(record.scopes),
        "user_id": record.user_id,
        "last_used_at": record.last_used_at,
        "active": store.token_active(record),
        "expires_at": record.expires_at,
    }


def _own(ctx: Ctx) -> tuple[str, AccessToken]:
    token = request_token(ctx.request)
    record = ctx.store.access_token(token) if token else None
    if token is None or record is None:
        raise ApiError(401, "401 Unauthorized")
    return token, record


def get_self(ctx: Ctx) -> Reply:
    _, record = _own(ctx)
    return Reply(serialize(ctx.store, record))


def _expiry(ctx: Ctx) -> str:
    today = datetime.now(UTC).date()
    given = ctx.get("expires_at")
    if given in (None, ""):
        return (today + DEFAULT_ROTATED_LIFETIME).isoformat()
    try:
        expires_at = date.fromisoformat(str(given))
    except ValueError as err:
        raise ApiError(400, {"error": "expires_at is invalid"}) from err
    if expires_at <= today:
        raise ApiError(400, "400 Bad request - Expiration date must be in the future")
    return expires_at.isoformat()


def rotate_self(ctx: Ctx) -> Reply:
    token, record = _own(ctx)
    if not SELF_ROTATE_SCOPES & set(record.scopes):
        raise ApiError(403, "403 Forbidden")
    expires_at = _expiry(ctx)
    with ctx.store.lock:
        new_token = ctx.store.rotate_token(token, expires_at)
        new_record = ctx.store.tokens[new_token]
        body = serialize(ctx.store, new_record)
    body["token"] = new_token
    return Reply(body)


def revoke_self(ctx: Ctx) -> Reply:
    token, _ = _own(ctx)
    ctx.store.revoke_token(token)
    return Reply(None, status=204)


def register(router: Router) -> None:
    router.add("GET", "/personal_access_tokens/self", get_self)
    router.add("POST", ROTATE_PATH, rotate_self)
    router.add("DELETE", "/personal_access_tokens/self", revoke_self)

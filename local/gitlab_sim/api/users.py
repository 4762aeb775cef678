"""/user, /users, /users/:id/status, /version."""

from __future__ import annotations

from local.gitlab_sim.api.core import Ctx, Reply, Router, paginate, truthy
from local.gitlab_sim.errors import ApiError


def current_user(ctx: Ctx) -> Reply:
    return Reply(ctx.ser.user_full(ctx.user, ctx.user))


def get_user(ctx: Ctx) -> Reply:
    return Reply(ctx.ser.user_full(ctx.store.user(int(ctx.path["user_id"])), ctx.user))


def list_users(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        users = sorted(ctx.store.users.values(), key=lambda u: u.id)
        if ctx.get("username"):
            users = [u for u in users if u.username.lower() == str(ctx.get("username")).lower()]
        if ctx.get("search"):
            term = str(ctx.get("search")).lower()
            users = [u for u in users if term in u.username.lower() or term in u.name.lower()]
        return paginate(ctx, [ctx.ser.user(u) for u in users])


def create_user(ctx: Ctx) -> Reply:
    ctx.admin()
    ctx.require("username")
    try:
        user = ctx.store.add_user(
            str(ctx.get("username")),
            name=str(ctx.get("name") or ""),
            is_admin=truthy(ctx.get("admin")),
        )
    except ValueError as err:
        raise ApiError(409, str(err)) from err
    if ctx.get("email"):
        user.email = str(ctx.get("email"))
    return Reply(ctx.ser.user_full(user, ctx.user), status=201)


def user_status(ctx: Ctx) -> Reply:
    return Reply(ctx.ser.status(ctx.store.user(int(ctx.path["user_id"]))))


def my_status(ctx: Ctx) -> Reply:
    return Reply(ctx.ser.status(ctx.user))


def set_my_status(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        if "availability" in ctx.params:
            ctx.user.availability = str(ctx.get("availability") or "not_set")
        if "message" in ctx.params:
            ctx.user.status_message = str(ctx.get("message") or "")
        if "emoji" in ctx.params:
            ctx.user.status_emoji = str(ctx.get("emoji") or "")
        return Reply(ctx.ser.status(ctx.user))


def version(ctx: Ctx) -> Reply:
    return Reply(ctx.ser.version())


def register(router: Router) -> None:
    router.add("GET", "/user", current_user)
    router.add("GET", "/user/status", my_status)
    router.add("PUT", "/user/status", set_my_status)
    router.add("GET", "/users", list_users)
    router.add("POST", "/users", create_user)
    router.add("GET", "/users/:user_id", get_user)
    router.add("GET", "/users/:user_id/status", user_status)
    router.add("GET", "/version", version)
    router.add("GET", "/metadata", version)

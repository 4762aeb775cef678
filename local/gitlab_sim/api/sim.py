"""Admin-only scenario and fault controls under /api/v4/-/sim, mirroring GitLabSimulator's
Python API for tools that drive the simulator over HTTP."""

from __future__ import annotations

import re
import time
from dataclasses import asdict
from typing import TYPE_CHECKING, Any

from local.gitlab_sim.api.core import Ctx, Reply, Router, truthy
from local.gitlab_sim.errors import ApiError
from local.gitlab_sim.faults import OUTAGE_STATUS
from local.gitlab_sim.store import NotFound

if TYPE_CHECKING:
    from local.gitlab_sim.simulator import GitLabSimulator


def _sim(ctx: Ctx) -> GitLabSimulator:
    ctx.admin()
    return ctx.services.scenario  # type: ignore[no-any-return]


def create_user(ctx: Ctx) -> Reply:
    sim = _sim(ctx)
    ctx.require("username")
    try:
        user, token = sim.create_user(
            str(ctx.get("username")),
            name=str(ctx.get("name") or ""),
            admin=bool(ctx.get("admin", False)),
            availability=str(ctx.get("availability") or "not_set"),
            status_message=str(ctx.get("status_message") or ""),
            status_emoji=str(ctx.get("status_emoji") or ""),
        )
    except ValueError as err:
        raise ApiError(409, str(err)) from err
    return Reply({"id": user.id, "username": user.username, "token": token}, status=201)


def set_status(ctx: Ctx) -> Reply:
    sim = _sim(ctx)
    sim.set_user_status(
        ctx.path["username"],
        availability=str(ctx.get("availability") or "not_set"),
        message=str(ctx.get("message") or ""),
        emoji=str(ctx.get("emoji") or ""),
    )
    return Reply(ctx.ser.status(ctx.store.user_by_username(ctx.path["username"])))


def create_project(ctx: Ctx) -> Reply:
    sim = _sim(ctx)
    ctx.require("name")
    settings = {
        k: v
        for k, v in ctx.params.items()
        if k not in ("name", "owner", "namespace", "files", "default_branch", "members")
    }
    try:
        project = sim.create_project(
            str(ctx.get("name")),
            owner=str(ctx.get("owner") or "root"),
            namespace=str(ctx.get("namespace") or ""),
            files=ctx.get("files"),
            default_branch=str(ctx.get("default_branch") or "main"),
            members=ctx.get("members"),
            **settings,
        )
    except (ValueError, TypeError) as err:
        raise ApiError(400, str(err)) from err
    return Reply(ctx.ser.project(project, ctx.user), status=201)


def create_merge_request(ctx: Ctx) -> Reply:
    sim = _sim(ctx)
    ctx.require("source_branch", "title", "files")
    iid = sim.create_merge_request(
        ctx.path["id"],
        str(ctx.get("source_branch")),
        str(ctx.get("title")),
        dict(ctx.get("files")),
        target_branch=ctx.get("target_branch"),
        author=str(ctx.get("author") or "root"),
        assignees=ctx.get("assignees"),
        reviewers=ctx.get("reviewers"),
        labels=ctx.get("labels"),
        description=str(ctx.get("description") or ""),
    )
    return Reply(sim.merge_request(ctx.path["id"], iid), status=201)


def approve(ctx: Ctx) -> Reply:
    sim = _sim(ctx)
    ctx.require("username")
    sim.approve(ctx.path["id"], int(ctx.path["iid"]), str(ctx.get("username")))
    return Reply(sim.merge_request(ctx.path["id"], int(ctx.path["iid"])), status=201)


def create_group(ctx: Ctx) -> Reply:
    sim = _sim(ctx)
    ctx.require("path")
    try:
        group = sim.create_group(str(ctx.get("path")), name=str(ctx.get("name") or ""))
    except ValueError as err:
        raise ApiError(400, str(err)) from err
    return Reply(ctx.ser.group(group, ctx.user), status=201)


def create_issue(ctx: Ctx) -> Reply:
    sim = _sim(ctx)
    ctx.require("title")
    iid = sim.create_issue(
        ctx.path["id"],
        str(ctx.get("title")),
        author=str(ctx.get("author") or "root"),
        description=str(ctx.get("description") or ""),
        labels=ctx.get("labels"),
        assignees=ctx.get("assignees"),
        weight=ctx.int_param("weight"),
        due_date=ctx.get("due_date"),
        confidential=truthy(ctx.get("confidential", False)),
        epic=ctx.int_param("epic_iid"),
        closed=truthy(ctx.get("closed", False)),
    )
    return Reply(sim.issue(ctx.path["id"], iid), status=201)


def create_epic(ctx: Ctx) -> Reply:
    sim = _sim(ctx)
    ctx.require("title")
    iid = sim.create_epic(
        ctx.path["id"],
        str(ctx.get("title")),
        author=str(ctx.get("author") or "root"),
        description=str(ctx.get("description") or ""),
        labels=ctx.get("labels"),
        start_date=ctx.get("start_date"),
        due_date=ctx.get("due_date"),
        parent=ctx.int_param("parent_iid"),
        closed=truthy(ctx.get("closed", False)),
    )
    return Reply(sim.epic(ctx.path["id"], iid), status=201)


def set_rules(ctx: Ctx) -> Reply:
    sim = _sim(ctx)
    pairs = ctx.get("conflict_pairs")
    sim.set_pipeline_rules(
        ctx.path["id"],
        fail_paths=ctx.get("fail_paths"),
        conflict_pairs=[(str(a), str(b)) for a, b in pairs] if pairs is not None else None,
        flaky_rate=ctx.get("flaky_rate"),
        seed=ctx.get("seed"),
        duration_s=ctx.get("duration_s"),
        pending_s=ctx.get("pending_s"),
    )
    return Reply(asdict(sim.project(ctx.path["id"]).rules))


WEBHOOK_FAULTS = ("drop_webhook_event", "duplicate_webhook_event", "delay_webhook_event")


def _float_param(ctx: Ctx, name: str, default: float | None) -> float | None:
    value = ctx.get(name)
    if value in (None, ""):
        return default
    try:
        return float(value)
    except (TypeError, ValueError) as err:
        raise ApiError(400, {"error": f"{name} is invalid"}) from err


def add_fault(ctx: Ctx) -> Reply:
    sim = _sim(ctx)
    rate = _float_param(ctx, "rate", 1.0)
    assert rate is not None
    times, seed = ctx.int_param("times"), ctx.int_param("seed") or 0
    try:
        for name, add in zip(
            WEBHOOK_FAULTS,
            (sim.drop_webhooks, sim.duplicate_webhooks, sim.delay_webhooks),
            strict=True,
        ):
            if ctx.get(name):
                rule = add(str(ctx.get(name)), times=times, rate=rate, seed=seed)
                return Reply(asdict(rule), status=201)
        rule = sim.inject_fault(
            str(ctx.get("path_pattern") or ".*"),
            method=ctx.get("method"),
            status=ctx.int_param("status"),
            retry_after=ctx.int_param("retry_after"),
            latency_s=_float_param(ctx, "latency_s", 0.0) or 0.0,
            times=times,
            rate=rate,
            seed=seed,
            scope=str(ctx.get("scope") or "api"),  # type: ignore[arg-type]
            after_effect=truthy(ctx.get("after_effect", False)),
            drop_connection=truthy(ctx.get("drop_connection", False)),
        )
    except (ValueError, re.error) as err:
        raise ApiError(400, {"error": str(err)}) from err
    return Reply(asdict(rule), status=201)


def _outage_json(sim: GitLabSimulator) -> dict[str, Any]:
    outage = sim.faults.outage()
    if outage is None:
        return {"active": False}
    remaining = None if outage.until is None else max(0.0, outage.until - time.monotonic())
    return {
        "active": True,
        "status": outage.status,
        "retry_after": outage.retry_after,
        "refuse": outage.refuse,
        "remaining_s": remaining,
    }


def start_outage(ctx: Ctx) -> Reply:
    """An outage that refuses connections can only be ended by its ``seconds`` or from
    Python: this endpoint is unreachable while it lasts."""
    sim = _sim(ctx)
    refuse = truthy(ctx.get("refuse", False))
    seconds = _float_param(ctx, "seconds", None)
    if refuse and seconds is None:
        raise ApiError(400, {"error": "an outage that refuses connections needs seconds"})
    try:
        sim.faults.start_outage(
            seconds,
            status=ctx.int_param("status") or OUTAGE_STATUS,
            retry_after=ctx.int_param("retry_after"),
            refuse=refuse,
        )
    except ValueError as err:
        raise ApiError(400, {"error": str(err)}) from err
    # Answered before the listener closes: the tick of the simulator's clock closes it.
    return Reply(_outage_json(sim), status=201)


def show_outage(ctx: Ctx) -> Reply:
    return Reply(_outage_json(_sim(ctx)))


def end_outage(ctx: Ctx) -> Reply:
    _sim(ctx).end_outage()
    return Reply(None, status=204)


def list_faults(ctx: Ctx) -> Reply:
    return Reply([asdict(r) for r in _sim(ctx).faults.rules()])


def clear_faults(ctx: Ctx) -> Reply:
    _sim(ctx).clear_faults()
    return Reply(None, status=204)


def _delivery_json(delivery: Any) -> dict[str, Any]:
    return asdict(delivery)


def list_deliveries(ctx: Ctx) -> Reply:
    hook_id = ctx.int_param("hook_id")
    return Reply([_delivery_json(d) for d in _sim(ctx).deliveries(hook_id)])


def resend(ctx: Ctx) -> Reply:
    sim = _sim(ctx)
    try:
        delivery = sim.resend_delivery(int(ctx.path["delivery_id"]))
    except KeyError as err:
        raise NotFound("404 Not found") from err
    return Reply(_delivery_json(delivery), status=201)


def register(router: Router) -> None:
    router.add("POST", "/-/sim/users", create_user)
    router.add("PUT", "/-/sim/users/:username/status", set_status)
    router.add("POST", "/-/sim/projects", create_project)
    router.add("POST", "/-/sim/projects/:id/merge_requests", create_merge_request)
    router.add("POST", "/-/sim/projects/:id/merge_requests/:iid/approvals", approve)
    router.add("PUT", "/-/sim/projects/:id/pipeline_rules", set_rules)
    router.add("POST", "/-/sim/projects/:id/issues", create_issue)
    router.add("POST", "/-/sim/groups", create_group)
    router.add("POST", "/-/sim/groups/:id/epics", create_epic)
    router.add("GET", "/-/sim/faults", list_faults)
    router.add("POST", "/-/sim/faults", add_fault)
    router.add("DELETE", "/-/sim/faults", clear_faults)
    router.add("GET", "/-/sim/faults/outage", show_outage)
    router.add("POST", "/-/sim/faults/outage", start_outage)
    router.add("DELETE", "/-/sim/faults/outage", end_outage)
    router.add("GET", "/-/sim/deliveries", list_deliveries)
    router.add("POST", "/-/sim/deliveries/:delivery_id/resend", resend)

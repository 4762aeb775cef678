"""/projects/:id/issues (list, get, create, edit)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from local.gitlab_sim.api.core import Ctx, Reply, Router, paginate, sort_items, truthy
from local.gitlab_sim.errors import ApiError
from local.gitlab_sim.models import REPORTER, Issue, Project, User
from local.gitlab_sim.store import NotFound, Store

Filter = Callable[[Issue], bool]


def readable(store: Store, project: Project, user: User, issue: Issue) -> bool:
    """Confidential issues are for reporters and up, their author and their assignees."""
    return (
        not issue.confidential
        or store.access_level(project, user) >= REPORTER
        or issue.author_id == user.id
        or user.id in issue.assignee_ids
    )


def _issue(ctx: Ctx) -> tuple[Project, Issue]:
    project = ctx.project()
    try:
        iid = int(ctx.path["iid"])
    except ValueError as err:
        raise NotFound("404 Not found") from err
    issue = ctx.store.issue(project.id, iid)
    if not readable(ctx.store, project, ctx.user, issue):
        raise NotFound("404 Not found")
    return project, issue


def _presence(value: Any, present: Filter) -> Filter | None:
    """GitLab's "None" and "Any" filter values; None for any other value."""
    if str(value).lower() == "none":
        return lambda i: not present(i)
    if str(value).lower() == "any":
        return present
    return None


def _id_filter(ctx: Ctx, name: str, present: Filter, has: Callable[[Issue, int], bool]) -> Filter:
    special = _presence(ctx.get(name), present)
    if special is not None:
        return special
    number = ctx.int_param(name)
    assert number is not None
    return lambda i: has(i, number)


def _filters(ctx: Ctx) -> list[Filter]:
    filters: list[Filter] = []
    state = str(ctx.get("state") or "all")
    if state not in ("opened", "closed", "all"):
        raise ApiError(400, "state does not have a valid value")
    if state != "all":
        filters.append(lambda i: i.state == state)
    scope = str(ctx.get("scope") or "all")
    if scope == "created_by_me":
        filters.append(lambda i: i.author_id == ctx.user.id)
    elif scope == "assigned_to_me":
        filters.append(lambda i: ctx.user.id in i.assignee_ids)
    labels = ctx.get("labels")
    if labels:
        wanted = {lb.strip() for lb in (labels if isinstance(labels, list) else labels.split(","))}
        special = _presence(labels, lambda i: bool(i.labels))
        filters.append(special or (lambda i: wanted <= set(i.labels)))
    if ctx.get("milestone"):
        # Issues have no milestone here, so only "None" matches any.
        filters.append(_presence(ctx.get("milestone"), lambda i: False) or (lambda i: False))
    if ctx.get("assignee_id") not in (None, ""):
        filters.append(_id_filter(ctx, "assignee_id", lambda i: bool(i.assignee_ids), _assigned))
    if ctx.get("epic_id") not in (None, ""):
        filters.append(_id_filter(ctx, "epic_id", lambda i: i.epic_id is not None, _in_epic))
    author = ctx.int_param("author_id")
    if author is not None:
        filters.append(lambda i: i.author_id == author)
    if ctx.get("search"):
        term = str(ctx.get("search")).lower()
        filters.append(lambda i: term in i.title.lower() or term in i.description.lower())
    if ctx.get("iids"):
        raw = ctx.get("iids")
        iids = {int(i) for i in (raw if isinstance(raw, list) else [raw])}
        filters.append(lambda i: i.iid in iids)
    if "confidential" in ctx.params:
        confidential = truthy(ctx.get("confidential"))
        filters.append(lambda i: i.confidential == confidential)
    return filters


def _assigned(issue: Issue, user_id: int) -> bool:
    return user_id in issue.assignee_ids


def _in_epic(issue: Issue, epic_id: int) -> bool:
    return issue.epic_id == epic_id


def list_issues(ctx: Ctx) -> Reply:
    store = ctx.store
    with store.lock:
        project = ctx.project()
        filters = _filters(ctx)
        issues = [
            i
            for i in store.project_issues(project.id)
            if readable(store, project, ctx.user, i) and all(f(i) for f in filters)
        ]
        issues = sort_items(
            ctx,
            issues,
            {
                "created_at": lambda i: (i.created_at, i.id),
                "updated_at": lambda i: (i.updated_at, i.id),
                "title": lambda i: (i.title.lower(), i.id),
            },
            "created_at",
        )
        return paginate(ctx, [ctx.ser.issue(project, i, full=False) for i in issues])


def get_issue(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project, issue = _issue(ctx)
        return Reply(ctx.ser.issue(project, issue))


def create_issue(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project = ctx.project()
        issue = ctx.services.issues.create_issue(project, ctx.user, ctx.params)
        return Reply(ctx.ser.issue(project, issue), status=201)


def update_issue(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project, issue = _issue(ctx)
        if ctx.store.access_level(project, ctx.user) < REPORTER and issue.author_id != ctx.user.id:
            raise ApiError(403, "403 Forbidden")
        ctx.services.issues.update_issue(project, issue, ctx.user, ctx.params)
        return Reply(ctx.ser.issue(project, issue))


def register(router: Router) -> None:
    router.add("GET", "/projects/:id/issues", list_issues)
    router.add("POST", "/projects/:id/issues", create_issue)
    router.add("GET", "/projects/:id/issues/:iid", get_issue)
    router.add("PUT", "/projects/:id/issues/:iid", update_issue)

"""/groups/:id and group epics (list, get, create, edit) with their issue links."""

from __future__ import annotations

from typing import Any

from local.gitlab_sim.api.core import Ctx, Reply, Router, paginate, sort_items, truthy
from local.gitlab_sim.api.issues import readable
from local.gitlab_sim.errors import ApiError
from local.gitlab_sim.issues import NOT_IN_GROUP, labels_of
from local.gitlab_sim.models import NO_ACCESS, REPORTER, Epic, Group, Issue
from local.gitlab_sim.store import NotFound


def _group(ctx: Ctx) -> Group:
    return ctx.store.group(ctx.path["id"], ctx.user)


def _planner_group(ctx: Ctx) -> Group:
    group = _group(ctx)
    if ctx.store.group_access(group, ctx.user) < REPORTER:
        raise ApiError(403, "403 Forbidden")
    return group


def _epic(ctx: Ctx, group: Group) -> Epic:
    try:
        iid = int(ctx.path["epic_iid"])
    except ValueError as err:
        raise NotFound("404 Not found") from err
    return ctx.store.epic(group.id, iid)


def _visible_issue(ctx: Ctx, issue: Issue) -> bool:
    store = ctx.store
    project = store.projects[issue.project_id]
    if project.visibility != "public" and store.access_level(project, ctx.user) == NO_ACCESS:
        return False
    return readable(store, project, ctx.user, issue)


def get_group(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        group = _group(ctx)
        with_projects = truthy(ctx.get("with_projects", True))
        return Reply(ctx.ser.group(group, ctx.user, with_projects=with_projects))


def list_epics(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        group = _group(ctx)
        epics = ctx.store.group_epics(group.id)
        state = str(ctx.get("state") or "all")
        if state not in ("opened", "closed", "all"):
            raise ApiError(400, "state does not have a valid value")
        if state != "all":
            epics = [e for e in epics if e.state == state]
        if ctx.get("labels"):
            wanted = set(labels_of(ctx.get("labels")))
            epics = [e for e in epics if wanted <= set(e.labels)]
        author = ctx.int_param("author_id")
        if author is not None:
            epics = [e for e in epics if e.author_id == author]
        if ctx.get("search"):
            term = str(ctx.get("search")).lower()
            epics = [e for e in epics if term in e.title.lower() or term in e.description.lower()]
        epics = sort_items(
            ctx,
            epics,
            {
                "created_at": lambda e: (e.created_at, e.id),
                "updated_at": lambda e: (e.updated_at, e.id),
                "title": lambda e: (e.title.lower(), e.id),
            },
            "created_at",
        )
        return paginate(ctx, [ctx.ser.epic(e) for e in epics])


def get_epic(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        return Reply(ctx.ser.epic(_epic(ctx, _group(ctx))))


def create_epic(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        group = _planner_group(ctx)
        epic = ctx.services.issues.create_epic(group, ctx.user, ctx.params)
        return Reply(ctx.ser.epic(epic), status=201)


def update_epic(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        group = _planner_group(ctx)
        epic = ctx.services.issues.update_epic(group, _epic(ctx, group), ctx.params)
        return Reply(ctx.ser.epic(epic))


def _epic_issue(ctx: Ctx, issue: Issue, position: int) -> dict[str, Any]:
    data = ctx.ser.issue(ctx.store.projects[issue.project_id], issue, full=False)
    data["epic_issue_id"] = issue.epic_issue_id
    data["relative_position"] = position
    return data


def list_epic_issues(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        epic = _epic(ctx, _group(ctx))
        issues = [i for i in ctx.services.issues.epic_issues(epic) if _visible_issue(ctx, i)]
        return paginate(ctx, [_epic_issue(ctx, i, n) for n, i in enumerate(issues)])


def link_issue(ctx: Ctx) -> Reply:
    store = ctx.store
    with store.lock:
        group = _planner_group(ctx)
        epic = _epic(ctx, group)
        try:
            issue_id = int(ctx.path["issue_id"])
        except ValueError as err:
            raise NotFound("404 Not found") from err
        issue = next((i for i in store.issues.values() if i.id == issue_id), None)
        if issue is None:
            raise NotFound("404 Not found")
        if not _visible_issue(ctx, issue):
            raise NotFound(NOT_IN_GROUP)
        ctx.services.issues.link(epic, issue)
        linked = ctx.services.issues.epic_issues(epic)
        return Reply(
            {
                "id": issue.epic_issue_id,
                "relative_position": linked.index(issue),
                "epic": ctx.ser.epic(epic),
                "issue": ctx.ser.issue(store.projects[issue.project_id], issue),
            },
            status=201,
        )


def register(router: Router) -> None:
    router.add("GET", "/groups/:id", get_group)
    # GitLab serves epics both at /groups/:id/epics and at /groups/:id/-/epics.
    for epics in ("/groups/:id/epics", "/groups/:id/-/epics"):
        router.add("GET", epics, list_epics)
        router.add("POST", epics, create_epic)
        router.add("GET", f"{epics}/:epic_iid", get_epic)
        router.add("PUT", f"{epics}/:epic_iid", update_epic)
        router.add("GET", f"{epics}/:epic_iid/issues", list_epic_issues)
        router.add("POST", f"{epics}/:epic_iid/issues/:issue_id", link_issue)

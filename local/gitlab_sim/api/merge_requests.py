"""/merge_requests and their notes, discussions, approvals, commits, diffs, pipelines,
rebase and merge."""

from __future__ import annotations

from typing import Any

from local.gitlab_sim import gitops
from local.gitlab_sim.api.core import Ctx, Reply, Router, paginate, sort_items, truthy
from local.gitlab_sim.errors import ApiError
from local.gitlab_sim.models import REPORTER, MergeRequest, Project
from local.gitlab_sim.store import NotFound


# One branch per documented list filter.
def _filtered(ctx: Ctx, mrs: list[MergeRequest]) -> list[MergeRequest]:  # noqa: PLR0912
    state = str(ctx.get("state") or "all")
    if state != "all":
        mrs = [m for m in mrs if m.state == state]
    scope = str(ctx.get("scope") or "all")
    if scope == "assigned_to_me":
        mrs = [m for m in mrs if ctx.user.id in m.assignee_ids]
    elif scope == "created_by_me":
        mrs = [m for m in mrs if m.author_id == ctx.user.id]
    elif scope == "reviews_for_me":
        mrs = [m for m in mrs if ctx.user.id in m.reviewer_ids]
    labels = ctx.get("labels")
    if labels:
        wanted = labels if isinstance(labels, list) else str(labels).split(",")
        mrs = [m for m in mrs if all(lb.strip() in m.labels for lb in wanted)]
    for name in ("target_branch", "source_branch"):
        if ctx.get(name):
            mrs = [m for m in mrs if getattr(m, name) == ctx.get(name)]
    assignee = ctx.get("assignee_id")
    if assignee not in (None, ""):
        if str(assignee).lower() == "none":
            mrs = [m for m in mrs if not m.assignee_ids]
        elif str(assignee).lower() == "any":
            mrs = [m for m in mrs if m.assignee_ids]
        else:
            mrs = [m for m in mrs if int(assignee) in m.assignee_ids]
    if ctx.get("author_id"):
        mrs = [m for m in mrs if m.author_id == int(ctx.get("author_id"))]
    if ctx.get("iids"):
        iids = {
            int(i)
            for i in (ctx.get("iids") if isinstance(ctx.get("iids"), list) else [ctx.get("iids")])
        }
        mrs = [m for m in mrs if m.iid in iids]
    return sort_items(
        ctx,
        mrs,
        {
            "created_at": lambda m: (m.created_at, m.id),
            "updated_at": lambda m: (m.updated_at, m.id),
            "title": lambda m: m.title,
            "merged_at": lambda m: m.merged_at or "",
        },
        "created_at",
    )


def list_project_mrs(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project = ctx.project()
        mrs = _filtered(ctx, ctx.store.project_merge_requests(project.id))
        return paginate(ctx, [ctx.ser.merge_request(project, m, ctx.user, full=False) for m in mrs])


def list_all_mrs(ctx: Ctx) -> Reply:
    store = ctx.store
    with store.lock:
        if "scope" not in ctx.params:
            ctx.params["scope"] = "created_by_me"
        visible = [
            m
            for m in store.merge_requests.values()
            if store.access_level(store.projects[m.project_id], ctx.user) >= REPORTER
        ]
        mrs = _filtered(ctx, visible)
        return paginate(
            ctx,
            [
                ctx.ser.merge_request(store.projects[m.project_id], m, ctx.user, full=False)
                for m in mrs
            ],
        )


def get_mr(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project, mr = ctx.merge_request()
        return Reply(ctx.ser.merge_request(project, mr, ctx.user))


def create_mr(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project = ctx.project()
        if ctx.store.access_level(project, ctx.user) < REPORTER:
            raise ApiError(403, "403 Forbidden")
        mr = ctx.services.merge_requests.create(project, ctx.user, ctx.params)
        return Reply(ctx.ser.merge_request(project, mr, ctx.user), status=201)


def update_mr(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project, mr = ctx.merge_request()
        if ctx.store.access_level(project, ctx.user) < REPORTER:
            raise ApiError(403, "403 Forbidden")
        ctx.services.merge_requests.update(project, mr, ctx.user, ctx.params)
        return Reply(ctx.ser.merge_request(project, mr, ctx.user))


def list_notes(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        _, mr = ctx.merge_request()
        notes = sort_items(
            ctx,
            list(mr.notes),
            {
                "created_at": lambda n: (n.created_at, n.id),
                "updated_at": lambda n: (n.created_at, n.id),
            },
            "created_at",
        )
        return paginate(ctx, [ctx.ser.note(n, mr) for n in notes])


def create_note(ctx: Ctx) -> Reply:
    ctx.require("body")
    with ctx.store.lock:
        _, mr = ctx.merge_request()
        note = ctx.services.merge_requests.note(mr, ctx.user, str(ctx.get("body")))
        return Reply(ctx.ser.note(note, mr), status=201)


def _discussion(ctx: Ctx, mr: MergeRequest, discussion_id: str) -> dict[str, Any]:
    notes = [n for n in mr.notes if n.discussion_id == discussion_id]
    return {
        "id": discussion_id,
        "individual_note": len(notes) == 1 and not notes[0].resolvable,
        "notes": [ctx.ser.note(n, mr) for n in notes],
    }


def list_discussions(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        _, mr = ctx.merge_request()
        ids = list(dict.fromkeys(n.discussion_id for n in mr.notes))
        return paginate(ctx, [_discussion(ctx, mr, i) for i in ids])


def create_discussion(ctx: Ctx) -> Reply:
    ctx.require("body")
    with ctx.store.lock:
        _, mr = ctx.merge_request()
        note = ctx.services.merge_requests.note(mr, ctx.user, str(ctx.get("body")), resolvable=True)
        return Reply(_discussion(ctx, mr, note.discussion_id), status=201)


def resolve_discussion(ctx: Ctx) -> Reply:
    ctx.require("resolved")
    with ctx.store.lock:
        _, mr = ctx.merge_request()
        notes = [n for n in mr.notes if n.discussion_id == ctx.path["discussion_id"]]
        if not notes:
            raise NotFound("404 Not found")
        for note in notes:
            if note.resolvable:
                note.resolved = truthy(ctx.get("resolved"))
                note.resolved_by = ctx.user.id if note.resolved else None
        return Reply(_discussion(ctx, mr, ctx.path["discussion_id"]))


def _approvals_json(ctx: Ctx, project: Project, mr: MergeRequest) -> dict[str, Any]:
    required = project.approvals_before_merge
    return {
        "id": mr.id,
        "iid": mr.iid,
        "project_id": project.id,
        "title": mr.title,
        "state": mr.state,
        "merge_status": ctx.services.merge_requests.checks(project, mr).merge_status,
        "approved": len(mr.approved_by) >= required,
        "approvals_required": required,
        "approvals_left": max(0, required - len(mr.approved_by)),
        "approved_by": [{"user": ctx.ser.user(u)} for u in mr.approved_by],
        "suggested_approvers": [],
        "approvers": [],
        "approver_groups": [],
        "user_has_approved": ctx.user.id in mr.approved_by,
        "user_can_approve": ctx.user.id not in mr.approved_by and ctx.user.id != mr.author_id,
    }


def get_approvals(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project, mr = ctx.merge_request()
        return Reply(_approvals_json(ctx, project, mr))


def approval_state(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project, mr = ctx.merge_request()
        required = project.approvals_before_merge
        return Reply(
            {
                "approval_rules_overwritten": False,
                "rules": [
                    {
                        "id": 1,
                        "name": "All Members",
                        "rule_type": "any_approver",
                        "approvals_required": required,
                        "approved_by": [ctx.ser.user(u) for u in mr.approved_by],
                        "approved": len(mr.approved_by) >= required,
                        "eligible_approvers": [],
                        "users": [],
                        "groups": [],
                        "contains_hidden_groups": False,
                        "section": None,
                        "source_rule": None,
                        "overridden": False,
                    }
                ],
            }
        )


def approve(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project, mr = ctx.merge_request()
        ctx.services.merge_requests.approve(project, mr, ctx.user, ctx.get("sha"))
        return Reply(_approvals_json(ctx, project, mr), status=201)


def unapprove(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project, mr = ctx.merge_request()
        ctx.services.merge_requests.unapprove(mr, ctx.user)
        return Reply(_approvals_json(ctx, project, mr), status=201)


def mr_commits(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project, mr = ctx.merge_request()
        commits = gitops.commits_between(ctx.store.repo(project.id), mr.base_sha or None, mr.sha)
        return paginate(ctx, [ctx.ser.commit(project, c.id.decode()) for c in commits])


def mr_diffs(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project, mr = ctx.merge_request()
        return paginate(
            ctx, gitops.diff_trees(ctx.store.repo(project.id), mr.base_sha or None, mr.sha)
        )


def mr_changes(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project, mr = ctx.merge_request()
        data = ctx.ser.merge_request(project, mr, ctx.user)
        data["changes"] = gitops.diff_trees(ctx.store.repo(project.id), mr.base_sha or None, mr.sha)
        data["overflow"] = False
        return Reply(data)


def mr_pipelines(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project, mr = ctx.merge_request()
        found = ctx.services.pipelines.for_merge_request(project.id, mr.iid)
        return paginate(ctx, [ctx.ser.pipeline(p, full=False) for p in found])


def create_mr_pipeline(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project, mr = ctx.merge_request()
        pipeline = ctx.services.pipelines.create(
            project,
            mr.sha,
            f"refs/merge-requests/{mr.iid}/head",
            "merge_request_event",
            ctx.user,
            mr_iid=mr.iid,
        )
        return Reply(ctx.ser.pipeline(pipeline), status=201)


def rebase(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project, mr = ctx.merge_request()
        ctx.services.merge_requests.start_rebase(
            project, mr, ctx.user, truthy(ctx.get("skip_ci", False))
        )
        return Reply({"rebase_in_progress": True}, status=202)


def merge(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project, mr = ctx.merge_request()
        ctx.services.merge_requests.merge(project, mr, ctx.user, ctx.params)
        return Reply(ctx.ser.merge_request(project, mr, ctx.user))


def register(router: Router) -> None:
    mr = "/projects/:id/merge_requests/:iid"
    router.add("GET", "/merge_requests", list_all_mrs)
    router.add("GET", "/projects/:id/merge_requests", list_project_mrs)
    router.add("POST", "/projects/:id/merge_requests", create_mr)
    router.add("GET", mr, get_mr)
    router.add("PUT", mr, update_mr)
    router.add("GET", f"{mr}/notes", list_notes)
    router.add("POST", f"{mr}/notes", create_note)
    router.add("GET", f"{mr}/discussions", list_discussions)
    router.add("POST", f"{mr}/discussions", create_discussion)
    router.add("PUT", f"{mr}/discussions/:discussion_id", resolve_discussion)
    router.add("GET", f"{mr}/approvals", get_approvals)
    router.add("GET", f"{mr}/approval_state", approval_state)
    router.add("POST", f"{mr}/approve", approve)
    router.add("POST", f"{mr}/unapprove", unapprove)
    router.add("GET", f"{mr}/commits", mr_commits)
    router.add("GET", f"{mr}/diffs", mr_diffs)
    router.add("GET", f"{mr}/changes", mr_changes)
    router.add("GET", f"{mr}/pipelines", mr_pipelines)
    router.add("POST", f"{mr}/pipelines", create_mr_pipeline)
    router.add("PUT", f"{mr}/rebase", rebase)
    router.add("PUT", f"{mr}/merge", merge)

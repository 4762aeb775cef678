"""/projects (list, get, create, edit), members, hooks, labels and protected branches."""

from __future__ import annotations

import uuid

from local.gitlab_sim import gitops
from local.gitlab_sim.api.core import Ctx, Reply, Router, paginate, sort_items, truthy
from local.gitlab_sim.errors import ApiError
from local.gitlab_sim.models import MAINTAINER, NO_ACCESS, Hook, Label, ProtectedBranch
from local.gitlab_sim.store import NotFound, now_iso

PROJECT_SETTINGS = (
    "merge_method",
    "only_allow_merge_if_pipeline_succeeds",
    "only_allow_merge_if_all_discussions_are_resolved",
    "approvals_before_merge",
    "squash_option",
    "remove_source_branch_after_merge",
    "description",
    "visibility",
)
HOOK_FLAGS = (
    "push_events",
    "merge_requests_events",
    "note_events",
    "pipeline_events",
    "issues_events",
    "job_events",
    "enable_ssl_verification",
)


def list_projects(ctx: Ctx) -> Reply:
    store = ctx.store
    with store.lock:
        projects = list(store.projects.values())
        if truthy(ctx.get("membership")) or not ctx.user.is_admin:
            projects = [
                p
                for p in projects
                if p.members.get(ctx.user.id, NO_ACCESS)
                or (not truthy(ctx.get("membership")) and p.visibility == "public")
            ]
        if ctx.get("search"):
            term = str(ctx.get("search")).lower()
            projects = [
                p
                for p in projects
                if term in p.name.lower() or term in p.path_with_namespace.lower()
            ]
        if ctx.get("min_access_level"):
            level = int(ctx.get("min_access_level"))
            projects = [p for p in projects if store.access_level(p, ctx.user) >= level]
        projects = sort_items(
            ctx,
            projects,
            {
                "id": lambda p: p.id,
                "name": lambda p: p.name,
                "path": lambda p: p.path,
                "created_at": lambda p: p.created_at,
                "last_activity_at": lambda p: p.created_at,
                "updated_at": lambda p: p.created_at,
            },
            "created_at",
        )
        return paginate(ctx, [ctx.ser.project(p, ctx.user) for p in projects])


def get_project(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        return Reply(ctx.ser.project(ctx.project(), ctx.user))


def create_project(ctx: Ctx) -> Reply:
    if not (ctx.get("name") or ctx.get("path")):
        raise ApiError(
            400, {"error": "name, path are missing, at least one parameter must be provided"}
        )
    namespace = ctx.user.username
    if ctx.get("namespace_id"):
        namespace = ctx.store.group(str(ctx.get("namespace_id"))).path
    elif ctx.get("namespace"):
        namespace = str(ctx.get("namespace"))
    settings = {k: ctx.get(k) for k in PROJECT_SETTINGS if k in ctx.params}
    for key in (
        "only_allow_merge_if_pipeline_succeeds",
        "only_allow_merge_if_all_discussions_are_resolved",
        "remove_source_branch_after_merge",
    ):
        if key in settings:
            settings[key] = truthy(settings[key])
    if "approvals_before_merge" in settings:
        settings["approvals_before_merge"] = int(settings["approvals_before_merge"])
    name = str(ctx.get("name") or ctx.get("path"))
    with ctx.store.lock:
        try:
            project = ctx.store.add_project(
                ctx.user,
                name,
                namespace=namespace,
                path=str(ctx.get("path") or ""),
                default_branch=str(ctx.get("default_branch") or "main"),
                **settings,
            )
        except ValueError as err:
            raise ApiError(400, {"name": [str(err)], "path": [str(err)]}) from err
        project.protected[project.default_branch] = ProtectedBranch(project.default_branch)
        if truthy(ctx.get("initialize_with_readme")):
            repo = ctx.store.repo(project.id)
            tree = gitops.apply_actions(
                repo,
                None,
                [{"action": "create", "file_path": "README.md", "content": f"# {name}\n"}],
            )
            sha = gitops.make_commit(
                repo, tree, [], "Initial commit", gitops.Identity(ctx.user.name, ctx.user.email)
            )
            gitops.set_ref(repo, f"refs/heads/{project.default_branch}", sha)
        return Reply(ctx.ser.project(project, ctx.user), status=201)


def edit_project(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project = ctx.project()
        if ctx.store.access_level(project, ctx.user) < MAINTAINER:
            raise ApiError(403, "403 Forbidden")
        for key in PROJECT_SETTINGS:
            if key in ctx.params:
                value = ctx.get(key)
                current = getattr(project, key)
                if isinstance(current, bool):
                    value = truthy(value)
                elif isinstance(current, int):
                    value = int(value)
                setattr(project, key, value)
        if "default_branch" in ctx.params:
            project.default_branch = str(ctx.get("default_branch"))
        return Reply(ctx.ser.project(project, ctx.user))


def add_member(ctx: Ctx) -> Reply:
    ctx.require("user_id", "access_level")
    with ctx.store.lock:
        project = ctx.project()
        if ctx.store.access_level(project, ctx.user) < MAINTAINER:
            raise ApiError(403, "403 Forbidden")
        user = ctx.store.user(int(ctx.get("user_id")))
        project.members[user.id] = int(ctx.get("access_level"))
        data = ctx.ser.user(user) or {}
        data["access_level"] = project.members[user.id]
        return Reply(data, status=201)


def list_members(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project = ctx.project()
        members = []
        for user_id, level in sorted(project.members.items()):
            data = ctx.ser.user(user_id) or {}
            data["access_level"] = level
            members.append(data)
        return paginate(ctx, members)


# --- hooks ---------------------------------------------------------------------------------


def _maintainer_project(ctx: Ctx):  # type: ignore[no-untyped-def]
    project = ctx.project()
    if ctx.store.access_level(project, ctx.user) < MAINTAINER:
        raise ApiError(403, "403 Forbidden")
    return project


def _hook(ctx: Ctx) -> Hook:
    project = _maintainer_project(ctx)
    hook = ctx.store.hooks.get(int(ctx.path["hook_id"]))
    if hook is None or hook.project_id != project.id:
        raise NotFound("404 Not found")
    return hook


def list_hooks(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project = _maintainer_project(ctx)
        hooks = [h for h in ctx.store.hooks.values() if h.project_id == project.id]
        return paginate(ctx, [ctx.ser.hook(h) for h in hooks])


def get_hook(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        return Reply(ctx.ser.hook(_hook(ctx)))


def _apply_hook_fields(ctx: Ctx, hook: Hook) -> None:
    if "url" in ctx.params:
        hook.url = str(ctx.get("url"))
    if "token" in ctx.params:
        hook.token = str(ctx.get("token") or "")
    for flag in HOOK_FLAGS:
        if flag in ctx.params:
            setattr(hook, flag, truthy(ctx.get(flag)))


def create_hook(ctx: Ctx) -> Reply:
    ctx.require("url")
    with ctx.store.lock:
        project = _maintainer_project(ctx)
        hook = Hook(
            id=ctx.store.next_id("hook"),
            project_id=project.id,
            url="",
            created_at=now_iso(),
            uuid=str(uuid.uuid4()),
        )
        _apply_hook_fields(ctx, hook)
        ctx.store.hooks[hook.id] = hook
        return Reply(ctx.ser.hook(hook), status=201)


def edit_hook(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        hook = _hook(ctx)
        _apply_hook_fields(ctx, hook)
        return Reply(ctx.ser.hook(hook))


def delete_hook(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        hook = _hook(ctx)
        del ctx.store.hooks[hook.id]
        return Reply(None, status=204)


# --- labels --------------------------------------------------------------------------------


def _label_json(label: Label) -> dict[str, object]:
    return {
        "id": label.id,
        "name": label.name,
        "color": label.color,
        "description": label.description,
        "text_color": "#FFFFFF",
        "subscribed": False,
        "priority": None,
        "is_project_label": True,
    }


def list_labels(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project = ctx.project()
        return paginate(ctx, [_label_json(lb) for lb in project.labels.values()])


def create_label(ctx: Ctx) -> Reply:
    ctx.require("name", "color")
    with ctx.store.lock:
        project = ctx.project()
        name = str(ctx.get("name"))
        if name in project.labels:
            raise ApiError(409, "Label already exists")
        label = Label(
            ctx.store.next_id("label"),
            name,
            str(ctx.get("color")),
            str(ctx.get("description") or ""),
        )
        project.labels[name] = label
        return Reply(_label_json(label), status=201)


def delete_label(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project = ctx.project()
        ref = ctx.path["label"]
        for name, label in list(project.labels.items()):
            if name == ref or str(label.id) == ref:
                del project.labels[name]
                return Reply(None, status=204)
        raise NotFound("404 Label Not Found")


# --- protected branches --------------------------------------------------------------------


def _protected_json(rule: ProtectedBranch) -> dict[str, object]:
    names = {0: "No one", 30: "Developers + Maintainers", 40: "Maintainers"}

    def levels(level: int) -> list[dict[str, object]]:
        return [
            {
                "id": 1,
                "access_level": level,
                "access_level_description": names.get(level, str(level)),
                "user_id": None,
                "group_id": None,
            }
        ]

    return {
        "id": abs(hash(rule.name)) % 100000,
        "name": rule.name,
        "push_access_levels": levels(rule.push_access_level),
        "merge_access_levels": levels(rule.merge_access_level),
        "allow_force_push": rule.allow_force_push,
        "code_owner_approval_required": False,
    }


def list_protected(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        return paginate(ctx, [_protected_json(r) for r in ctx.project().protected.values()])


def protect(ctx: Ctx) -> Reply:
    ctx.require("name")
    with ctx.store.lock:
        project = _maintainer_project(ctx)
        name = str(ctx.get("name"))
        if name in project.protected:
            raise ApiError(409, "Protected branch 'name' has already been taken")
        rule = ProtectedBranch(
            name,
            push_access_level=int(ctx.get("push_access_level", MAINTAINER)),
            merge_access_level=int(ctx.get("merge_access_level", MAINTAINER)),
            allow_force_push=truthy(ctx.get("allow_force_push", False)),
        )
        project.protected[name] = rule
        return Reply(_protected_json(rule), status=201)


def unprotect(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project = _maintainer_project(ctx)
        if project.protected.pop(ctx.path["name"], None) is None:
            raise NotFound("404 Not found")
        return Reply(None, status=204)


def register(router: Router) -> None:
    router.add("GET", "/projects", list_projects)
    router.add("POST", "/projects", create_project)
    router.add("GET", "/projects/:id", get_project)
    router.add("PUT", "/projects/:id", edit_project)
    router.add("GET", "/projects/:id/members", list_members)
    router.add("GET", "/projects/:id/members/all", list_members)
    router.add("POST", "/projects/:id/members", add_member)
    router.add("GET", "/projects/:id/hooks", list_hooks)
    router.add("POST", "/projects/:id/hooks", create_hook)
    router.add("GET", "/projects/:id/hooks/:hook_id", get_hook)
    router.add("PUT", "/projects/:id/hooks/:hook_id", edit_hook)
    router.add("DELETE", "/projects/:id/hooks/:hook_id", delete_hook)
    router.add("GET", "/projects/:id/labels", list_labels)
    router.add("POST", "/projects/:id/labels", create_label)
    router.add("DELETE", "/projects/:id/labels/:label", delete_label)
    router.add("GET", "/projects/:id/protected_branches", list_protected)
    router.add("POST", "/projects/:id/protected_branches", protect)
    router.add("DELETE", "/projects/:id/protected_branches/:name", unprotect)

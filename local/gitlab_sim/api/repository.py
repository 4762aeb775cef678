"""/repository: branches, commits (with ``actions``), files, raw files and compare."""

from __future__ import annotations

import base64

from local.gitlab_sim import gitops
from local.gitlab_sim.api.core import Ctx, Reply, Router, paginate
from local.gitlab_sim.errors import ApiError
from local.gitlab_sim.gitops import GitError
from local.gitlab_sim.merge_requests import identity
from local.gitlab_sim.models import Project
from local.gitlab_sim.store import NotFound


def _resolve(ctx: Ctx, project: Project, rev: str, what: str = "Commit") -> str:
    sha = gitops.resolve(ctx.store.repo(project.id), rev)
    if sha is None:
        raise NotFound(f"404 {what} Not Found")
    return sha


def list_branches(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project = ctx.project()
        branches = sorted(gitops.branches(ctx.store.repo(project.id)).items())
        if ctx.get("search"):
            branches = [(n, s) for n, s in branches if str(ctx.get("search")) in n]
        return paginate(ctx, [ctx.ser.branch(project, n, s, ctx.user) for n, s in branches])


def get_branch(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project = ctx.project()
        sha = gitops.branch_sha(ctx.store.repo(project.id), ctx.path["branch"])
        if sha is None:
            raise NotFound("404 Branch Not Found")
        return Reply(ctx.ser.branch(project, ctx.path["branch"], sha, ctx.user))


def create_branch(ctx: Ctx) -> Reply:
    ctx.require("branch", "ref")
    with ctx.store.lock:
        project = ctx.project()
        name = str(ctx.get("branch"))
        if not ctx.services.pushes.may_push(project, ctx.user, name):
            raise ApiError(403, "403 Forbidden")
        sha = gitops.resolve(ctx.store.repo(project.id), str(ctx.get("ref")))
        if sha is None:
            raise ApiError(400, "Invalid reference name: " + str(ctx.get("ref")))
        try:
            ctx.services.pushes.create_branch(project, ctx.user, name, sha)
        except ValueError as err:
            raise ApiError(400, "Branch already exists") from err
        return Reply(ctx.ser.branch(project, name, sha, ctx.user), status=201)


def delete_branch(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project = ctx.project()
        name = ctx.path["branch"]
        if gitops.branch_sha(ctx.store.repo(project.id), name) is None:
            raise NotFound("404 Branch Not Found")
        if name in project.protected or not ctx.services.pushes.may_push(project, ctx.user, name):
            raise ApiError(403, "403 Forbidden")
        ctx.services.pushes.delete_branch(project, ctx.user, name)
        return Reply(None, status=204)


def get_commit(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project = ctx.project()
        sha = _resolve(ctx, project, ctx.path["sha"])
        return Reply(ctx.ser.commit(project, sha))


def list_commits(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project = ctx.project()
        ref = str(ctx.get("ref_name") or project.default_branch)
        repo = ctx.store.repo(project.id)
        if ".." in ref:
            start, _, end = ref.partition("..")
            commits = gitops.commits_between(
                repo, _resolve(ctx, project, start), _resolve(ctx, project, end)
            )
        else:
            head = gitops.resolve(repo, ref)
            commits = [] if head is None else gitops.commits_between(repo, None, head)
        return paginate(ctx, [ctx.ser.commit(project, c.id.decode()) for c in commits])


def create_commit(ctx: Ctx) -> Reply:
    ctx.require("branch", "commit_message", "actions")
    store = ctx.store
    with store.lock:
        project = ctx.project()
        branch = str(ctx.get("branch"))
        if not ctx.services.pushes.may_push(project, ctx.user, branch):
            raise ApiError(403, "403 Forbidden")
        repo = store.repo(project.id)
        old = gitops.branch_sha(repo, branch)
        base = old
        if old is None:
            start = ctx.get("start_branch") or ctx.get("start_sha")
            if start:
                base = gitops.resolve(repo, str(start))
                if base is None:
                    raise ApiError(400, "You can only create or edit files on a branch")
        elif ctx.get("start_branch") and ctx.get("start_branch") != branch:
            raise ApiError(400, "A branch called '" + branch + "' already exists.")
        try:
            tree = gitops.apply_actions(repo, base, list(ctx.get("actions")))
        except GitError as err:
            raise ApiError(400, str(err)) from err
        author = identity(ctx.user)
        if ctx.get("author_name") and ctx.get("author_email"):
            author = gitops.Identity(str(ctx.get("author_name")), str(ctx.get("author_email")))
        sha = gitops.make_commit(
            repo,
            tree,
            [base] if base else [],
            str(ctx.get("commit_message")),
            author,
            committer=identity(ctx.user),
        )
        if not ctx.services.pushes.commit(project, ctx.user, branch, sha, old):
            raise ApiError(400, "The branch moved while the commit was made; try again")
        return Reply(ctx.ser.commit(project, sha), status=201)


def _file(ctx: Ctx) -> tuple[Project, str, str, bytes, str, int]:
    project = ctx.project()
    ctx.require("ref")
    sha = _resolve(ctx, project, str(ctx.get("ref")))
    path = ctx.path["file_path"]
    found = gitops.read_blob(ctx.store.repo(project.id), sha, path)
    if found is None:
        raise NotFound("404 File Not Found")
    data, blob_id, mode = found
    return project, sha, path, data, blob_id, mode


def get_file(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        _, sha, path, data, blob_id, _ = _file(ctx)
        return Reply(
            {
                "file_name": path.rsplit("/", 1)[-1],
                "file_path": path,
                "size": len(data),
                "encoding": "base64",
                "content": base64.b64encode(data).decode(),
                "content_sha256": "",
                "ref": ctx.get("ref"),
                "blob_id": blob_id,
                "commit_id": sha,
                "last_commit_id": sha,
                "execute_filemode": False,
            }
        )


def get_raw_file(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        if not ctx.get("ref"):
            ctx.params["ref"] = ctx.project().default_branch
        data = _file(ctx)[3]
        return Reply(None, raw=data, content_type="text/plain; charset=utf-8")


def compare(ctx: Ctx) -> Reply:
    ctx.require("from", "to")
    with ctx.store.lock:
        project = ctx.project()
        repo = ctx.store.repo(project.id)
        head = _resolve(ctx, project, str(ctx.get("to")))
        start = _resolve(ctx, project, str(ctx.get("from")))
        straight = str(ctx.get("straight", "false")).lower() == "true"
        base = start if straight else (gitops.merge_base(repo, start, head) or start)
        commits = gitops.commits_between(repo, base, head)
        return Reply(
            {
                "commit": ctx.ser.commit(project, head) if commits else None,
                "commits": [ctx.ser.commit(project, c.id.decode()) for c in reversed(commits)],
                "diffs": gitops.diff_trees(repo, base, head),
                "compare_timeout": False,
                "compare_same_ref": start == head,
                "web_url": f"{ctx.store.project_url(project)}/-/compare/{start}...{head}",
            }
        )


def register(router: Router) -> None:
    prefix = "/projects/:id/repository"
    router.add("GET", f"{prefix}/branches", list_branches)
    router.add("POST", f"{prefix}/branches", create_branch)
    router.add("GET", f"{prefix}/branches/*branch", get_branch)
    router.add("DELETE", f"{prefix}/branches/*branch", delete_branch)
    router.add("GET", f"{prefix}/commits", list_commits)
    router.add("POST", f"{prefix}/commits", create_commit)
    router.add("GET", f"{prefix}/commits/:sha", get_commit)
    router.add("GET", f"{prefix}/files/:file_path/raw", get_raw_file)
    router.add("GET", f"{prefix}/files/:file_path", get_file)
    router.add("GET", f"{prefix}/compare", compare)

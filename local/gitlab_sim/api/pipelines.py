"""/pipelines and their jobs."""

from __future__ import annotations

from local.gitlab_sim import gitops
from local.gitlab_sim.api.core import Ctx, Reply, Router, paginate, sort_items
from local.gitlab_sim.errors import ApiError
from local.gitlab_sim.models import DEVELOPER, Pipeline
from local.gitlab_sim.store import NotFound


def _pipeline(ctx: Ctx) -> Pipeline:
    project = ctx.project()
    pipeline = ctx.store.pipelines.get(int(ctx.path["pipeline_id"]))
    if pipeline is None or pipeline.project_id != project.id:
        raise NotFound("404 Not found")
    return pipeline


def list_pipelines(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        project = ctx.project()
        found = [p for p in ctx.store.pipelines.values() if p.project_id == project.id]
        for name in ("ref", "sha", "status", "source"):
            if ctx.get(name):
                found = [p for p in found if getattr(p, name) == ctx.get(name)]
        found = sort_items(
            ctx,
            found,
            {
                "id": lambda p: p.id,
                "status": lambda p: p.status,
                "ref": lambda p: p.ref,
                "updated_at": lambda p: (p.updated_at, p.id),
                "user_id": lambda p: p.user_id,
            },
            "id",
        )
        return paginate(ctx, [ctx.ser.pipeline(p, full=False) for p in found])


def get_pipeline(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        return Reply(ctx.ser.pipeline(_pipeline(ctx)))


def create_pipeline(ctx: Ctx) -> Reply:
    ctx.require("ref")
    with ctx.store.lock:
        project = ctx.project()
        if ctx.store.access_level(project, ctx.user) < DEVELOPER:
            raise ApiError(403, "403 Forbidden")
        ref = str(ctx.get("ref"))
        sha = gitops.branch_sha(ctx.store.repo(project.id), ref)
        if sha is None:
            raise ApiError(400, {"base": ["Reference not found"]})
        pipeline = ctx.services.pipelines.create(
            project, sha, ref, "api", ctx.user, variables=_variables(ctx.get("variables"))
        )
        return Reply(ctx.ser.pipeline(pipeline), status=201)


def _variables(given: object) -> list[tuple[str, str]]:
    """``variables`` of a new pipeline: an array of ``{key, value[, variable_type]}``."""
    if given in (None, ""):
        return []
    if not isinstance(given, list) or not all(
        isinstance(v, dict) and isinstance(v.get("key"), str) and v["key"] for v in given
    ):
        raise ApiError(400, {"error": "variables is invalid"})
    return [(v["key"], str(v.get("value", ""))) for v in given]


def variables(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        pipeline = _pipeline(ctx)
        return Reply(
            [
                {"variable_type": "env_var", "key": key, "value": value}
                for key, value in pipeline.variables
            ]
        )


def retry(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        pipeline = _pipeline(ctx)
        ctx.services.pipelines.retry(pipeline)
        return Reply(ctx.ser.pipeline(pipeline), status=201)


def cancel(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        pipeline = _pipeline(ctx)
        ctx.services.pipelines.cancel(pipeline)
        return Reply(ctx.ser.pipeline(pipeline))


def jobs(ctx: Ctx) -> Reply:
    with ctx.store.lock:
        pipeline = _pipeline(ctx)
        found = pipeline.jobs
        scope = ctx.get("scope")
        if scope:
            scopes = scope if isinstance(scope, list) else [scope]
            found = [j for j in found if j.status in scopes]
        return paginate(ctx, [ctx.ser.job(j, pipeline) for j in found])


def register(router: Router) -> None:
    router.add("GET", "/projects/:id/pipelines", list_pipelines)
    router.add("POST", "/projects/:id/pipeline", create_pipeline)
    router.add("POST", "/projects/:id/pipelines", create_pipeline)
    router.add("GET", "/projects/:id/pipelines/:pipeline_id", get_pipeline)
    router.add("GET", "/projects/:id/pipelines/:pipeline_id/variables", variables)
    router.add("POST", "/projects/:id/pipelines/:pipeline_id/retry", retry)
    router.add("POST", "/projects/:id/pipelines/:pipeline_id/cancel", cancel)
    router.add("GET", "/projects/:id/pipelines/:pipeline_id/jobs", jobs)

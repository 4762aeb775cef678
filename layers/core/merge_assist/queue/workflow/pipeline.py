"""Steps ``WaitForPipeline`` and ``CheckPipeline``: the callback pattern with a polling
fallback (DESIGN.md, "Waiting for CI").

The wait registers its task token under (project, sha); the pipeline webhook resumes it
through the dispatcher. A pipeline that finished before the token was stored resumes it at
once. When the wait times out the workflow asks GitLab itself: a lost webhook costs one
poll interval, and a pipeline that never started is started."""

from __future__ import annotations

from datetime import datetime, timedelta

from pydantic import BaseModel

from merge_assist.queue.pipeline_wait import PipelineOutcome, outcome
from merge_assist.queue.verdict import CHANGED, TIMED_OUT
from merge_assist.queue.workflow import members
from merge_assist.queue.workflow.context import WorkflowContext


class PipelineCheck(BaseModel):
    finished: bool
    outcome: PipelineOutcome | None = None


def register_wait(
    ctx: WorkflowContext,
    project_id: int,
    sha: str,
    task_token: str,
    *,
    timeout_seconds: int,
    batch_id: str | None = None,
) -> bool:
    """True if the wait was resumed right away: the pipeline had already finished, or an MR
    of the batch left it while no wait was registered (the dispatcher found no token to
    interrupt then)."""
    ctx.store.put_task_token(project_id, sha, task_token, timedelta(seconds=timeout_seconds))
    finished = _member_left(ctx, batch_id, sha)
    if finished is None:
        pipelines = ctx.gitlab.pipelines_for_sha(project_id, sha)
        finished = outcome(pipelines[0]) if pipelines else None
    if finished is None:
        return False
    ctx.executions.resume(task_token, finished.model_dump(mode="json"))
    ctx.store.delete_task_token(project_id, sha, task_token)
    return True


def _member_left(ctx: WorkflowContext, batch_id: str | None, sha: str) -> PipelineOutcome | None:
    if batch_id is None:
        return None
    batch = ctx.store.get_batch(batch_id)
    if all(members.current(ctx, batch, iid) is not None for iid in batch.tested):
        return None
    return PipelineOutcome(sha=sha, status=CHANGED)


def check_pipeline(
    ctx: WorkflowContext, project_id: int, sha: str, ref: str | None, deadline: datetime
) -> PipelineCheck:
    pipelines = ctx.gitlab.pipelines_for_sha(project_id, sha)
    newest = pipelines[0] if pipelines else None
    if newest is not None:
        finished = outcome(newest)
        if finished is not None:
            return PipelineCheck(finished=True, outcome=finished)
    elif ref is not None:
        # CI did not start one for the push (rules, a hiccup): ask for one, once.
        newest = ctx.gitlab.create_pipeline(project_id, ref)
    if ctx.clock.now() < deadline:
        return PipelineCheck(finished=False)
    return PipelineCheck(
        finished=True,
        outcome=PipelineOutcome(
            pipeline_id=newest.id if newest else None,
            sha=sha,
            status=TIMED_OUT,
            web_url=newest.web_url if newest else None,
        ),
    )

"""Waiting for a pipeline, and the CI timeout (DESIGN.md, "Waiting for CI").

The workflow's ``WaitForPipeline`` step stores its task token keyed by (project, sha) and
pauses; the dispatcher, on the pipeline webhook for that sha, resumes it with the
pipeline's outcome. A pipeline that finished before the token was stored resumes it at
once. Every finished status resumes the wait (success included): the state machine decides
what a failed, canceled or skipped pipeline means, so no outcome can leave it waiting. When
the wait times out (the poll interval) ``CheckPipeline`` asks GitLab itself: a lost webhook
costs one poll interval, and a pipeline that never started is started. Past the project's
CI timeout the outcome is ``TIMED_OUT``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta

from pydantic import BaseModel

from merge_assist.platform.config import ProjectConfig
from merge_assist.platform.errors import GitLabRefused
from merge_assist.platform.events import EventKind, PipelineSnapshot, QueueEvent
from merge_assist.queue.models import Batch
from merge_assist.queue.ports import Executions, QueueStore
from merge_assist.queue.workflow import members
from merge_assist.queue.workflow.context import WorkflowContext

FINISHED_STATUSES = frozenset({"success", "failed", "canceled", "skipped"})
# Set by the workflow, not by GitLab: no pipeline finished before the project's CI timeout.
TIMED_OUT = "timeout"
# Set by the dispatcher: an MR of the batch changed, the batch is rebuilt without it.
CHANGED = "changed"


def lock_ttl(config: ProjectConfig) -> timedelta:
    """Each step renews the lock, so it only has to outlast the longest step: a pipeline
    wait, bounded by the CI timeout."""
    return timedelta(minutes=config.ci_timeout_minutes + 30)


def pipeline_deadline(now: datetime, config: ProjectConfig) -> datetime:
    return now + timedelta(minutes=config.ci_timeout_minutes)


class PipelineOutcome(BaseModel):
    """What a resumed wait task returns to the state machine."""

    pipeline_id: int | None = None
    sha: str
    status: str
    web_url: str | None = None

    @property
    def passed(self) -> bool:
        return self.status == "success"


def outcome(pipeline: PipelineSnapshot) -> PipelineOutcome | None:
    """The outcome of a finished pipeline; None while it may still change."""
    if pipeline.status not in FINISHED_STATUSES:
        return None
    return PipelineOutcome(
        pipeline_id=pipeline.id, sha=pipeline.sha, status=pipeline.status, web_url=pipeline.web_url
    )


def resume_waiting(store: QueueStore, executions: Executions, event: QueueEvent) -> bool:
    """Resume the execution waiting for this pipeline's sha, if any; True if one was."""
    if event.kind is not EventKind.PIPELINE or event.pipeline is None:
        return False
    finished = outcome(event.pipeline)
    if finished is None:
        return False
    return answer_wait(store, executions, event.project_id, finished.sha, finished)


def answer_wait(
    store: QueueStore, executions: Executions, project_id: int, key: str, answer: BaseModel
) -> bool:
    """Resume the execution whose wait is stored under ``key`` (a sha, or a train car's
    ``ahead_key``) with ``answer``; True if one was waiting and resumed."""
    token = store.get_task_token(project_id, key)
    if token is None:
        return False
    resumed = executions.resume(token, answer.model_dump(mode="json"))
    # Gone or not, this token has had its answer; a newer wait keeps its own.
    store.delete_task_token(project_id, key, token)
    return resumed


def stop_pipelines(ctx: WorkflowContext, project_id: int, shas: Iterable[str]) -> None:
    """Cancel the running pipelines of ``shas``: CI nobody waits for any more. Best effort:
    one GitLab refuses to stop finishes for nobody."""
    for sha in shas:
        try:
            for pipeline in ctx.gitlab.pipelines_for_sha(project_id, sha):
                if pipeline.status not in FINISHED_STATUSES:
                    ctx.gitlab.cancel_pipeline(project_id, pipeline.id)
        except GitLabRefused:
            continue


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
    batch = ctx.store.get_batch(batch_id) if batch_id is not None else None
    finished = _member_left(ctx, batch, sha)
    if finished is None:
        pipelines = ctx.gitlab.pipelines_for_sha(project_id, sha)
        finished = outcome(pipelines[0]) if pipelines else None
        floor = batch.pipeline_floor if batch is not None else None
        if finished is not None and floor is not None and (finished.pipeline_id or 0) < floor:
            # The run a flaky retry replaces: its answer was had; the new run's is awaited.
            finished = None
    if finished is None:
        return False
    ctx.executions.resume(task_token, finished.model_dump(mode="json"))
    ctx.store.delete_task_token(project_id, sha, task_token)
    return True


def _member_left(ctx: WorkflowContext, batch: Batch | None, sha: str) -> PipelineOutcome | None:
    if batch is None:
        return None
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

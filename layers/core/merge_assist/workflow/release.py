"""Step ``ReleaseBatch``: the end of every execution, normal or not. MRs still held by the
batch go back in line, the branch lock is released, and the next batch starts at once if
MRs are waiting, so the queue never waits for another webhook."""

from __future__ import annotations

from pydantic import BaseModel

from merge_assist.errors import NotFoundError
from merge_assist.models import Batch, BatchState, BatchStep, BatchStepKind
from merge_assist.workflow import members
from merge_assist.workflow.batch_record import record_end, save
from merge_assist.workflow.context import WorkflowContext, WorkflowInput
from merge_assist.workflow.start import next_batch_id, start_batch


class Released(BaseModel):
    state: BatchState | None
    next_batch: str | None


def release(ctx: WorkflowContext, run: WorkflowInput) -> Released:
    try:
        batch: Batch | None = ctx.store.get_batch(run.batch_id)
    except NotFoundError:
        batch = None
    if batch is not None and not batch.state.is_final:
        config = ctx.store.get_project(batch.project_id)
        why = "its batch stopped on an error; it keeps its place" if run.failed else None
        for iid in batch.merge_requests:
            members.requeue(ctx, config, batch, iid, why)
        final = (
            BatchState.LANDED
            if batch.landed
            else BatchState.FAILED
            if run.failed or batch.rejected
            else BatchState.CANCELLED
        )
        batch = save(
            ctx,
            batch,
            lambda b: b.model_copy(update={"state": final}),
            BatchStep(kind=BatchStepKind.RELEASED, note="on an error" if run.failed else ""),
        )
        # Only a batch this call made final: a retried release finds it final and skips.
        record_end(ctx, batch)
    ctx.store.release_branch_lock(run.project_id, run.target_branch, run.batch_id)
    if run.failed:
        # Starting again at once could fail the same way in a loop; the watcher's next run
        # (or the next event) starts the queue again.
        return Released(state=batch.state if batch else None, next_batch=None)
    following = next_batch_id(run.batch_id, run.project_id, run.target_branch)
    started = start_batch(
        ctx.store,
        ctx.executions,
        run.project_id,
        run.target_branch,
        following,
        pipeline_poll_seconds=run.pipeline_poll_seconds,
        rebase_poll_seconds=run.rebase_poll_seconds,
    )
    return Released(state=batch.state if batch else None, next_batch=following if started else None)

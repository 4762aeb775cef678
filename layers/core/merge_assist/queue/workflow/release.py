"""Step ``ReleaseBatch``: the end of every execution, normal or not. MRs still held by the
batch go back in line, the branch lock is released, and the next batch starts at once if
MRs are waiting, so the queue never waits for another webhook.

Release must always release: it often runs because GitLab failed (the execution's other
steps end here on any error), so everything up to the lock and the next start touches the
store alone, and the authors are told last, best effort (``notices``: what GitLab cannot
take waits in the outbox for the watcher)."""

from __future__ import annotations

from pydantic import BaseModel

from merge_assist.platform.config import Strategy
from merge_assist.platform.errors import NotFoundError
from merge_assist.queue import comments, notices
from merge_assist.queue.comments import Transition
from merge_assist.queue.models import Batch, BatchState, BatchStep, BatchStepKind, MergeRequestState
from merge_assist.queue.workflow import members
from merge_assist.queue.workflow import train as train_moves
from merge_assist.queue.workflow.batch_record import record_end, save
from merge_assist.queue.workflow.context import WorkflowContext, WorkflowInput
from merge_assist.queue.workflow.start import next_batch_id, start_batch


class Released(BaseModel):
    state: BatchState | None
    next_batch: str | None


def release(ctx: WorkflowContext, run: WorkflowInput) -> Released:
    try:
        batch: Batch | None = ctx.store.get_batch(run.batch_id)
    except NotFoundError:
        batch = None
    owed: list[tuple[MergeRequestState, Transition]] = []
    if batch is not None and not batch.state.is_final:
        config = ctx.store.get_project(batch.project_id)
        for iid in batch.merge_requests:
            saved = members.requeue(ctx, batch, iid)
            if saved is not None and run.failed:
                owed.append((saved, comments.requeued(config, comments.STOPPED_ON_ERROR)))
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
    if batch is not None and batch.strategy is Strategy.TRAIN:
        if not _landed_whole(batch):
            train_moves.cancel_behind(ctx, batch)
        train_moves.resume_behind(ctx, batch.project_id, batch.id)
    ctx.store.release_branch_lock(run.project_id, run.target_branch, run.batch_id)
    state = batch.state if batch else None
    if run.failed:
        # Starting again at once could fail the same way in a loop; the watcher's next run
        # (or the next event) starts the queue again. GitLab is the likely cause of the
        # failure: the notices wait for the watcher rather than for its retries here.
        notices.keep_all(ctx.store, owed)
        return Released(state=state, next_batch=None)
    if _another_starts_the_next(ctx, run, batch):
        return Released(state=state, next_batch=None)
    following = next_batch_id(run.batch_id, run.project_id, run.target_branch)
    started = start_batch(
        ctx.store,
        ctx.executions,
        run.project_id,
        run.target_branch,
        following,
        polls=run.polls,
    )
    return Released(state=state, next_batch=following if started else None)


def _landed_whole(batch: Batch) -> bool:
    return batch.build is not None and batch.landed == list(batch.build.included_iids)


def _another_starts_the_next(ctx: WorkflowContext, run: WorkflowInput, batch: Batch | None) -> bool:
    """A batch still running on the branch starts the next one when it ends: a batch that
    selected nothing while another holds the branch, or a train car that ended behind a car
    still running, must not start one itself (a car that could not be built on the one
    ahead would start another just like it, again and again). A batch that selected
    nothing alone on the branch does start it: MRs queued meanwhile found the lock held."""
    if batch is None:
        return ctx.store.get_branch_lock(run.project_id, run.target_branch) is not None
    return (
        batch.strategy is Strategy.TRAIN
        and not batch.landed
        and train_moves.car_ahead(ctx, batch) is not None
    )

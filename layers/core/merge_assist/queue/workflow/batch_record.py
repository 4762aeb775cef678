"""Reading and saving a batch's record from a step: the lock is renewed on the way in, and
a save that lost a race (a retried step running twice) is applied again on the fresh copy."""

from __future__ import annotations

from collections.abc import Callable

from merge_assist.platform.config import ProjectConfig, Strategy
from merge_assist.platform.errors import ConflictError, LockHeldError
from merge_assist.platform.metrics import Metric
from merge_assist.queue.models import Batch, BatchState, BatchStep, BatchStepKind
from merge_assist.queue.pipeline_wait import lock_ttl
from merge_assist.queue.recording import MAX_ATTEMPTS, pause
from merge_assist.queue.workflow import members
from merge_assist.queue.workflow import train as train_moves
from merge_assist.queue.workflow.context import WorkflowContext


def open_batch(ctx: WorkflowContext, batch_id: str) -> tuple[Batch, ProjectConfig]:
    """The batch and its project's config (read at every step, so a change made at run time
    applies from the next batch on: the batch itself keeps what it was started with)."""
    batch = ctx.store.get_batch(batch_id)
    config = ctx.store.get_project(batch.project_id)
    if not batch.state.is_final:
        try:
            ctx.store.renew_branch_lock(
                batch.project_id, batch.target_branch, batch.id, lock_ttl(config)
            )
        except LockHeldError:
            if batch.strategy is not Strategy.TRAIN:
                # The lock expired and another batch took the branch: this one must stop,
                # and the state machine's catch releases what it still holds.
                raise
            # The car ahead took this one off the train: it ends here.
            batch = leave_train(ctx, batch, "the car ahead can no longer land whole")
    return batch, config


def leave_train(ctx: WorkflowContext, batch: Batch, why: str) -> Batch:
    """A train car that cannot land as built ends, cancelled: its MRs back in line where
    they stood, the cars behind it cancelled too, its place on the train given up."""
    train_moves.cancel_behind(ctx, batch)
    for iid in batch.merge_requests:
        members.requeue(ctx, batch, iid)
    ended = save(
        ctx,
        batch,
        lambda b: b.model_copy(update={"state": BatchState.CANCELLED}),
        BatchStep(kind=BatchStepKind.RELEASED, note=why),
    )
    record_end(ctx, ended)
    ctx.store.release_branch_lock(batch.project_id, batch.target_branch, batch.id)
    return ended


def save(
    ctx: WorkflowContext, batch: Batch, change: Callable[[Batch], Batch], *steps: BatchStep
) -> Batch:
    for attempt in range(MAX_ATTEMPTS):
        changed = change(batch)
        if steps:
            changed = changed.model_copy(update={"steps": [*changed.steps, *steps]})
        try:
            return ctx.store.save_batch(changed)
        except ConflictError:
            pause(attempt)
            batch = ctx.store.get_batch(batch.id)
    raise ConflictError(f"batch {batch.id} kept changing")


def record_end(ctx: WorkflowContext, batch: Batch) -> None:
    """The batch just became final (landed by LandBatch, failed or cancelled by
    ReleaseBatch): how much testing it took, from its record. A batch that never got a
    pipeline's answer tested nothing and says nothing about bisection."""
    pipelines = sum(1 for step in batch.steps if step.kind is BatchStepKind.TESTED)
    if pipelines == 0:
        return
    rounds = sum(1 for step in batch.steps if step.kind is BatchStepKind.BISECTED)
    ctx.meter.record(Metric.BISECTION_DEPTH, rounds)
    if batch.landed:
        ctx.meter.record(Metric.PIPELINES_PER_MERGED_MR, pipelines / len(batch.landed))

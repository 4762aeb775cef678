"""Step ``SelectBatch``: the next batch of a queue, recorded, its MRs taken out of line."""

from __future__ import annotations

from pydantic import BaseModel

from merge_assist.platform.config import Strategy
from merge_assist.platform.errors import ConflictError, LockHeldError, NotFoundError
from merge_assist.platform.metrics import Metric
from merge_assist.queue import train
from merge_assist.queue.models import (
    Batch,
    BatchStep,
    BatchStepKind,
    MergeRequestState,
    StatusCategory,
)
from merge_assist.queue.pipeline_wait import lock_ttl
from merge_assist.queue.queue import select_batch
from merge_assist.queue.sizing import choose_size
from merge_assist.queue.workflow import members
from merge_assist.queue.workflow import train as train_moves
from merge_assist.queue.workflow.context import WorkflowContext, WorkflowInput, batch_branch


class Selection(BaseModel):
    empty: bool
    strategy: Strategy
    merge_requests: list[int]


def select(ctx: WorkflowContext, run: WorkflowInput) -> Selection:
    config = ctx.store.get_project(run.project_id)
    try:
        batch = ctx.store.get_batch(run.batch_id)
    except NotFoundError:
        batch = None
    created = False
    if batch is None:
        try:
            lock = ctx.store.acquire_branch_lock(
                run.project_id,
                run.target_branch,
                run.batch_id,
                lock_ttl(config),
                cars=train.cars_allowed(config),
            )
        except LockHeldError:
            return Selection(empty=True, strategy=config.strategy, merge_requests=[])
        ahead_id, slot = train_moves.place(ctx, lock, run.batch_id)
        if ahead_id is not None and (
            config.strategy is not Strategy.TRAIN or not _may_follow(ctx, ahead_id)
        ):
            # Nothing to build on yet: the car ahead starts the next car once it can be. Or
            # it joined a train just before the project left the train strategy: another
            # strategy's batch runs alone, once the cars have finished.
            ctx.store.release_branch_lock(run.project_id, run.target_branch, run.batch_id)
            return Selection(empty=True, strategy=config.strategy, merge_requests=[])
        if lock.cars == [run.batch_id]:
            _reclaim(ctx, run)
        queued = ctx.store.list_merge_requests(
            run.project_id, StatusCategory.QUEUED, run.target_branch
        )
        sizing = (
            choose_size(config, ctx.store.list_batches(run.project_id), run.target_branch)
            if config.sized_automatically
            else None
        )
        chosen = [mr.iid for mr in select_batch(config, queued, run.target_branch, sizing)]
        if not chosen:
            return Selection(empty=True, strategy=config.strategy, merge_requests=[])
        batch = Batch(
            id=run.batch_id,
            project_id=run.project_id,
            target_branch=run.target_branch,
            strategy=config.strategy,
            landing=config.landing,
            skip_target_pipeline=config.skip_target_pipeline,
            sizing=sizing,
            merge_requests=chosen,
            batch_branch=_branch(config.strategy, run.target_branch, slot),
            ahead_id=ahead_id,
            retries_left=config.flaky_retries,
            execution_name=run.batch_id,
            steps=[BatchStep(kind=BatchStepKind.SELECTED, merge_requests=chosen)],
            created_at=ctx.clock.now(),
        )
        try:
            batch = ctx.store.save_batch(batch)
            created = True
        except ConflictError:  # a retried step created it already
            batch = ctx.store.get_batch(run.batch_id)
    if batch.state.is_final:
        return Selection(empty=True, strategy=batch.strategy, merge_requests=[])
    # Taken one by one: an MR that changed since it was listed stays where it is.
    taken = [iid for iid in batch.members if members.take(ctx, batch, iid) is not None]
    if created and taken:
        # Only the call that created the batch counts it: a retried select does not.
        ctx.meter.record(Metric.BATCH_SIZE, len(taken))
    return Selection(empty=not taken, strategy=batch.strategy, merge_requests=taken)


def _branch(strategy: Strategy, target_branch: str, slot: int) -> str | None:
    if strategy is Strategy.TRAIN:
        return train.car_branch(target_branch, slot)
    if strategy is Strategy.BATCH:
        return batch_branch(target_branch)
    return None


def _may_follow(ctx: WorkflowContext, ahead_id: str) -> bool:
    """A car may join behind ``ahead_id`` once that one is built and may still land whole,
    or once it has ended (the new car is then built on the target's head)."""
    try:
        ahead = ctx.store.get_batch(ahead_id)
    except NotFoundError:
        return False  # joined but not selected yet
    return ahead.state.is_final or train.extendable(ahead)


def _reclaim(ctx: WorkflowContext, run: WorkflowInput) -> None:
    """MRs still held by a batch that is gone (its execution died without releasing them,
    and its lock expired) go back in line: this batch alone holds the branch now, so no
    other batch of the branch can be running."""
    for status in (StatusCategory.BATCHING, StatusCategory.TESTING):
        for held in ctx.store.list_merge_requests(run.project_id, status, run.target_branch):
            if held.batch_id == run.batch_id:
                continue

            def back(
                state: MergeRequestState, owner: str | None = held.batch_id
            ) -> MergeRequestState | None:
                if state.status not in (StatusCategory.BATCHING, StatusCategory.TESTING):
                    return None
                if state.batch_id != owner:
                    return None
                return state.model_copy(
                    update={"status": StatusCategory.QUEUED, "batch_id": None, "rebasing": False}
                )

            members.update(ctx, run.project_id, held.iid, back)

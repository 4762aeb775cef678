"""The train's moves between cars: the branch lock is the train (its ``cars``, in order),
each car a batch with an execution of its own.

A car is built on the whole tested commit of the car ahead while that one's pipeline runs,
and lands only after it, with a compare-and-set push expecting exactly that commit. When a
car's commit can no longer land whole (red, bisected, rebuilt, ended short), every car
behind it is cancelled here: taken off the train, its MRs put back in line where they
stood, its pipeline stopped and its execution woken so that it ends."""

from __future__ import annotations

from datetime import timedelta

from merge_assist.platform.errors import NotFoundError
from merge_assist.queue import train
from merge_assist.queue.models import Batch, BranchLock
from merge_assist.queue.pipeline_wait import PipelineOutcome, answer_wait, stop_pipelines
from merge_assist.queue.verdict import CANCELED
from merge_assist.queue.workflow import members
from merge_assist.queue.workflow.context import WorkflowContext


def place(ctx: WorkflowContext, lock: BranchLock, batch_id: str) -> tuple[str | None, int]:
    """Where a new car of the train goes: the car it is built on (None for the head car) and
    the number of the branch it is tested on."""
    taken = []
    for car_id in lock.cars:
        if car_id == batch_id:
            continue
        try:
            taken.append(ctx.store.get_batch(car_id).batch_branch)
        except NotFoundError:
            continue
    slot = train.free_slot(lock.target_branch, taken)
    return lock.ahead(batch_id), slot


def car_ahead(ctx: WorkflowContext, batch: Batch) -> Batch | None:
    """The car ``batch`` was built on, while it has not ended; None for the head car."""
    if batch.ahead_id is None:
        return None
    try:
        ahead = ctx.store.get_batch(batch.ahead_id)
    except NotFoundError:
        return None
    return None if ahead.state.is_final else ahead


def cancel_behind(ctx: WorkflowContext, batch: Batch) -> list[str]:
    """Cancel every car behind ``batch``; the cars cancelled."""
    lock = ctx.store.get_branch_lock(batch.project_id, batch.target_branch)
    if lock is None:
        return []
    behind = lock.behind(batch.id)
    # The last car first: a car is never left on the train behind one taken off.
    for car_id in reversed(behind):
        ctx.store.release_branch_lock(batch.project_id, batch.target_branch, car_id)
        try:
            car = ctx.store.get_batch(car_id)
        except NotFoundError:
            continue  # joined but not selected yet: its select finds itself off the train
        for iid in car.merge_requests:
            members.requeue(ctx, car, iid)
        _stop(ctx, car)
    return behind


def _stop(ctx: WorkflowContext, car: Batch) -> None:
    """Its pipeline is stopped (CI nobody waits for) and its waits are answered, so its
    execution takes its next step, finds itself off the train and ends."""
    stop_pipelines(ctx, car.project_id, car.under_test)
    sha = car.testing_sha
    if sha is not None:
        answer_wait(
            ctx.store,
            ctx.executions,
            car.project_id,
            sha,
            PipelineOutcome(sha=sha, status=CANCELED),
        )
    if car.ahead_id is not None:
        resume_behind(ctx, car.project_id, car.ahead_id)


def resume_behind(ctx: WorkflowContext, project_id: int, batch_id: str) -> bool:
    """``batch_id`` ended (landed, or not): the car waiting to land behind it goes on."""
    key = train.ahead_key(batch_id)
    ended = PipelineOutcome(sha=key, status="ended")
    return answer_wait(ctx.store, ctx.executions, project_id, key, ended)


def wait_for_ahead(
    ctx: WorkflowContext, batch_id: str, task_token: str, *, timeout_seconds: int
) -> bool:
    """Register a green car's wait for the car ahead to end; True if it was answered at
    once (the car ahead ended before the wait was registered)."""
    batch = ctx.store.get_batch(batch_id)
    if batch.ahead_id is None:
        ctx.executions.resume(task_token, {"sha": batch_id, "status": "ended"})
        return True
    key = train.ahead_key(batch.ahead_id)
    ctx.store.put_task_token(batch.project_id, key, task_token, timedelta(seconds=timeout_seconds))
    if car_ahead(ctx, batch) is not None:
        return False
    return resume_behind(ctx, batch.project_id, batch.ahead_id)

"""Starting a batch: one execution per project and target branch at a time.

The branch lock is taken with a conditional write before the execution starts, and the
execution is named after the batch, whose id is derived from what caused the start (an
event's idempotency key, the batch before it, a watcher run). A retried start therefore
takes the lock it already holds and finds its execution running: never two batches."""

from __future__ import annotations

import hashlib
import re

from merge_assist.platform.errors import LockHeldError, NotFoundError
from merge_assist.platform.settings import PollIntervals
from merge_assist.queue.models import Batch, StatusCategory
from merge_assist.queue.pipeline_wait import lock_ttl
from merge_assist.queue.ports import Executions, QueueStore
from merge_assist.queue.train import cars_allowed
from merge_assist.queue.workflow.context import WorkflowInput

# Step Functions execution names: at most 80 characters of [A-Za-z0-9_-].
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def batch_id_for(project_id: int, target_branch: str, cause: str) -> str:
    digest = hashlib.sha256(f"{project_id}\0{target_branch}\0{cause}".encode()).hexdigest()
    slug = _UNSAFE.sub("-", target_branch).strip("-")[:32] or "branch"
    return f"{project_id}-{slug}-{digest[:16]}"


def next_batch_id(batch_id: str, project_id: int, target_branch: str) -> str:
    return batch_id_for(project_id, target_branch, f"after:{batch_id}")


def next_car_id(car: Batch) -> str:
    """The car that follows ``car`` on the train, named after its base: a car rebuilt on a
    new commit is followed by a new car."""
    return batch_id_for(car.project_id, car.target_branch, f"behind:{car.id}:{car.sha}")


def start_batch(
    store: QueueStore,
    executions: Executions,
    project_id: int,
    target_branch: str,
    batch_id: str,
    *,
    polls: PollIntervals,
) -> bool:
    """Start a batch if the branch has queued MRs and none runs; True if one now runs
    under ``batch_id``."""
    try:
        config = store.get_project(project_id)
    except NotFoundError:
        return False
    if config.paused or target_branch not in config.target_branches:
        return False
    if not store.list_merge_requests(project_id, StatusCategory.QUEUED, target_branch):
        return False
    try:
        store.acquire_branch_lock(
            project_id, target_branch, batch_id, lock_ttl(config), cars=cars_allowed(config)
        )
    except LockHeldError:
        return False  # a batch runs (or the train is full); when one ends it starts the next
    started = executions.start(
        batch_id,
        WorkflowInput(
            project_id=project_id,
            target_branch=target_branch,
            batch_id=batch_id,
            **polls.model_dump(),
        ).model_dump(mode="json"),
    )
    if not started:
        # That execution already ran to its end: the lock it left would block the branch.
        store.release_branch_lock(project_id, target_branch, batch_id)
    return started


def start_project(
    store: QueueStore,
    executions: Executions,
    project_id: int,
    cause: str,
    *,
    polls: PollIntervals,
) -> list[str]:
    """Start a batch on every target branch of the project that has queued MRs and none
    running (after a resume, a config change, or by the watcher); the batches started."""
    try:
        branches = store.get_project(project_id).target_branches
    except NotFoundError:
        return []
    started = []
    for branch in branches:
        batch_id = batch_id_for(project_id, branch, cause)
        if start_batch(
            store,
            executions,
            project_id,
            branch,
            batch_id,
            polls=polls,
        ):
            started.append(batch_id)
    return started

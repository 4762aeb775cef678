"""Recovery by hand: putting a project's dead letters back on its queue, and retrying or
cancelling a batch (``merge-assist dlq redrive``, ``merge-assist batch retry|cancel``).

Each is safe to run twice, or again after it was interrupted: a redrive sends a message
before it deletes it (a crash between the two leaves a copy the dispatcher handles once,
as it handles any replayed event), and the batch commands only move MRs the batch still
holds, release only a lock the batch still holds, and start the next batch under an id
derived from the batch retried, so a second run finds its execution and starts nothing."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from merge_assist.admin.ports import Store
from merge_assist.platform.errors import ConflictError, MergeAssistError, NotFoundError
from merge_assist.platform.ports import Clock
from merge_assist.platform.resources import ResourceNames
from merge_assist.platform.settings import PollIntervals
from merge_assist.queue import (
    IN_FLIGHT,
    MAX_ATTEMPTS,
    Batch,
    BatchState,
    BatchStep,
    BatchStepKind,
    Executions,
    MergeRequestState,
    StatusCategory,
    batch_id_for,
    start_batch,
    update_merge_request,
)

# What ``Batches.status`` says of a Step Functions execution that still runs.
RUNNING = "RUNNING"
# At most this many dead letters are moved by one redrive; run it again for the rest.
REDRIVE_LIMIT = 10_000


class Refused(MergeAssistError):
    """The command would be unsafe or pointless for this batch; the message says why."""


# -- ports ------------------------------------------------------------------------------


@dataclass(frozen=True)
class QueuedMessage:
    """A message as received from an SQS FIFO queue, with what sending it again keeps."""

    body: str
    receipt: str
    group_id: str | None = None
    deduplication_id: str | None = None
    # SQS message attributes as ``ReceiveMessage`` gives them (``DataType`` and a value).
    attributes: Mapping[str, Any] = field(default_factory=dict)


class MessageQueues(Protocol):
    """The SQS calls a redrive makes (``merge_assist.adapters.recovery``)."""

    def url(self, name: str) -> str:
        """The queue's URL; ``NotFoundError`` if there is no such queue."""
        ...

    def receive(self, url: str, max_messages: int) -> list[QueuedMessage]:
        """Up to ``max_messages`` messages, hidden from other receivers for a while; none
        when the queue has no visible message."""
        ...

    def send(self, url: str, message: QueuedMessage) -> None:
        """Send body, group id, deduplication id and attributes as they are."""
        ...

    def delete(self, url: str, receipt: str) -> None: ...

    def count(self, url: str) -> int:
        """Messages in the queue, visible or in flight (SQS's approximate counts)."""
        ...


class BatchExecutions(Executions, Protocol):
    """The merge workflow's executions, which are named after their batch."""

    def status(self, name: str) -> str | None:
        """``RUNNING``, ``SUCCEEDED``, ``FAILED``, ``TIMED_OUT`` or ``ABORTED``; None if no
        execution of that name exists."""
        ...

    def stop(self, name: str, cause: str) -> bool:
        """Stop it if it runs; True if this call stopped it."""
        ...


# -- dead letters -----------------------------------------------------------------------


@dataclass(frozen=True)
class Redriven:
    project_id: int
    moved: int
    # Still in the dead-letter queue after the run: messages another receiver holds (or a
    # run interrupted earlier), visible again after their visibility timeout.
    left: int


def redrive(
    queues: MessageQueues, names: ResourceNames, project_id: int, *, limit: int = REDRIVE_LIMIT
) -> Redriven:
    """Move every message of the project's dead-letter queue back to its FIFO queue, with its
    message group and deduplication id. A message reaches the dead-letter queue only after
    ``MAX_RECEIVE_COUNT`` receives of a six-minute visibility timeout each, long past SQS's
    five-minute deduplication window, so the same id is accepted again; within the window
    (a redrive interrupted and run again) it keeps the copy from being queued twice."""
    dead_letters = queues.url(names.project_dead_letter_queue(project_id))
    source = queues.url(names.project_queue(project_id))
    moved = 0
    while moved < limit:
        messages = queues.receive(dead_letters, min(10, limit - moved))
        if not messages:
            break
        for message in messages:
            # Sent before deleted: a crash in between leaves a duplicate, never a loss.
            queues.send(source, _sendable(message))
            queues.delete(dead_letters, message.receipt)
            moved += 1
    return Redriven(project_id=project_id, moved=moved, left=queues.count(dead_letters))


def _sendable(message: QueuedMessage) -> QueuedMessage:
    """A FIFO queue needs both ids; the project queues' messages always carry them, this
    only guards against a message someone put in the dead-letter queue by hand."""
    if message.group_id and message.deduplication_id:
        return message
    digest = hashlib.sha256(message.body.encode()).hexdigest()
    return QueuedMessage(
        body=message.body,
        receipt=message.receipt,
        group_id=message.group_id or "redrive",
        deduplication_id=message.deduplication_id or digest,
        attributes=message.attributes,
    )


# -- batches ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Retried:
    batch_id: str
    project_id: int
    target_branch: str
    found: BatchState
    execution: str | None
    # The batch had not ended but its execution had: this run marked it failed.
    closed: bool
    requeued: list[int]
    released_lock: bool
    next_batch: str
    started: bool
    why_not_started: str | None


@dataclass(frozen=True)
class Cancelled:
    batch_id: str
    project_id: int
    target_branch: str
    found: BatchState
    execution: str | None
    stopped: bool
    # False when the batch had ended before (cancelled, or failed): nothing was changed
    # but what an interrupted earlier run had left undone.
    cancelled: bool
    requeued: list[int]
    released_lock: bool


def retry_batch(
    store: Store,
    executions: BatchExecutions,
    clock: Clock,
    batch_id: str,
    *,
    polls: PollIntervals,
) -> Retried:
    """Put the MRs a failed, cancelled or dead batch still holds back in line, release its
    lock, and start its branch's queue as batch ``batch_id_for(.., "retry:<id>")``.

    ``Refused`` for a landed batch, for one whose execution runs, and for one that has not
    ended whose lock has not expired (its execution may have ended a moment ago and a step
    may still be finishing; ``cancel_batch`` ends it at once)."""
    batch = _get(store, batch_id)
    if batch.state is BatchState.LANDED:
        raise Refused(f"batch {batch_id} landed; there is nothing to retry")
    execution = executions.status(_execution_name(batch))
    if execution == RUNNING:
        raise Refused(
            f"batch {batch_id} is running ({batch.state.value}); cancel it first with "
            f"`merge-assist batch cancel {batch_id}`"
        )
    closed = False
    if not batch.state.is_final:
        lock = store.get_branch_lock(batch.project_id, batch.target_branch)
        if lock is not None and lock.holds(batch.id) and lock.expires_at > clock.now():
            raise Refused(
                f"batch {batch_id} has not ended ({batch.state.value}) and still holds the "
                f"lock of {batch.target_branch} until {lock.expires_at.isoformat()}, though "
                f"its execution is {execution or 'not found'}; wait until then, or end it "
                f"now with `merge-assist batch cancel {batch_id}`"
            )
        closed = _finish(
            store,
            batch,
            BatchState.FAILED,
            f"retried by hand: its execution was {execution or 'not found'}",
        )
    requeued = _requeue_held(store, clock, batch)
    released = _release_lock(store, batch)
    following = batch_id_for(batch.project_id, batch.target_branch, f"retry:{batch.id}")
    started = start_batch(
        store,
        executions,
        batch.project_id,
        batch.target_branch,
        following,
        polls=polls,
    )
    return Retried(
        batch_id=batch.id,
        project_id=batch.project_id,
        target_branch=batch.target_branch,
        found=batch.state,
        execution=execution,
        closed=closed,
        requeued=requeued,
        released_lock=released,
        next_batch=following,
        started=started,
        why_not_started=None if started else _why_not_started(store, executions, batch, following),
    )


def cancel_batch(
    store: Store, executions: BatchExecutions, clock: Clock, batch_id: str
) -> Cancelled:
    """Stop the batch's execution, mark it cancelled, put the MRs it holds back in line and
    release its lock. The next batch is not started here: the watcher's next run or the next
    event starts the queue (or ``retry_batch`` at once).

    ``Refused`` for a landed batch, and for one landing while its execution runs: stopping
    it half-way would leave the target moved and its MRs not marked merged."""
    batch = _get(store, batch_id)
    if batch.state is BatchState.LANDED:
        raise Refused(f"batch {batch_id} already landed; it cannot be cancelled")
    name = _execution_name(batch)
    execution = executions.status(name)
    if execution == RUNNING and batch.state is BatchState.LANDING:
        raise Refused(f"batch {batch_id} is landing; let it end, then retry what it left")
    stopped = execution == RUNNING and executions.stop(
        name, f"batch {batch_id} cancelled with merge-assist batch cancel"
    )
    cancelled = False
    if not batch.state.is_final:
        cancelled = _finish(store, batch, BatchState.CANCELLED, "cancelled by hand")
    requeued = _requeue_held(store, clock, batch)
    released = _release_lock(store, batch)
    if cancelled:
        # A step that was already running when the execution stopped may have saved the
        # batch after us; it cannot take the MRs back (they left the batch), only the state.
        latest = _get(store, batch_id)
        if not latest.state.is_final:
            _finish(store, latest, BatchState.CANCELLED, "cancelled by hand")
    return Cancelled(
        batch_id=batch.id,
        project_id=batch.project_id,
        target_branch=batch.target_branch,
        found=batch.state,
        execution=execution,
        stopped=stopped,
        cancelled=cancelled,
        requeued=requeued,
        released_lock=released,
    )


# What ``Batches.status`` says of an execution that ended without its ReleaseBatch step
# releasing the branch (a crash of the release itself, a stop by hand, a time-out).
ENDED = frozenset({"FAILED", "TIMED_OUT", "ABORTED", "SUCCEEDED"})


def release_dead_batches(
    store: Store,
    executions: BatchExecutions,
    clock: Clock,
    project_id: int,
    target_branches: list[str],
) -> list[str]:
    """For the watcher: a branch whose lock is held by a batch whose execution has ended
    would wait for the lock's expiry (the CI timeout and a margin); end that batch as
    failed, put what it holds back in line and release the branch now. The batches
    released; a lock whose execution is not found yet (being started) is left alone."""
    released = []
    for branch in target_branches:
        lock = store.get_branch_lock(project_id, branch)
        if lock is None:
            continue
        # Every car of a train: one whose execution died would hold its place until the
        # lock expired.
        for car_id in lock.cars:
            try:
                batch = store.get_batch(car_id)
            except NotFoundError:
                continue  # selected but not recorded yet, or its execution is starting
            execution = executions.status(_execution_name(batch))
            if execution not in ENDED:
                continue
            if not batch.state.is_final:
                _finish(store, batch, BatchState.FAILED, f"its execution ended ({execution})")
            _requeue_held(store, clock, batch)
            if _release_lock(store, batch):
                released.append(batch.id)
    return released


def _get(store: Store, batch_id: str) -> Batch:
    try:
        return store.get_batch(batch_id)
    except NotFoundError:
        raise Refused(f"there is no batch {batch_id}") from None


def _execution_name(batch: Batch) -> str:
    return batch.execution_name or batch.id


def _finish(store: Store, batch: Batch, state: BatchState, note: str) -> bool:
    """Mark the batch ended; False if it had ended meanwhile (then it is left as it is)."""
    for _ in range(MAX_ATTEMPTS):
        if batch.state.is_final:
            return False
        step = BatchStep(kind=BatchStepKind.RELEASED, status=state.value, note=note)
        try:
            store.save_batch(
                batch.model_copy(update={"state": state, "steps": [*batch.steps, step]})
            )
        except ConflictError:
            batch = store.get_batch(batch.id)
            continue
        return True
    raise ConflictError(f"batch {batch.id} kept changing")


def _requeue_held(store: Store, clock: Clock, batch: Batch) -> list[int]:
    """Back in line where they stood (``ready_since`` kept), the MRs the batch still holds;
    an MR that left it (merged, rejected, changed) is left alone."""

    def back(state: MergeRequestState) -> MergeRequestState | None:
        if state.batch_id != batch.id or state.status not in IN_FLIGHT:
            return None
        return state.model_copy(
            update={
                "status": StatusCategory.QUEUED,
                "batch_id": None,
                "rebasing": False,
                "ready_since": state.ready_since or clock.now(),
            }
        )

    return [
        iid
        for iid in batch.merge_requests
        if update_merge_request(store, batch.project_id, iid, back) is not None
    ]


def _release_lock(store: Store, batch: Batch) -> bool:
    lock = store.get_branch_lock(batch.project_id, batch.target_branch)
    if lock is None or not lock.holds(batch.id):
        return False
    store.release_branch_lock(batch.project_id, batch.target_branch, batch.id)
    return True


def _why_not_started(
    store: Store, executions: BatchExecutions, batch: Batch, following: str
) -> str:
    try:
        config = store.get_project(batch.project_id)
    except NotFoundError:
        return f"project {batch.project_id} is not connected"
    lock = store.get_branch_lock(batch.project_id, batch.target_branch)
    if config.paused:
        why = "the project is paused"
    elif batch.target_branch not in config.target_branches:
        why = f"{batch.target_branch} is no longer a target branch of the project"
    elif lock is not None and not lock.holds(following):
        why = f"batch {lock.batch_id} runs on {batch.target_branch}"
    elif executions.status(following) not in (None, RUNNING):
        why = f"batch {following} already ran"
    elif not store.list_merge_requests(
        batch.project_id, StatusCategory.QUEUED, batch.target_branch
    ):
        why = f"no merge request is queued for {batch.target_branch}"
    else:
        why = "the branch's queue did not start"
    return why

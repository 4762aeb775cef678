"""The merge queue: readiness, triage, dispatch, the queue's order, batch planning, the
verdict on a batch's pipeline, pipeline waits, the workflow's steps and the bot's wording.
Other contexts use the names below; inside the queue, modules import each other directly."""

from merge_assist.queue.models import (
    Batch,
    BatchState,
    BatchStep,
    BatchStepKind,
    BranchLock,
    MergeRequestState,
    Notice,
    Priority,
    Reason,
    ReasonCode,
    StatusCategory,
)
from merge_assist.queue.notices import deliver_pending
from merge_assist.queue.ports import Executions, GitLabGateway, QueueStore, Repository
from merge_assist.queue.queue import queue_order
from merge_assist.queue.recording import MAX_ATTEMPTS, update_merge_request
from merge_assist.queue.triage import IN_FLIGHT
from merge_assist.queue.watcher import overdue_batches, reconcile_project
from merge_assist.queue.workflow.start import batch_id_for, start_batch

__all__ = [
    "IN_FLIGHT",
    "MAX_ATTEMPTS",
    "Batch",
    "BatchState",
    "BatchStep",
    "BatchStepKind",
    "BranchLock",
    "Executions",
    "GitLabGateway",
    "MergeRequestState",
    "Notice",
    "Priority",
    "QueueStore",
    "Reason",
    "ReasonCode",
    "Repository",
    "StatusCategory",
    "batch_id_for",
    "deliver_pending",
    "overdue_batches",
    "queue_order",
    "reconcile_project",
    "start_batch",
    "update_merge_request",
]

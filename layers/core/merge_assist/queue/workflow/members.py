"""Moving a batch's MRs between statuses. Each move is a compare-and-set that only applies
while the MR still belongs to the batch, and the author is told only by the call that made
the move, so a retried step never comments twice."""

from __future__ import annotations

from merge_assist.platform.config import ProjectConfig
from merge_assist.platform.errors import NotFoundError
from merge_assist.platform.metrics import Metric
from merge_assist.queue import comments, notices, strikes
from merge_assist.queue.comments import Transition
from merge_assist.queue.models import Batch, MergeRequestState, Reason, StatusCategory
from merge_assist.queue.recording import Change, update_merge_request
from merge_assist.queue.triage import IN_FLIGHT
from merge_assist.queue.workflow.context import WorkflowContext


def update(
    ctx: WorkflowContext, project_id: int, iid: int, change: Change
) -> MergeRequestState | None:
    """Apply ``change`` (None: leave it) until it sticks; the saved state if it changed."""
    return update_merge_request(ctx.store, project_id, iid, change)


def tell(ctx: WorkflowContext, saved: MergeRequestState | None, transition: Transition) -> None:
    """Best effort: what GitLab cannot take now waits in the outbox (``notices``), so a
    step never fails, nor is retried, for a comment."""
    if saved is not None:
        notices.tell(ctx.gitlab, ctx.store, saved, transition)


def belongs(state: MergeRequestState, batch: Batch) -> bool:
    return state.batch_id == batch.id and state.status in IN_FLIGHT


def current(ctx: WorkflowContext, batch: Batch, iid: int) -> MergeRequestState | None:
    """The MR's state if it is still in this batch; None if it left (the dispatcher took
    it out because it changed)."""
    try:
        state = ctx.store.get_merge_request(batch.project_id, iid)
    except NotFoundError:
        return None
    return state if belongs(state, batch) else None


def take(ctx: WorkflowContext, batch: Batch, iid: int) -> MergeRequestState | None:
    """Queued → batching."""

    def change(state: MergeRequestState) -> MergeRequestState | None:
        if belongs(state, batch):
            return state
        if state.status is not StatusCategory.QUEUED or state.batch_id is not None:
            return None
        return state.model_copy(update={"status": StatusCategory.BATCHING, "batch_id": batch.id})

    update(ctx, batch.project_id, iid, change)
    return current(ctx, batch, iid)


def mark_testing(ctx: WorkflowContext, batch: Batch, iid: int, **fields: object) -> bool:
    """Batching → testing; True if this call made the move (tell the author then)."""

    def change(state: MergeRequestState) -> MergeRequestState | None:
        if not belongs(state, batch):
            return None
        return state.model_copy(update={"status": StatusCategory.TESTING, **fields})

    before = current(ctx, batch, iid)
    saved = update(ctx, batch.project_id, iid, change)
    return saved is not None and before is not None and before.status is StatusCategory.BATCHING


def set_fields(ctx: WorkflowContext, batch: Batch, iid: int, **fields: object) -> None:
    def change(state: MergeRequestState) -> MergeRequestState | None:
        return state.model_copy(update=fields) if belongs(state, batch) else None

    update(ctx, batch.project_id, iid, change)


def requeue(ctx: WorkflowContext, batch: Batch, iid: int) -> MergeRequestState | None:
    """Back in line where it stood: its ``ready_since`` is kept. The saved state if this
    call moved it (the caller tells the author, if there is something to tell)."""

    def change(state: MergeRequestState) -> MergeRequestState | None:
        if not belongs(state, batch):
            return None
        return state.model_copy(
            update={"status": StatusCategory.QUEUED, "batch_id": None, "rebasing": False}
        )

    return update(ctx, batch.project_id, iid, change)


def requeue_all(
    ctx: WorkflowContext, config: ProjectConfig, batch: Batch, iids: list[int], why: str | None
) -> None:
    """Each back in line, its author told ``why`` when there is something to tell."""
    for iid in iids:
        saved = requeue(ctx, batch, iid)
        if why is not None:
            tell(ctx, saved, comments.requeued(config, why))


def hold_back(ctx: WorkflowContext, batch: Batch, iid: int, reason: Reason) -> None:
    """Out of the batch until GitLab says more (the dispatcher triages it again then)."""

    def change(state: MergeRequestState) -> MergeRequestState | None:
        if not belongs(state, batch):
            return None
        return state.model_copy(
            update={
                "status": StatusCategory.NOT_READY,
                "batch_id": None,
                "ready_since": None,
                "placed_at": None,
                "reasons": [reason],
                "rebasing": False,
            }
        )

    update(ctx, batch.project_id, iid, change)


def reject(
    ctx: WorkflowContext,
    config: ProjectConfig,
    batch: Batch,
    iid: int,
    reason: Reason,
    *,
    link: str | None = None,
) -> None:
    """Out of the queue with a reason and a strike; at ``strikes.MAX_STRIKES`` only a push
    by its author brings it back."""

    def change(state: MergeRequestState) -> MergeRequestState | None:
        if not belongs(state, batch):
            return None
        return strikes.add(state).model_copy(
            update={
                "status": StatusCategory.REJECTED,
                "batch_id": None,
                "ready_since": None,
                "placed_at": None,
                "reasons": [reason],
                "rebasing": False,
            }
        )

    saved = update(ctx, batch.project_id, iid, change)
    if saved is None:
        return
    ctx.meter.record(Metric.MERGE_REQUESTS_REJECTED)
    tell(ctx, saved, comments.rejected(config, strikes.explain(reason, saved), link))


def merged(
    ctx: WorkflowContext, config: ProjectConfig, batch: Batch, iid: int, pipeline_url: str | None
) -> None:
    def change(state: MergeRequestState) -> MergeRequestState | None:
        if state.status is StatusCategory.MERGED or not (
            belongs(state, batch) or state.batch_id is None
        ):
            return None
        return state.model_copy(
            update={"status": StatusCategory.MERGED, "reasons": [], "rebasing": False}
        )

    saved = update(ctx, batch.project_id, iid, change)
    if saved is not None:
        ctx.meter.record(Metric.MERGE_REQUESTS_MERGED)
        if saved.ready_since is not None:
            waited = ctx.clock.now() - saved.ready_since
            ctx.meter.record(Metric.TIME_TO_MERGE, max(waited.total_seconds(), 0.0))
    tell(ctx, saved, comments.merged(config, batch.target_branch, pipeline_url))

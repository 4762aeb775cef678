"""The queue's side of the event log: an entry when a merge request changes status, and one
per step a batch takes. An entry's id is derived from what caused it (the MR's version, the
step's index), so a replayed or retried change adds nothing."""

from __future__ import annotations

from merge_assist.audit.models import QUEUE_ACTOR, AuditAction, AuditEntry
from merge_assist.queue import Batch, BatchStep, MergeRequestState

SUMMARY_LENGTH = 2000


def status_entry(before: MergeRequestState | None, after: MergeRequestState) -> AuditEntry | None:
    """The entry for an MR that is new or changed status; None when its status stayed."""
    if before is not None and before.status is after.status:
        return None
    origin = before.status.value if before is not None else None
    batch_id = after.batch_id or (before.batch_id if before is not None else None)
    summary = f"!{after.iid} {_words(origin) if origin else 'new'} → {_words(after.status.value)}"
    if batch_id:
        summary += f" (batch {batch_id})"
    if after.reasons:
        summary += ": " + "; ".join(reason.message for reason in after.reasons)
    return AuditEntry(
        project_id=after.project_id,
        id=f"mr-{after.iid}-v{after.version}",
        at=after.updated_at,
        action=AuditAction.STATUS_CHANGED,
        actor=QUEUE_ACTOR,
        summary=_clip(summary),
        merge_request=after.iid,
        batch_id=batch_id,
        details={
            "from": origin,
            "to": after.status.value,
            "reasons": [reason.model_dump(mode="json") for reason in after.reasons],
            "target_branch": after.target_branch,
        },
    )


def step_entries(batch: Batch, seen: int) -> list[AuditEntry]:
    """One entry per step after the first ``seen`` of the batch's steps."""
    return [
        AuditEntry(
            project_id=batch.project_id,
            id=f"batch-{batch.id}-step-{index}",
            at=step.at,
            action=AuditAction.BATCH_STEP,
            actor=QUEUE_ACTOR,
            summary=_clip(step_summary(batch.id, step)),
            batch_id=batch.id,
            details=step.model_dump(mode="json"),
        )
        for index, step in enumerate(batch.steps)
        if index >= seen
    ]


def step_summary(batch_id: str, step: BatchStep) -> str:
    """``batch b-3: bisected !1 !2 (testing the first 2 of 4)``"""
    summary = f"batch {batch_id}: {step.kind.value}"
    if step.merge_requests:
        summary += " " + " ".join(f"!{iid}" for iid in step.merge_requests)
    if step.status:
        summary += f", {_words(step.status)}"
    if step.note:
        summary += f" ({step.note})"
    return summary


def _words(value: str) -> str:
    return value.replace("_", " ")


def _clip(text: str) -> str:
    return text if len(text) <= SUMMARY_LENGTH else text[: SUMMARY_LENGTH - 1] + "…"

"""Recording a queue event on the state of the MR it concerns.

The dispatcher's first duty: whatever it later decides, the store must reflect what GitLab
said, once per event, even when the same event is delivered twice or two events race."""

from __future__ import annotations

import time
from collections.abc import Callable

from merge_assist.platform.errors import ConflictError, NotFoundError
from merge_assist.platform.events import MergeRequestSnapshot, QueueEvent
from merge_assist.platform.retrying import delay
from merge_assist.queue.models import MergeRequestState
from merge_assist.queue.ports import QueueStore

# Racing writers read again after a jittered pause (``retrying.delay``). On moto, 16 writers
# making 10 writes each on one record: 4 of 160 give up (55 did with five attempts and no
# pause), 32 writers: 71 of 320; in the queue one MR sees two or three writers at most (its
# FIFO group's dispatcher, a workflow step, the API). ``tests/integration/
# test_write_contention.py`` holds 16 writers x 3 writes to none giving up.
MAX_ATTEMPTS = 20
RETRY_BASE_SECONDS = 0.01
RETRY_CAP_SECONDS = 1.0


def pause(attempt: int) -> None:
    """Between two attempts of a write that lost a race."""
    time.sleep(delay(attempt, base=RETRY_BASE_SECONDS, cap=RETRY_CAP_SECONDS))


Change = Callable[[MergeRequestState], MergeRequestState | None]


def update_merge_request(
    store: QueueStore, project_id: int, iid: int, change: Change
) -> MergeRequestState | None:
    """Apply ``change`` (None: leave it) to the stored state until the write sticks, reading
    again after every lost race; the saved state if it changed, None if not (or untracked)."""
    for attempt in range(MAX_ATTEMPTS):
        try:
            state = store.get_merge_request(project_id, iid)
        except NotFoundError:
            return None
        changed = change(state)
        if changed is None or changed == state:
            return None
        try:
            return store.save_merge_request(changed)
        except ConflictError:
            pause(attempt)
    raise ConflictError(f"!{iid} of project {project_id} kept changing")


def record_event(store: QueueStore, event: QueueEvent) -> MergeRequestState | None:
    """The MR's stored state after the event, or None when the event concerns no MR the
    store tracks or can start tracking."""
    snapshot = event.merge_request
    if snapshot is None:
        return None
    for attempt in range(MAX_ATTEMPTS):
        try:
            current: MergeRequestState | None = store.get_merge_request(
                event.project_id, snapshot.iid
            )
        except NotFoundError:
            current = None
        if current is not None and current.last_event_key == event.idempotency_key:
            return current
        updated = _apply(current, event, snapshot)
        if updated is None:
            return None
        try:
            return store.save_merge_request(updated)
        except ConflictError:
            pause(attempt)  # someone wrote in between: read again and re-apply
    raise ConflictError(
        f"!{snapshot.iid} of project {event.project_id} kept changing; event "
        f"{event.idempotency_key} will be retried"
    )


def _apply(
    current: MergeRequestState | None, event: QueueEvent, snapshot: MergeRequestSnapshot
) -> MergeRequestState | None:
    seen = {
        "last_event_kind": event.kind.value,
        "last_event_key": event.idempotency_key,
        "last_event_at": event.received_at,
    }
    if current is None:
        if not (snapshot.sha and snapshot.source_branch and snapshot.target_branch):
            return None  # not enough to start tracking; the MR's own events will say more
        return MergeRequestState(
            project_id=event.project_id,
            iid=snapshot.iid,
            sha=snapshot.sha,
            source_branch=snapshot.source_branch,
            target_branch=snapshot.target_branch,
            title=snapshot.title,
            web_url=snapshot.web_url,
            gitlab_state=snapshot.state,
            draft=snapshot.draft,
            labels=snapshot.labels,
            assignee_ids=snapshot.assignee_ids,
            **seen,
        )
    changes: dict[str, object] = dict(seen)
    if snapshot.sha:
        changes["sha"] = snapshot.sha
    if snapshot.title:
        changes["title"] = snapshot.title
    if snapshot.source_branch:
        changes["source_branch"] = snapshot.source_branch
    if snapshot.target_branch:
        changes["target_branch"] = snapshot.target_branch
    if snapshot.web_url:
        changes["web_url"] = snapshot.web_url
    if snapshot.state:
        changes["gitlab_state"] = snapshot.state
    if event.kind.value in ("merge_request", "reconcile"):
        # Only these carry the MR's full attributes; notes and pipelines carry a summary.
        changes.update(
            draft=snapshot.draft, labels=snapshot.labels, assignee_ids=snapshot.assignee_ids
        )
    return current.model_copy(update=changes)

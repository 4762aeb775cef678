"""The watcher's decision: which MRs GitLab and the store disagree about.

GitLab does not redeliver a webhook it failed to deliver, so every few minutes the watcher
compares the MRs that concern the bot with what the store holds and queues a ``reconcile``
event for each difference; a lost webhook then only delays things. The event's key is a
digest of what GitLab said, so a difference seen twice is queued once."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable
from datetime import datetime

from merge_assist.platform.config import ProjectConfig
from merge_assist.platform.errors import NotFoundError
from merge_assist.platform.events import EventKind, MergeRequestSnapshot, QueueEvent
from merge_assist.queue.models import BranchLock, MergeRequestState, StatusCategory
from merge_assist.queue.pipeline_wait import lock_ttl
from merge_assist.queue.ports import GitLabGateway, QueueStore

OPEN_CATEGORIES = (
    StatusCategory.NOT_READY,
    StatusCategory.QUEUED,
    StatusCategory.BATCHING,
    StatusCategory.TESTING,
)


def differs(snapshot: MergeRequestSnapshot, state: MergeRequestState | None) -> bool:
    if state is None:
        return True
    if state.status is StatusCategory.NOT_READY and snapshot.detailed_merge_status == "mergeable":
        # GitLab would merge it now: what held it back (a pipeline, an approval) has changed,
        # possibly without a webhook that names the MR (a branch pipeline's does not).
        return True
    return (
        snapshot.sha != state.sha
        or snapshot.state != state.gitlab_state
        or snapshot.draft != state.draft
        or snapshot.target_branch != state.target_branch
        or sorted(snapshot.labels) != sorted(state.labels)
        or sorted(snapshot.assignee_ids) != sorted(state.assignee_ids)
    )


def reconcile_key(project_id: int, snapshot: MergeRequestSnapshot) -> str:
    seen = json.dumps(
        [
            project_id,
            snapshot.iid,
            snapshot.sha,
            snapshot.state,
            snapshot.draft,
            snapshot.target_branch,
            sorted(snapshot.labels),
            sorted(snapshot.assignee_ids),
            snapshot.detailed_merge_status,
            snapshot.head_pipeline_id,
        ]
    )
    return "reconcile:" + hashlib.sha256(seen.encode()).hexdigest()


def reconcile_events(
    config: ProjectConfig,
    concerned: Iterable[MergeRequestSnapshot],
    tracked: Iterable[MergeRequestState],
    current: Callable[[int], MergeRequestSnapshot | None],
) -> list[QueueEvent]:
    """``concerned``: GitLab's open MRs assigned to the bot or carrying the trigger label;
    ``tracked``: the store's MRs not yet merged or rejected; ``current``: GitLab's view of
    one MR (None if it is gone), for tracked MRs that are no longer in ``concerned``."""
    by_iid = {state.iid: state for state in tracked}
    snapshots = {snapshot.iid: snapshot for snapshot in concerned}
    for iid, state in by_iid.items():
        if iid not in snapshots and state.gitlab_state in (None, "opened"):
            fresh = current(iid)
            if fresh is not None:
                snapshots[iid] = fresh
    return [
        QueueEvent(
            kind=EventKind.RECONCILE,
            idempotency_key=reconcile_key(config.project_id, snapshot),
            project_id=config.project_id,
            target_branch=snapshot.target_branch,
            merge_request=snapshot,
            actor="watcher",
        )
        for iid, snapshot in sorted(snapshots.items())
        if differs(snapshot, by_iid.get(iid))
    ]


def held_since(store: QueueStore, lock: BranchLock) -> datetime:
    """When the batch holding the lock took the branch. Every step renews the lock and
    moves its ``acquired_at``, so the batch's creation is the start of the hold; a lock
    whose batch is not recorded yet (select is between the two) is as old as the lock."""
    try:
        return store.get_batch(lock.batch_id).created_at
    except NotFoundError:
        return lock.acquired_at


def overdue_batches(store: QueueStore, configs: Iterable[ProjectConfig], now: datetime) -> int:
    """Branch locks held longer than their project's CI timeout and margin allow (the lock
    TTL): a batch stuck, or testing for longer than one pipeline may take."""
    overdue = 0
    for config in configs:
        for branch in config.target_branches:
            lock = store.get_branch_lock(config.project_id, branch)
            if lock is not None and now - held_since(store, lock) > lock_ttl(config):
                overdue += 1
    return overdue


def reconcile_project(
    store: QueueStore,
    gitlab: GitLabGateway,
    bot_user_id: int,
    config: ProjectConfig,
    send: Callable[[QueueEvent], object],
) -> int:
    """Queue a ``reconcile`` event (through ``send``) for every MR of the project that
    concerns the bot and that GitLab and the store disagree about; how many were queued."""
    concerned = gitlab.open_merge_requests(config.project_id, assignee_id=bot_user_id)
    if config.trigger_label:
        concerned += gitlab.open_merge_requests(config.project_id, labels=[config.trigger_label])
    tracked = [
        state
        for category in OPEN_CATEGORIES
        for state in store.list_merge_requests(config.project_id, category)
    ]

    def current(iid: int) -> MergeRequestSnapshot | None:
        try:
            return gitlab.merge_request(config.project_id, iid)
        except NotFoundError:
            return None

    events = reconcile_events(config, concerned, tracked, current)
    for event in events:
        send(event)
    return len(events)

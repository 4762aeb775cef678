"""What the dashboard and admin automation change, each change written to the project's
event log with who made it.

Every change is a read-modify-write guarded by the item's version: a race with the
dispatcher or the workflow is retried on fresh data, never lost. Changes take effect when
the next batch is selected; a running batch keeps the MRs and settings it started with."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from merge_assist.admin.onboarding import (
    Connected,
    connect_project,
    disconnect_project,
    update_project,
)
from merge_assist.admin.ports import ProjectInfrastructure, QueueStarter, Store
from merge_assist.audit import AuditAction, AuditEntry
from merge_assist.platform.access import Grant, Role
from merge_assist.platform.config import ProjectConfig
from merge_assist.platform.errors import ConflictError, NotFoundError
from merge_assist.queue import GitLabGateway, MergeRequestState, StatusCategory, queue_order

MAX_ATTEMPTS = 5
# How far a placed MR stands from its neighbour when there is no MR on its other side.
PLACEMENT_GAP = timedelta(milliseconds=1)


class NotQueuedError(ConflictError):
    """The MR is not in its queue, so it cannot be placed or hotfixed now."""


@dataclass(frozen=True)
class Actor:
    username: str
    request_id: str
    at: datetime

    @property
    def cause(self) -> str:
        """What the batches this request starts are named after: a retried request starts
        none twice."""
        return f"api:{self.request_id}"


def _audit(
    store: Store,
    actor: Actor,
    project_id: int,
    action: AuditAction,
    summary: str,
    *,
    merge_request: int | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    entry = AuditEntry(
        project_id=project_id,
        id=f"{action.value}-{actor.request_id}",
        at=actor.at,
        action=action,
        actor=actor.username,
        summary=summary,
        merge_request=merge_request,
        details=details or {},
    )
    store.append_audit(entry)
    return entry


# -- project configuration ----------------------------------------------------------------


def change_config(
    store: Store,
    actor: Actor,
    project_id: int,
    changes: dict[str, Any],
    start_queues: QueueStarter,
) -> ProjectConfig:
    """Unless the project is paused, its idle queues start at once: MRs a resumed or changed
    queue holds need not wait for the next event."""
    config = _save_change(store, actor, project_id, changes)
    if not config.paused:
        start_queues(project_id, actor.cause)
    return config


def _save_change(
    store: Store, actor: Actor, project_id: int, changes: dict[str, Any]
) -> ProjectConfig:
    for _ in range(MAX_ATTEMPTS):
        before = store.get_project(project_id)
        try:
            after = update_project(store, project_id, changes)
        except ConflictError:
            continue
        changed = _differences(before, after)
        if changed:
            _audit(
                store,
                actor,
                project_id,
                AuditAction.CONFIG_CHANGED,
                "changed " + ", ".join(sorted(changed)),
                details={"changes": changed},
            )
        return after
    raise ConflictError(f"project {project_id} kept changing; try again")


def _differences(before: ProjectConfig, after: ProjectConfig) -> dict[str, Any]:
    old = before.model_dump(mode="json", exclude={"version", "updated_at"})
    new = after.model_dump(mode="json", exclude={"version", "updated_at"})
    return {
        name: {"from": old.get(name), "to": value}
        for name, value in new.items()
        if old.get(name) != value
    }


# -- connecting and disconnecting ----------------------------------------------------------


def connect(
    store: Store,
    infrastructure: ProjectInfrastructure,
    gitlab: GitLabGateway,
    actor: Actor,
    ref: int | str,
    *,
    webhook_url: str | None,
    settings: dict[str, Any] | None = None,
) -> Connected:
    """``onboarding.connect_project``, written to the event log when it connected the project
    (a project already connected is left as it is, and nothing is written)."""
    if not webhook_url:
        raise RuntimeError("MERGE_ASSIST_WEBHOOK_URL is not set")
    result = connect_project(
        store, infrastructure, gitlab, ref, webhook_url=webhook_url, settings=settings
    )
    if result.created:
        config = result.config
        _audit(
            store,
            actor,
            config.project_id,
            AuditAction.PROJECT_CONNECTED,
            f"connected {config.path or config.project_id}",
            details={"config": config.model_dump(mode="json")},
        )
    return result


def disconnect(
    store: Store,
    infrastructure: ProjectInfrastructure,
    gitlab: GitLabGateway,
    actor: Actor,
    project_id: int,
    *,
    webhook_url: str | None,
) -> None:
    """``onboarding.disconnect_project`` of a connected project (``NotFoundError`` if it is
    not), written to the event log; every grant on it goes too, so connecting it again later
    gives no one the roles they had."""
    store.get_project(project_id)  # NotFoundError: nothing to disconnect
    disconnect_project(store, infrastructure, gitlab, project_id, webhook_url=webhook_url or "")
    _audit(store, actor, project_id, AuditAction.PROJECT_DISCONNECTED, "disconnected")
    for grant in store.list_grants(project_id):
        store.delete_grant(grant.username, project_id)


# -- queue order ----------------------------------------------------------------------------


def _update_mr(
    store: Store,
    project_id: int,
    iid: int,
    change: Callable[[MergeRequestState], MergeRequestState],
) -> tuple[MergeRequestState, MergeRequestState]:
    for _ in range(MAX_ATTEMPTS):
        before = store.get_merge_request(project_id, iid)
        after = change(before)
        if after == before:
            return before, before
        try:
            return before, store.save_merge_request(after)
        except ConflictError:
            continue
    raise ConflictError(f"!{iid} of project {project_id} kept changing; try again")


def set_priority(
    store: Store, actor: Actor, project_id: int, iid: int, priority: int
) -> MergeRequestState:
    """Among MRs of the same priority, it then stands where its ready time puts it."""

    def change(mr: MergeRequestState) -> MergeRequestState:
        if mr.status.is_final:
            raise NotQueuedError(f"!{iid} is {mr.status.value}; its priority no longer matters")
        return mr.model_copy(update={"priority": priority, "placed_at": None})

    before, after = _update_mr(store, project_id, iid, change)
    if after is not before:
        _audit(
            store,
            actor,
            project_id,
            AuditAction.PRIORITY_CHANGED,
            f"!{iid} priority {before.priority} → {priority}",
            merge_request=iid,
            details={"from": before.priority, "to": priority},
        )
    return after


def place(
    store: Store, actor: Actor, project_id: int, iid: int, *, before: int | None, after: int | None
) -> MergeRequestState:
    """Moves a queued MR right before or right after another queued MR of its queue: it
    takes that MR's priority and a place in time next to it."""
    if (before is None) == (after is None):
        raise ValueError("give exactly one of before and after")
    anchor_iid = before if before is not None else after
    assert anchor_iid is not None
    if anchor_iid == iid:
        raise ValueError("an MR cannot be placed next to itself")

    def change(mr: MergeRequestState) -> MergeRequestState:
        if mr.status is not StatusCategory.QUEUED:
            raise NotQueuedError(f"!{iid} is {mr.status.value}, not queued")
        line = [
            other
            for other in store.list_merge_requests(
                project_id, StatusCategory.QUEUED, mr.target_branch
            )
            if other.iid != iid
        ]
        line.sort(key=queue_order)
        index = next((i for i, other in enumerate(line) if other.iid == anchor_iid), None)
        if index is None:
            raise NotQueuedError(f"!{anchor_iid} is not queued for {mr.target_branch}")
        anchor = line[index]
        if anchor.hotfix:
            raise NotQueuedError(f"!{anchor_iid} is a hotfix; nothing is placed around it")
        neighbour_index = index - 1 if before is not None else index + 1
        neighbour = line[neighbour_index] if 0 <= neighbour_index < len(line) else None
        anchor_time = _order_time(anchor)
        if neighbour is not None and (neighbour.priority, neighbour.hotfix) == (
            anchor.priority,
            False,
        ):
            placed = anchor_time + (_order_time(neighbour) - anchor_time) / 2
        elif before is not None:
            placed = anchor_time - PLACEMENT_GAP
        else:
            placed = anchor_time + PLACEMENT_GAP
        return mr.model_copy(update={"priority": anchor.priority, "placed_at": placed})

    previous, moved = _update_mr(store, project_id, iid, change)
    where = f"before !{before}" if before is not None else f"after !{after}"
    _audit(
        store,
        actor,
        project_id,
        AuditAction.PRIORITY_CHANGED,
        f"!{iid} moved {where}",
        merge_request=iid,
        details={
            "from": previous.priority,
            "to": moved.priority,
            "before": before,
            "after": after,
        },
    )
    return moved


def _order_time(mr: MergeRequestState) -> datetime:
    moment = mr.placed_at or mr.ready_since
    assert moment is not None, "queued MRs have a ready time"
    return moment


def make_hotfix(
    store: Store, actor: Actor, project_id: int, iid: int, start_queues: QueueStarter
) -> MergeRequestState:
    """``set_hotfix`` on: an idle queue starts now; a running batch finishes first and the
    hotfix goes next."""
    mr = set_hotfix(store, actor, project_id, iid, True)
    start_queues(project_id, actor.cause)
    return mr


def set_hotfix(
    store: Store, actor: Actor, project_id: int, iid: int, hotfix: bool
) -> MergeRequestState:
    """A hotfix goes to the front of its queue and is batched alone; it stays one until it
    merges or the hotfix is withdrawn."""

    def change(mr: MergeRequestState) -> MergeRequestState:
        if hotfix and mr.status is not StatusCategory.QUEUED:
            raise NotQueuedError(
                f"!{iid} is {mr.status.value}; only a queued MR can jump the queue"
            )
        return mr.model_copy(update={"hotfix": hotfix})

    before, after = _update_mr(store, project_id, iid, change)
    if after is not before:
        _audit(
            store,
            actor,
            project_id,
            AuditAction.HOTFIX,
            f"!{iid} {'made a hotfix' if hotfix else 'no longer a hotfix'}",
            merge_request=iid,
            details={"hotfix": hotfix},
        )
    return after


# -- grants ---------------------------------------------------------------------------------


def grant(store: Store, actor: Actor, username: str, project_id: int, roles: list[Role]) -> Grant:
    store.get_project(project_id)  # NotFoundError: no grants on projects that are not here
    saved = store.save_grant(
        Grant(
            username=username,
            project_id=project_id,
            roles=roles,
            granted_by=actor.username,
            granted_at=actor.at,
        )
    )
    _audit(
        store,
        actor,
        project_id,
        AuditAction.GRANT_CHANGED,
        f"{username}: {', '.join(role.value for role in saved.roles)}",
        details={"username": username, "roles": [role.value for role in saved.roles]},
    )
    return saved


def revoke(store: Store, actor: Actor, username: str, project_id: int) -> None:
    if not store.delete_grant(username, project_id):
        raise NotFoundError(f"{username} has no grant on project {project_id}")
    _audit(
        store,
        actor,
        project_id,
        AuditAction.GRANT_CHANGED,
        f"{username}: no roles",
        details={"username": username, "roles": []},
    )

"""Queue policy: the order in which ready MRs are taken and what the next batch holds."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from merge_assist.platform.config import ProjectConfig, Strategy
from merge_assist.queue.models import BatchSizing, MergeRequestState, StatusCategory


def queue_order(mr: MergeRequestState) -> tuple[bool, int, datetime, int]:
    """Hotfixes first; then highest priority first; among equals, the MR placed there by
    hand or else the one that became ready first; then by iid so the order is total and
    every replica agrees on it."""
    if mr.ready_since is None:
        raise ValueError(f"!{mr.iid} has no ready_since and cannot be ordered in a queue")
    return (not mr.hotfix, -mr.priority, mr.placed_at or mr.ready_since, mr.iid)


def batch_limit(config: ProjectConfig, sizing: BatchSizing | None = None) -> int:
    """How many MRs the next batch may take: one for ``serial``; the configured size, or
    with ``batch_size: auto`` the size ``sizing`` chose."""
    if config.strategy is Strategy.SERIAL:
        return 1
    if isinstance(config.batch_size, int):
        return config.batch_size
    if sizing is None:
        raise ValueError("batch_size auto sizes each batch: the batch's sizing is needed")
    return sizing.size


def select_batch(
    config: ProjectConfig,
    queued: Iterable[MergeRequestState],
    target_branch: str,
    sizing: BatchSizing | None = None,
) -> list[MergeRequestState]:
    """The MRs the next batch for ``target_branch`` takes, in the order they merge."""
    if config.paused or target_branch not in config.target_branches:
        return []
    candidates = [
        mr
        for mr in queued
        if mr.status is StatusCategory.QUEUED and mr.target_branch == target_branch
    ]
    candidates.sort(key=queue_order)
    if candidates and candidates[0].hotfix:
        return candidates[:1]  # a hotfix is tested and landed alone
    return candidates[: batch_limit(config, sizing)]


def for_the_queue(mr: MergeRequestState) -> bool:
    """Whether the queue's views show ``mr``. Every MR GitLab tells about is recorded, but
    a not-ready one without reasons was never judged: it was never assigned to the bot nor
    labelled for it (the queue's own batch MRs among them), so it is not the queue's."""
    return mr.status is not StatusCategory.NOT_READY or bool(mr.reasons)

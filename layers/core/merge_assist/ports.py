"""The interfaces the core speaks to. Adapters implement them; tests may fake them."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from merge_assist.models import (
    Batch,
    BranchLock,
    MergeRequestState,
    ProjectConfig,
    StatusCategory,
)


class Clock(Protocol):
    def now(self) -> datetime: ...


class Store(Protocol):
    """Durable state. Every ``save_*`` is a compare-and-set on the item's ``version``:
    version 0 means "must not exist yet"; the stored copy comes back with version + 1.
    A lost race raises ``ConflictError``; a missing item ``NotFoundError``."""

    def get_project(self, project_id: int) -> ProjectConfig: ...

    def list_projects(self) -> list[ProjectConfig]: ...

    def save_project(self, config: ProjectConfig) -> ProjectConfig: ...

    def delete_project(self, project_id: int) -> None: ...

    def get_merge_request(self, project_id: int, iid: int) -> MergeRequestState: ...

    def save_merge_request(self, mr: MergeRequestState) -> MergeRequestState: ...

    def list_merge_requests(
        self,
        project_id: int,
        status: StatusCategory,
        target_branch: str | None = None,
    ) -> list[MergeRequestState]:
        """In queue order: target branch, then priority (highest first), then ready time."""
        ...

    def get_batch(self, batch_id: str) -> Batch: ...

    def save_batch(self, batch: Batch) -> Batch: ...

    def list_batches(self, project_id: int, limit: int = 50) -> list[Batch]:
        """Newest first."""
        ...

    def acquire_branch_lock(
        self, project_id: int, target_branch: str, batch_id: str, ttl: timedelta
    ) -> BranchLock:
        """Take the lock, or take over one that expired; ``LockHeldError`` if another batch
        holds it. Taking it again for the same batch renews it (a retried step is harmless)."""
        ...

    def release_branch_lock(self, project_id: int, target_branch: str, batch_id: str) -> None:
        """Release only if ``batch_id`` holds it; releasing a lock not held is a no-op."""
        ...

    def get_branch_lock(self, project_id: int, target_branch: str) -> BranchLock | None: ...

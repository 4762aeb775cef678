"""The event log's entries: who changed what on a project, and what the queue did."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class AuditAction(StrEnum):
    """What an entry of a project's event log records."""

    PROJECT_CONNECTED = "project_connected"
    PROJECT_DISCONNECTED = "project_disconnected"
    CONFIG_CHANGED = "config_changed"
    PRIORITY_CHANGED = "priority_changed"
    HOTFIX = "hotfix"
    GRANT_CHANGED = "grant_changed"
    STATUS_CHANGED = "status_changed"
    BATCH_STEP = "batch_step"


# Who changed something: a dashboard user's username, or the queue itself.
QUEUE_ACTOR = "merge-assist"


class AuditEntry(BaseModel):
    """One line of a project's event log. ``id`` is derived from what caused it, so writing
    the same entry twice (a retried Lambda, a replayed stream record) stores it once."""

    project_id: int = Field(gt=0)
    id: str = Field(min_length=1, max_length=256)
    at: datetime
    action: AuditAction
    actor: str = Field(min_length=1, max_length=256)
    summary: str = Field(max_length=2000)
    merge_request: int | None = None
    batch_id: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)

"""Where the event log is kept."""

from __future__ import annotations

from typing import Protocol

from merge_assist.audit.models import AuditEntry


class AuditStore(Protocol):
    def append_audit(self, entry: AuditEntry) -> bool:
        """Adds the entry unless one with its id is there already (then False)."""
        ...

    def list_audit(
        self,
        project_id: int,
        *,
        limit: int,
        cursor: str | None = None,
        merge_request: int | None = None,
    ) -> tuple[list[AuditEntry], str | None]:
        """Newest first, only one merge request's when ``merge_request`` is given; the
        cursor to pass for the next (older) page, None at the end. ``ValueError`` for a
        cursor this store did not hand out."""
        ...

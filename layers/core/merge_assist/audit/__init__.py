"""The event log: who changed what on a project, and what the queue did."""

from merge_assist.audit.models import QUEUE_ACTOR, AuditAction, AuditEntry
from merge_assist.audit.ports import AuditStore

__all__ = ["QUEUE_ACTOR", "AuditAction", "AuditEntry", "AuditStore"]

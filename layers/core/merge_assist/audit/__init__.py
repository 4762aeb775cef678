"""The event log: who changed what on a project, and what the queue did."""

from merge_assist.audit.models import QUEUE_ACTOR, AuditAction, AuditEntry
from merge_assist.audit.ports import AuditStore
from merge_assist.audit.queue_entries import status_entry, step_entries, step_summary

__all__ = [
    "QUEUE_ACTOR",
    "AuditAction",
    "AuditEntry",
    "AuditStore",
    "status_entry",
    "step_entries",
    "step_summary",
]

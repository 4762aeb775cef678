"""One construct per concern; ``infra.stack`` wires them together."""

from __future__ import annotations

from aws_cdk import aws_logs as logs

# Long enough to investigate a batch from last quarter, matching how long finished batches are
# kept in the table (merge_assist.platform.settings.Settings.history_days).
LOG_RETENTION = logs.RetentionDays.THREE_MONTHS


def pascal_case(key: str) -> str:
    """``workflow-select`` -> ``WorkflowSelect``, for construct ids and output names."""
    return "".join(part.capitalize() for part in key.replace("_", "-").split("-"))

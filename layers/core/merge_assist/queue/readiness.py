"""When an MR is ready for the queue, and if not, why not.

DESIGN.md: ready means open, not draft, assigned to the bot (or carrying the project's
trigger label), approved as the project requires, discussions resolved, no conflicts with
its target, and its own pipeline green. GitLab's ``detailed_merge_status`` already folds in
the project's own merge checks (approval rules, required discussions, CI must pass), so it
is trusted where it speaks, and the raw facts cover what it does not."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from merge_assist.platform.config import ProjectConfig
from merge_assist.queue import comments
from merge_assist.queue.models import Reason, ReasonCode

GREEN_PIPELINE_STATUSES = frozenset({"success"})
# Statuses of a pipeline that may still turn green.
PENDING_PIPELINE_STATUSES = frozenset(
    {"created", "waiting_for_resource", "preparing", "pending", "running", "scheduled"}
)

# GitLab's detailed_merge_status values that block merging, and the reason Merge Assist gives.
# "need_rebase" is absent on purpose: building the batch is the rebase. "checking" and
# "unchecked" are transient and are judged by the raw facts instead.
_BLOCKING_STATUSES: dict[str, Reason] = {
    "not_open": comments.NOT_OPEN,
    "draft_status": comments.DRAFT,
    "not_approved": comments.NEEDS_APPROVALS,
    "requested_changes": comments.CHANGES_REQUESTED,
    "discussions_not_resolved": comments.UNRESOLVED_DISCUSSIONS,
    "conflict": comments.CONFLICTS_WITH_TARGET,
    "ci_must_pass": comments.PIPELINE_NOT_PASSED,
    "ci_still_running": comments.PIPELINE_STILL_RUNNING,
    "blocked_status": comments.BLOCKED_BY_ANOTHER,
    "external_status_checks": comments.EXTERNAL_CHECKS_NOT_PASSED,
    "jira_association_missing": comments.NO_JIRA_ISSUE,
}


class MergeRequestFacts(BaseModel):
    """What GitLab's REST API says about an MR (``GET .../merge_requests/:iid``)."""

    model_config = ConfigDict(frozen=True)

    iid: int
    state: str
    draft: bool = False
    target_branch: str
    source_branch: str | None = None
    sha: str | None = None
    title: str = ""
    web_url: str | None = None
    assignee_ids: list[int] = Field(default_factory=list)
    labels: list[str] = Field(default_factory=list)
    detailed_merge_status: str | None = None
    blocking_discussions_resolved: bool | None = None
    has_conflicts: bool = False
    head_pipeline_status: str | None = None
    # When the head pipeline finished, by GitLab's clock: for an MR that waited only for
    # it, the moment it became ready.
    head_pipeline_finished_at: datetime | None = None
    approved: bool | None = None


def concerns_bot(facts: MergeRequestFacts, config: ProjectConfig, bot_user_id: int) -> bool:
    """Whether Merge Assist is asked to merge this MR at all."""
    if bot_user_id in facts.assignee_ids:
        return True
    return config.trigger_label is not None and config.trigger_label in facts.labels


def not_ready_reasons(
    facts: MergeRequestFacts, config: ProjectConfig, bot_user_id: int
) -> list[Reason]:
    """Every reason the MR cannot be queued now, one per kind; empty when it is ready."""
    found: dict[ReasonCode, Reason] = {}

    def add(reason: Reason) -> None:
        found.setdefault(reason.code, reason)

    if facts.state != "opened":
        add(comments.not_open(facts.state))
    if facts.target_branch not in config.target_branches:
        add(comments.not_a_target_branch(facts.target_branch, config.target_branches))
    if not concerns_bot(facts, config, bot_user_id):
        add(comments.not_assigned(config.trigger_label))
    if facts.draft:
        add(comments.DRAFT)
    if facts.approved is False:
        add(comments.NEEDS_APPROVALS)
    if facts.blocking_discussions_resolved is False:
        add(comments.UNRESOLVED_DISCUSSIONS)
    if facts.has_conflicts:
        add(comments.CONFLICTS_WITH_TARGET)
    status = facts.head_pipeline_status
    if status is None:
        add(comments.NO_PIPELINE)
    elif status in PENDING_PIPELINE_STATUSES:
        add(comments.pipeline_pending(status))
    elif status not in GREEN_PIPELINE_STATUSES:
        add(comments.pipeline_not_green(status))
    blocking = _BLOCKING_STATUSES.get(facts.detailed_merge_status or "")
    if blocking:
        add(blocking)
    return list(found.values())

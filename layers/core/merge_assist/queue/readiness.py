"""When an MR is ready for the queue, and if not, why not.

DESIGN.md: ready means open, not draft, assigned to the bot (or carrying the project's
trigger label), approved as the project requires, discussions resolved, no conflicts with
its target, and its own pipeline green. GitLab's ``detailed_merge_status`` already folds in
the project's own merge checks (approval rules, required discussions, CI must pass), so it
is trusted where it speaks, and the raw facts cover what it does not."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from merge_assist.platform.config import ProjectConfig
from merge_assist.queue.models import Reason, ReasonCode

GREEN_PIPELINE_STATUSES = frozenset({"success"})
# Statuses of a pipeline that may still turn green.
PENDING_PIPELINE_STATUSES = frozenset(
    {"created", "waiting_for_resource", "preparing", "pending", "running", "scheduled"}
)

# GitLab's detailed_merge_status values that block merging, and what Merge Assist says.
# "need_rebase" is absent on purpose: building the batch is the rebase. "checking" and
# "unchecked" are transient and are judged by the raw facts instead.
_BLOCKING_STATUSES: dict[str, tuple[ReasonCode, str]] = {
    "not_open": (ReasonCode.CLOSED, "the merge request is not open"),
    "draft_status": (ReasonCode.DRAFT, "the merge request is a draft"),
    "not_approved": (ReasonCode.APPROVALS, "it still needs approvals"),
    "requested_changes": (ReasonCode.APPROVALS, "a reviewer requested changes"),
    "discussions_not_resolved": (ReasonCode.DISCUSSIONS, "it has unresolved discussions"),
    "conflict": (ReasonCode.CONFLICTS, "it conflicts with its target branch"),
    "ci_must_pass": (ReasonCode.PIPELINE, "its pipeline has not passed"),
    "ci_still_running": (ReasonCode.PIPELINE, "its pipeline is still running"),
    "blocked_status": (ReasonCode.APPROVALS, "it is blocked by another merge request"),
    "external_status_checks": (ReasonCode.PIPELINE, "external status checks have not passed"),
    "jira_association_missing": (ReasonCode.APPROVALS, "it is not linked to a Jira issue"),
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
    found: dict[ReasonCode, str] = {}

    def add(code: ReasonCode, message: str) -> None:
        found.setdefault(code, message)

    if facts.state != "opened":
        add(ReasonCode.CLOSED, f"the merge request is {facts.state}")
    if facts.target_branch not in config.target_branches:
        add(
            ReasonCode.TARGET_BRANCH,
            f"{facts.target_branch} is not a target branch of this project "
            f"({', '.join(config.target_branches)})",
        )
    if not concerns_bot(facts, config, bot_user_id):
        how = "assign it to the bot"
        if config.trigger_label:
            how += f" or add the label {config.trigger_label!r}"
        add(ReasonCode.NOT_ASSIGNED, f"it is not queued for merging: {how}")
    if facts.draft:
        add(ReasonCode.DRAFT, "the merge request is a draft")
    if facts.approved is False:
        add(ReasonCode.APPROVALS, "it still needs approvals")
    if facts.blocking_discussions_resolved is False:
        add(ReasonCode.DISCUSSIONS, "it has unresolved discussions")
    if facts.has_conflicts:
        add(ReasonCode.CONFLICTS, "it conflicts with its target branch")
    status = facts.head_pipeline_status
    if status is None:
        add(ReasonCode.PIPELINE, "it has no pipeline yet")
    elif status in PENDING_PIPELINE_STATUSES:
        add(ReasonCode.PIPELINE, f"its pipeline is {status}")
    elif status not in GREEN_PIPELINE_STATUSES:
        add(ReasonCode.PIPELINE, f"its pipeline {status}")
    blocking = _BLOCKING_STATUSES.get(facts.detailed_merge_status or "")
    if blocking:
        add(*blocking)
    return [Reason(code=code, message=message) for code, message in found.items()]

"""The dispatcher's decision for one MR: queued or not ready (and why), and what to tell
the author. Batching and testing belong to the workflow; triage never takes an MR out of
a running batch, it only records what GitLab now says."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from merge_assist import comments
from merge_assist.comments import Transition
from merge_assist.models import (
    MergeRequestState,
    ProjectConfig,
    Reason,
    ReasonCode,
    StatusCategory,
)
from merge_assist.readiness import MergeRequestFacts, not_ready_reasons

# After this many rejections of the same commit the MR waits for its author to push.
MAX_STRIKES = 3
IN_FLIGHT = (StatusCategory.BATCHING, StatusCategory.TESTING)


@dataclass(frozen=True)
class Triage:
    state: MergeRequestState
    transition: Transition | None


def triage(
    state: MergeRequestState,
    facts: MergeRequestFacts,
    config: ProjectConfig,
    bot_user_id: int,
    now: datetime,
    *,
    head_sha: str,
    queue_position: int,
) -> Triage:
    """``head_sha``: the MR's head as GitLab reports it; ``queue_position``: where it would
    stand (1-based) if queued now, for the comment."""
    pushed = head_sha != state.sha
    seen = state.model_copy(
        update={
            "sha": head_sha,
            "gitlab_state": facts.state,
            "draft": facts.draft,
            "labels": facts.labels,
            "assignee_ids": facts.assignee_ids,
            "target_branch": facts.target_branch,
        }
    )
    if facts.state == "merged":
        return Triage(seen.model_copy(update={"status": StatusCategory.MERGED}), None)
    if _stays(state, facts, bot_user_id, pushed=pushed):
        return Triage(seen, None)
    if pushed:
        seen = seen.model_copy(update={"strikes": 0})
    reasons = not_ready_reasons(facts, config, bot_user_id)
    if not reasons:
        return _queue(state, seen, config, now, queue_position)
    return _hold_back(state, seen, config, reasons)


def _stays(
    state: MergeRequestState, facts: MergeRequestFacts, bot_user_id: int, *, pushed: bool
) -> bool:
    """Whether triage leaves the MR's status alone: the workflow owns MRs in a batch, merged
    is final, and a rejected MR waits for its author to push (or, under the strike limit,
    to assign the bot again)."""
    if state.status in IN_FLIGHT or state.status is StatusCategory.MERGED:
        return True
    if state.status is not StatusCategory.REJECTED or pushed:
        return False
    return state.strikes >= MAX_STRIKES or not _reassigned(state, facts, bot_user_id)


def _queue(
    state: MergeRequestState,
    seen: MergeRequestState,
    config: ProjectConfig,
    now: datetime,
    queue_position: int,
) -> Triage:
    already = state.status is StatusCategory.QUEUED
    queued = seen.model_copy(
        update={
            "status": StatusCategory.QUEUED,
            "reasons": [],
            "ready_since": state.ready_since if already else now,
        }
    )
    if already:
        return Triage(queued, None)  # already told; a push keeps its place in line
    return Triage(queued, comments.recognised(config, seen.target_branch, queue_position))


def _hold_back(
    state: MergeRequestState, seen: MergeRequestState, config: ProjectConfig, reasons: list[Reason]
) -> Triage:
    waiting = seen.model_copy(
        update={"status": StatusCategory.NOT_READY, "reasons": reasons, "ready_since": None}
    )
    unchanged = state.status is StatusCategory.NOT_READY and _codes(state.reasons) == _codes(
        reasons
    )
    if unchanged or not _asked_to_merge(reasons, state):
        return Triage(waiting, None)
    return Triage(waiting, comments.not_ready(config, reasons))


def _codes(reasons: list[Reason]) -> list[ReasonCode]:
    return [reason.code for reason in reasons]


def _asked_to_merge(reasons: list[Reason], state: MergeRequestState) -> bool:
    """Speak only to MRs the bot was asked to merge, or that it had queued before."""
    if all(reason.code is not ReasonCode.NOT_ASSIGNED for reason in reasons):
        return True
    return state.status in (StatusCategory.QUEUED, StatusCategory.REJECTED)


def _reassigned(state: MergeRequestState, facts: MergeRequestFacts, bot_user_id: int) -> bool:
    return bot_user_id in facts.assignee_ids and bot_user_id not in state.assignee_ids

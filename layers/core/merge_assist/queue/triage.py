"""The dispatcher's decision for one MR: queued or not ready (and why), and what to tell
the author. Batching and testing belong to the workflow; triage never takes an MR out of
a running batch unless the MR changed in a way that voids what the batch tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from merge_assist.platform.config import ProjectConfig
from merge_assist.queue import comments, strikes
from merge_assist.queue.comments import Transition
from merge_assist.queue.models import MergeRequestState, Reason, ReasonCode, StatusCategory
from merge_assist.queue.readiness import MergeRequestFacts, concerns_bot, not_ready_reasons

IN_FLIGHT = (StatusCategory.BATCHING, StatusCategory.TESTING)


@dataclass(frozen=True)
class Triage:
    state: MergeRequestState
    transition: Transition | None
    # The batch the MR was just taken out of: its workflow must rebuild without it.
    left_batch: str | None = None


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
    judged = state.judged_sha or state.sha
    if state.status in IN_FLIGHT and state.rebasing and head_sha != judged:
        # The serial workflow's own rebase: the new head is the one it will test.
        state = state.model_copy(update={"judged_sha": head_sha, "rebasing": False})
        judged = head_sha
    pushed = head_sha != judged
    seen = state.model_copy(
        update={
            "sha": head_sha,
            "judged_sha": head_sha,
            "bot_assigned": bot_user_id in facts.assignee_ids,
            "gitlab_state": facts.state,
            "draft": facts.draft,
            "labels": facts.labels,
            "assignee_ids": facts.assignee_ids,
            "target_branch": facts.target_branch,
        }
    )
    if state.status in IN_FLIGHT:
        leaving = leave_reasons(state, facts, config, bot_user_id, pushed=pushed)
        if not leaving:
            return Triage(seen, None)  # the workflow owns it, merged by the batch included
        return _leave_batch(
            state,
            seen,
            facts,
            config,
            bot_user_id=bot_user_id,
            now=now,
            leaving=leaving,
            queue_position=queue_position,
        )
    if facts.state == "merged":
        return Triage(seen.model_copy(update={"status": StatusCategory.MERGED}), None)
    if _stays(state, facts, bot_user_id, pushed=pushed):
        return Triage(seen, None)
    if pushed:
        seen = strikes.reset(seen)
    reasons = not_ready_reasons(facts, config, bot_user_id)
    if not reasons:
        return _queue(state, seen, config, ready_moment(state, facts, now), queue_position)
    return _hold_back(state, seen, config, reasons)


def ready_moment(state: MergeRequestState, facts: MergeRequestFacts, now: datetime) -> datetime:
    """When an MR found ready became so, which places it in line. GitLab delivers webhooks
    from parallel workers, so the queue may learn of two MRs' pipelines finishing in the
    other order; an MR that waited for nothing but its pipeline became ready when GitLab
    says the pipeline finished. Any other wait (an approval, an assignment, a draft) ended
    when the queue saw it end: GitLab gives no time for it. Never later than ``now``, so a
    clock ahead of ours cannot put an MR behind those queued after it."""
    finished = facts.head_pipeline_finished_at
    waited_for_pipeline_only = (
        state.status is StatusCategory.NOT_READY
        and bool(state.reasons)
        and all(reason.code is ReasonCode.PIPELINE for reason in state.reasons)
    )
    if finished is None or not waited_for_pipeline_only:
        return now
    return min(finished, now)


def gone(state: MergeRequestState) -> Triage:
    """GitLab answers 404 for the MR: it is out of the queue and of any batch, for good,
    with nobody to tell. Recorded, so its events stop costing GitLab calls and retries."""
    left = state.batch_id if state.status in IN_FLIGHT else None
    out = state.model_copy(
        update={
            "status": StatusCategory.NOT_READY,
            "reasons": [comments.GONE],
            "gitlab_state": "deleted",
            "batch_id": None,
            "ready_since": None,
            "placed_at": None,
            "rebasing": False,
        }
    )
    return Triage(out, None, left_batch=left)


def leave_reasons(
    state: MergeRequestState,
    facts: MergeRequestFacts,
    config: ProjectConfig,
    bot_user_id: int,
    *,
    pushed: bool,
) -> list[Reason]:
    """Why an MR in a running batch has to leave it: what was tested is no longer what
    its author wants merged. Empty when it stays."""
    reasons = []
    if pushed:
        reasons.append(comments.LEFT_PUSHED)
    if facts.state == "closed":
        reasons.append(comments.LEFT_CLOSED)
    if facts.draft:
        reasons.append(comments.LEFT_DRAFT)
    if not concerns_bot(facts, config, bot_user_id):
        reasons.append(comments.LEFT_UNASSIGNED)
    if facts.target_branch != state.target_branch:
        reasons.append(comments.LEFT_RETARGETED)
    return reasons


def _leave_batch(
    state: MergeRequestState,
    seen: MergeRequestState,
    facts: MergeRequestFacts,
    config: ProjectConfig,
    *,
    bot_user_id: int,
    now: datetime,
    leaving: list[Reason],
    queue_position: int,
) -> Triage:
    """Out of the batch, then judged as any MR outside one; one comment says both."""
    batch_id = state.batch_id or "?"
    outside = seen.model_copy(
        update={
            "status": StatusCategory.NOT_READY,
            "batch_id": None,
            "ready_since": None,
            "placed_at": None,
        }
    )
    if any(reason.code is ReasonCode.CHANGED for reason in leaving):
        outside = strikes.reset(outside)
    reasons = not_ready_reasons(facts, config, bot_user_id)
    dropped = comments.dropped(config, batch_id, leaving)
    if reasons:
        after = outside.model_copy(update={"reasons": reasons})
        then = comments.not_ready(config, reasons)
    else:
        after = outside.model_copy(
            update={
                "status": StatusCategory.QUEUED,
                "reasons": [],
                "ready_since": now,
                "placed_at": None,
            }
        )
        then = comments.recognised(config, after.target_branch, queue_position)
    transition = Transition(
        comment=f"{dropped.comment}\n\n{then.comment}",
        add_label=then.add_label,
        remove_labels=then.remove_labels,
    )
    return Triage(after, transition, left_batch=batch_id)


def _stays(
    state: MergeRequestState, facts: MergeRequestFacts, bot_user_id: int, *, pushed: bool
) -> bool:
    """Whether triage leaves the MR's status alone: the workflow owns MRs in a batch, merged
    is final, and a rejected MR waits for its author to push (or, under the strike limit,
    to assign the bot again; see ``strikes``)."""
    if state.status in IN_FLIGHT or state.status is StatusCategory.MERGED:
        return True
    if state.status is not StatusCategory.REJECTED or pushed:
        return False
    return strikes.struck_out(state) or not _reassigned(state, facts, bot_user_id)


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
            "placed_at": state.placed_at if already else None,
        }
    )
    if already:
        return Triage(queued, None)  # already told; a push keeps its place in line
    return Triage(queued, comments.recognised(config, seen.target_branch, queue_position))


def _hold_back(
    state: MergeRequestState, seen: MergeRequestState, config: ProjectConfig, reasons: list[Reason]
) -> Triage:
    waiting = seen.model_copy(
        update={
            "status": StatusCategory.NOT_READY,
            "reasons": reasons,
            "ready_since": None,
            "placed_at": None,
        }
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
    return bot_user_id in facts.assignee_ids and not state.bot_assigned

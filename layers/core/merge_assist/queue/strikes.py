"""Strikes: how many times the queue rejected an MR since its author last pushed.

The rule: each rejection adds a strike; a push by its author wipes them out. Under the
limit, a rejected MR comes back when its author pushes or assigns the bot again; at the
limit (``MAX_STRIKES``) only a push brings it back, so an MR that keeps failing the same
way stops costing pipelines until someone changes it. Triage and the workflow apply the
rule through these functions; nowhere else counts."""

from __future__ import annotations

from merge_assist.queue import comments
from merge_assist.queue.models import MergeRequestState, Reason

# After this many rejections of the same commit the MR waits for its author to push.
MAX_STRIKES = 3


def add(state: MergeRequestState) -> MergeRequestState:
    """``state`` with one more strike: the queue just rejected it."""
    return state.model_copy(update={"strikes": state.strikes + 1})


def reset(state: MergeRequestState) -> MergeRequestState:
    """``state`` with no strikes: its author pushed new commits."""
    return state.model_copy(update={"strikes": 0})


def struck_out(state: MergeRequestState) -> bool:
    """Whether it reached the limit: reassigning the bot no longer brings it back."""
    return state.strikes >= MAX_STRIKES


def explain(reason: Reason, state: MergeRequestState) -> Reason:
    """The rejection ``reason`` as its author reads it on ``state`` (saved with the new
    strike): at the limit it also says that only a push brings the MR back."""
    if not struck_out(state):
        return reason
    return comments.struck_out(reason, state.strikes)

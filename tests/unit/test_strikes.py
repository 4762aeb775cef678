"""Strikes: a rejection adds one, a push wipes them out, at the limit only a push helps."""

from __future__ import annotations

from merge_assist.queue import strikes
from merge_assist.queue.models import MergeRequestState, Reason, ReasonCode, StatusCategory

REASON = Reason(code=ReasonCode.CI_FAILED, message="the pipeline failed with this merge request")


def _state(count: int) -> MergeRequestState:
    return MergeRequestState(
        project_id=1,
        iid=5,
        sha="a" * 40,
        source_branch="feature/5",
        target_branch="main",
        status=StatusCategory.REJECTED,
        strikes=count,
    )


def test_each_rejection_adds_one_strike() -> None:
    fresh = _state(0)
    once = strikes.add(fresh)
    twice = strikes.add(once)

    assert (once.strikes, twice.strikes) == (1, 2)
    assert twice.model_copy(update={"strikes": 0}) == fresh  # nothing else changes


def test_a_push_wipes_the_strikes_out() -> None:
    assert strikes.reset(_state(strikes.MAX_STRIKES + 1)).strikes == 0
    assert not strikes.struck_out(strikes.reset(_state(strikes.MAX_STRIKES)))


def test_at_the_limit_only_a_push_brings_it_back() -> None:
    assert not strikes.struck_out(_state(strikes.MAX_STRIKES - 1))
    assert strikes.struck_out(_state(strikes.MAX_STRIKES))
    assert strikes.struck_out(_state(strikes.MAX_STRIKES + 2))


def test_the_author_is_told_only_once_the_limit_is_reached() -> None:
    under = strikes.explain(REASON, _state(strikes.MAX_STRIKES - 1))
    at = strikes.explain(REASON, _state(strikes.MAX_STRIKES))

    assert under == REASON
    assert at.code is REASON.code
    assert at.message == (
        f"{REASON.message}. This is its 3rd rejection: it stays out of "
        "the queue until its author pushes a change"
    )

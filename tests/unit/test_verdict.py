"""Verdicts on batch pipelines: what lands, what is tested next, who is rejected."""

from __future__ import annotations

from itertools import combinations

import pytest

from merge_assist.queue.models import ReasonCode
from merge_assist.queue.verdict import Action, Verdict, decide

BATCH = (11, 12, 13, 14, 15)


def _run(culprit: int | None, members: tuple[int, ...] = BATCH) -> tuple[Verdict, list[int]]:
    """Plays a whole bisection where the prefix fails once it contains ``culprit``."""
    tested: list[int] = []
    length, bisection = len(members), None
    while True:
        passed = culprit is None or culprit not in members[:length]
        verdict = decide(
            members,
            length,
            "success" if passed else "failed",
            bisection=bisection,
            retries_left=0,
            pipeline_url="https://ci/p",
        )
        if verdict.action is not Action.TEST:
            return verdict, tested
        assert verdict.test_length is not None
        length, bisection = verdict.test_length, verdict.bisection
        tested.append(length)


def test_a_green_batch_lands_whole() -> None:
    verdict = decide(BATCH, 5, "success", bisection=None, retries_left=0)

    assert verdict.action is Action.LAND
    assert verdict.land_length == 5
    assert verdict.rejected == {}
    assert verdict.requeued == ()


@pytest.mark.parametrize("culprit", BATCH)
def test_bisection_finds_the_culprit_and_lands_what_passed_before_it(culprit: int) -> None:
    verdict, tested = _run(culprit)
    position = BATCH.index(culprit)

    assert list(verdict.rejected) == [culprit]
    assert verdict.rejected[culprit].code is ReasonCode.CI_FAILED
    assert "https://ci/p" in verdict.rejected[culprit].message
    assert verdict.land_length == position
    assert verdict.action is (Action.LAND if position else Action.RELEASE)
    assert verdict.requeued == BATCH[position + 1 :]
    assert len(tested) <= 3  # ceil(log2(5)) pipelines after the red batch


def test_a_single_red_mr_is_retried_while_flaky_retries_remain() -> None:
    retry = decide((11,), 1, "failed", bisection=None, retries_left=1)
    rejected = decide((11,), 1, "failed", bisection=None, retries_left=0)

    assert retry.action is Action.TEST
    assert retry.test_length == 1
    assert retry.retry
    assert retry.rejected == {}
    assert rejected.action is Action.RELEASE
    assert list(rejected.rejected) == [11]
    assert "on top of" not in rejected.rejected[11].message


def test_a_culprit_whose_retry_passes_lands_with_what_passed_before_it() -> None:
    verdict = decide(BATCH, 5, "failed", bisection=None, retries_left=1)
    while not verdict.retry:
        assert verdict.action is Action.TEST
        assert verdict.test_length is not None
        # Everything up to 13 passes; 14 looks guilty.
        passed = verdict.test_length <= 3
        verdict = decide(
            BATCH,
            verdict.test_length,
            "success" if passed else "failed",
            bisection=verdict.bisection,
            retries_left=1,
        )
    assert verdict.test_length == 4

    flake = decide(BATCH, 4, "success", bisection=verdict.bisection, retries_left=0, retrying=True)
    confirmed = decide(
        BATCH, 4, "failed", bisection=verdict.bisection, retries_left=0, retrying=True
    )

    assert flake.action is Action.LAND
    assert flake.land_length == 4
    assert flake.rejected == {}
    assert flake.requeued == (15,)
    assert confirmed.action is Action.LAND
    assert confirmed.land_length == 3
    assert list(confirmed.rejected) == [14]
    assert confirmed.requeued == (15,)


def test_a_timed_out_pipeline_is_bisected_like_a_red_one() -> None:
    verdict = decide((11,), 1, "timeout", bisection=None, retries_left=0)

    assert verdict.action is Action.RELEASE
    assert verdict.rejected[11].code is ReasonCode.CI_TIMEOUT


def test_a_canceled_pipeline_puts_everyone_back_in_line() -> None:
    verdict = decide(BATCH, 5, "canceled", bisection=None, retries_left=0)

    assert verdict.action is Action.RELEASE
    assert verdict.rejected == {}
    assert verdict.requeued == BATCH


def test_a_skipped_pipeline_rejects_everyone_with_the_reason() -> None:
    verdict = decide(BATCH, 5, "skipped", bisection=None, retries_left=0, pipeline_url="u")

    assert verdict.action is Action.RELEASE
    assert set(verdict.rejected) == set(BATCH)
    assert all(r.code is ReasonCode.PIPELINE_SKIPPED for r in verdict.rejected.values())
    assert verdict.requeued == ()


def test_contradicting_results_reject_nobody() -> None:
    first = decide(BATCH, 5, "failed", bisection=None, retries_left=0)
    assert first.bisection is not None
    assert first.test_length == 3

    # The prefix of 3 failed; then a retried step says the prefix of 5... passed.
    narrowed = decide(BATCH, 3, "failed", bisection=first.bisection, retries_left=0)
    assert narrowed.bisection is not None
    flaky = decide(BATCH, 5, "success", bisection=narrowed.bisection, retries_left=0)

    assert flaky.action is Action.RELEASE
    assert flaky.rejected == {}
    assert flaky.requeued == BATCH


def test_a_replayed_result_changes_nothing() -> None:
    first = decide(BATCH, 5, "failed", bisection=None, retries_left=0)
    again = decide(BATCH, 5, "failed", bisection=first.bisection, retries_left=0)

    assert again.bisection == first.bisection
    assert again.test_length == first.test_length


def _search(members: tuple[int, ...], broken: set[int], ways: int) -> tuple[Verdict, list[int]]:
    """A red batch bisected ``ways`` ways, each prefix red when it holds a ``broken`` MR;
    the final verdict and how many prefixes each round started at once."""
    rounds: list[int] = []
    length, bisection = len(members), None
    while True:
        passed = not broken & set(members[:length])
        verdict = decide(
            members,
            length,
            "success" if passed else "failed",
            bisection=bisection,
            retries_left=0,
            ways=ways,
        )
        if verdict.action is not Action.TEST:
            return verdict, rounds
        assert verdict.test_length is not None
        if verdict.round:
            rounds.append(len(verdict.round))
            assert verdict.test_length == verdict.round[0]
        length, bisection = verdict.test_length, verdict.bisection


SIX = (21, 22, 23, 24, 25, 26)
RED_PATTERNS = [set(c) for n in range(1, 7) for c in combinations(SIX, n)]


@pytest.mark.parametrize("ways", [3, 4, 6])
def test_parallel_bisection_finds_what_binary_search_finds_on_every_red_pattern(
    ways: int,
) -> None:
    for broken in RED_PATTERNS:
        sequential, one_by_one = _search(SIX, broken, ways=2)
        parallel, rounds = _search(SIX, broken, ways=ways)
        culprit = min(broken, key=SIX.index)
        assert list(parallel.rejected) == list(sequential.rejected) == [culprit], broken
        assert parallel.land_length == sequential.land_length == SIX.index(culprit)
        assert parallel.requeued == sequential.requeued
        assert parallel.action is sequential.action
        assert len(rounds) <= len(one_by_one), broken
        assert all(size <= ways - 1 for size in rounds)
    # Six suspects: binary search needs up to 3 rounds, three ways at most 2.
    worst = max(len(_search(SIX, broken, ways=ways)[1]) for broken in RED_PATTERNS)
    assert worst == {3: 2, 4: 2, 6: 1}[ways]


def test_a_red_answer_ends_the_round_and_makes_the_longer_prefixes_moot() -> None:
    first = decide(SIX, 6, "failed", bisection=None, retries_left=0, ways=4)
    assert first.round == (2, 3, 5)
    assert first.moot == ()
    assert first.bisection is not None

    red = decide(SIX, 2, "failed", bisection=first.bisection, retries_left=0, ways=4)
    # The prefixes of 3 and 5 still run, but hold the red one: stop them, start the next.
    assert red.moot == (3, 5)
    assert red.round == (1,)
    assert red.test_length == 1

    green = decide(SIX, 2, "success", bisection=first.bisection, retries_left=0, ways=4)
    assert green.moot == ()
    assert green.round == ()  # the round goes on: the prefix of 3 is awaited next
    assert green.test_length == 3


def test_a_canceled_answer_mid_round_stops_the_rest_of_the_round() -> None:
    first = decide(SIX, 6, "failed", bisection=None, retries_left=0, ways=3)
    canceled = decide(SIX, 2, "canceled", bisection=first.bisection, retries_left=0, ways=3)
    assert canceled.action is Action.RELEASE
    assert canceled.requeued == SIX
    assert canceled.moot == (4,)

"""Bisection of a red batch: which prefix to test next and which MR is the culprit."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import ValidationError

from merge_assist.queue.batch_plan import (
    BatchBuild,
    BatchMember,
    Bisection,
    IncludedMergeRequest,
    InconsistentResult,
    merge_commit_message,
)


def search(members: list[int], passes: Callable[[tuple[int, ...]], bool]) -> tuple[Bisection, int]:
    """Runs a bisection to the end against ``passes``; the final state and pipelines run."""
    state = Bisection.start(members)
    runs = 0
    while (prefix := state.next_prefix) is not None:
        runs += 1
        state = state.record(len(prefix), passes(prefix))
    return state, runs


def breaks_with(*culprits: int) -> Callable[[tuple[int, ...]], bool]:
    return lambda prefix: not set(culprits) & set(prefix)


def test_a_batch_of_one_is_its_own_culprit() -> None:
    state = Bisection.start([7])
    assert state.done
    assert state.culprit == 7
    assert state.next_prefix is None
    assert state.halves is None
    assert (state.landable, state.untested) == ((), ())


@pytest.mark.parametrize(("culprit", "landable"), [(1, ()), (2, (1,))])
def test_a_batch_of_two_tests_the_first_alone(culprit: int, landable: tuple[int, ...]) -> None:
    state = Bisection.start([1, 2])
    assert state.next_prefix == (1,)
    assert state.halves == ((1,), (2,))
    state, runs = search([1, 2], breaks_with(culprit))
    assert (state.culprit, state.landable, runs) == (culprit, landable, 1)


def test_odd_batches_test_the_larger_half_first() -> None:
    state = Bisection.start([1, 2, 3, 4, 5])
    assert state.next_prefix == (1, 2, 3)
    assert state.halves == ((1, 2, 3), (4, 5))
    state = state.record(3, passed=True)
    assert state.next_prefix == (1, 2, 3, 4)
    assert state.halves == ((4,), (5,))


@pytest.mark.parametrize("size", range(1, 12))
def test_every_culprit_is_found_in_logarithmic_runs(size: int) -> None:
    members = list(range(101, 101 + size))
    bound = (size - 1).bit_length()
    for index, culprit in enumerate(members):
        state, runs = search(members, breaks_with(culprit))
        assert state.culprit == culprit
        assert state.landable == tuple(members[:index])
        assert state.untested == tuple(members[index + 1 :])
        assert runs <= bound


@pytest.mark.parametrize(("culprit", "half"), [(2, "first"), (7, "second")])
def test_a_culprit_in_either_half(culprit: int, half: str) -> None:
    state, _ = search(list(range(1, 9)), breaks_with(culprit))
    assert state.culprit == culprit
    assert (culprit <= 4) == (half == "first")


def test_two_culprits_the_first_is_found_and_the_second_waits_untested() -> None:
    state, _ = search([1, 2, 3, 4, 5, 6], breaks_with(2, 5))
    assert state.culprit == 2
    assert state.landable == (1,)
    assert state.untested == (3, 4, 5, 6)
    # The rest form the next batch, which fails again and finds the second.
    again, _ = search(list(state.untested), breaks_with(5))
    assert (again.culprit, again.landable) == (5, (3, 4))


def test_an_mr_that_breaks_only_with_an_earlier_one_is_the_culprit() -> None:
    # 2 and 5 each pass alone; together they fail (a semantic conflict).
    state, _ = search([1, 2, 3, 4, 5, 6], lambda prefix: not {2, 5} <= set(prefix))
    assert state.culprit == 5
    assert state.landable == (1, 2, 3, 4)


def test_replayed_results_change_nothing_and_contradictions_are_refused() -> None:
    state = Bisection.start([1, 2, 3, 4]).record(2, passed=True)
    assert state.record(2, passed=True) == state
    assert state.record(1, passed=True) == state
    assert state.record(4, passed=False) == state
    with pytest.raises(InconsistentResult):
        state.record(2, passed=False)
    failed = state.record(3, passed=False)
    with pytest.raises(InconsistentResult):
        failed.record(3, passed=True)
    with pytest.raises(ValueError, match="outside"):
        state.record(5, passed=True)


def test_state_is_validated_and_survives_a_round_trip() -> None:
    with pytest.raises(ValidationError):
        Bisection(members=(1, 2), good=2, bad=2)
    with pytest.raises(ValidationError):
        Bisection.start([1, 1])
    with pytest.raises(ValidationError):
        Bisection.start([])
    state = Bisection.start([3, 1, 2]).record(2, passed=False)
    assert Bisection.model_validate_json(state.model_dump_json()) == state


def test_batch_prefixes_are_the_included_tips() -> None:
    build = BatchBuild(
        target_sha="t" * 40,
        sha="b" * 40,
        included=(
            IncludedMergeRequest(iid=1, head_sha="1" * 40, tip_sha="a" * 40),
            IncludedMergeRequest(iid=3, head_sha="3" * 40, tip_sha="b" * 40),
        ),
    )
    assert build.included_iids == (1, 3)
    assert [build.prefix_sha(n) for n in range(3)] == ["t" * 40, "a" * 40, "b" * 40]
    with pytest.raises(ValueError, match="outside"):
        build.prefix_sha(3)


def test_merge_commit_message_is_gitlabs() -> None:
    member = BatchMember(iid=12, head_sha="c" * 40, source_branch="feat", title="Add feat")
    assert merge_commit_message(member, "main", "g/app") == (
        "Merge branch 'feat' into 'main'\n\nAdd feat\n\nSee merge request g/app!12\n"
    )
    untitled = member.model_copy(update={"title": ""})
    assert merge_commit_message(untitled, "main", "g/app") == (
        "Merge branch 'feat' into 'main'\n\nSee merge request g/app!12\n"
    )


@pytest.mark.parametrize(
    ("good", "bad", "ways", "cuts"),
    [
        (0, 6, 2, (3,)),
        (0, 6, 3, (2, 4)),
        (0, 6, 4, (2, 3, 5)),
        (0, 6, 6, (1, 2, 3, 4, 5)),
        (0, 6, 8, (1, 2, 3, 4, 5)),  # never more prefixes than suspects less one
        (0, 5, 3, (2, 4)),  # larger parts first, as binary search does
        (2, 4, 3, (3,)),
        (3, 4, 3, ()),  # the culprit is known
    ],
)
def test_a_round_cuts_the_suspects_evenly(
    good: int, bad: int, ways: int, cuts: tuple[int, ...]
) -> None:
    state = Bisection(members=(1, 2, 3, 4, 5, 6), good=good, bad=bad)
    assert state.cuts(ways) == cuts
    assert state.next_round(ways).pending == cuts


def test_answers_of_a_round_leave_pending_only_what_still_matters() -> None:
    state = Bisection.start([1, 2, 3, 4, 5, 6]).next_round(4)
    assert state.round == (2, 3, 5)

    green = state.record(2, passed=True)
    assert green.pending == (3, 5)
    red = green.record(3, passed=False)
    # The prefix of 5 holds 3's culprit: its answer says nothing new.
    assert red.pending == ()
    assert red.culprit == 3
    with pytest.raises(ValueError, match="at least 2"):
        state.cuts(1)

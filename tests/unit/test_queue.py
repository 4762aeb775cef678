"""Queue policy: the order of a queue and what the next batch takes from it."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone

import pytest

from merge_assist.platform.config import ProjectConfig, Strategy
from merge_assist.queue.models import MergeRequestState, StatusCategory
from merge_assist.queue.queue import queue_order, select_batch

MakeMR = Callable[..., MergeRequestState]
T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
PLUS_TWO = timezone(timedelta(hours=2))


def minutes(n: int) -> datetime:
    return T0 + timedelta(minutes=n)


def iids(mrs: list[MergeRequestState]) -> list[int]:
    return [mr.iid for mr in mrs]


@pytest.fixture
def queue(make_mr: MakeMR) -> list[MergeRequestState]:
    """Seven queued MRs on ``main`` whose order exercises every tie-breaker."""
    return [
        make_mr(10, priority=0, ready_since=minutes(1)),
        make_mr(11, priority=5, ready_since=minutes(9)),  # high priority beats waiting longer
        make_mr(12, priority=0, ready_since=minutes(0)),
        make_mr(13, priority=-3, ready_since=minutes(-60)),  # low priority waits
        make_mr(20, priority=0, ready_since=minutes(2)),
        make_mr(9, priority=0, ready_since=minutes(2)),  # same time as !20: lower iid first
        make_mr(14, priority=5, ready_since=minutes(3)),
    ]


EXPECTED_ORDER = [14, 11, 12, 10, 9, 20, 13]


def test_queue_order_is_priority_then_ready_since_then_iid(
    queue: list[MergeRequestState],
) -> None:
    assert iids(sorted(queue, key=queue_order)) == EXPECTED_ORDER


def test_queue_order_does_not_depend_on_arrival_order(queue: list[MergeRequestState]) -> None:
    orders = {
        tuple(iids(sorted(permutation, key=queue_order)))
        for permutation in itertools.islice(itertools.permutations(queue), 0, None, 97)
    }
    assert orders == {tuple(EXPECTED_ORDER)}


def test_queue_order_compares_instants_not_wall_clock_text(make_mr: MakeMR) -> None:
    # 10:30 at +02:00 is 08:30 UTC: earlier than 09:00 UTC.
    east = make_mr(1, ready_since=datetime(2025, 3, 14, 10, 30, tzinfo=PLUS_TWO))
    utc = make_mr(2, ready_since=T0)
    assert iids(sorted([utc, east], key=queue_order)) == [1, 2]


def test_a_merge_request_without_ready_since_cannot_be_ordered(make_mr: MakeMR) -> None:
    not_ready = make_mr(3, status=StatusCategory.NOT_READY, ready_since=None)
    with pytest.raises(ValueError, match="!3"):
        queue_order(not_ready)


def test_batch_takes_the_head_of_the_queue_up_to_the_batch_size(
    queue: list[MergeRequestState],
) -> None:
    config = ProjectConfig(project_id=1, batch_size=3)

    assert iids(select_batch(config, reversed(queue), "main")) == EXPECTED_ORDER[:3]


def test_batch_takes_everything_when_the_queue_is_shorter_than_the_batch_size(
    queue: list[MergeRequestState],
) -> None:
    config = ProjectConfig(project_id=1, batch_size=50)

    assert iids(select_batch(config, queue, "main")) == EXPECTED_ORDER


def test_default_batch_size_is_five(queue: list[MergeRequestState]) -> None:
    assert iids(select_batch(ProjectConfig(project_id=1), queue, "main")) == EXPECTED_ORDER[:5]


def test_serial_takes_only_the_head_of_the_queue(queue: list[MergeRequestState]) -> None:
    config = ProjectConfig(project_id=1, strategy=Strategy.SERIAL, batch_size=10)

    assert iids(select_batch(config, queue, "main")) == EXPECTED_ORDER[:1]


def test_paused_project_takes_nothing(queue: list[MergeRequestState]) -> None:
    config = ProjectConfig(project_id=1, paused=True)

    assert select_batch(config, queue, "main") == []


def test_empty_queue_takes_nothing() -> None:
    assert select_batch(ProjectConfig(project_id=1), [], "main") == []


def test_merge_requests_of_other_branches_are_not_taken(make_mr: MakeMR) -> None:
    config = ProjectConfig(project_id=1, target_branches=["main", "release"], batch_size=10)
    mrs = [
        make_mr(1, target_branch="release", priority=9),
        make_mr(2, target_branch="main"),
        make_mr(3, target_branch="main/next", priority=9),
        make_mr(4, target_branch="release", ready_since=minutes(-5)),
    ]

    assert iids(select_batch(config, mrs, "main")) == [2]
    assert iids(select_batch(config, mrs, "release")) == [1, 4]


@pytest.mark.parametrize(
    "status", [status for status in StatusCategory if status is not StatusCategory.QUEUED]
)
def test_merge_requests_that_are_not_queued_are_not_taken(
    make_mr: MakeMR, status: StatusCategory
) -> None:
    config = ProjectConfig(project_id=1, batch_size=10)
    mrs = [
        make_mr(1, status=status, priority=100, ready_since=minutes(-10)),
        make_mr(2),
    ]

    assert iids(select_batch(config, mrs, "main")) == [2]


def test_unknown_target_branch_takes_nothing(make_mr: MakeMR) -> None:
    # Merge Assist must not merge into a branch the project did not hand it.
    config = ProjectConfig(project_id=1, target_branches=["main"])
    mrs = [make_mr(1, target_branch="develop")]

    assert select_batch(config, mrs, "develop") == []


def test_select_batch_accepts_any_iterable_and_leaves_the_input_alone(
    queue: list[MergeRequestState],
) -> None:
    before = list(queue)

    selected = select_batch(ProjectConfig(project_id=1), (mr for mr in queue), "main")

    assert iids(selected) == EXPECTED_ORDER[:5]
    assert queue == before


def test_a_hotfix_goes_first_and_alone(queue: list[MergeRequestState], make_mr: MakeMR) -> None:
    config = ProjectConfig(project_id=1, batch_size=5)
    late = make_mr(30, priority=-5, ready_since=minutes(99), hotfix=True)

    assert iids(sorted([*queue, late], key=queue_order))[:2] == [30, 14]
    assert iids(select_batch(config, [*queue, late], "main")) == [30]


def test_a_placed_mr_stands_where_it_was_placed(
    queue: list[MergeRequestState], make_mr: MakeMR
) -> None:
    # Placed between !12 (minute 0) and !10 (minute 1) among the priority-0 MRs.
    placed = make_mr(
        40, priority=0, ready_since=minutes(50), placed_at=minutes(0) + timedelta(seconds=30)
    )

    order = iids(sorted([*queue, placed], key=queue_order))

    assert order == [14, 11, 12, 40, 10, 9, 20, 13]

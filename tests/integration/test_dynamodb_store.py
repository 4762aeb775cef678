"""``DynamoDBStore`` against moto's DynamoDB: the guarantees the workflow relies on when
several Lambdas work on the same project at once."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest

from merge_assist.adapters.dynamodb_store import DynamoDBStore
from merge_assist.admin.ports import Store
from merge_assist.platform.config import Landing, ProjectConfig, QueueLabels, Strategy
from merge_assist.platform.errors import (
    AlreadyExistsError,
    ConflictError,
    LockHeldError,
    NotFoundError,
)
from merge_assist.platform.ports import Clock
from merge_assist.platform.resources import TABLE
from merge_assist.queue.models import (
    Batch,
    BatchState,
    MergeRequestState,
    Reason,
    ReasonCode,
    StatusCategory,
)
from merge_assist.queue.queue import queue_order

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

MakeMR = Callable[..., MergeRequestState]
Advance = Callable[[timedelta], None]

QUEUED = StatusCategory.QUEUED
LOCK_TTL = timedelta(minutes=15)
PLUS_TWO = timezone(timedelta(hours=2))
MINUS_FIVE = timezone(timedelta(hours=-5))


def raw_items(table: Table, kind: str) -> list[dict[str, Any]]:
    """The items as DynamoDB holds them, found without relying on the store's key layout."""
    items: list[dict[str, Any]] = [dict(item) for item in table.scan(ConsistentRead=True)["Items"]]
    return [item for item in items if item.get("kind") == kind]


def raw_item(table: Table, kind: str, **match: Any) -> dict[str, Any]:
    found = [
        item
        for item in raw_items(table, kind)
        if all(item.get(name) == value for name, value in match.items())
    ]
    assert len(found) == 1, found
    return found[0]


def iids(mrs: list[MergeRequestState]) -> list[int]:
    return [mr.iid for mr in mrs]


def make_batch(
    batch_id: str,
    *,
    created_at: datetime,
    project_id: int = 1,
    state: BatchState = BatchState.BUILDING,
    merge_requests: list[int] | None = None,
    **fields: Any,
) -> Batch:
    return Batch(
        id=batch_id,
        project_id=project_id,
        target_branch="main",
        strategy=Strategy.BATCH,
        merge_requests=merge_requests or [1, 2],
        state=state,
        created_at=created_at,
        **fields,
    )


def assert_expires_after_history(item: dict[str, Any], now: datetime, history: timedelta) -> None:
    expires = item[TABLE.ttl_attribute]
    assert isinstance(expires, Decimal)  # DynamoDB's TTL only honours a Number (epoch seconds)
    expires_at = datetime.fromtimestamp(int(expires), UTC)
    assert abs(expires_at - (now + history)) < timedelta(seconds=1)


def test_dynamodb_store_is_a_store(store: DynamoDBStore) -> None:
    port: Store = store  # mypy checks the structure; handlers depend on the port only
    assert port is store


# -- projects -------------------------------------------------------------------------


def test_project_round_trip_keeps_every_field(store: DynamoDBStore, clock: Clock) -> None:
    config = ProjectConfig(
        project_id=7,
        path="group/app",
        target_branches=["main", "release/1.x", "a#b"],
        strategy=Strategy.SERIAL,
        batch_size=12,
        landing=Landing.MERGE_EACH,
        ci_timeout_minutes=90,
        flaky_retries=2,
        labels=QueueLabels(rejected="bot: rejected", not_ready="bot: wait"),
        paused=True,
    )

    stored = store.save_project(config)

    assert stored.version == 1
    assert stored.updated_at == clock.now()
    loaded = store.get_project(7)
    assert loaded == stored
    unchanged = {"version", "updated_at"}
    assert loaded.model_dump(exclude=unchanged) == config.model_dump(exclude=unchanged)


def test_each_save_increments_the_version(
    store: DynamoDBStore, clock: Clock, advance: Advance
) -> None:
    store.save_project(ProjectConfig(project_id=1))
    advance(timedelta(minutes=5))

    second = store.save_project(store.get_project(1).model_copy(update={"batch_size": 8}))

    loaded = store.get_project(1)
    assert second.version == loaded.version == 2
    assert loaded.batch_size == 8
    assert loaded.updated_at == clock.now()


def test_list_projects_returns_every_project_and_nothing_else(
    store: DynamoDBStore, make_mr: MakeMR, clock: Clock
) -> None:
    project_ids = random.Random(7).sample(range(1, 100_000), 40)
    for project_id in project_ids:
        store.save_project(ProjectConfig(project_id=project_id, path=f"group/p{project_id}"))
    # Other kinds of item under the same project must not show up as projects.
    store.save_merge_request(make_mr(1, project_id=project_ids[0]))
    store.save_batch(make_batch("b-1", project_id=project_ids[0], created_at=clock.now()))
    store.acquire_branch_lock(project_ids[0], "main", "b-1", LOCK_TTL)

    listed = store.list_projects()

    assert len(listed) == len(project_ids)
    assert {config.project_id for config in listed} == set(project_ids)
    assert all(config.path == f"group/p{config.project_id}" for config in listed)


def test_deleted_project_is_gone_and_can_be_connected_again(store: DynamoDBStore) -> None:
    store.save_project(ProjectConfig(project_id=1))
    store.save_project(ProjectConfig(project_id=2))

    store.delete_project(1)

    with pytest.raises(NotFoundError):
        store.get_project(1)
    assert [config.project_id for config in store.list_projects()] == [2]
    assert store.save_project(ProjectConfig(project_id=1)).version == 1


def test_connecting_a_project_twice_fails_and_keeps_the_first(store: DynamoDBStore) -> None:
    first = store.save_project(ProjectConfig(project_id=1, batch_size=3))

    with pytest.raises(AlreadyExistsError):
        store.save_project(ProjectConfig(project_id=1, batch_size=9))

    assert store.get_project(1) == first


def test_stale_project_save_loses_and_changes_nothing(store: DynamoDBStore) -> None:
    store.save_project(ProjectConfig(project_id=1))
    lambda_a = store.get_project(1)
    lambda_b = store.get_project(1)
    assert lambda_a.version == lambda_b.version == 1

    winner = store.save_project(lambda_a.model_copy(update={"batch_size": 10}))
    with pytest.raises(ConflictError) as lost:
        store.save_project(lambda_b.model_copy(update={"paused": True}))

    assert not isinstance(lost.value, AlreadyExistsError)
    stored = store.get_project(1)
    assert stored == winner
    assert (stored.version, stored.batch_size, stored.paused) == (2, 10, False)


def test_a_stale_save_does_not_bring_back_a_deleted_project(store: DynamoDBStore) -> None:
    store.save_project(ProjectConfig(project_id=1))
    read_before_delete = store.get_project(1)
    store.delete_project(1)

    with pytest.raises(ConflictError):
        store.save_project(read_before_delete)

    with pytest.raises(NotFoundError):
        store.get_project(1)


def test_missing_project_is_not_found(store: DynamoDBStore) -> None:
    with pytest.raises(NotFoundError, match="404"):
        store.get_project(404)


# -- merge requests -------------------------------------------------------------------


def test_merge_request_round_trip_keeps_every_field(
    store: DynamoDBStore, make_mr: MakeMR, clock: Clock
) -> None:
    mr = make_mr(
        5,
        priority=3,
        ready_since=clock.now() - timedelta(minutes=2),
        web_url="https://gitlab.example.com/g/p/-/merge_requests/5",
        strikes=1,
        reasons=[Reason(code=ReasonCode.PIPELINE, message="pipeline #3 is running")],
        batch_id="b-0",
    )

    stored = store.save_merge_request(mr)

    assert stored.version == 1
    assert stored.updated_at == clock.now()
    loaded = store.get_merge_request(1, 5)
    assert loaded == stored
    unchanged = {"version", "updated_at"}
    assert loaded.model_dump(exclude=unchanged) == mr.model_dump(exclude=unchanged)


def test_queued_listing_is_in_queue_order(
    store: DynamoDBStore, make_mr: MakeMR, clock: Clock
) -> None:
    t = clock.now()
    mrs = [
        make_mr(9, ready_since=t),
        make_mr(10, ready_since=t),  # same moment as !9: the lower iid goes first
        make_mr(100, ready_since=t + timedelta(microseconds=1)),
        make_mr(20, ready_since=t - timedelta(seconds=1)),
        make_mr(11, ready_since=t.replace(microsecond=0)),
        make_mr(3, priority=1000, ready_since=t + timedelta(hours=5)),
        make_mr(4, priority=7, ready_since=t + timedelta(hours=1)),
        make_mr(5, priority=-1000, ready_since=t - timedelta(days=30)),
        make_mr(6, priority=-1, ready_since=t - timedelta(days=1)),
        # Offsets other than UTC: their wall-clock text sorts the other way round.
        make_mr(7, ready_since=(t - timedelta(minutes=30)).astimezone(PLUS_TWO)),
        make_mr(8, ready_since=(t + timedelta(minutes=30)).astimezone(MINUS_FIVE)),
        # A hotfix beats every priority; a placed MR stands at its placed time.
        make_mr(30, priority=-5, ready_since=t + timedelta(days=1), hotfix=True),
        make_mr(31, ready_since=t + timedelta(days=2), placed_at=t - timedelta(seconds=2)),
    ]
    random.Random(3).shuffle(mrs)
    stored = [store.save_merge_request(mr) for mr in mrs]

    listed = store.list_merge_requests(1, QUEUED, "main")

    assert iids(listed) == [30, 3, 4, 7, 31, 20, 11, 9, 10, 100, 8, 6, 5]
    assert listed == sorted(stored, key=queue_order)
    assert store.list_merge_requests(1, QUEUED) == listed


def test_branch_filter_matches_the_whole_branch_name(store: DynamoDBStore, make_mr: MakeMR) -> None:
    branches = {1: "a", 2: "a#b", 3: "a/b", 4: "ab", 5: "a%23b", 6: "a-b", 7: "a", 8: "b"}
    for iid, branch in branches.items():
        store.save_merge_request(make_mr(iid, target_branch=branch))

    for branch in set(branches.values()):
        listed = store.list_merge_requests(1, QUEUED, branch)
        expected = [iid for iid, name in branches.items() if name == branch]
        assert sorted(iids(listed)) == expected, branch
        assert {mr.target_branch for mr in listed} == {branch}
    assert sorted(iids(store.list_merge_requests(1, QUEUED))) == sorted(branches)


def test_listing_is_per_project_and_per_status(store: DynamoDBStore, make_mr: MakeMR) -> None:
    store.save_merge_request(make_mr(1, project_id=1))
    store.save_merge_request(make_mr(1, project_id=10))  # same iid, other project
    store.save_merge_request(make_mr(2, project_id=10))
    store.save_merge_request(make_mr(3, status=StatusCategory.NOT_READY, ready_since=None))
    store.save_merge_request(make_mr(4, status=StatusCategory.TESTING))

    assert iids(store.list_merge_requests(1, QUEUED)) == [1]
    assert iids(store.list_merge_requests(10, QUEUED)) == [1, 2]
    assert iids(store.list_merge_requests(1, StatusCategory.NOT_READY)) == [3]
    assert iids(store.list_merge_requests(1, StatusCategory.TESTING, "main")) == [4]
    assert store.list_merge_requests(1, StatusCategory.MERGED) == []
    assert store.get_merge_request(10, 1).project_id == 10


def test_moving_a_merge_request_to_a_batch_takes_it_out_of_the_queue(
    store: DynamoDBStore, make_mr: MakeMR, clock: Clock
) -> None:
    for iid in (1, 2, 3):
        store.save_merge_request(make_mr(iid, ready_since=clock.now() + timedelta(minutes=iid)))

    read = store.get_merge_request(1, 2)
    moved = store.save_merge_request(
        read.model_copy(update={"status": StatusCategory.BATCHING, "batch_id": "b-1"})
    )

    assert moved.version == 2
    assert iids(store.list_merge_requests(1, QUEUED, "main")) == [1, 3]
    assert store.list_merge_requests(1, StatusCategory.BATCHING, "main") == [moved]
    assert store.get_merge_request(1, 2) == moved


def test_a_merge_request_cannot_be_taken_by_two_batches(
    store: DynamoDBStore, make_mr: MakeMR
) -> None:
    store.save_merge_request(make_mr(1))
    lambda_a = store.get_merge_request(1, 1)
    lambda_b = store.get_merge_request(1, 1)

    winner = store.save_merge_request(
        lambda_a.model_copy(update={"status": StatusCategory.BATCHING, "batch_id": "b-a"})
    )
    with pytest.raises(ConflictError):
        store.save_merge_request(
            lambda_b.model_copy(update={"status": StatusCategory.BATCHING, "batch_id": "b-b"})
        )

    assert store.get_merge_request(1, 1) == winner
    assert store.list_merge_requests(1, StatusCategory.BATCHING) == [winner]
    assert store.list_merge_requests(1, QUEUED) == []


def test_tracking_a_merge_request_twice_fails(store: DynamoDBStore, make_mr: MakeMR) -> None:
    first = store.save_merge_request(make_mr(1, priority=1))

    with pytest.raises(AlreadyExistsError):
        store.save_merge_request(make_mr(1, priority=9))

    assert store.get_merge_request(1, 1) == first


@pytest.mark.parametrize("status", [StatusCategory.MERGED, StatusCategory.REJECTED])
def test_final_merge_requests_expire_after_the_history_period(
    store: DynamoDBStore,
    table: Table,
    make_mr: MakeMR,
    clock: Clock,
    advance: Advance,
    history: timedelta,
    status: StatusCategory,
) -> None:
    advance(timedelta(days=3, hours=7))

    store.save_merge_request(make_mr(1, status=status))

    assert_expires_after_history(raw_item(table, "merge_request", iid=1), clock.now(), history)


@pytest.mark.parametrize("status", [status for status in StatusCategory if not status.is_final])
def test_open_merge_requests_never_expire(
    store: DynamoDBStore, table: Table, make_mr: MakeMR, status: StatusCategory
) -> None:
    store.save_merge_request(make_mr(1, status=status))

    assert TABLE.ttl_attribute not in raw_item(table, "merge_request", iid=1)


def test_a_requeued_merge_request_loses_its_expiry(
    store: DynamoDBStore, table: Table, make_mr: MakeMR
) -> None:
    # A rejected MR that is fixed and queued again must not be deleted by TTL while it waits.
    store.save_merge_request(make_mr(1, status=StatusCategory.REJECTED))
    rejected = store.get_merge_request(1, 1)

    store.save_merge_request(rejected.model_copy(update={"status": QUEUED}))

    assert TABLE.ttl_attribute not in raw_item(table, "merge_request", iid=1)
    assert iids(store.list_merge_requests(1, QUEUED)) == [1]


def test_missing_merge_request_is_not_found(store: DynamoDBStore, make_mr: MakeMR) -> None:
    store.save_merge_request(make_mr(1, project_id=2))

    with pytest.raises(NotFoundError):
        store.get_merge_request(1, 1)
    with pytest.raises(NotFoundError):
        store.get_merge_request(2, 404)


# -- batches --------------------------------------------------------------------------


def test_batch_round_trip_keeps_every_field(store: DynamoDBStore, clock: Clock) -> None:
    batch = make_batch(
        "b-1",
        created_at=clock.now() - timedelta(seconds=30),
        merge_requests=[12, 3, 7],
        batch_branch="merge-assist/batch/main",
        target_sha="a" * 40,
        sha="b" * 40,
        pipeline_id=991,
        pipeline_url="https://gitlab.example.com/g/p/-/pipelines/991",
        ahead_id="b-0",
        state=BatchState.TESTING,
        execution_name="p1-main-b-1",
    )

    stored = store.save_batch(batch)

    assert stored.version == 1
    assert stored.updated_at == clock.now()
    loaded = store.get_batch("b-1")
    assert loaded == stored
    assert loaded.merge_requests == [12, 3, 7]
    unchanged = {"version", "updated_at"}
    assert loaded.model_dump(exclude=unchanged) == batch.model_dump(exclude=unchanged)


def test_batches_list_newest_first_up_to_the_limit(store: DynamoDBStore, clock: Clock) -> None:
    t = clock.now()
    created = {
        "b-3": t + timedelta(minutes=3),
        "b-0": t,
        "b-4": t + timedelta(minutes=4),
        "b-1": t + timedelta(minutes=1),
        "b-2": t + timedelta(minutes=2, microseconds=1),
        # Newest of all, though its wall-clock text reads earliest.
        "b-5": (t + timedelta(minutes=5)).astimezone(MINUS_FIVE),
    }
    for batch_id, moment in created.items():
        store.save_batch(make_batch(batch_id, created_at=moment))
    store.save_batch(make_batch("other", project_id=2, created_at=t + timedelta(hours=1)))

    newest_first = ["b-5", "b-4", "b-3", "b-2", "b-1", "b-0"]
    assert [batch.id for batch in store.list_batches(1)] == newest_first
    assert [batch.id for batch in store.list_batches(1, limit=2)] == newest_first[:2]
    assert [batch.id for batch in store.list_batches(2)] == ["other"]
    assert store.list_batches(3) == []


def test_updating_a_batch_does_not_duplicate_it(store: DynamoDBStore, clock: Clock) -> None:
    store.save_batch(make_batch("b-1", created_at=clock.now()))
    testing = store.save_batch(
        store.get_batch("b-1").model_copy(update={"state": BatchState.TESTING, "sha": "c" * 40})
    )

    assert store.list_batches(1) == [testing]
    assert testing.version == 2


def test_stale_batch_save_loses_and_changes_nothing(store: DynamoDBStore, clock: Clock) -> None:
    store.save_batch(make_batch("b-1", created_at=clock.now()))
    lambda_a = store.get_batch("b-1")
    lambda_b = store.get_batch("b-1")

    winner = store.save_batch(lambda_a.model_copy(update={"state": BatchState.LANDED}))
    with pytest.raises(ConflictError) as lost:
        store.save_batch(lambda_b.model_copy(update={"state": BatchState.FAILED}))

    assert not isinstance(lost.value, AlreadyExistsError)
    assert store.get_batch("b-1") == winner
    assert store.get_batch("b-1").state is BatchState.LANDED


def test_creating_a_batch_twice_fails(store: DynamoDBStore, clock: Clock) -> None:
    first = store.save_batch(make_batch("b-1", created_at=clock.now(), merge_requests=[1]))

    with pytest.raises(AlreadyExistsError):
        store.save_batch(make_batch("b-1", created_at=clock.now(), merge_requests=[2]))

    assert store.get_batch("b-1") == first


@pytest.mark.parametrize("state", list(BatchState))
def test_only_finished_batches_expire(
    store: DynamoDBStore,
    table: Table,
    clock: Clock,
    advance: Advance,
    history: timedelta,
    state: BatchState,
) -> None:
    created_at = clock.now()
    advance(timedelta(hours=2))

    store.save_batch(make_batch("b-1", created_at=created_at, state=state))

    item = raw_item(table, "batch", id="b-1")
    if state.is_final:
        assert_expires_after_history(item, clock.now(), history)
    else:
        assert TABLE.ttl_attribute not in item


def test_missing_batch_is_not_found(store: DynamoDBStore) -> None:
    with pytest.raises(NotFoundError, match="nope"):
        store.get_batch("nope")


# -- branch locks ---------------------------------------------------------------------


def test_the_first_batch_takes_the_lock(store: DynamoDBStore, clock: Clock) -> None:
    lock = store.acquire_branch_lock(1, "main", "b-1", LOCK_TTL)

    assert (lock.project_id, lock.target_branch, lock.batch_id) == (1, "main", "b-1")
    assert lock.acquired_at == clock.now()
    # Never shorter than asked for.
    assert clock.now() + LOCK_TTL <= lock.expires_at < clock.now() + LOCK_TTL + timedelta(seconds=1)
    assert store.get_branch_lock(1, "main") == lock


def test_a_second_batch_is_refused_and_told_who_holds_the_lock(store: DynamoDBStore) -> None:
    held = store.acquire_branch_lock(1, "main", "b-1", LOCK_TTL)

    with pytest.raises(LockHeldError, match="b-1") as refused:
        store.acquire_branch_lock(1, "main", "b-2", LOCK_TTL)

    assert isinstance(refused.value, ConflictError)
    assert store.get_branch_lock(1, "main") == held


def test_the_holder_renews_by_acquiring_again(
    store: DynamoDBStore, clock: Clock, advance: Advance
) -> None:
    first = store.acquire_branch_lock(1, "main", "b-1", LOCK_TTL)
    advance(timedelta(minutes=10))

    renewed = store.acquire_branch_lock(1, "main", "b-1", LOCK_TTL)

    assert renewed.expires_at > first.expires_at
    assert renewed.expires_at >= clock.now() + LOCK_TTL
    assert store.get_branch_lock(1, "main") == renewed
    advance(timedelta(minutes=10))  # past the first expiry, inside the renewed one
    with pytest.raises(LockHeldError):
        store.acquire_branch_lock(1, "main", "b-2", LOCK_TTL)


def test_release_by_another_batch_keeps_the_lock(store: DynamoDBStore) -> None:
    held = store.acquire_branch_lock(1, "main", "b-1", LOCK_TTL)

    store.release_branch_lock(1, "main", "b-2")

    assert store.get_branch_lock(1, "main") == held
    with pytest.raises(LockHeldError):
        store.acquire_branch_lock(1, "main", "b-2", LOCK_TTL)


def test_release_by_the_holder_frees_the_lock(store: DynamoDBStore) -> None:
    store.acquire_branch_lock(1, "main", "b-1", LOCK_TTL)

    store.release_branch_lock(1, "main", "b-1")

    assert store.get_branch_lock(1, "main") is None
    assert store.acquire_branch_lock(1, "main", "b-2", LOCK_TTL).batch_id == "b-2"


def test_a_train_takes_cars_in_order_up_to_its_depth(store: DynamoDBStore) -> None:
    store.acquire_branch_lock(1, "main", "car-1", LOCK_TTL, cars=3)
    store.acquire_branch_lock(1, "main", "car-2", LOCK_TTL, cars=3)
    store.acquire_branch_lock(1, "main", "car-2", LOCK_TTL, cars=3)  # a retried start
    store.acquire_branch_lock(1, "main", "car-3", LOCK_TTL, cars=3)

    with pytest.raises(LockHeldError, match="car-1"):
        store.acquire_branch_lock(1, "main", "car-4", LOCK_TTL, cars=3)
    lock = store.get_branch_lock(1, "main")
    assert lock is not None
    assert lock.cars == ["car-1", "car-2", "car-3"]
    assert lock.batch_id == "car-1"  # the head car
    assert lock.ahead("car-3") == "car-2"
    assert lock.ahead("car-1") is None
    assert lock.behind("car-1") == ["car-2", "car-3"]
    # A batch of another strategy (one car allowed) waits for the whole train.
    with pytest.raises(LockHeldError):
        store.acquire_branch_lock(1, "main", "batch", LOCK_TTL)


def test_a_car_leaving_keeps_the_others_and_the_last_frees_the_lock(
    store: DynamoDBStore,
) -> None:
    for car in ("car-1", "car-2", "car-3"):
        store.acquire_branch_lock(1, "main", car, LOCK_TTL, cars=3)

    store.release_branch_lock(1, "main", "car-1")  # the head car landed
    lock = store.get_branch_lock(1, "main")
    assert lock is not None
    assert lock.cars == ["car-2", "car-3"]
    # A new car joins at the end, behind the last.
    joined = store.acquire_branch_lock(1, "main", "car-4", LOCK_TTL, cars=3)
    assert joined.cars == ["car-2", "car-3", "car-4"]

    for car in ("car-3", "car-2", "car-4"):
        store.release_branch_lock(1, "main", car)
    assert store.get_branch_lock(1, "main") is None


def test_renewing_never_joins_and_refuses_a_car_taken_off_the_train(
    store: DynamoDBStore, clock: Clock, advance: Advance
) -> None:
    store.acquire_branch_lock(1, "main", "car-1", LOCK_TTL, cars=2)
    store.acquire_branch_lock(1, "main", "car-2", LOCK_TTL, cars=2)
    advance(timedelta(minutes=10))

    renewed = store.renew_branch_lock(1, "main", "car-2", LOCK_TTL)
    assert renewed.cars == ["car-1", "car-2"]
    assert renewed.expires_at >= clock.now() + LOCK_TTL
    store.release_branch_lock(1, "main", "car-2")  # cancelled by the car ahead
    with pytest.raises(LockHeldError, match="car-1"):
        store.renew_branch_lock(1, "main", "car-2", LOCK_TTL)
    lock = store.get_branch_lock(1, "main")
    assert lock is not None
    assert lock.cars == ["car-1"]


def test_racing_cars_each_join_once(store: DynamoDBStore) -> None:
    joined: list[str] = []
    refused: list[str] = []

    def join(car: str) -> None:
        try:
            store.acquire_branch_lock(1, "main", car, LOCK_TTL, cars=4)
            joined.append(car)
        except LockHeldError:
            refused.append(car)

    threads = [threading.Thread(target=join, args=(f"car-{n}",)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    lock = store.get_branch_lock(1, "main")
    assert lock is not None
    assert sorted(lock.cars) == sorted(joined)
    assert len(joined) == 4
    assert len(refused) == 4


def test_a_lock_written_before_trains_reads_as_one_car(store: DynamoDBStore) -> None:
    store.acquire_branch_lock(1, "main", "b-1", LOCK_TTL)
    key = {"pk": "PROJECT#1", "sk": "LOCK#main"}
    store._table.update_item(Key=key, UpdateExpression="REMOVE cars, version")

    lock = store.get_branch_lock(1, "main")
    assert lock is not None
    assert lock.cars == ["b-1"]
    store.release_branch_lock(1, "main", "b-1")
    assert store.get_branch_lock(1, "main") is None


def test_releasing_a_lock_nobody_holds_is_harmless(store: DynamoDBStore) -> None:
    store.release_branch_lock(1, "main", "b-1")
    store.release_branch_lock(1, "main", "b-1")  # a retried step

    assert store.get_branch_lock(1, "main") is None


def test_an_expired_lock_can_be_taken_over(
    store: DynamoDBStore, clock: Clock, advance: Advance
) -> None:
    store.acquire_branch_lock(1, "main", "b-1", LOCK_TTL)
    advance(LOCK_TTL + timedelta(seconds=1))

    assert store.get_branch_lock(1, "main") is None
    taken = store.acquire_branch_lock(1, "main", "b-2", LOCK_TTL)
    assert taken.acquired_at == clock.now()
    assert store.get_branch_lock(1, "main") == taken

    # The stale holder finishing late must not free the new holder's lock.
    store.release_branch_lock(1, "main", "b-1")
    assert store.get_branch_lock(1, "main") == taken


def test_a_lock_holds_until_its_expiry_and_not_a_moment_less(
    store: DynamoDBStore, clock: Clock, advance: Advance
) -> None:
    lock = store.acquire_branch_lock(1, "main", "b-1", LOCK_TTL)

    advance(lock.expires_at - clock.now() - timedelta(milliseconds=1))
    assert store.get_branch_lock(1, "main") == lock
    with pytest.raises(LockHeldError):
        store.acquire_branch_lock(1, "main", "b-2", LOCK_TTL)

    advance(timedelta(milliseconds=1))
    assert store.get_branch_lock(1, "main") is None
    assert store.acquire_branch_lock(1, "main", "b-2", LOCK_TTL).batch_id == "b-2"


def test_locks_are_per_project_and_per_branch(store: DynamoDBStore) -> None:
    holders = {(1, "a"): "b-1", (1, "a#b"): "b-2", (1, "a/b"): "b-3", (2, "a"): "b-4"}
    for (project_id, branch), batch_id in holders.items():
        store.acquire_branch_lock(project_id, branch, batch_id, LOCK_TTL)

    store.release_branch_lock(1, "a", "b-1")

    assert store.get_branch_lock(1, "a") is None
    for (project_id, branch), batch_id in list(holders.items())[1:]:
        lock = store.get_branch_lock(project_id, branch)
        assert lock is not None
        assert (lock.project_id, lock.target_branch, lock.batch_id) == (
            project_id,
            branch,
            batch_id,
        )


# -- numbers --------------------------------------------------------------------------


def test_numbers_come_back_as_ints_not_decimals(
    store: DynamoDBStore, table: Table, make_mr: MakeMR, clock: Clock
) -> None:
    store.save_project(ProjectConfig(project_id=3, batch_size=7, ci_timeout_minutes=45))
    store.save_merge_request(make_mr(11, project_id=3, priority=-4, strikes=2))
    store.save_batch(
        make_batch(
            "b-1", project_id=3, created_at=clock.now(), merge_requests=[11, 12], pipeline_id=99
        )
    )
    # What boto3 hands back for every DynamoDB number:
    assert isinstance(raw_item(table, "project", project_id=3)["batch_size"], Decimal)

    config = store.get_project(3)
    mr = store.get_merge_request(3, 11)
    batch = store.get_batch("b-1")

    numbers = [
        config.project_id,
        config.batch_size,
        config.ci_timeout_minutes,
        config.flaky_retries,
        config.version,
        mr.project_id,
        mr.iid,
        mr.priority,
        mr.strikes,
        mr.version,
        batch.project_id,
        batch.pipeline_id,
        batch.version,
        *batch.merge_requests,
    ]
    assert [type(number) for number in numbers] == [int] * len(numbers)
    assert (config.batch_size, mr.priority, batch.merge_requests) == (7, -4, [11, 12])
    # And they serialise for API responses without a Decimal encoder.
    json.dumps(
        [config.model_dump(mode="json"), mr.model_dump(mode="json"), batch.model_dump(mode="json")]
    )


def test_a_pipeline_wait_stores_its_task_token_until_it_expires(
    store: DynamoDBStore, advance: Advance
) -> None:
    store.put_task_token(1, "a" * 40, "token-1", timedelta(minutes=30))
    store.put_task_token(1, "a" * 40, "token-2", timedelta(minutes=30))  # a retried wait

    assert store.get_task_token(1, "a" * 40) == "token-2"
    assert store.get_task_token(1, "b" * 40) is None
    assert store.get_task_token(2, "a" * 40) is None
    advance(timedelta(minutes=31))
    assert store.get_task_token(1, "a" * 40) is None


def test_deleting_a_task_token_spares_a_newer_one(store: DynamoDBStore) -> None:
    store.put_task_token(1, "a" * 40, "old", timedelta(minutes=30))
    store.put_task_token(1, "a" * 40, "new", timedelta(minutes=30))

    store.delete_task_token(1, "a" * 40, "old")
    assert store.get_task_token(1, "a" * 40) == "new"
    store.delete_task_token(1, "a" * 40, "new")
    assert store.get_task_token(1, "a" * 40) is None
    store.delete_task_token(1, "a" * 40, "new")  # twice is harmless

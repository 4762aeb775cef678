"""The train's rules: which car another may be built on, its base, and its branch."""

from __future__ import annotations

from typing import Any

import pytest

from merge_assist.platform.config import ProjectConfig, Strategy
from merge_assist.queue import train
from merge_assist.queue.batch_plan import BatchBuild, Bisection, IncludedMergeRequest
from merge_assist.queue.models import Batch, BatchState


def _car(**fields: Any) -> Batch:
    included = tuple(
        IncludedMergeRequest(iid=iid, head_sha=f"{iid}" * 40, tip_sha=f"t{iid}".ljust(40, "0"))
        for iid in (1, 2, 3)
    )
    build = BatchBuild(target_sha="0" * 40, sha=included[-1].tip_sha, included=included)
    defaults: dict[str, Any] = {
        "id": "car",
        "project_id": 1,
        "target_branch": "main",
        "strategy": Strategy.TRAIN,
        "merge_requests": [1, 2, 3],
        "build": build,
        "sha": build.sha,
        "state": BatchState.TESTING,
        "tested_length": 3,
    }
    return Batch(**{**defaults, **fields})


def test_a_car_tested_whole_may_be_built_on_and_its_base_is_its_whole_commit() -> None:
    car = _car()
    assert train.extendable(car)
    assert train.tip(car) == car.sha


@pytest.mark.parametrize(
    ("why", "fields"),
    [
        ("not built yet", {"state": BatchState.BUILDING, "build": None, "sha": None}),
        ("bisecting: a prefix is tested", {"tested_length": 2}),
        ("bisecting", {"bisection": Bisection.start((1, 2, 3)).record(3, passed=False)}),
        ("retrying its culprit", {"retrying": True}),
        ("landing a prefix only", {"state": BatchState.LANDING, "land_length": 2}),
        ("ended", {"state": BatchState.LANDED}),
        ("cancelled", {"state": BatchState.CANCELLED}),
        ("a batch, from before the switch to the train", {"strategy": Strategy.BATCH}),
    ],
)
def test_nothing_is_built_on_a_car_that_may_not_land_whole(
    why: str, fields: dict[str, Any]
) -> None:
    assert not train.extendable(_car(**fields)), why


def test_a_car_landing_whole_may_be_built_on() -> None:
    assert train.extendable(_car(state=BatchState.LANDING, land_length=3))


def test_each_car_gets_the_lowest_branch_no_other_car_uses() -> None:
    taken = [train.car_branch("main", 1), train.car_branch("main", 3), None]
    assert train.free_slot("main", taken) == 2
    assert train.free_slot("main", []) == 1
    assert train.car_branch("release/1", 2) == "merge-assist/train/release/1/2"


def test_only_a_train_holds_the_branch_with_several_batches() -> None:
    assert train.cars_allowed(ProjectConfig(project_id=1, strategy="train", train_depth=4)) == 4
    assert train.cars_allowed(ProjectConfig(project_id=1, strategy="batch", train_depth=4)) == 1

"""Validation rules of the domain records: what the API and the store may accept."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from merge_assist.platform.config import Landing, ProjectConfig, QueueLabels, Strategy
from merge_assist.queue.models import (
    Batch,
    BatchSizing,
    BatchState,
    MergeRequestState,
    Reason,
    ReasonCode,
    StatusCategory,
)
from merge_assist.queue.queue import batch_limit

MakeMR = Callable[..., MergeRequestState]
READY = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)


def make_batch(merge_requests: list[int], **fields: Any) -> Batch:
    return Batch(
        id="batch-1",
        project_id=1,
        target_branch="main",
        strategy=Strategy.BATCH,
        merge_requests=merge_requests,
        **fields,
    )


# -- project configuration ------------------------------------------------------------


def test_project_defaults() -> None:
    config = ProjectConfig(project_id=42)

    assert config.batch_size == 5
    assert config.strategy is Strategy.BATCH
    assert config.landing is Landing.PUSH
    assert config.target_branches == ["main"]
    assert config.paused is False
    assert config.version == 0
    assert config.updated_at.tzinfo is not None


def test_label_defaults_are_the_documented_names() -> None:
    labels = ProjectConfig(project_id=1).labels

    assert labels.recognised == "Merge Assist: Recognised for Merge"
    assert labels.not_ready == "Merge Assist: Not Ready"
    assert labels.rejected == "Merge Assist: Rejected"
    assert labels.ready_to_merge == "Merge Assist: Ready to Merge"
    assert labels.batch_merge_request == "Merge Assist: Batch Merge Request"


def test_labels_can_be_renamed_per_project_one_at_a_time() -> None:
    config = ProjectConfig.model_validate(
        {"project_id": 1, "labels": {"rejected": "bot: rejected"}}
    )

    assert config.labels.rejected == "bot: rejected"
    assert config.labels.recognised == QueueLabels().recognised
    assert ProjectConfig(project_id=2).labels.rejected == "Merge Assist: Rejected"


@pytest.mark.parametrize("size", [1, 2, 49, 50])
def test_batch_size_within_bounds_is_accepted(size: int) -> None:
    assert ProjectConfig(project_id=1, batch_size=size).batch_size == size


@pytest.mark.parametrize("size", [-1, 0, 51, 1000])
def test_batch_size_out_of_bounds_is_rejected(size: int) -> None:
    with pytest.raises(ValidationError, match="batch_size"):
        ProjectConfig(project_id=1, batch_size=size)


def test_batch_size_bounds_hold_on_assignment_too() -> None:
    # The API changes configs at run time by assignment; a bad value must not slip in.
    config = ProjectConfig(project_id=1)
    with pytest.raises(ValidationError):
        config.batch_size = 51
    assert config.batch_size == 5


@pytest.mark.parametrize(
    ("raw", "strategy"), [("serial", Strategy.SERIAL), ("batch", Strategy.BATCH)]
)
def test_strategy_values(raw: str, strategy: Strategy) -> None:
    assert ProjectConfig.model_validate({"project_id": 1, "strategy": raw}).strategy is strategy


@pytest.mark.parametrize("raw", ["merge-train", "adaptive", "SERIAL", ""])
def test_unknown_strategy_is_rejected(raw: str) -> None:
    with pytest.raises(ValidationError, match="strategy"):
        ProjectConfig.model_validate({"project_id": 1, "strategy": raw})


@pytest.mark.parametrize(
    ("raw", "landing"), [("push", Landing.PUSH), ("merge-each", Landing.MERGE_EACH)]
)
def test_landing_values(raw: str, landing: Landing) -> None:
    assert ProjectConfig.model_validate({"project_id": 1, "landing": raw}).landing is landing


@pytest.mark.parametrize("raw", ["merge_each", "merge", "force-push"])
def test_unknown_landing_is_rejected(raw: str) -> None:
    with pytest.raises(ValidationError, match="landing"):
        ProjectConfig.model_validate({"project_id": 1, "landing": raw})


def test_target_branches_must_be_unique() -> None:
    with pytest.raises(ValidationError, match="unique"):
        ProjectConfig(project_id=1, target_branches=["main", "release", "main"])


def test_target_branches_must_not_be_empty() -> None:
    with pytest.raises(ValidationError, match="target_branches"):
        ProjectConfig(project_id=1, target_branches=[])


@pytest.mark.parametrize(
    "branch", ["", "has space", "a~1", "a^", "a:b", "a?", "a*", "a[0]", "a\\b"]
)
def test_target_branch_names_git_refuses_are_rejected(branch: str) -> None:
    with pytest.raises(ValidationError):
        ProjectConfig(project_id=1, target_branches=[branch])


@pytest.mark.parametrize("branch", ["main", "release/1.x", "a#b", "feature-ü"])
def test_target_branch_names_git_allows_are_accepted(branch: str) -> None:
    assert ProjectConfig(project_id=1, target_branches=[branch]).target_branches == [branch]


@pytest.mark.parametrize("project_id", [0, -5])
def test_project_id_must_be_positive(project_id: int) -> None:
    with pytest.raises(ValidationError, match="project_id"):
        ProjectConfig(project_id=project_id)


def test_serial_strategy_takes_one_merge_request_whatever_the_batch_size() -> None:
    assert batch_limit(ProjectConfig(project_id=1, strategy="serial", batch_size=10)) == 1
    assert batch_limit(ProjectConfig(project_id=1, strategy="serial", batch_size="auto")) == 1
    assert batch_limit(ProjectConfig(project_id=1, strategy="batch", batch_size=10)) == 10


def test_an_automatic_batch_size_takes_the_size_its_sizing_chose() -> None:
    config = ProjectConfig(project_id=1, batch_size="auto")
    assert config.sized_automatically
    assert batch_limit(config, BatchSizing(size=3, failure_rate=0.2, batches=4)) == 3
    with pytest.raises(ValueError, match="sizing is needed"):
        batch_limit(config)
    with pytest.raises(ValidationError, match="batch_size"):
        ProjectConfig(project_id=1, batch_size="big")
    with pytest.raises(ValidationError, match="batch_size_max"):
        ProjectConfig(project_id=1, batch_size_max=1)


def test_project_config_survives_a_json_round_trip() -> None:
    # The store persists ``model_dump(mode="json")``; every field must come back equal.
    config = ProjectConfig(
        project_id=7,
        path="group/app",
        target_branches=["main", "release/2.x"],
        strategy=Strategy.SERIAL,
        batch_size=9,
        landing=Landing.MERGE_EACH,
        labels=QueueLabels(rejected="nope"),
        paused=True,
    )

    assert ProjectConfig.model_validate(config.model_dump(mode="json")) == config


# -- merge requests -------------------------------------------------------------------


def test_queued_merge_request_needs_ready_since(make_mr: MakeMR) -> None:
    with pytest.raises(ValidationError, match="ready_since"):
        make_mr(1, status=StatusCategory.QUEUED, ready_since=None)


def test_queued_merge_request_with_ready_since_is_valid(make_mr: MakeMR) -> None:
    assert make_mr(1, ready_since=READY).ready_since == READY


@pytest.mark.parametrize(
    "status", [status for status in StatusCategory if status is not StatusCategory.QUEUED]
)
def test_other_statuses_do_not_need_ready_since(make_mr: MakeMR, status: StatusCategory) -> None:
    assert make_mr(1, status=status, ready_since=None).ready_since is None


@pytest.mark.parametrize(
    ("priority", "valid"), [(-1000, True), (1000, True), (-1001, False), (1001, False)]
)
def test_priority_bounds(make_mr: MakeMR, priority: int, valid: bool) -> None:
    if valid:
        assert make_mr(1, priority=priority).priority == priority
    else:
        with pytest.raises(ValidationError, match="priority"):
            make_mr(1, priority=priority)


def test_merge_request_reasons_are_typed(make_mr: MakeMR) -> None:
    mr = make_mr(
        1,
        status=StatusCategory.REJECTED,
        reasons=[{"code": "ci_failed", "message": "pipeline #12 failed"}],
    )
    assert mr.reasons == [Reason(code=ReasonCode.CI_FAILED, message="pipeline #12 failed")]
    with pytest.raises(ValidationError):
        make_mr(2, reasons=[{"code": "bad_luck", "message": "?"}])


def test_only_merged_and_rejected_are_final() -> None:
    final = {status for status in StatusCategory if status.is_final}
    assert final == {StatusCategory.MERGED, StatusCategory.REJECTED}


# -- batches --------------------------------------------------------------------------


def test_batch_defaults() -> None:
    batch = make_batch([3, 1, 2])

    assert batch.merge_requests == [3, 1, 2]  # merge order is kept, not sorted
    assert batch.state is BatchState.BUILDING
    assert batch.version == 0


def test_batch_rejects_a_merge_request_twice() -> None:
    with pytest.raises(ValidationError, match="twice"):
        make_batch([1, 2, 1])


@pytest.mark.parametrize("count", [1, 50])
def test_batch_size_bounds_accepted(count: int) -> None:
    assert len(make_batch(list(range(1, count + 1))).merge_requests) == count


@pytest.mark.parametrize("count", [0, 51])
def test_batch_size_bounds_rejected(count: int) -> None:
    with pytest.raises(ValidationError, match="merge_requests"):
        make_batch(list(range(1, count + 1)))


def test_only_landed_failed_and_cancelled_batches_are_final() -> None:
    final = {state for state in BatchState if state.is_final}
    assert final == {BatchState.LANDED, BatchState.FAILED, BatchState.CANCELLED}

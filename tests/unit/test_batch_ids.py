"""Batch ids are Step Functions execution names: deterministic, valid for any branch."""

from __future__ import annotations

import re

import pytest

from merge_assist.queue.workflow.context import WorkflowInput
from merge_assist.queue.workflow.start import batch_id_for, next_batch_id

EXECUTION_NAME = re.compile(r"^[A-Za-z0-9_-]{1,80}$")


@pytest.mark.parametrize(
    "branch",
    ["main", "release/2026.11", "feature/ü-ß", "a" * 255, "-", "x y", "refs/heads/main"],
)
def test_a_batch_id_is_a_valid_execution_name_for_any_branch(branch: str) -> None:
    batch_id = batch_id_for(7, branch, "event-1")

    assert EXECUTION_NAME.match(batch_id), batch_id
    WorkflowInput(project_id=7, target_branch="main", batch_id=batch_id)


def test_the_same_cause_names_the_same_batch_and_another_cause_another() -> None:
    first = batch_id_for(7, "main", "event-1")

    assert batch_id_for(7, "main", "event-1") == first
    assert batch_id_for(7, "main", "event-2") != first
    assert batch_id_for(8, "main", "event-1") != first
    # Branches that slug alike still differ.
    assert batch_id_for(7, "release/1", "event-1") != batch_id_for(7, "release-1", "event-1")


def test_the_batch_after_a_batch_is_named_by_it() -> None:
    first = batch_id_for(7, "main", "event-1")

    following = next_batch_id(first, 7, "main")

    assert following == next_batch_id(first, 7, "main")
    assert following != first
    assert next_batch_id(following, 7, "main") not in (first, following)

"""The DynamoDB table's condition expressions are built per thread: another thread's call
resetting the placeholder counter does not renumber this thread's expression."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from boto3.dynamodb.conditions import Key

from merge_assist.adapters import aws


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    aws.dynamodb_table.cache_clear()
    yield aws.dynamodb_table("merge-assist")
    aws.dynamodb_table.cache_clear()


def test_a_reset_in_another_thread_leaves_this_threads_placeholders_alone(table: object) -> None:
    shared = table._injector._condition_builder  # type: ignore[attr-defined]
    shared.reset()
    first = shared.build_expression(Key("pk").eq("a"), is_key_condition=True)
    other = threading.Thread(target=shared.reset)
    other.start()
    other.join()
    second = shared.build_expression(Key("sk").eq("b"), is_key_condition=True)

    assert first.condition_expression == "#n0 = :v0"
    # Numbered on from this thread's own count: the other thread's reset did not touch it.
    assert second.condition_expression == "#n1 = :v1"

"""The dispatcher skeleton records queued events on MR state, once each, and reports
failures per message."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from functions.dispatcher import app as dispatcher
from local.poller import sqs_record
from local.provision import create_table
from local.runtime import make_context
from merge_assist.adapters.aws import clear_caches, store_from_settings
from merge_assist.errors import NotFoundError
from merge_assist.events import EventKind, MergeRequestSnapshot, PipelineSnapshot, QueueEvent
from merge_assist.recording import record_event
from merge_assist.resources import ResourceNames

NAMES = ResourceNames("test")


class FakeGitLab:
    """Stands in for GitLab where these tests only need the bot's identity."""

    def __init__(self, **_: object) -> None:
        pass  # takes the handler's ``meter``: these tests count nothing

    def current_user_id(self) -> int:
        return 99


@pytest.fixture
def store(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setattr("functions.dispatcher.app.gateway_from_settings", FakeGitLab)
    monkeypatch.setenv("MERGE_ASSIST_RESOURCE_PREFIX", NAMES.prefix)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    with mock_aws():
        clear_caches()
        create_table(boto3.Session(), NAMES)
        yield store_from_settings()
        clear_caches()


def _mr_event(key: str, iid: int = 4, **changes: Any) -> QueueEvent:
    snapshot = {
        "iid": iid,
        "title": "Make it faster",
        "state": "opened",
        "sha": "a" * 40,
        "source_branch": f"feature/{iid}",
        "target_branch": "main",
        "labels": ["perf"],
        "assignee_ids": [7],
    }
    snapshot.update(changes)
    return QueueEvent(
        kind=EventKind.MERGE_REQUEST,
        idempotency_key=key,
        project_id=5,
        target_branch="main",
        merge_request=MergeRequestSnapshot.model_validate(snapshot),
    )


def _sqs_event(events: list[QueueEvent | str], groups: list[str] | None = None) -> dict[str, Any]:
    records = []
    for index, event in enumerate(events):
        group = groups[index] if groups else "5:main"
        body = event if isinstance(event, str) else event.model_dump_json()
        message = {
            "MessageId": f"m-{index}",
            "ReceiptHandle": f"r-{index}",
            "Body": body,
            "Attributes": {
                "MessageGroupId": group,
                "MessageDeduplicationId": f"d-{index}",
                "ApproximateReceiveCount": "1",
                "SentTimestamp": "1700000000000",
                "SequenceNumber": str(index),
            },
            "MD5OfBody": "",
        }
        records.append(sqs_record(message, "arn:aws:sqs:eu-west-1:1:q.fifo", "eu-west-1"))  # type: ignore[arg-type]
    return {"Records": records}


def _context() -> Any:
    return make_context("dispatcher", 512, 60)


def test_first_event_starts_tracking_and_later_events_update(store: Any) -> None:
    record_event(store, _mr_event("k1"))
    record_event(store, _mr_event("k2", sha="b" * 40, title="Make it much faster", labels=[]))

    state = store.get_merge_request(5, 4)
    assert state.sha == "b" * 40
    assert state.title == "Make it much faster"
    assert state.labels == []
    assert state.last_event_key == "k2"
    assert state.version == 2


def test_replaying_the_same_event_changes_nothing(store: Any) -> None:
    record_event(store, _mr_event("k1"))
    before = store.get_merge_request(5, 4)

    record_event(store, _mr_event("k1", sha="c" * 40))

    assert store.get_merge_request(5, 4) == before


def test_summary_events_do_not_erase_full_attributes(store: Any) -> None:
    record_event(store, _mr_event("k1"))
    pipeline = QueueEvent(
        kind=EventKind.PIPELINE,
        idempotency_key="p1",
        project_id=5,
        target_branch="main",
        merge_request=MergeRequestSnapshot(iid=4, target_branch="main"),
        pipeline=PipelineSnapshot(id=9, sha="a" * 40, status="success"),
    )

    record_event(store, pipeline)

    state = store.get_merge_request(5, 4)
    assert state.labels == ["perf"]
    assert state.assignee_ids == [7]
    assert state.last_event_kind == "pipeline"


def test_an_event_about_an_unknown_mr_without_its_branches_is_not_tracked(store: Any) -> None:
    partial = QueueEvent(
        kind=EventKind.PIPELINE,
        idempotency_key="p1",
        project_id=5,
        merge_request=MergeRequestSnapshot(iid=77),
    )

    assert record_event(store, partial) is None
    with pytest.raises(NotFoundError):
        store.get_merge_request(5, 77)


def test_handler_reports_only_the_failed_message(store: Any) -> None:
    event = _sqs_event([_mr_event("k1", iid=1), "{broken", _mr_event("k3", iid=3)])

    response = dispatcher.handler(event, _context())

    # FIFO: a failure holds back the rest of its group (all three share one here).
    failed = [item["itemIdentifier"] for item in response["batchItemFailures"]]
    assert failed == ["m-1", "m-2"]
    assert store.get_merge_request(5, 1).last_event_key == "k1"
    with pytest.raises(NotFoundError):
        store.get_merge_request(5, 3)


def test_handler_records_every_good_message(store: Any) -> None:
    event = _sqs_event([_mr_event("k1", iid=1), _mr_event("k2", iid=2)])

    response = dispatcher.handler(event, _context())

    assert response["batchItemFailures"] == []
    assert {store.get_merge_request(5, iid).iid for iid in (1, 2)} == {1, 2}


def test_a_failure_holds_back_only_its_own_group(store: Any) -> None:
    release = _mr_event("k3", iid=3, target_branch="release")
    event = _sqs_event(
        ["{broken", _mr_event("k2", iid=2), release], groups=["5:main", "5:main", "5:release"]
    )

    response = dispatcher.handler(event, _context())

    assert [item["itemIdentifier"] for item in response["batchItemFailures"]] == ["m-0", "m-1"]
    assert store.get_merge_request(5, 3).target_branch == "release"

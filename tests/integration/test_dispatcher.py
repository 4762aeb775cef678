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
from merge_assist.adapters import project_queues
from merge_assist.adapters.aws import clear_caches, store_from_settings
from merge_assist.platform.errors import GitLabUnavailable, NotFoundError
from merge_assist.platform.events import (
    EventKind,
    MergeRequestSnapshot,
    PipelineSnapshot,
    QueueEvent,
)
from merge_assist.platform.resources import ResourceNames
from merge_assist.queue.dispatch import Dispatched
from merge_assist.queue.recording import record_event

NAMES = ResourceNames("test")


class FakeGitLab:
    """Stands in for GitLab where these tests only need the bot's identity."""

    def __init__(self, *_: object, **__: object) -> None:
        pass  # takes the settings and the ``meter``: these tests count nothing

    def current_user_id(self) -> int:
        return 99


@pytest.fixture
def store(aws_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setattr("functions.dispatcher.wiring.gateway_from_settings", FakeGitLab)
    monkeypatch.setenv("MERGE_ASSIST_RESOURCE_PREFIX", NAMES.prefix)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    with mock_aws():
        clear_caches()
        create_table(boto3.Session(), NAMES)
        sqs = boto3.client("sqs")
        for name in (NAMES.project_queue(5), NAMES.project_dead_letter_queue(5)):
            sqs.create_queue(QueueName=name, Attributes={"FifoQueue": "true"})
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


QUEUE_ARN = f"arn:aws:sqs:us-east-1:123456789012:{NAMES.project_queue(5)}"


def _queue_url(name: str) -> str:
    return boto3.client("sqs").get_queue_url(QueueName=name)["QueueUrl"]


def _sqs_event(
    events: list[QueueEvent | str],
    groups: list[str] | None = None,
    receives: int | list[int] = 1,
) -> dict[str, Any]:
    """The events sent to the project's queue and received as Lambda's poller would, as
    if for the ``receives``-th time."""
    sqs = boto3.client("sqs")
    url = _queue_url(NAMES.project_queue(5))
    for index, event in enumerate(events):
        sqs.send_message(
            QueueUrl=url,
            MessageBody=event if isinstance(event, str) else event.model_dump_json(),
            MessageGroupId=groups[index] if groups else "5:main",
            MessageDeduplicationId=f"d-{index}",
        )
    messages: list[Any] = []
    while len(messages) < len(events):
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["All"]).get(
            "Messages", []
        )
        assert got, "the queue gave back fewer messages than were sent"
        messages += got
    counts = receives if isinstance(receives, list) else [receives] * len(messages)
    for message, count in zip(messages, counts, strict=True):
        # As SQS counts a message received again after its earlier tries failed.
        message["Attributes"]["ApproximateReceiveCount"] = str(count)
    return {"Records": [sqs_record(message, QUEUE_ARN, "us-east-1") for message in messages]}


def _ids(event: dict[str, Any], *indexes: int) -> list[str]:
    return [event["Records"][index]["messageId"] for index in indexes]


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
    assert failed == _ids(event, 1, 2)
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

    assert [item["itemIdentifier"] for item in response["batchItemFailures"]] == _ids(event, 0, 1)
    assert store.get_merge_request(5, 3).target_branch == "release"


class FlakyDispatcher:
    """Raises ``failures`` transient errors, then handles every event."""

    bot_user_id = 99

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def handle(self, event: QueueEvent, *, judged_later: bool = False) -> Dispatched:
        self.calls += 1
        if self.calls <= self.failures:
            raise GitLabUnavailable(503, "GitLab is restarting")
        return Dispatched(resumed_wait=False, state=None, told=False)


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("merge_assist.platform.retrying.time.sleep", lambda seconds: None)


def test_transient_errors_are_retried_within_the_invocation(
    store: Any, monkeypatch: pytest.MonkeyPatch, no_sleep: None
) -> None:
    flaky = FlakyDispatcher(failures=2)
    monkeypatch.setattr("functions.dispatcher.wiring.dispatcher", lambda: flaky)

    response = dispatcher.handler(_sqs_event([_mr_event("k1", iid=1)]), _context())

    assert response["batchItemFailures"] == []
    assert flaky.calls == 3


def test_a_failed_message_comes_back_within_seconds_not_the_visibility_timeout(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    delays: list[tuple[str, int]] = []
    original = project_queues.redeliver_after

    def recording(queue_arn: str, receipt: str, seconds: int) -> None:
        delays.append((receipt, seconds))
        original(queue_arn, receipt, seconds)

    monkeypatch.setattr("functions.dispatcher.failures.redeliver_after", recording)
    event = _sqs_event(["{broken", _mr_event("k2", iid=2)])

    response = dispatcher.handler(event, _context())

    assert len(response["batchItemFailures"]) == 2
    receipts = [record["receiptHandle"] for record in event["Records"]]
    assert delays == [(receipts[0], 10), (receipts[1], 10)]


def test_a_skipped_message_comes_back_with_the_failed_one_ahead_of_it(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    delays: list[tuple[str, int]] = []
    monkeypatch.setattr(
        "functions.dispatcher.failures.redeliver_after",
        lambda arn, receipt, seconds: delays.append((receipt, seconds)),
    )
    # The one behind was skipped many times already; kept out for its own count, it would
    # hold the group back long after the failed one is handled.
    event = _sqs_event(["{broken", _mr_event("k2", iid=2)], receives=[1, 5])

    dispatcher.handler(event, _context())

    receipts = [record["receiptHandle"] for record in event["Records"]]
    assert delays == [(receipts[0], 10), (receipts[1], 10)]


def test_a_message_that_keeps_failing_is_parked_and_its_group_goes_on(store: Any) -> None:
    event = _sqs_event(["{broken", _mr_event("k2", iid=2)], receives=3)
    broken, behind = _ids(event, 0, 1)

    response = dispatcher.handler(event, _context())

    # The unreadable message would go to the dead-letter queue by SQS's own redrive; a
    # readable one that fails is parked by the dispatcher (next test). The skipped one is
    # never parked.
    assert {item["itemIdentifier"] for item in response["batchItemFailures"]} == {broken, behind}


def test_a_readable_event_that_keeps_failing_is_parked_in_the_dead_letter_queue(
    store: Any, monkeypatch: pytest.MonkeyPatch, no_sleep: None
) -> None:
    flaky = FlakyDispatcher(failures=100)
    monkeypatch.setattr("functions.dispatcher.wiring.dispatcher", lambda: flaky)
    event = _sqs_event([_mr_event("k1", iid=1)], receives=3)

    response = dispatcher.handler(event, _context())

    assert response["batchItemFailures"] == []
    parked = boto3.client("sqs").receive_message(
        QueueUrl=_queue_url(NAMES.project_dead_letter_queue(5)),
        AttributeNames=["All"],
    )["Messages"]
    assert [QueueEvent.model_validate_json(m["Body"]).idempotency_key for m in parked] == ["k1"]
    assert parked[0]["Attributes"]["MessageGroupId"] == "5:main"


class RecordingDispatcher:
    bot_user_id = 99

    def __init__(self) -> None:
        self.handled: list[tuple[str, bool]] = []

    def handle(self, event: QueueEvent, *, judged_later: bool = False) -> Dispatched:
        self.handled.append((event.idempotency_key, judged_later))
        return Dispatched(resumed_wait=False, state=None, told=False)


def test_a_receive_judges_each_mr_once_at_its_last_event_that_can_decide(
    store: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    recording = RecordingDispatcher()
    monkeypatch.setattr("functions.dispatcher.wiring.dispatcher", lambda: recording)
    echo = _mr_event("echo", iid=1, action="update", changed=["labels"]).model_copy(
        update={"actor_id": 99}
    )
    event = _sqs_event(
        [
            _mr_event("first", iid=1, action="update", changed=["title"]),
            _mr_event("other", iid=2),
            _mr_event("second", iid=1, action="update", changed=["draft"]),
            echo,
        ]
    )

    response = dispatcher.handler(event, _context())

    assert response["batchItemFailures"] == []
    # Every event is handled (recorded); only "second" judges MR 1, as the echo after it
    # cannot change a decision.
    assert recording.handled == [
        ("first", True),
        ("other", False),
        ("second", False),
        ("echo", False),
    ]

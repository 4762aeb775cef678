"""The local poller plays Lambda's SQS event source mapping on a FIFO queue with a DLQ."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from local.stack import LocalStack
from merge_assist.platform.resources import PYTHON_RUNTIME, FunctionSpec

pytestmark = pytest.mark.e2e


class Recorder:
    """A consumer that fails the messages whose body is ``poison``."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        bodies = [record["body"] for record in event["Records"]]
        with self.lock:
            self.batches.append(bodies)
        return {
            "batchItemFailures": [
                {"itemIdentifier": record["messageId"]}
                for record in event["Records"]
                if record["body"] == "poison"
            ]
        }


def _wait_for(condition: Any, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def _count(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def _consumer(
    stack: LocalStack, name: str, handler: Any, reserved_concurrency: int | None = None
) -> None:
    spec = FunctionSpec(key=name, handler=f"tests.{name}.handler", description="test consumer")
    stack.runtime.register(name, spec, handler=handler, reserved_concurrency=reserved_concurrency)
    stack.client("lambda").create_function(
        FunctionName=name,
        Runtime=PYTHON_RUNTIME,
        Role=f"arn:aws:iam::123456789012:role/{stack.names.prefix}-lambda",
        Handler=spec.handler,
        Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18},
    )


def _fifo_with_dlq(
    stack: LocalStack, name: str, max_receives: int, visibility_timeout: int = 1
) -> tuple[str, str, str]:
    sqs = stack.client("sqs")
    dlq_url = sqs.create_queue(QueueName=f"{name}-dlq.fifo", Attributes={"FifoQueue": "true"})[
        "QueueUrl"
    ]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq_url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    url = sqs.create_queue(
        QueueName=f"{name}.fifo",
        Attributes={
            "FifoQueue": "true",
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(max_receives)}
            ),
        },
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return url, arn, dlq_url


def test_partial_batch_failure_keeps_only_the_failed_message_until_the_dlq(
    stack: LocalStack,
) -> None:
    recorder = Recorder()
    _consumer(stack, "consumer-partial", recorder)
    url, arn, dlq_url = _fifo_with_dlq(stack, "partial", max_receives=2)
    stack.client("lambda").create_event_source_mapping(
        EventSourceArn=arn,
        FunctionName="consumer-partial",
        BatchSize=10,
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )
    sqs = stack.client("sqs")
    for index, body in enumerate(["first", "poison", "third"]):
        sqs.send_message(
            QueueUrl=url, MessageBody=body, MessageGroupId=f"g{index}", MessageDeduplicationId=body
        )

    _wait_for(lambda: _count(sqs, dlq_url) == 1)

    delivered = [body for batch in recorder.batches for body in batch]
    assert delivered.count("first") == 1
    assert delivered.count("third") == 1
    assert delivered.count("poison") == 2  # maxReceiveCount receives, then the DLQ
    assert _count(sqs, url) == 0
    moved = sqs.receive_message(QueueUrl=dlq_url)["Messages"]
    assert [m["Body"] for m in moved] == ["poison"]


def test_batch_size_and_fifo_group_order_are_honoured(stack: LocalStack) -> None:
    recorder = Recorder()
    _consumer(stack, "consumer-order", recorder)
    url, arn, _ = _fifo_with_dlq(stack, "order", max_receives=3)
    stack.client("lambda").create_event_source_mapping(
        EventSourceArn=arn, FunctionName="consumer-order", BatchSize=2
    )
    sqs = stack.client("sqs")
    bodies = [f"m{index}" for index in range(5)]
    for body in bodies:
        sqs.send_message(
            QueueUrl=url, MessageBody=body, MessageGroupId="one", MessageDeduplicationId=body
        )

    _wait_for(lambda: sum(len(batch) for batch in recorder.batches) == 5)

    assert all(len(batch) <= 2 for batch in recorder.batches)
    assert [body for batch in recorder.batches for body in batch] == bodies
    # The poller deletes a batch after the function returns, as Lambda does.
    _wait_for(lambda: _count(sqs, url) == 0)


def test_function_error_returns_the_whole_batch(stack: LocalStack) -> None:
    calls: list[int] = []

    def crash(event: dict[str, Any], context: Any) -> None:
        calls.append(len(event["Records"]))
        raise RuntimeError("boom")

    _consumer(stack, "consumer-crash", crash)
    url, arn, dlq_url = _fifo_with_dlq(stack, "crash", max_receives=1)
    stack.client("lambda").create_event_source_mapping(
        EventSourceArn=arn, FunctionName="consumer-crash", BatchSize=10
    )
    sqs = stack.client("sqs")
    sqs.send_message(QueueUrl=url, MessageBody="x", MessageGroupId="g", MessageDeduplicationId="x")

    _wait_for(lambda: _count(sqs, dlq_url) == 1)

    assert calls == [1]
    assert _count(sqs, url) == 0


# -- concurrency: message groups and the function's limit ------------------------------------

WAIT_S = 15.0


class GroupTracker:
    """Records each invocation's groups and bodies, and how many batches of each group were
    inside the handler at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.inside: dict[str, int] = {}
        self.most_inside: dict[str, int] = {}
        self.delivered: list[tuple[str, str]] = []
        self.receipts: dict[str, str] = {}

    def enter(self, event: dict[str, Any]) -> list[str]:
        groups = sorted({r["attributes"]["MessageGroupId"] for r in event["Records"]})
        with self.lock:
            for record in event["Records"]:
                group = record["attributes"]["MessageGroupId"]
                self.delivered.append((group, record["body"]))
                self.receipts[record["body"]] = record["receiptHandle"]
            for group in groups:
                self.inside[group] = self.inside.get(group, 0) + 1
                self.most_inside[group] = max(self.most_inside.get(group, 0), self.inside[group])
        return groups

    def leave(self, groups: list[str]) -> None:
        with self.lock:
            for group in groups:
                self.inside[group] -= 1

    def bodies(self, group: str) -> list[str]:
        with self.lock:
            return [body for g, body in self.delivered if g == group]


def _send(sqs: Any, url: str, group: str, *bodies: str) -> None:
    for body in bodies:
        sqs.send_message(
            QueueUrl=url, MessageBody=body, MessageGroupId=group, MessageDeduplicationId=body
        )


def test_two_message_groups_are_handled_at_the_same_time(stack: LocalStack) -> None:
    both_inside = threading.Barrier(2, timeout=WAIT_S)
    tracker = GroupTracker()
    met: list[str] = []

    def handler(event: dict[str, Any], context: Any) -> None:
        groups = tracker.enter(event)
        try:
            # Passes only when a batch of the other group is inside too.
            both_inside.wait()
            met.extend(groups)
        finally:
            tracker.leave(groups)

    _consumer(stack, "consumer-groups", handler)
    url, arn, _ = _fifo_with_dlq(stack, "groups", max_receives=3, visibility_timeout=30)
    sqs = stack.client("sqs")
    _send(sqs, url, "a", "a1")
    _send(sqs, url, "b", "b1")
    # One message a batch: the second receive skips group a, whose message is in flight.
    stack.client("lambda").create_event_source_mapping(
        EventSourceArn=arn, FunctionName="consumer-groups", BatchSize=1
    )

    _wait_for(lambda: _count(sqs, url) == 0, timeout=WAIT_S)

    assert sorted(met) == ["a", "b"]
    assert tracker.most_inside == {"a": 1, "b": 1}


def test_a_group_waits_for_its_batch_in_flight_while_other_groups_go_on(
    stack: LocalStack,
) -> None:
    release = threading.Event()
    tracker = GroupTracker()

    def handler(event: dict[str, Any], context: Any) -> None:
        groups = tracker.enter(event)
        try:
            if "slow" in groups and not release.is_set():
                release.wait(WAIT_S)
        finally:
            tracker.leave(groups)

    _consumer(stack, "consumer-slow", handler)
    url, arn, _ = _fifo_with_dlq(stack, "slow", max_receives=3, visibility_timeout=30)
    sqs = stack.client("sqs")
    slow = [f"s{n}" for n in range(4)]
    fast = [f"f{n}" for n in range(4)]
    _send(sqs, url, "slow", *slow)
    _send(sqs, url, "fast", *fast)
    stack.client("lambda").create_event_source_mapping(
        EventSourceArn=arn, FunctionName="consumer-slow", BatchSize=1
    )

    # The slow group's first batch holds its group; the other group is handled meanwhile.
    _wait_for(lambda: tracker.bodies("fast") == fast, timeout=WAIT_S)
    assert tracker.bodies("slow") == ["s0"]
    release.set()
    _wait_for(lambda: _count(sqs, url) == 0, timeout=WAIT_S)

    assert tracker.bodies("slow") == slow
    assert tracker.most_inside == {"slow": 1, "fast": 1}


def test_a_failed_message_blocks_its_group_until_it_is_visible_again(stack: LocalStack) -> None:
    tracker = GroupTracker()

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        groups = tracker.enter(event)
        tracker.leave(groups)
        return {
            "batchItemFailures": [
                {"itemIdentifier": r["messageId"]}
                for r in event["Records"]
                if r["body"] == "poison"
            ]
        }

    _consumer(stack, "consumer-blocked", handler)
    # A long visibility timeout: the failed message comes back only when the test says.
    url, arn, dlq_url = _fifo_with_dlq(stack, "blocked", max_receives=1, visibility_timeout=60)
    sqs = stack.client("sqs")
    _send(sqs, url, "bad", "poison", "behind")
    _send(sqs, url, "good", "g0", "g1", "g2")
    stack.client("lambda").create_event_source_mapping(
        EventSourceArn=arn,
        FunctionName="consumer-blocked",
        BatchSize=1,
        FunctionResponseTypes=["ReportBatchItemFailures"],
    )

    _wait_for(lambda: tracker.bodies("good") == ["g0", "g1", "g2"], timeout=WAIT_S)
    assert tracker.bodies("bad") == ["poison"]
    assert _count(sqs, url) == 2  # the failed message, in flight, and the one behind it

    # Visible again: its one receive spent, the redrive policy moves it to the DLQ on the
    # next receive and its group goes on.
    sqs.change_message_visibility(
        QueueUrl=url, ReceiptHandle=tracker.receipts["poison"], VisibilityTimeout=0
    )
    _wait_for(lambda: tracker.bodies("bad") == ["poison", "behind"], timeout=WAIT_S)
    _wait_for(lambda: _count(sqs, url) == 0, timeout=WAIT_S)
    assert [m["Body"] for m in sqs.receive_message(QueueUrl=dlq_url)["Messages"]] == ["poison"]


def test_the_poller_waits_for_the_functions_concurrency_and_invoke_is_throttled(
    stack: LocalStack,
) -> None:
    release = threading.Event()
    tracker = GroupTracker()

    def handler(event: dict[str, Any], context: Any) -> None:
        groups = tracker.enter(event)
        try:
            if "first" in groups:
                release.wait(WAIT_S)
        finally:
            tracker.leave(groups)

    _consumer(stack, "consumer-limited", handler, reserved_concurrency=1)
    url, arn, _ = _fifo_with_dlq(stack, "limited", max_receives=3, visibility_timeout=30)
    sqs = stack.client("sqs")
    _send(sqs, url, "first", "one")
    stack.client("lambda").create_event_source_mapping(
        EventSourceArn=arn, FunctionName="consumer-limited", BatchSize=1
    )
    _wait_for(lambda: tracker.bodies("first") == ["one"], timeout=WAIT_S)
    _send(sqs, url, "second", "two")

    # Its one environment busy, the function refuses a synchronous invocation...
    assert stack.session is not None
    no_retries = stack.session.client("lambda", config=Config(retries={"total_max_attempts": 1}))
    with pytest.raises(ClientError) as throttled:
        no_retries.invoke(FunctionName="consumer-limited", Payload=b"{}")
    assert throttled.value.response["Error"]["Code"] == "TooManyRequestsException"
    assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    # ... and the poller waits for the environment before it receives: the second group's
    # message stays in the queue, neither received nor invoked.
    _wait_for(lambda: stack.runtime.waiting("consumer-limited") > 0, timeout=WAIT_S)
    assert tracker.bodies("second") == []
    assert stack.runtime.throttles.get("consumer-limited") == 1
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "1"

    release.set()
    _wait_for(lambda: tracker.bodies("second") == ["two"], timeout=WAIT_S)
    _wait_for(lambda: _count(sqs, url) == 0, timeout=WAIT_S)
    assert stack.runtime.throttles.get("consumer-limited") == 1

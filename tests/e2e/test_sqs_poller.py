"""The local poller plays Lambda's SQS event source mapping on a FIFO queue with a DLQ."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest

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


def _consumer(stack: LocalStack, name: str, handler: Any) -> None:
    spec = FunctionSpec(key=name, handler=f"tests.{name}.handler", description="test consumer")
    stack.runtime.register(name, spec, handler=handler)
    stack.client("lambda").create_function(
        FunctionName=name,
        Runtime=PYTHON_RUNTIME,
        Role=f"arn:aws:iam::123456789012:role/{stack.names.prefix}-lambda",
        Handler=spec.handler,
        Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18},
    )


def _fifo_with_dlq(stack: LocalStack, name: str, max_receives: int) -> tuple[str, str, str]:
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
            "VisibilityTimeout": "1",
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

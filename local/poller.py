"""Plays Lambda's SQS event source mapping for the local stack.

Mappings are made the way the cloud makes them, with ``CreateEventSourceMapping`` against
moto; moto would then invoke the function itself, through Docker, on every ``SendMessage``.
``detached_event_sources`` stops that (for DynamoDB streams too: ``local.stream_poller``
plays those), and ``SqsPoller`` does what Lambda's pollers do:
receive up to ``BatchSize`` messages, invoke the function with an SQS event, delete what
succeeded (honouring ``ReportBatchItemFailures``) and leave the rest to reappear after the
visibility timeout, so moto's redrive policy moves them to the dead-letter queue after
``maxReceiveCount`` receives.

Each mapping has its own poll thread, and its batches run concurrently, up to the
mapping's ``ScalingConfig.MaximumConcurrency`` (else ``DEFAULT_MAXIMUM_CONCURRENCY``) and
never above the function's concurrency: the poller reserves an execution environment
before it receives. On a FIFO queue SQS itself keeps a message group's order: a receive
(moto's as SQS's) skips every group that has messages in flight, so successive receives
hand out batches of other groups, and a failed message keeps its group blocked until its
visibility timeout returns it. One batch may hold several groups, as Lambda's may. The
poller also never runs two batches of one group at once, even when a visibility timeout
ran out under a batch still running.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from moto.awslambda.models import EventSourceMapping, LambdaBackend
from moto.dynamodb.models import dynamodb_backends
from moto.sqs.models import Queue, SQSBackend, sqs_backends

from local.background import BackgroundLoop
from local.runtime import LambdaRuntime, function_name_from

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_lambda.type_defs import EventSourceMappingConfigurationTypeDef
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

log = logging.getLogger(__name__)

# Like Lambda, a new or changed mapping takes effect within moments, not instantly.
MAPPINGS_REFRESH_SECONDS = 1.0
# Batches of one mapping in flight at once when its ScalingConfig sets no maximum.
DEFAULT_MAXIMUM_CONCURRENCY = 8
# What one ReceiveMessage returns at most.
RECEIVE_MAX = 10
# How long stopping waits for the batches in flight.
STOP_TIMEOUT_SECONDS = 10.0


@contextmanager
def detached_event_sources() -> Iterator[None]:
    original = LambdaBackend.create_event_source_mapping

    def create_event_source_mapping(
        backend: LambdaBackend, spec: dict[str, Any]
    ) -> EventSourceMapping:
        mapping = original(backend, spec)
        for queue in sqs_backends[backend.account_id][backend.region_name].queues.values():
            queue.lambda_event_source_mappings.pop(mapping.function_arn, None)
        for table in dynamodb_backends[backend.account_id][backend.region_name].tables.values():
            table.lambda_event_source_mappings.pop(mapping.function_arn, None)
        return mapping

    LambdaBackend.create_event_source_mapping = create_event_source_mapping  # type: ignore[method-assign, assignment]
    try:
        yield
    finally:
        LambdaBackend.create_event_source_mapping = original  # type: ignore[method-assign]


@contextmanager
def serialized_queues() -> Iterator[None]:
    """moto's queues are not safe for threads: a delete rebuilds the message list, so a
    message sent meanwhile is lost, and a receive reads the set of in-flight messages that
    a delete or a visibility change alters. With batches handled while the next ones are
    received, each queue's receives, deletes and visibility changes hold the lock its
    sends already take (re-entrant; a long poll waits on it, which lets go)."""
    original_delete = Queue.delete_message
    original_receive = SQSBackend.receive_message
    original_visibility = SQSBackend.change_message_visibility

    def delete_message(queue: Queue, receipt_handle: str) -> None:
        with queue._messages_lock:
            original_delete(queue, receipt_handle)

    def receive_message(backend: SQSBackend, queue_name: str, *args: Any, **kwargs: Any) -> Any:
        with backend.get_queue(queue_name)._messages_lock:
            return original_receive(backend, queue_name, *args, **kwargs)

    def change_message_visibility(
        backend: SQSBackend, queue_name: str, *args: Any, **kwargs: Any
    ) -> None:
        with backend.get_queue(queue_name)._messages_lock:
            original_visibility(backend, queue_name, *args, **kwargs)

    Queue.delete_message = delete_message  # type: ignore[method-assign, assignment]
    SQSBackend.receive_message = receive_message  # type: ignore[method-assign, assignment]
    SQSBackend.change_message_visibility = change_message_visibility  # type: ignore[method-assign, assignment]
    try:
        yield
    finally:
        Queue.delete_message = original_delete  # type: ignore[method-assign]
        SQSBackend.receive_message = original_receive  # type: ignore[method-assign]
        SQSBackend.change_message_visibility = original_visibility  # type: ignore[method-assign]


def enabled_mappings(
    lambda_client: LambdaClient, service: str
) -> list[EventSourceMappingConfigurationTypeDef]:
    """The enabled event source mappings whose source is of ``service`` (``sqs``,
    ``dynamodb``)."""
    mappings: list[EventSourceMappingConfigurationTypeDef] = []
    for page in lambda_client.get_paginator("list_event_source_mappings").paginate():
        mappings.extend(
            mapping
            for mapping in page["EventSourceMappings"]
            if mapping.get("EventSourceArn", "").startswith(f"arn:aws:{service}:")
            and mapping.get("State", "Enabled") == "Enabled"
        )
    return mappings


def queue_url_from_arn(arn: str, endpoint: str) -> str:
    _, _, _, _region, account, name = arn.split(":", 5)
    return f"{endpoint}/{account}/{name}"


def sqs_record(message: MessageTypeDef, source_arn: str, region: str) -> dict[str, Any]:
    """One record of the event Lambda hands an SQS-triggered function."""
    body = message.get("Body", "")
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": body,
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: {
                "stringValue": value.get("StringValue"),
                "binaryValue": value.get("BinaryValue"),
                "stringListValues": list(value.get("StringListValues", [])),
                "binaryListValues": list(value.get("BinaryListValues", [])),
                "dataType": value["DataType"],
            }
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody") or hashlib.md5(body.encode()).hexdigest(),  # noqa: S324 - SQS's own checksum
        "eventSource": "aws:sqs",
        "eventSourceARN": source_arn,
        "awsRegion": region,
    }


def failed_message_ids(response: Any, batch_ids: list[str]) -> set[str]:
    """The messages to keep, per Lambda's rules for ``ReportBatchItemFailures``: a malformed
    answer, or an identifier not in the batch, fails the whole batch."""
    if response is None:
        return set()
    if not isinstance(response, dict):
        return set(batch_ids)
    failures = response.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return set(batch_ids)
    failed: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in batch_ids:
            return set(batch_ids)
        failed.add(identifier)
    return failed


def maximum_concurrency(mapping: EventSourceMappingConfigurationTypeDef, default: int) -> int:
    maximum = mapping.get("ScalingConfig", {}).get("MaximumConcurrency")
    return int(maximum) if maximum else default


def message_group(message: MessageTypeDef) -> str | None:
    return message.get("Attributes", {}).get("MessageGroupId")


class SqsPoller:
    """Reads the enabled SQS mappings every ``MAPPINGS_REFRESH_SECONDS`` and keeps one
    ``MappingPoller`` running for each."""

    def __init__(
        self,
        runtime: LambdaRuntime,
        lambda_client: LambdaClient,
        sqs_client: SQSClient,
        *,
        endpoint: str,
        region: str,
        interval_seconds: float = 0.1,
        default_maximum_concurrency: int = DEFAULT_MAXIMUM_CONCURRENCY,
    ) -> None:
        self._runtime = runtime
        self._lambda = lambda_client
        self._sqs = sqs_client
        self._endpoint = endpoint
        self._region = region
        self._interval = interval_seconds
        self._default_maximum = default_maximum_concurrency
        self._loop = BackgroundLoop("sqs-poller", self.refresh, MAPPINGS_REFRESH_SECONDS)
        self._pollers: dict[str, MappingPoller] = {}
        self._lock = threading.Lock()

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
        with self._lock:
            pollers, self._pollers = list(self._pollers.values()), {}
        for poller in pollers:
            poller.stop()

    def mappings(self) -> list[EventSourceMappingConfigurationTypeDef]:
        return enabled_mappings(self._lambda, "sqs")

    def refresh(self) -> bool:
        """Starts a poller for each new mapping, hands changed settings to the running
        ones and stops those of mappings deleted or disabled. Never busy: the loop reads
        the mappings again after ``MAPPINGS_REFRESH_SECONDS``."""
        mappings = {m["UUID"]: m for m in self.mappings()}
        with self._lock:
            gone = [self._pollers.pop(u) for u in list(self._pollers) if u not in mappings]
            for uuid, mapping in mappings.items():
                poller = self._pollers.get(uuid)
                if poller is not None:
                    poller.mapping = mapping
                    continue
                poller = MappingPoller(
                    self._runtime,
                    self._sqs,
                    mapping,
                    endpoint=self._endpoint,
                    region=self._region,
                    interval_seconds=self._interval,
                    default_maximum_concurrency=self._default_maximum,
                )
                self._pollers[uuid] = poller
                poller.start()
        for poller in gone:
            poller.stop()
        return False


class MappingPoller:
    """One mapping's poll thread; each batch it receives runs in a thread of its own."""

    def __init__(
        self,
        runtime: LambdaRuntime,
        sqs_client: SQSClient,
        mapping: EventSourceMappingConfigurationTypeDef,
        *,
        endpoint: str,
        region: str,
        interval_seconds: float = 0.1,
        default_maximum_concurrency: int = DEFAULT_MAXIMUM_CONCURRENCY,
    ) -> None:
        self._runtime = runtime
        self._sqs = sqs_client
        # Replaced whole when the mapping changes: a batch reads the one it started with.
        self.mapping = mapping
        self._endpoint = endpoint
        self._region = region
        self._interval = interval_seconds
        self._default_maximum = default_maximum_concurrency
        self._loop = BackgroundLoop(
            f"sqs-poller-{mapping['UUID'][:8]}", self.poll_once, interval_seconds
        )
        # Guards the figures below; notified whenever a batch ends.
        self._changed = threading.Condition()
        self._in_flight = 0
        self._groups: set[str] = set()

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()
        with self._changed:
            self._changed.wait_for(lambda: self._in_flight == 0, timeout=STOP_TIMEOUT_SECONDS)

    def in_flight(self) -> int:
        with self._changed:
            return self._in_flight

    def poll_once(self) -> bool:
        """One receive, once a batch may start; True when it did (or should look again at
        once: a batch or an execution environment may free up any moment)."""
        mapping = self.mapping
        function_name = function_name_from(mapping["FunctionArn"])
        if not self._runtime.knows(function_name):
            return False
        maximum = maximum_concurrency(mapping, self._default_maximum)
        with self._changed:
            if not self._changed.wait_for(
                lambda: self._in_flight < maximum, timeout=self._interval
            ):
                return True
        # Throttled: the mapping waits for the function's concurrency, it does not invoke.
        if not self._runtime.reserve(function_name, timeout=self._interval):
            return True
        try:
            messages = self._receive(mapping)
        except BaseException:
            self._runtime.release(function_name)
            raise
        if not messages:
            self._runtime.release(function_name)
            return False
        with self._changed:
            self._in_flight += 1
        thread = threading.Thread(
            target=self._run_batch,
            args=(mapping, function_name, messages),
            name=f"sqs-batch-{function_name}",
            daemon=True,
        )
        try:
            thread.start()
        except BaseException:
            self._batch_ended(set())
            self._runtime.release(function_name)
            raise
        return True

    def _receive(self, mapping: EventSourceMappingConfigurationTypeDef) -> list[MessageTypeDef]:
        return self._sqs.receive_message(
            QueueUrl=queue_url_from_arn(mapping["EventSourceArn"], self._endpoint),
            MaxNumberOfMessages=min(RECEIVE_MAX, mapping.get("BatchSize", RECEIVE_MAX)),
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])

    def _run_batch(
        self,
        mapping: EventSourceMappingConfigurationTypeDef,
        function_name: str,
        messages: list[MessageTypeDef],
    ) -> None:
        groups = {g for g in map(message_group, messages) if g is not None}
        invoked = False
        try:
            with self._changed:
                self._changed.wait_for(lambda: not groups & self._groups)
                self._groups |= groups
            invoked = True
            self._handle(mapping, function_name, messages)
        except Exception:
            log.exception("%s: a batch of %d messages failed", function_name, len(messages))
        finally:
            if not invoked:
                self._runtime.release(function_name)
            self._batch_ended(groups)

    def _batch_ended(self, groups: set[str]) -> None:
        with self._changed:
            self._groups -= groups
            self._in_flight -= 1
            self._changed.notify_all()

    def _handle(
        self,
        mapping: EventSourceMappingConfigurationTypeDef,
        function_name: str,
        messages: list[MessageTypeDef],
    ) -> None:
        source_arn = mapping["EventSourceArn"]
        queue_url = queue_url_from_arn(source_arn, self._endpoint)
        event = {"Records": [sqs_record(m, source_arn, self._region) for m in messages]}
        result = self._runtime.invoke(function_name, event, reserved=True)
        ids = [m["MessageId"] for m in messages]
        if result.function_error:
            failed = set(ids)
        elif "ReportBatchItemFailures" in mapping.get("FunctionResponseTypes", []):
            failed = failed_message_ids(result.json(), ids)
        else:
            failed = set()
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), RECEIVE_MAX):
            self._sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": m["ReceiptHandle"]}
                    for index, m in enumerate(done[start : start + RECEIVE_MAX])
                ],
            )
        if failed:
            log.info("%s: %d of %d messages failed", function_name, len(failed), len(ids))


__all__ = [
    "DEFAULT_MAXIMUM_CONCURRENCY",
    "MAPPINGS_REFRESH_SECONDS",
    "MappingPoller",
    "SqsPoller",
    "detached_event_sources",
    "enabled_mappings",
    "failed_message_ids",
    "queue_url_from_arn",
    "serialized_queues",
    "sqs_record",
]

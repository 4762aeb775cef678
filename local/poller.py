"""Plays Lambda's SQS event source mapping for the local stack.

Mappings are made the way the cloud makes them, with ``CreateEventSourceMapping`` against
moto; moto would then invoke the function itself, through Docker, on every ``SendMessage``.
``detached_event_sources`` stops that (for DynamoDB streams too: ``local.stream_poller``
plays those), and ``SqsPoller`` does what Lambda's pollers do:
receive up to ``BatchSize`` messages, invoke the function with an SQS event, delete what
succeeded (honouring ``ReportBatchItemFailures``) and leave the rest to reappear after the
visibility timeout, so moto's redrive policy moves them to the dead-letter queue after
``maxReceiveCount`` receives.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from moto.awslambda.models import EventSourceMapping, LambdaBackend
from moto.dynamodb.models import dynamodb_backends
from moto.sqs.models import sqs_backends

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


class SqsPoller:
    def __init__(
        self,
        runtime: LambdaRuntime,
        lambda_client: LambdaClient,
        sqs_client: SQSClient,
        *,
        endpoint: str,
        region: str,
        interval_seconds: float = 0.1,
    ) -> None:
        self._runtime = runtime
        self._lambda = lambda_client
        self._sqs = sqs_client
        self._endpoint = endpoint
        self._region = region
        self._loop = BackgroundLoop("sqs-poller", self.poll_once, interval_seconds)
        self._mappings: list[EventSourceMappingConfigurationTypeDef] = []
        self._mappings_read_at = -MAPPINGS_REFRESH_SECONDS

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def mappings(self) -> list[EventSourceMappingConfigurationTypeDef]:
        return enabled_mappings(self._lambda, "sqs")

    def poll_once(self) -> bool:
        """One receive per mapping; True when any messages were handled."""
        if time.monotonic() - self._mappings_read_at >= MAPPINGS_REFRESH_SECONDS:
            self._mappings = self.mappings()
            self._mappings_read_at = time.monotonic()
        handled = False
        for mapping in self._mappings:
            handled |= self._poll_mapping(mapping)
        return handled

    def _poll_mapping(self, mapping: EventSourceMappingConfigurationTypeDef) -> bool:
        source_arn = mapping["EventSourceArn"]
        function_name = function_name_from(mapping["FunctionArn"])
        if not self._runtime.knows(function_name):
            return False
        queue_url = queue_url_from_arn(source_arn, self._endpoint)
        messages = self._sqs.receive_message(
            QueueUrl=queue_url,
            MaxNumberOfMessages=min(10, mapping.get("BatchSize", 10)),
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not messages:
            return False
        event = {"Records": [sqs_record(m, source_arn, self._region) for m in messages]}
        result = self._runtime.invoke(function_name, event)
        ids = [m["MessageId"] for m in messages]
        if result.function_error:
            failed = set(ids)
        elif "ReportBatchItemFailures" in mapping.get("FunctionResponseTypes", []):
            failed = failed_message_ids(result.json(), ids)
        else:
            failed = set()
        done = [m for m in messages if m["MessageId"] not in failed]
        for start in range(0, len(done), 10):
            self._sqs.delete_message_batch(
                QueueUrl=queue_url,
                Entries=[
                    {"Id": str(index), "ReceiptHandle": m["ReceiptHandle"]}
                    for index, m in enumerate(done[start : start + 10])
                ],
            )
        if failed:
            log.info("%s: %d of %d messages failed", function_name, len(failed), len(ids))
        return True

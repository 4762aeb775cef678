"""Plays Lambda's DynamoDB Streams event source mapping for the local stack.

Mappings are created the way the cloud's are (``CreateEventSourceMapping`` with the stream's
ARN, filter criteria, retries and an on-failure destination, see ``local.provision``);
``local.poller.detached_event_sources`` keeps moto from invoking the function itself, and
``StreamPoller`` does what Lambda's stream pollers do: read each shard from the mapping's
starting position, drop records the filter criteria do not match, invoke the function with
the event Lambda sends (``Records[].eventName``, ``dynamodb.Keys/NewImage/OldImage/
SequenceNumber/StreamViewType``, ``eventSourceARN``) and, on a failure, retry from the first
failed record (``ReportBatchItemFailures``) up to ``MaximumRetryAttempts`` times before
reporting it to the on-failure destination and moving on. Bisection is not played step by
step, only its outcome: the record that keeps failing is the one given up, not the records
after it in its batch.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from local.background import BackgroundLoop
from local.poller import (
    MAPPINGS_REFRESH_SECONDS,
    enabled_mappings,
    failed_message_ids,
    queue_url_from_arn,
)
from local.runtime import InvocationResult, LambdaRuntime, function_name_from

if TYPE_CHECKING:
    from mypy_boto3_dynamodbstreams import DynamoDBStreamsClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_lambda.type_defs import EventSourceMappingConfigurationTypeDef
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)


# -- filter criteria ------------------------------------------------------------------


def matches(pattern: Mapping[str, Any], record: Mapping[str, Any]) -> bool:
    """Lambda's event filtering for the patterns Merge Assist uses: nested objects, and
    lists of exact values of which the record's value must be one. Anything else raises,
    so a pattern the local stack cannot judge is never silently let through."""
    for name, rule in pattern.items():
        if name not in record:
            return False
        value = record[name]
        if isinstance(rule, Mapping):
            if not isinstance(value, Mapping) or not matches(rule, value):
                return False
        elif isinstance(rule, list):
            if any(isinstance(allowed, Mapping | list) for allowed in rule):
                raise ValueError(f"filter rule {rule!r} is not supported by the local stack")
            values = value if isinstance(value, list) else [value]
            if not any(candidate in rule for candidate in values):
                return False
        else:
            raise ValueError(f"filter rule {rule!r} must be an object or a list")
    return True


def filter_patterns(mapping: EventSourceMappingConfigurationTypeDef) -> list[dict[str, Any]]:
    filters = mapping.get("FilterCriteria", {}).get("Filters", [])
    return [json.loads(f["Pattern"]) for f in filters if "Pattern" in f]


# -- the event ------------------------------------------------------------------------


def _json_safe(value: Any) -> Any:
    """Attribute values as Lambda's event has them: binary data in base64."""
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode()
    if isinstance(value, Mapping):
        return {name: _json_safe(item) for name, item in value.items()}
    if isinstance(value, list | tuple | set):
        return [_json_safe(item) for item in value]
    return value


def stream_record(record: Mapping[str, Any], source_arn: str) -> dict[str, Any]:
    """One record of the event Lambda hands a DynamoDB Streams-triggered function."""
    dynamodb = dict(record["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
    return {
        "eventID": record["eventID"],
        "eventName": record["eventName"],
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": record.get("awsRegion"),
        "dynamodb": _json_safe(dynamodb),
        "eventSourceARN": source_arn,
    }


def first_failure(result: InvocationResult, sequence_numbers: list[str], reported: bool) -> int:
    """Where the batch must be retried from (its length when it all succeeded): at the
    lowest failed sequence number, by the same rules as for SQS (``failed_message_ids``)."""
    if result.function_error:
        failed = set(sequence_numbers)
    elif reported:
        failed = failed_message_ids(result.json(), sequence_numbers)
    else:
        failed = set()
    return min((sequence_numbers.index(s) for s in failed), default=len(sequence_numbers))


# -- the poller -----------------------------------------------------------------------


@dataclass
class _Shard:
    """One shard of one mapping's stream, and the records read but not yet done."""

    mapping: EventSourceMappingConfigurationTypeDef
    shard_id: str
    iterator: str | None
    pending: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 0


class StreamPoller:
    def __init__(
        self,
        runtime: LambdaRuntime,
        lambda_client: LambdaClient,
        streams_client: DynamoDBStreamsClient,
        sqs_client: SQSClient,
        *,
        endpoint: str,
        interval_seconds: float = 0.1,
    ) -> None:
        self._runtime = runtime
        self._lambda = lambda_client
        self._streams = streams_client
        self._sqs = sqs_client
        self._endpoint = endpoint
        self._loop = BackgroundLoop("stream-poller", self.poll_once, interval_seconds)
        self._shards: dict[tuple[str, str], _Shard] = {}
        self._mappings_read_at = -MAPPINGS_REFRESH_SECONDS

    def start(self) -> None:
        # Positions are taken now, so that whatever changes once start returns is seen
        # even by a LATEST mapping.
        self.refresh()
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def mappings(self) -> list[EventSourceMappingConfigurationTypeDef]:
        return enabled_mappings(self._lambda, "dynamodb")

    def refresh(self) -> None:
        mappings = {mapping["UUID"]: mapping for mapping in self.mappings()}
        for key in [key for key in self._shards if key[0] not in mappings]:
            del self._shards[key]
        for uuid_, mapping in mappings.items():
            stream_arn = mapping["EventSourceArn"]
            shards = self._streams.describe_stream(StreamArn=stream_arn)["StreamDescription"]
            for shard in shards.get("Shards", []):
                key = (uuid_, shard["ShardId"])
                if key in self._shards:
                    self._shards[key].mapping = mapping
                    continue
                iterator = self._streams.get_shard_iterator(
                    StreamArn=stream_arn,
                    ShardId=shard["ShardId"],
                    ShardIteratorType=mapping.get("StartingPosition", "LATEST"),
                )["ShardIterator"]
                self._shards[key] = _Shard(mapping, shard["ShardId"], iterator)
        self._mappings_read_at = time.monotonic()

    def poll_once(self) -> bool:
        """One batch per shard; True when any records were read or handled."""
        if time.monotonic() - self._mappings_read_at >= MAPPINGS_REFRESH_SECONDS:
            self.refresh()
        busy = False
        for shard in list(self._shards.values()):
            busy |= self._poll_shard(shard)
        return busy

    def _poll_shard(self, shard: _Shard) -> bool:
        mapping = shard.mapping
        function_name = function_name_from(mapping["FunctionArn"])
        if not self._runtime.knows(function_name):
            return False
        batch_size = mapping.get("BatchSize", 100)
        read = False
        if not shard.pending and shard.iterator is not None:
            response = self._streams.get_records(ShardIterator=shard.iterator, Limit=batch_size)
            shard.iterator = response.get("NextShardIterator")
            records = response.get("Records", [])
            patterns = filter_patterns(mapping)
            source_arn = mapping["EventSourceArn"]
            shard.pending = [
                event_record
                for event_record in (stream_record(r, source_arn) for r in records)
                if not patterns or any(matches(pattern, event_record) for pattern in patterns)
            ]
            read = bool(records)
        if not shard.pending:
            return read
        batch = shard.pending[:batch_size]
        result = self._runtime.invoke(function_name, {"Records": batch})
        sequence_numbers = [record["dynamodb"]["SequenceNumber"] for record in batch]
        reported = "ReportBatchItemFailures" in mapping.get("FunctionResponseTypes", [])
        done = first_failure(result, sequence_numbers, reported)
        shard.pending = shard.pending[done:]
        if done == len(batch):
            shard.attempts = 0
            return True
        shard.attempts += 1
        if shard.attempts > mapping.get("MaximumRetryAttempts", -1) >= 0:
            # Where bisection ends up: only the record that keeps failing is given up.
            self._report(shard, batch[done : done + 1], result)
            shard.pending = shard.pending[1:]
            shard.attempts = 0
        return True

    def _report(
        self, shard: _Shard, failed: list[dict[str, Any]], result: InvocationResult
    ) -> None:
        """What Lambda sends the on-failure destination: where the batch was, not its records."""
        mapping = shard.mapping
        function_name = function_name_from(mapping["FunctionArn"])
        log.warning(
            "%s: gave up on %d stream records after %d attempts",
            function_name,
            len(failed),
            shard.attempts,
        )
        destination = mapping.get("DestinationConfig", {}).get("OnFailure", {}).get("Destination")
        if not destination or not destination.startswith("arn:aws:sqs:"):
            return
        now = datetime.now(UTC).isoformat()
        record = {
            "requestContext": {
                "requestId": str(uuid.uuid4()),
                "functionArn": mapping["FunctionArn"],
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": shard.attempts,
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": result.function_error or "",
            },
            "version": "1.0",
            "timestamp": now,
            "DDBStreamBatchInfo": {
                "shardId": shard.shard_id,
                "startSequenceNumber": failed[0]["dynamodb"]["SequenceNumber"],
                "endSequenceNumber": failed[-1]["dynamodb"]["SequenceNumber"],
                "approximateArrivalOfFirstRecord": now,
                "approximateArrivalOfLastRecord": now,
                "batchSize": len(failed),
                "streamArn": mapping["EventSourceArn"],
            },
        }
        self._sqs.send_message(
            QueueUrl=queue_url_from_arn(destination, self._endpoint), MessageBody=json.dumps(record)
        )

"""Consumes the state table's change stream with ``merge_assist.live.feed``: each record's
event-log entries are written (once, whatever the retries) and its messages are posted to
the dashboard's open WebSocket connections allowed to see the project. A record that fails
is reported alone (``batchItemFailures``); Lambda retries from it, and the entries already
written and the messages already sent do no harm a second time."""

from __future__ import annotations

from functools import partial
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch import (
    BatchProcessor,
    EventType,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.updates import wiring
from merge_assist.live.feed import LiveFeed

logger = Logger()
tracer = Tracer()
processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


@tracer.capture_method
def record_handler(record: DynamoDBRecord, *, feed: LiveFeed) -> None:
    stream = record.dynamodb
    if stream is None:
        return
    delivery = feed.handle(stream.old_image, stream.new_image)
    if delivery.messages or delivery.entries_written:
        logger.info(
            "record handled",
            event_name=record.raw_event.get("eventName"),
            sequence_number=stream.sequence_number,
            entries_written=delivery.entries_written,
            messages=delivery.messages,
            sent=delivery.sent,
            gone=delivery.gone,
            expired=delivery.expired,
            failed=delivery.failed,
        )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event,
        record_handler=partial(record_handler, feed=wiring.feed()),
        processor=processor,
        context=context,
    )

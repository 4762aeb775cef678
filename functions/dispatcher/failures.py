"""Hands failed messages back to SQS as ``merge_assist.queue.redelivery`` decides: soon, or parked
in the project's dead-letter queue, so one bad event never holds its group for long."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.batch.types import (
    PartialItemFailureResponse,
    PartialItemFailures,
)
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from merge_assist.adapters.project_queues import park, redeliver_after
from merge_assist.platform.events import QueueEvent
from merge_assist.platform.metrics import Metric
from merge_assist.platform.ports import Meter
from merge_assist.platform.settings import get_settings
from merge_assist.queue.redelivery import Park, Redeliver, after_failure, behind

logger = Logger()


def hand_back(
    event: dict[str, Any],
    response: PartialItemFailureResponse,
    raised: set[str],
    meter: Meter,
) -> PartialItemFailureResponse:
    """``raised``: the ids of the messages whose handling raised (the others in
    ``response`` were skipped behind one of them). What is left for SQS to retry."""
    failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
    records = [SQSRecord(raw) for raw in event.get("Records", [])]
    retry: list[PartialItemFailures] = []
    # Records come in their groups' order, so the one that raised precedes those skipped.
    ahead: dict[str, Redeliver | Park] = {}
    for record in records:
        if record.message_id not in failed:
            continue
        group = record.attributes.message_group_id or ""
        decision: Redeliver | Park
        if record.message_id in raised or group not in ahead:
            decision = after_failure(int(record.attributes.approximate_receive_count or 1))
            ahead.setdefault(group, decision)
        else:
            decision = behind(ahead[group])
        if isinstance(decision, Park) and _parked(record):
            meter.record(Metric.EVENTS_PARKED)
            continue
        retry.append({"itemIdentifier": record.message_id})
        if isinstance(decision, Redeliver):
            redeliver_after(record.event_source_arn, record.receipt_handle, decision.after_seconds)
    return {"batchItemFailures": retry}


def all_failed(event: dict[str, Any]) -> PartialItemFailureResponse:
    return {
        "batchItemFailures": [
            {"itemIdentifier": raw["messageId"]} for raw in event.get("Records", [])
        ]
    }


def _parked(record: SQSRecord) -> bool:
    try:
        event = QueueEvent.model_validate_json(record.body)
        project_id = event.project_id
    except ValueError:
        # Unreadable: the queue's own redrive will take it to the dead-letter queue.
        return False
    park(
        get_settings().names,
        project_id,
        record.body,
        record.attributes.message_group_id or event.message_group_id,
        record.attributes.message_deduplication_id or event.idempotency_key,
    )
    logger.warning(
        "event parked in the dead-letter queue",
        project_id=project_id,
        kind=event.kind,
        merge_request=event.mr_iid,
        idempotency_key=event.idempotency_key,
        receive_count=record.attributes.approximate_receive_count,
    )
    return True

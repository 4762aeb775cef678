"""The per-project SQS FIFO queues the receiver and the watcher send normalized events to."""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import ClientError

from merge_assist.adapters.aws import register_cache
from merge_assist.platform.caching import built_once
from merge_assist.platform.errors import NotFoundError
from merge_assist.platform.events import QueueEvent
from merge_assist.platform.resources import ResourceNames

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


@built_once
def sqs_client() -> SQSClient:
    return boto3.client("sqs")


@lru_cache(maxsize=1024)
def queue_url(queue_name: str) -> str:
    try:
        return sqs_client().get_queue_url(QueueName=queue_name)["QueueUrl"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") in (
            "AWS.SimpleQueueService.NonExistentQueue",
            "QueueDoesNotExist",
        ):
            raise NotFoundError(f"queue {queue_name} does not exist") from error
        raise


def send_event(names: ResourceNames, event: QueueEvent) -> str:
    """Put ``event`` on its project's queue; returns the SQS message id. SQS drops a second
    message with the same deduplication id for five minutes, the receiver's idempotency
    record covers the time after."""
    response = sqs_client().send_message(
        QueueUrl=queue_url(names.project_queue(event.project_id)),
        MessageBody=event.model_dump_json(exclude_none=True),
        MessageGroupId=event.message_group_id,
        MessageDeduplicationId=event.idempotency_key,
    )
    return response["MessageId"]


def _name_of(queue_arn: str) -> str:
    return queue_arn.rsplit(":", 1)[-1]


def redeliver_after(queue_arn: str, receipt_handle: str, seconds: int) -> None:
    """The received message comes back after ``seconds`` instead of the queue's visibility
    timeout."""
    sqs_client().change_message_visibility(
        QueueUrl=queue_url(_name_of(queue_arn)),
        ReceiptHandle=receipt_handle,
        VisibilityTimeout=seconds,
    )


def park(
    names: ResourceNames, project_id: int, body: str, group_id: str, deduplication_id: str
) -> None:
    """Into the project's dead-letter queue as SQS's redrive would put it (same group and
    deduplication id, so ``merge-assist dlq redrive`` sends it back as it was)."""
    sqs_client().send_message(
        QueueUrl=queue_url(names.project_dead_letter_queue(project_id)),
        MessageBody=body,
        MessageGroupId=group_id,
        MessageDeduplicationId=deduplication_id,
    )


def clear_queue_cache() -> None:
    sqs_client.cache_clear()
    queue_url.cache_clear()


register_cache(clear_queue_cache)

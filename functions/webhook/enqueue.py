"""Queue a normalized event exactly once per idempotency key.

SQS FIFO drops a repeated deduplication id for five minutes only; GitLab's "Resend" can
come days later, so Powertools idempotency keeps a record per key in the table for
``IDEMPOTENCY_DAYS``. The record holds a hash of the body too: a key that comes back with
another body is not a redelivery (GitLab resends what it sent), so that body is queued
under a key of its own instead of being dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import IdempotencyValidationError
from aws_lambda_powertools.utilities.typing import LambdaContext

from merge_assist.adapters.aws import register_cache
from merge_assist.adapters.project_queues import send_event
from merge_assist.platform.caching import built_once
from merge_assist.platform.events import QueueEvent
from merge_assist.platform.intake import variant_key
from merge_assist.platform.resources import TABLE
from merge_assist.platform.settings import get_settings

IDEMPOTENCY_DAYS = 7


@dataclass(frozen=True)
class QueueResult:
    message_id: str
    duplicate: bool
    # The key had been used with another body; this one went on the queue as ``key``.
    conflicting: bool = False
    key: str = ""


@built_once
def _idempotency_config() -> IdempotencyConfig:
    return IdempotencyConfig(
        event_key_jmespath="key",
        payload_validation_jmespath="body_sha256",
        expires_after_seconds=IDEMPOTENCY_DAYS * 24 * 3600,
        raise_on_no_idempotency_key=True,
    )


def register_context(context: LambdaContext) -> None:
    """Lets an in-progress record expire with the invocation, so a crashed delivery does
    not block its redelivery for long."""
    _idempotency_config().register_lambda_context(context)


@built_once
def _enqueue_function() -> Any:
    settings = get_settings()
    persistence = DynamoDBPersistenceLayer(
        table_name=settings.resolved_table_name,
        key_attr=TABLE.partition_key,
        sort_key_attr=TABLE.sort_key,
        static_pk_value="IDEMPOTENCY#webhook",
        expiry_attr=TABLE.ttl_attribute,
    )
    config = _idempotency_config()

    @idempotent_function(  # type: ignore[untyped-decorator]  # Powertools leaves it untyped
        data_keyword_argument="delivery", persistence_store=persistence, config=config
    )
    def enqueue(*, delivery: dict[str, Any], sent: list[bool]) -> dict[str, str]:
        sent.append(True)
        message_id = send_event(settings.names, QueueEvent.model_validate(delivery["event"]))
        return {"message_id": message_id}

    return enqueue


def _enqueue(event: QueueEvent, body_sha256: str) -> QueueResult:
    sent: list[bool] = []
    delivery = {
        "key": event.idempotency_key,
        "body_sha256": body_sha256,
        "event": event.model_dump(mode="json"),
    }
    result = _enqueue_function()(delivery=delivery, sent=sent)
    return QueueResult(
        message_id=result["message_id"], duplicate=not sent, key=event.idempotency_key
    )


def enqueue_once(event: QueueEvent, body_sha256: str) -> QueueResult:
    """Raises Powertools' ``IdempotencyAlreadyInProgressError`` while the same key is being
    queued by a concurrent delivery."""
    try:
        return _enqueue(event, body_sha256)
    except IdempotencyValidationError:
        variant = event.model_copy(
            update={"idempotency_key": variant_key(event.idempotency_key, body_sha256)}
        )
        result = _enqueue(variant, body_sha256)
        return QueueResult(
            message_id=result.message_id,
            duplicate=result.duplicate,
            conflicting=True,
            key=result.key,
        )


def clear_enqueue_cache() -> None:
    _enqueue_function.cache_clear()
    _idempotency_config.cache_clear()


register_cache(clear_enqueue_cache)

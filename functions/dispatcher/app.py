"""Consumes a project's FIFO queue with ``merge_assist.queue.dispatch``: events are
recorded on the state of the MR they concern, MRs the bot is asked to merge are triaged
(queued or not ready, and the author told) once per receive, echoes of the bot's own work
are only recorded, and a finished pipeline resumes the workflow execution waiting for it.
Transient failures are retried within the invocation; a message that still fails is
reported alone (``batchItemFailures``), comes back within seconds, and is parked in the
dead-letter queue after a few receives (``merge_assist.queue.redelivery``); other message
groups go on meanwhile."""

from __future__ import annotations

from functools import partial
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch import (
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.dispatcher import wiring
from functions.dispatcher.failures import all_failed, hand_back
from merge_assist.platform.events import QueueEvent
from merge_assist.platform.retrying import retry
from merge_assist.queue.dispatch import Dispatcher, judged_later
from merge_assist.queue.redelivery import (
    ATTEMPT_BASE_SECONDS,
    ATTEMPT_CAP_SECONDS,
    ATTEMPTS_IN_INVOCATION,
    worth_retrying,
)

logger = Logger()
tracer = Tracer()
metrics = wiring.metrics
processor = SqsFifoPartialProcessor(skip_group_on_error=True)


@tracer.capture_method
def record_handler(
    record: SQSRecord, *, dispatcher: Dispatcher, raised: set[str], later: set[str]
) -> None:
    try:
        event = QueueEvent.model_validate_json(record.body)
        result = retry(
            partial(dispatcher.handle, event, judged_later=record.message_id in later),
            should_retry=worth_retrying,
            attempts=ATTEMPTS_IN_INVOCATION,
            base=ATTEMPT_BASE_SECONDS,
            cap=ATTEMPT_CAP_SECONDS,
        )
    except Exception:
        raised.add(record.message_id)
        raise
    logger.info(
        "event dispatched",
        project_id=event.project_id,
        kind=event.kind,
        merge_request=event.mr_iid,
        idempotency_key=event.idempotency_key,
        status=result.state.status if result.state else None,
        told=result.told,
        resumed_wait=result.resumed_wait,
        judged=result.judged,
    )


def _judged_later(event: dict[str, Any], bot_user_id: int) -> set[str]:
    """The messages of this receive whose MR a later message judges."""
    records = event.get("Records", [])
    parsed: list[QueueEvent | None] = []
    for raw in records:
        try:
            parsed.append(QueueEvent.model_validate_json(raw.get("body", "")))
        except ValueError:
            parsed.append(None)  # its own handling reports it
    flags = judged_later(parsed, bot_user_id)
    return {raw["messageId"] for raw, flag in zip(records, flags, strict=True) if flag}


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    raised: set[str] = set()
    try:
        # A cold container asks GitLab who the bot is: GitLab may be struggling too.
        dispatcher = retry(
            wiring.dispatcher,
            should_retry=worth_retrying,
            attempts=ATTEMPTS_IN_INVOCATION,
            base=ATTEMPT_BASE_SECONDS,
            cap=ATTEMPT_CAP_SECONDS,
        )
    except Exception:
        logger.exception("no dispatcher: every message is handed back")
        return hand_back(event, all_failed(event), raised, wiring.meter)
    try:
        response = process_partial_response(
            event=event,
            record_handler=partial(
                record_handler,
                dispatcher=dispatcher,
                raised=raised,
                later=_judged_later(event, dispatcher.bot_user_id),
            ),
            processor=processor,
            context=context,
        )
    except BatchProcessingError:
        # Every record failed: Powertools raises rather than report them, and a raised
        # invocation would bring them all back only after the visibility timeout.
        response = all_failed(event)
    return hand_back(event, response, raised, wiring.meter)

"""Consumes a project's FIFO queue: each normalized event is recorded on the state of the MR
it concerns, and a finished pipeline resumes the workflow execution waiting for it. A
message that fails is reported alone (``batchItemFailures``) and only its FIFO group waits
for it; other target branches go on."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch import (
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from merge_assist.adapters.aws import store_from_settings
from merge_assist.adapters.executions import StepFunctionsExecutions
from merge_assist.events import QueueEvent
from merge_assist.pipeline_wait import resume_waiting
from merge_assist.recording import record_event

logger = Logger()
tracer = Tracer()
processor = SqsFifoPartialProcessor(skip_group_on_error=True)


@tracer.capture_method
def record_handler(record: SQSRecord) -> None:
    event = QueueEvent.model_validate_json(record.body)
    store = store_from_settings()
    state = record_event(store, event)
    resumed = resume_waiting(store, StepFunctionsExecutions(), event)
    logger.info(
        "event recorded",
        project_id=event.project_id,
        kind=event.kind,
        merge_request=event.mr_iid,
        idempotency_key=event.idempotency_key,
        tracked=state is not None,
        resumed_wait=resumed,
    )


@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    return process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )

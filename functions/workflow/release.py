"""Step ``ReleaseBatch``: the end of every execution (``merge_assist.queue.workflow.release``)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.workflow.wiring import metrics, workflow_context
from merge_assist.queue.workflow.context import WorkflowInput
from merge_assist.queue.workflow.release import release

logger = Logger()
tracer = Tracer()


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context
@event_parser(model=WorkflowInput)
def handler(event: WorkflowInput, context: LambdaContext) -> dict[str, Any]:
    released = release(workflow_context(), event)
    logger.info(
        "batch released",
        batch_id=event.batch_id,
        failed=event.failed,
        state=released.state,
        next_batch=released.next_batch,
    )
    return released.model_dump(mode="json")

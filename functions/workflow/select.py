"""Step ``SelectBatch``: which MRs the next batch takes (``merge_assist.queue.workflow.select``)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.workflow.wiring import metrics, workflow_context
from merge_assist.queue.workflow.context import WorkflowInput
from merge_assist.queue.workflow.select import select

logger = Logger()
tracer = Tracer()


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context
@event_parser(model=WorkflowInput)
def handler(event: WorkflowInput, context: LambdaContext) -> dict[str, Any]:
    selection = select(workflow_context(), event)
    logger.info(
        "batch selected",
        project_id=event.project_id,
        target_branch=event.target_branch,
        batch_id=event.batch_id,
        merge_requests=selection.merge_requests,
    )
    return selection.model_dump(mode="json")

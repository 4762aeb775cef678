"""Step ``BuildBatch`` (``merge_assist.queue.workflow.build``)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.workflow.wiring import metrics, workflow_context
from merge_assist.queue.workflow.build import BuildInput, build

logger = Logger()
tracer = Tracer()


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context
@event_parser(model=BuildInput)
def handler(event: BuildInput, context: LambdaContext) -> dict[str, Any]:
    result = build(workflow_context(), event)
    logger.info("build done", batch_id=event.batch_id, next=result.next, sha=result.sha)
    return result.model_dump(mode="json")

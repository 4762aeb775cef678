"""Step ``ReachVerdict`` (``merge_assist.queue.workflow.verdict``)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.workflow.wiring import metrics, workflow_context
from merge_assist.queue.workflow.verdict import VerdictInput, reach_verdict

logger = Logger()
tracer = Tracer()


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context
@event_parser(model=VerdictInput)
def handler(event: VerdictInput, context: LambdaContext) -> dict[str, Any]:
    result = reach_verdict(workflow_context(), event)
    logger.info(
        "verdict reached",
        batch_id=event.batch_id,
        status=event.pipeline.status,
        next=result.next,
        sha=result.sha,
    )
    return result.model_dump(mode="json")

"""Step ``JudgePipeline`` (``merge_assist.queue.workflow.judge``)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.workflow.wiring import metrics, workflow_context
from merge_assist.queue.workflow.judge import JudgeInput, judge_pipeline

logger = Logger()
tracer = Tracer()


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context
@event_parser(model=JudgeInput)
def handler(event: JudgeInput, context: LambdaContext) -> dict[str, Any]:
    result = judge_pipeline(workflow_context(), event)
    logger.info(
        "pipeline judged",
        batch_id=event.batch_id,
        status=event.pipeline.status,
        next=result.next,
        sha=result.sha,
    )
    return result.model_dump(mode="json")

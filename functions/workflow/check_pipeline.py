"""Step ``CheckPipeline``: the wait for a pipeline timed out; ask GitLab
(``merge_assist.queue.pipeline_wait``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from functions.workflow.wiring import metrics, workflow_context
from merge_assist.queue.pipeline_wait import check_pipeline

logger = Logger()
tracer = Tracer()


class CheckPipelineInput(BaseModel):
    project_id: int = Field(gt=0)
    sha: str = Field(min_length=7, max_length=64)
    ref: str | None = None
    deadline: datetime


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context
@event_parser(model=CheckPipelineInput)
def handler(event: CheckPipelineInput, context: LambdaContext) -> dict[str, Any]:
    checked = check_pipeline(
        workflow_context(), event.project_id, event.sha, event.ref, event.deadline
    )
    logger.info("pipeline checked", sha=event.sha, finished=checked.finished)
    return checked.model_dump(mode="json")

"""Step ``WaitForPipeline`` (``lambda:invoke.waitForTaskToken``): remember which execution
waits for the pipeline of a sha. The dispatcher resumes it on the pipeline webhook; a
pipeline already finished resumes it at once; the state's timeout hands over to
``CheckPipeline``."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from functions.workflow.wiring import metrics, workflow_context
from merge_assist.queue.pipeline_wait import register_wait

logger = Logger()


class WaitForPipelineInput(BaseModel):
    project_id: int = Field(gt=0)
    sha: str = Field(min_length=7, max_length=64)
    task_token: str = Field(min_length=1)
    timeout_seconds: int = Field(gt=0, le=7 * 24 * 3600)
    batch_id: str | None = Field(default=None, min_length=1, max_length=80)


@metrics.log_metrics
@logger.inject_lambda_context
@event_parser(model=WaitForPipelineInput)
def handler(event: WaitForPipelineInput, context: LambdaContext) -> dict[str, Any]:
    finished = register_wait(
        workflow_context(),
        event.project_id,
        event.sha,
        event.task_token,
        timeout_seconds=event.timeout_seconds,
        batch_id=event.batch_id,
    )
    logger.info(
        "waiting for pipeline", project_id=event.project_id, sha=event.sha, finished=finished
    )
    return {"waiting_for": event.sha, "already_finished": finished}

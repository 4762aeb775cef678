"""Step ``WaitForCarAhead`` (``lambda:invoke.waitForTaskToken``): a green train car waits
for the car it was built on to end. That car's landing (or its end) resumes it; a car ahead
that ended already resumes it at once; the state's timeout hands back to ``LandBatch``."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from functions.workflow.wiring import metrics, workflow_context
from merge_assist.queue.workflow.train import wait_for_ahead

logger = Logger()


class WaitForCarAheadInput(BaseModel):
    project_id: int = Field(gt=0)
    batch_id: str = Field(min_length=1, max_length=80)
    task_token: str = Field(min_length=1)
    timeout_seconds: int = Field(gt=0, le=7 * 24 * 3600)


@metrics.log_metrics
@logger.inject_lambda_context
@event_parser(model=WaitForCarAheadInput)
def handler(event: WaitForCarAheadInput, context: LambdaContext) -> dict[str, Any]:
    ended = wait_for_ahead(
        workflow_context(), event.batch_id, event.task_token, timeout_seconds=event.timeout_seconds
    )
    logger.info("waiting for the car ahead", batch_id=event.batch_id, ended=ended)
    return {"batch_id": event.batch_id, "ahead_ended": ended}

"""Steps ``RebaseMergeRequest`` and ``CheckRebase`` of the serial strategy
(``merge_assist.queue.workflow.serial``)."""

from __future__ import annotations

from typing import Any, Literal

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.workflow.wiring import metrics, workflow_context
from merge_assist.queue.workflow.context import BatchRef
from merge_assist.queue.workflow.serial import check_rebase, start_rebase

logger = Logger()
tracer = Tracer()


class RebaseInput(BatchRef):
    operation: Literal["start", "check"]


@metrics.log_metrics
@tracer.capture_lambda_handler
@logger.inject_lambda_context
@event_parser(model=RebaseInput)
def handler(event: RebaseInput, context: LambdaContext) -> dict[str, Any]:
    step = start_rebase if event.operation == "start" else check_rebase
    result = step(workflow_context(), event)
    logger.info("rebase step", batch_id=event.batch_id, operation=event.operation, next=result.next)
    return result.model_dump(mode="json")

"""Step ``SelectBatch`` of the merge-batch state machine: which MRs the next batch takes."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.parser import event_parser
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import BaseModel, Field

from merge_assist.adapters.aws import store_from_settings
from merge_assist.models import BranchName, Landing, StatusCategory, Strategy
from merge_assist.queue import select_batch

logger = Logger()
tracer = Tracer()


class SelectBatchInput(BaseModel):
    project_id: int = Field(gt=0)
    target_branch: BranchName


class SelectBatchOutput(BaseModel):
    project_id: int
    target_branch: str
    strategy: Strategy
    landing: Landing
    merge_requests: list[int]
    empty: bool


@tracer.capture_lambda_handler
@logger.inject_lambda_context
@event_parser(model=SelectBatchInput)
def handler(event: SelectBatchInput, context: LambdaContext) -> dict[str, Any]:
    store = store_from_settings()
    config = store.get_project(event.project_id)
    queued = store.list_merge_requests(event.project_id, StatusCategory.QUEUED, event.target_branch)
    selected = select_batch(config, queued, event.target_branch)
    logger.info(
        "batch selected",
        project_id=event.project_id,
        target_branch=event.target_branch,
        queued=len(queued),
        selected=[mr.iid for mr in selected],
    )
    return SelectBatchOutput(
        project_id=event.project_id,
        target_branch=event.target_branch,
        strategy=config.strategy,
        landing=config.landing,
        merge_requests=[mr.iid for mr in selected],
        empty=not selected,
    ).model_dump(mode="json")

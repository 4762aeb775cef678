"""Consumes a project's FIFO queue with ``merge_assist.dispatch``: events are recorded on the
state of the MR they concern, MRs the bot is asked to merge are triaged (queued or not
ready, and the author told), and a finished pipeline resumes the workflow execution waiting
for it. A message that fails is reported alone (``batchItemFailures``) and only its FIFO
group waits for it; other target branches go on."""

from __future__ import annotations

from functools import partial
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.batch import (
    SqsFifoPartialProcessor,
    process_partial_response,
)
from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from merge_assist.adapters.aws import store_from_settings
from merge_assist.adapters.executions import StepFunctionsExecutions
from merge_assist.adapters.gitlab_gateway import PythonGitLabGateway, gateway_from_settings
from merge_assist.adapters.meter import PowertoolsMeter, lambda_metrics
from merge_assist.clock import SystemClock
from merge_assist.dispatch import Dispatcher
from merge_assist.events import QueueEvent
from merge_assist.settings import get_settings

logger = Logger()
tracer = Tracer()
metrics = lambda_metrics()
meter = PowertoolsMeter(metrics)
processor = SqsFifoPartialProcessor(skip_group_on_error=True)


@tracer.capture_method
def record_handler(record: SQSRecord, *, dispatcher: Dispatcher) -> None:
    event = QueueEvent.model_validate_json(record.body)
    result = dispatcher.handle(event)
    logger.info(
        "event dispatched",
        project_id=event.project_id,
        kind=event.kind,
        merge_request=event.mr_iid,
        idempotency_key=event.idempotency_key,
        status=result.state.status if result.state else None,
        told=result.told,
        resumed_wait=result.resumed_wait,
    )


_bot_ids: dict[str, int] = {}


def _bot_user_id(gitlab: PythonGitLabGateway) -> int:
    """The bot's GitLab user id, asked once per container."""
    settings = get_settings()
    if settings.gitlab_url not in _bot_ids:
        _bot_ids[settings.gitlab_url] = gitlab.current_user_id()
    return _bot_ids[settings.gitlab_url]


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    gitlab = gateway_from_settings(meter=meter)
    dispatcher = Dispatcher(
        store=store_from_settings(),
        gitlab=gitlab,
        executions=StepFunctionsExecutions(),
        clock=SystemClock(),
        bot_user_id=_bot_user_id(gitlab),
        pipeline_poll_seconds=get_settings().pipeline_poll_seconds,
        rebase_poll_seconds=get_settings().rebase_poll_seconds,
        meter=meter,
    )
    return process_partial_response(
        event=event,
        record_handler=partial(record_handler, dispatcher=dispatcher),
        processor=processor,
        context=context,
    )

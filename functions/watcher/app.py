"""Scheduled by EventBridge: queue a ``reconcile`` event for every MR whose GitLab state the
store has not seen, and start the batch of any queue that has MRs but no batch running, in
every active project. One project's failure does not stop the rest;
the run fails (and alarms) only after all were tried."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from merge_assist.adapters.aws import store_from_settings
from merge_assist.adapters.executions import StepFunctionsExecutions
from merge_assist.adapters.gitlab_gateway import gateway_from_settings
from merge_assist.adapters.meter import PowertoolsMeter, lambda_metrics
from merge_assist.adapters.project_queues import send_event
from merge_assist.clock import SystemClock
from merge_assist.errors import NotFoundError
from merge_assist.events import MergeRequestSnapshot
from merge_assist.metrics import Metric
from merge_assist.models import ProjectConfig
from merge_assist.ports import GitLabGateway, Store
from merge_assist.settings import get_settings
from merge_assist.watcher import OPEN_CATEGORIES, overdue_batches, reconcile_events
from merge_assist.workflow.start import start_project

logger = Logger()
tracer = Tracer()
metrics = lambda_metrics()
meter = PowertoolsMeter(metrics)


def watch_project(
    store: Store, gitlab: GitLabGateway, bot_user_id: int, config: ProjectConfig
) -> int:
    concerned = gitlab.open_merge_requests(config.project_id, assignee_id=bot_user_id)
    if config.trigger_label:
        concerned += gitlab.open_merge_requests(config.project_id, labels=[config.trigger_label])
    tracked = [
        state
        for category in OPEN_CATEGORIES
        for state in store.list_merge_requests(config.project_id, category)
    ]

    def current(iid: int) -> MergeRequestSnapshot | None:
        try:
            return gitlab.merge_request(config.project_id, iid)
        except NotFoundError:
            return None

    events = reconcile_events(config, concerned, tracked, current)
    for event in events:
        send_event(get_settings().names, event)
    return len(events)


def start_waiting_queues(store: Store, config: ProjectConfig, run_id: str) -> list[str]:
    """A queue whose batch ended on an error, or whose lock expired, starts again here."""
    settings = get_settings()
    return start_project(
        store,
        StepFunctionsExecutions(),
        config.project_id,
        f"watch:{run_id}",
        pipeline_poll_seconds=settings.pipeline_poll_seconds,
        rebase_poll_seconds=settings.rebase_poll_seconds,
    )


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Counted first, so a run that fails still shows it ran; its failure has its own alarm.
    meter.record(Metric.WATCHER_RUNS)
    store = store_from_settings()
    projects = store.list_projects()
    # Every project, paused ones too: pausing stops new batches, not a stuck one.
    meter.record(Metric.OVERDUE_BATCHES, overdue_batches(store, projects, SystemClock().now()))
    gitlab = gateway_from_settings(meter=meter)
    bot_user_id = gitlab.current_user_id()
    # EventBridge gives each scheduled run its own id: a retried run starts nothing twice.
    run_id = str(event.get("id") or context.aws_request_id)
    queued: dict[int, int] = {}
    started: dict[int, list[str]] = {}
    failed: list[int] = []
    for config in projects:
        if config.paused:
            continue
        try:
            queued[config.project_id] = watch_project(store, gitlab, bot_user_id, config)
            started[config.project_id] = start_waiting_queues(store, config, run_id)
        except Exception:
            logger.exception("watching project failed", project_id=config.project_id)
            failed.append(config.project_id)
    logger.info("watch done", queued=queued, started=started, failed=failed)
    if failed:
        raise RuntimeError(f"watching failed for projects {failed}")
    return {"queued": queued}

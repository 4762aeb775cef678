"""Scheduled by EventBridge: queue a ``reconcile`` event for every MR whose GitLab state the
store has not seen, and start the batch of any queue that has MRs but no batch running, in
every active project. One project's failure does not stop the rest;
the run fails (and alarms) only after all were tried."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from merge_assist.adapters.aws import store_from_settings
from merge_assist.adapters.gitlab_gateway import gateway_from_settings
from merge_assist.adapters.meter import PowertoolsMeter, lambda_metrics
from merge_assist.adapters.project_queues import send_event
from merge_assist.adapters.recovery import StepFunctionsBatchExecutions
from merge_assist.admin.ports import Store
from merge_assist.admin.recovery import release_dead_batches
from merge_assist.platform.clock import SystemClock
from merge_assist.platform.config import ProjectConfig
from merge_assist.platform.errors import NotFoundError
from merge_assist.platform.events import MergeRequestSnapshot
from merge_assist.platform.metrics import Metric
from merge_assist.platform.settings import get_settings
from merge_assist.queue.notices import deliver_pending
from merge_assist.queue.ports import GitLabGateway
from merge_assist.queue.watcher import OPEN_CATEGORIES, overdue_batches, reconcile_events
from merge_assist.queue.workflow.start import start_project

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


def start_waiting_queues(
    store: Store, executions: StepFunctionsBatchExecutions, config: ProjectConfig, run_id: str
) -> list[str]:
    """A queue whose batch ended on an error, whose execution died holding the lock, or
    whose lock expired, starts again here. Store and Step Functions only: this runs even
    while GitLab is down, so the queue resumes on the first run after GitLab is back."""
    settings = get_settings()
    release_dead_batches(
        store, executions, SystemClock(), config.project_id, config.target_branches
    )
    return start_project(
        store,
        executions,
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
    executions = StepFunctionsBatchExecutions()
    # EventBridge gives each scheduled run its own id: a retried run starts nothing twice.
    run_id = str(event.get("id") or context.aws_request_id)
    active = [config for config in projects if not config.paused]
    queued: dict[int, int] = {}
    started: dict[int, list[str]] = {}
    failed: set[int] = set()
    for config in active:
        try:
            started[config.project_id] = start_waiting_queues(store, executions, config, run_id)
        except Exception:
            logger.exception("starting the project's queues failed", project_id=config.project_id)
            failed.add(config.project_id)
    gitlab = gateway_from_settings(meter=meter)
    try:
        bot_user_id = gitlab.current_user_id()
    except Exception:
        logger.exception("GitLab did not say who the bot is; reconciling waits for the next run")
        raise RuntimeError("the watcher could not reach GitLab") from None
    for config in active:
        try:
            deliver_pending(gitlab, store, config.project_id)
            queued[config.project_id] = watch_project(store, gitlab, bot_user_id, config)
        except Exception:
            logger.exception("watching project failed", project_id=config.project_id)
            failed.add(config.project_id)
    logger.info("watch done", queued=queued, started=started, failed=failed)
    if failed:
        raise RuntimeError(f"watching failed for projects {sorted(failed)}")
    return {"queued": queued}

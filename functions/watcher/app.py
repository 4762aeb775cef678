"""Scheduled by EventBridge: queue a ``reconcile`` event for every MR whose GitLab state the
store has not seen, and start the batch of any queue that has MRs but no batch running, in
every active project. One project's failure does not stop the rest;
the run fails (and alarms) only after all were tried."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.watcher import wiring
from merge_assist.admin.ports import QueueStarter, Store
from merge_assist.admin.recovery import BatchExecutions, release_dead_batches
from merge_assist.platform.config import ProjectConfig
from merge_assist.platform.errors import NotFoundError
from merge_assist.platform.events import MergeRequestSnapshot, QueueEvent
from merge_assist.platform.metrics import Metric
from merge_assist.platform.ports import Clock
from merge_assist.queue.notices import deliver_pending
from merge_assist.queue.ports import GitLabGateway
from merge_assist.queue.watcher import OPEN_CATEGORIES, overdue_batches, reconcile_events

logger = Logger()
tracer = Tracer()
metrics = wiring.metrics
meter = wiring.meter


def watch_project(
    store: Store,
    gitlab: GitLabGateway,
    bot_user_id: int,
    config: ProjectConfig,
    send: Callable[[QueueEvent], object],
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
        send(event)
    return len(events)


def start_waiting_queues(
    config: ProjectConfig,
    run_id: str,
    *,
    store: Store,
    executions: BatchExecutions,
    clock: Clock,
    start_queues: QueueStarter,
) -> list[str]:
    """A queue whose batch ended on an error, whose execution died holding the lock, or
    whose lock expired, starts again here. Store and Step Functions only: this runs even
    while GitLab is down, so the queue resumes on the first run after GitLab is back."""
    release_dead_batches(store, executions, clock, config.project_id, config.target_branches)
    return start_queues(config.project_id, f"watch:{run_id}")


@metrics.log_metrics
@logger.inject_lambda_context
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Counted first, so a run that fails still shows it ran; its failure has its own alarm.
    meter.record(Metric.WATCHER_RUNS)
    store = wiring.store()
    projects = store.list_projects()
    # Every project, paused ones too: pausing stops new batches, not a stuck one.
    meter.record(Metric.OVERDUE_BATCHES, overdue_batches(store, projects, wiring.clock.now()))
    executions = wiring.executions()
    # EventBridge gives each scheduled run its own id: a retried run starts nothing twice.
    run_id = str(event.get("id") or context.aws_request_id)
    active = [config for config in projects if not config.paused]
    queued: dict[int, int] = {}
    started: dict[int, list[str]] = {}
    failed: set[int] = set()
    for config in active:
        try:
            started[config.project_id] = start_waiting_queues(
                config,
                run_id,
                store=store,
                executions=executions,
                clock=wiring.clock,
                start_queues=wiring.queues(),
            )
        except Exception:
            logger.exception("starting the project's queues failed", project_id=config.project_id)
            failed.add(config.project_id)
    gitlab = wiring.gitlab()
    try:
        bot_user_id = gitlab.current_user_id()
    except Exception:
        logger.exception("GitLab did not say who the bot is; reconciling waits for the next run")
        raise RuntimeError("the watcher could not reach GitLab") from None
    for config in active:
        try:
            deliver_pending(gitlab, store, config.project_id)
            queued[config.project_id] = watch_project(
                store, gitlab, bot_user_id, config, wiring.send
            )
        except Exception:
            logger.exception("watching project failed", project_id=config.project_id)
            failed.add(config.project_id)
    logger.info("watch done", queued=queued, started=started, failed=failed)
    if failed:
        raise RuntimeError(f"watching failed for projects {sorted(failed)}")
    return {"queued": queued}

"""The watcher's adapters, built from settings once per warm container (the composition
root); ``clear_caches`` forgets them when the settings or endpoints change. The GitLab
gateway is made per run, as the dispatcher makes one per invocation, so it starts with the
bot token as the secret's cache has it."""

from __future__ import annotations

from functools import cache, partial

from merge_assist.adapters.aws import register_cache, store_from_settings
from merge_assist.adapters.dynamodb_store import DynamoDBStore
from merge_assist.adapters.gitlab_gateway import PythonGitLabGateway, gateway_from_settings
from merge_assist.adapters.meter import PowertoolsMeter, lambda_metrics
from merge_assist.adapters.project_queues import send_event
from merge_assist.adapters.recovery import StepFunctionsBatchExecutions
from merge_assist.admin.ports import QueueStarter
from merge_assist.admin.watch import Watcher
from merge_assist.platform.clock import SystemClock
from merge_assist.platform.events import QueueEvent
from merge_assist.platform.settings import get_settings
from merge_assist.queue.workflow.start import start_project

# The handler flushes these with ``metrics.log_metrics``.
metrics = lambda_metrics()
meter = PowertoolsMeter(metrics)
clock = SystemClock()


@cache
def store() -> DynamoDBStore:
    return store_from_settings()


def gitlab() -> PythonGitLabGateway:
    return gateway_from_settings(meter=meter)


@cache
def executions() -> StepFunctionsBatchExecutions:
    return StepFunctionsBatchExecutions()


@cache
def queues() -> QueueStarter:
    settings = get_settings()
    return partial(
        start_project,
        store(),
        executions(),
        polls=settings.polls,
    )


@cache
def watcher() -> Watcher:
    return Watcher(
        store=store(),
        executions=executions(),
        clock=clock,
        start_queues=queues(),
        gitlab=gitlab,
        send=send,
        meter=meter,
    )


def send(event: QueueEvent) -> None:
    """Queues ``event`` on its project's FIFO queue, for the dispatcher."""
    send_event(get_settings().names, event)


_BUILT = (store, executions, queues, watcher)


def clear() -> None:
    """Forget everything built here."""
    for built in _BUILT:
        built.cache_clear()


register_cache(clear)

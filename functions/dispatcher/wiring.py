"""The dispatcher's adapters and service, built from settings (the composition root)."""

from __future__ import annotations

from merge_assist.adapters.aws import store_from_settings
from merge_assist.adapters.executions import StepFunctionsExecutions
from merge_assist.adapters.gitlab_gateway import PythonGitLabGateway, gateway_from_settings
from merge_assist.adapters.meter import PowertoolsMeter, lambda_metrics
from merge_assist.platform.clock import SystemClock
from merge_assist.platform.settings import get_settings
from merge_assist.queue.dispatch import Dispatcher

# The handler flushes these with ``metrics.log_metrics``.
metrics = lambda_metrics()
meter = PowertoolsMeter(metrics)

_bot_ids: dict[str, int] = {}


def _bot_user_id(gitlab: PythonGitLabGateway) -> int:
    """The bot's GitLab user id, asked once per container."""
    settings = get_settings()
    if settings.gitlab_url not in _bot_ids:
        _bot_ids[settings.gitlab_url] = gitlab.current_user_id()
    return _bot_ids[settings.gitlab_url]


def dispatcher() -> Dispatcher:
    settings = get_settings()
    gitlab = gateway_from_settings(settings, meter=meter)
    return Dispatcher(
        store=store_from_settings(settings),
        gitlab=gitlab,
        executions=StepFunctionsExecutions(),
        clock=SystemClock(),
        bot_user_id=_bot_user_id(gitlab),
        polls=settings.polls,
        meter=meter,
    )

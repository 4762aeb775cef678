"""The adapters every workflow step works with, built once per warm container."""

from __future__ import annotations

from merge_assist.adapters.aws import store_from_settings
from merge_assist.adapters.executions import StepFunctionsExecutions
from merge_assist.adapters.gitlab_gateway import gateway_from_settings
from merge_assist.adapters.meter import PowertoolsMeter, lambda_metrics
from merge_assist.adapters.repositories import repository_for
from merge_assist.platform.clock import SystemClock
from merge_assist.platform.config import ProjectConfig
from merge_assist.platform.settings import get_settings
from merge_assist.queue.batch_plan import GitIdentity
from merge_assist.queue.ports import Repository
from merge_assist.queue.workflow.context import WorkflowContext

# Every step's handler flushes these with ``metrics.log_metrics``.
metrics = lambda_metrics()
meter = PowertoolsMeter(metrics)


def workflow_context() -> WorkflowContext:
    settings = get_settings()
    gitlab = gateway_from_settings(settings, meter=meter)

    def repository(config: ProjectConfig) -> Repository:
        return repository_for(config, gitlab, meter=meter)

    return WorkflowContext(
        store=store_from_settings(settings),
        gitlab=gitlab,
        executions=StepFunctionsExecutions(),
        clock=SystemClock(),
        identity=GitIdentity(name=settings.git_user_name, email=settings.git_user_email),
        repository=repository,
        meter=meter,
    )

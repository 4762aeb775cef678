"""The adapters the API works with, built once per warm container."""

from __future__ import annotations

from functools import lru_cache

from merge_assist.adapters.aws import register_cache, store_from_settings
from merge_assist.adapters.dynamodb_store import DynamoDBStore
from merge_assist.adapters.executions import StepFunctionsExecutions
from merge_assist.adapters.gitlab_gateway import PythonGitLabGateway, gateway_from_settings
from merge_assist.adapters.meter import PowertoolsMeter, lambda_metrics
from merge_assist.adapters.operations import AwsOperations
from merge_assist.adapters.project_infra import AwsProjectInfrastructure
from merge_assist.platform.settings import get_settings
from merge_assist.queue.workflow.start import start_project

# The API's own GitLab calls (connecting a project, its hook) count with the rest; the
# handler flushes them with ``metrics.log_metrics``.
metrics = lambda_metrics()
meter = PowertoolsMeter(metrics)


def store() -> DynamoDBStore:
    return store_from_settings()


def gitlab() -> PythonGitLabGateway:
    return gateway_from_settings(meter=meter)


def executions() -> StepFunctionsExecutions:
    return StepFunctionsExecutions()


@lru_cache(maxsize=1)
def operations() -> AwsOperations:
    return AwsOperations(get_settings().names)


@lru_cache(maxsize=1)
def infrastructure() -> AwsProjectInfrastructure:
    return AwsProjectInfrastructure(get_settings().names)


def start_queues(project_id: int, cause: str) -> None:
    """Starts a batch on each of the project's idle queues that has MRs waiting: a resumed
    queue, a changed one or a new hotfix need not wait for the next event."""
    settings = get_settings()
    start_project(
        store(),
        executions(),
        project_id,
        cause,
        pipeline_poll_seconds=settings.pipeline_poll_seconds,
        rebase_poll_seconds=settings.rebase_poll_seconds,
    )


register_cache(operations.cache_clear)
register_cache(infrastructure.cache_clear)

"""The API's adapters and services, built from settings once per warm container (the
composition root); ``clear_caches`` forgets them when the settings or endpoints change.

The GitLab gateway alone is made for each use, as the dispatcher makes one per invocation:
it starts with the bot token as the secret's cache has it, so a rotated token is taken up
without GitLab refusing the old one first."""

from __future__ import annotations

from functools import cache, partial

from merge_assist.adapters.aws import register_cache, store_from_settings
from merge_assist.adapters.dynamodb_store import DynamoDBStore
from merge_assist.adapters.executions import StepFunctionsExecutions
from merge_assist.adapters.gitlab_gateway import PythonGitLabGateway, gateway_from_settings
from merge_assist.adapters.meter import PowertoolsMeter, lambda_metrics
from merge_assist.adapters.operations import AwsOperations
from merge_assist.adapters.project_infra import AwsProjectInfrastructure
from merge_assist.adapters.tokens import CognitoTokenVerifier, verifier_from_settings
from merge_assist.admin.health import GitLabProbe, HealthCheck
from merge_assist.admin.ports import QueueStarter
from merge_assist.platform.clock import SystemClock
from merge_assist.platform.settings import get_settings
from merge_assist.queue.workflow.start import start_project

# The API's own GitLab calls (connecting a project, its hook) count with the rest; the
# handler flushes them with ``metrics.log_metrics``.
metrics = lambda_metrics()
meter = PowertoolsMeter(metrics)


@cache
def store() -> DynamoDBStore:
    return store_from_settings()


def gitlab() -> PythonGitLabGateway:
    return gateway_from_settings(meter=meter)


@cache
def executions() -> StepFunctionsExecutions:
    return StepFunctionsExecutions()


@cache
def operations() -> AwsOperations:
    return AwsOperations(get_settings().names)


@cache
def infrastructure() -> AwsProjectInfrastructure:
    return AwsProjectInfrastructure(get_settings().names)


def verifier() -> CognitoTokenVerifier:
    """``Unavailable`` while no user pool is configured."""
    return verifier_from_settings()


def webhook_url() -> str | None:
    """Where connected projects' hooks post."""
    return get_settings().webhook_url


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
def health() -> HealthCheck:
    # The probe reads ``gitlab`` when it asks, not when it is built.
    probe = GitLabProbe(get_settings().gitlab_url, lambda: gitlab().current_user_id())
    return HealthCheck(store(), operations(), probe, SystemClock())


_BUILT = (store, executions, operations, infrastructure, queues, health)


def clear() -> None:
    """Forget everything built here."""
    for built in _BUILT:
        built.cache_clear()


register_cache(clear)

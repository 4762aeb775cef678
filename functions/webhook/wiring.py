"""The receiver's adapters, built from settings once per warm container (the composition
root); ``clear_caches`` forgets them when the settings or endpoints change. Only what a
delivery needs is imported here: GitLab waits for the cold start."""

from __future__ import annotations

from merge_assist.adapters.aws import dynamodb_table, register_cache
from merge_assist.adapters.meter import PowertoolsMeter, lambda_metrics
from merge_assist.adapters.project_configs import DynamoDBProjectConfigs
from merge_assist.adapters.webhook_secrets import read_webhook_secret
from merge_assist.platform.caching import built_once
from merge_assist.platform.config import WebhookSecret
from merge_assist.platform.ports import Meter
from merge_assist.platform.settings import get_settings

# The handler flushes these with ``metrics.log_metrics``.
metrics = lambda_metrics()
meter: Meter = PowertoolsMeter(metrics)


@built_once
def project_configs() -> DynamoDBProjectConfigs:
    return DynamoDBProjectConfigs(dynamodb_table(get_settings().resolved_table_name))


def webhook_secret(project_id: int, *, refresh: bool = False) -> WebhookSecret:
    """The project's stored secret (``NotFoundError`` if it has none); ``refresh`` reads past
    the cache, as after a refused token the secret may have been rotated."""
    return read_webhook_secret(get_settings().names, project_id, refresh=refresh)


register_cache(project_configs.cache_clear)

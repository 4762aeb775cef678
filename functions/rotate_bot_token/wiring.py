"""The rotation service and its adapters, built once per warm container."""

from __future__ import annotations

from datetime import timedelta
from functools import lru_cache

from merge_assist.adapters.aws import register_cache
from merge_assist.adapters.gitlab_gateway import GitLabAccessTokens
from merge_assist.adapters.meter import PowertoolsMeter, lambda_metrics
from merge_assist.adapters.secret_versions import SecretsManagerVersions
from merge_assist.admin.token_rotation import BotTokenRotation
from merge_assist.platform.clock import SystemClock
from merge_assist.platform.resources import BOT_TOKEN_LIFETIME_DAYS
from merge_assist.platform.settings import get_settings

# GitLab calls count with the other functions'; the handler flushes them.
metrics = lambda_metrics()
meter = PowertoolsMeter(metrics)


@lru_cache(maxsize=1)
def rotation() -> BotTokenRotation:
    return BotTokenRotation(
        SecretsManagerVersions(),
        GitLabAccessTokens(get_settings().gitlab_url, meter=meter),
        SystemClock(),
        lifetime=timedelta(days=BOT_TOKEN_LIFETIME_DAYS),
    )


register_cache(rotation.cache_clear)

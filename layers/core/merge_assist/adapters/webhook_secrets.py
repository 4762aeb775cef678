"""Per-project webhook secrets in Secrets Manager, read through Powertools parameters with
caching (a cold Lambda reads each secret once per ``max_age``)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import ClientError

from merge_assist.adapters.aws import register_cache
from merge_assist.platform.caching import built_once
from merge_assist.platform.config import WebhookSecret
from merge_assist.platform.errors import NotFoundError
from merge_assist.platform.resources import ResourceNames

SECRET_CACHE_SECONDS = 300
# A refused token may mean the secret was rotated since it was cached, so the receiver reads
# it again; no more often than this per project, or anyone sending wrong tokens would turn
# each request into a Secrets Manager call.
REFRESH_INTERVAL_SECONDS = 10.0

_refreshed_at: dict[int, float] = {}
_lock = threading.Lock()


@built_once
def _provider() -> SecretsProvider:
    return SecretsProvider()


def _may_refresh(project_id: int) -> bool:
    now = time.monotonic()
    with _lock:
        last = _refreshed_at.get(project_id)
        if last is not None and now - last < REFRESH_INTERVAL_SECONDS:
            return False
        _refreshed_at[project_id] = now
        return True


def read_webhook_secret(
    names: ResourceNames, project_id: int, *, refresh: bool = False
) -> WebhookSecret:
    """``refresh`` reads past the cache, unless it was done for this project just now."""
    force_fetch = refresh and _may_refresh(project_id)
    try:
        value: Any = _provider().get(
            names.webhook_secret(project_id),
            max_age=SECRET_CACHE_SECONDS,
            force_fetch=force_fetch,
        )
    except GetParameterError as error:
        # Powertools wraps every failure; only a missing secret means an unknown project.
        cause = error.__context__
        if isinstance(cause, ClientError) and (
            cause.response.get("Error", {}).get("Code") == "ResourceNotFoundException"
        ):
            raise NotFoundError(f"project {project_id} has no webhook secret") from error
        raise
    return WebhookSecret.model_validate(json.loads(value) if isinstance(value, str) else value)


def clear_secret_cache() -> None:
    _provider.cache_clear()
    with _lock:
        _refreshed_at.clear()


register_cache(clear_secret_cache)

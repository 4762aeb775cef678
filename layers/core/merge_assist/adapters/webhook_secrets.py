"""Per-project webhook secrets in Secrets Manager, read through Powertools parameters with
caching (a cold Lambda reads each secret once per ``max_age``)."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.parameters import SecretsProvider
from aws_lambda_powertools.utilities.parameters.exceptions import GetParameterError
from botocore.exceptions import ClientError

from merge_assist.adapters.aws import register_cache
from merge_assist.errors import NotFoundError
from merge_assist.models import WebhookSecret
from merge_assist.resources import ResourceNames

SECRET_CACHE_SECONDS = 300


@lru_cache(maxsize=1)
def _provider() -> SecretsProvider:
    return SecretsProvider()


def read_webhook_secret(names: ResourceNames, project_id: int) -> WebhookSecret:
    try:
        value: Any = _provider().get(names.webhook_secret(project_id), max_age=SECRET_CACHE_SECONDS)
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


register_cache(clear_secret_cache)

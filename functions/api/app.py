"""The dashboard and admin REST API (``/api/v1``)."""

# No "from __future__ import annotations" here: the resolver reads route signatures at run
# time to validate requests and build the OpenAPI schema.

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel

import merge_assist
from merge_assist.adapters.aws import store_from_settings

logger = Logger()
tracer = Tracer()
app = APIGatewayHttpResolver(enable_validation=True)

API_PREFIX = "/api/v1"


class Health(BaseModel):
    status: str
    version: str
    store: str


@app.get(f"{API_PREFIX}/health")
@tracer.capture_method
def health() -> Health:
    try:
        store_from_settings().list_projects()
    except (BotoCoreError, ClientError):
        logger.exception("store unreachable")
        return Health(status="degraded", version=merge_assist.__version__, store="unreachable")
    return Health(status="ok", version=merge_assist.__version__, store="ok")


@app.get(f"{API_PREFIX}/openapi.json", include_in_schema=False)
def openapi() -> dict[str, Any]:
    schema: dict[str, Any] = app.get_openapi_schema(
        title="Merge Assist API", version=merge_assist.__version__
    ).model_dump(mode="json", by_alias=True, exclude_none=True)
    return schema


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)

"""The dashboard and admin REST API (``/api/v1``).

Every request but the OpenAPI document's is authenticated here, before routing and
validation, even though API Gateway's JWT authorizer has already checked the token: the
function trusts nothing it has not verified. Then each route asks ``caller.require`` for
the action it performs on its project. The routes are in ``routes/``, their collaborators
in ``wiring``, the answers to errors in ``http`` and the document in ``openapi_schema``."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from functions.api import caller, http, openapi_schema, wiring
from functions.api.auth import authenticate, bearer_token
from functions.api.routes import audit, health, projects, queue
from merge_assist.platform.errors import Forbidden, Unauthenticated, Unavailable

logger = Logger()
tracer = Tracer()
app = APIGatewayHttpResolver(enable_validation=True)

API_PREFIX = "/api/v1"
OPENAPI_PATH = f"{API_PREFIX}/openapi.json"

for module in (projects, queue, audit, health):
    app.include_router(module.router, prefix=API_PREFIX)
http.answer_errors(app)


@app.get(OPENAPI_PATH, include_in_schema=False)
def openapi() -> dict[str, Any]:
    return openapi_document()


def openapi_document() -> dict[str, Any]:
    return openapi_schema.document(app)


# The event holds the bearer token: never log it, whatever POWERTOOLS_LOGGER_LOG_EVENT says;
# and a warm container must not log one caller's name on the next caller's lines.
@wiring.metrics.log_metrics
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False, clear_state=True
)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    event = http.decoded_path(event)
    if event.get("rawPath") != OPENAPI_PATH:
        headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
        try:
            token = bearer_token(headers.get("authorization"))
            principal = authenticate(token, wiring.verifier(), wiring.store())
        except Unauthenticated as refusal:
            logger.info("refused: not authenticated", reason=str(refusal))
            return http.refusal(401, "Unauthorized")
        except Forbidden as refusal:
            logger.info("refused: no role", reason=str(refusal))
            return http.refusal(403, str(refusal))
        except Unavailable as error:
            logger.warning("cannot authenticate", reason=str(error))
            return http.refusal(503, "Service Unavailable")
        request_id = str(event.get("requestContext", {}).get("requestId") or context.aws_request_id)
        caller.begin(principal, request_id)
        logger.append_keys(username=principal.username)
    return app.resolve(event, context)

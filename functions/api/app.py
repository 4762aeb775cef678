"""The dashboard and admin REST API (``/api/v1``).

Every request but the OpenAPI document's is authenticated here, before routing and
validation, even though API Gateway's JWT authorizer has already checked the token: the
function trusts nothing it has not verified. Then each route asks ``caller.require`` for
the action it performs on its project."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import requests
from aws_lambda_powertools import Logger, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import ValidationError

import merge_assist
from functions.api import caller, wiring
from functions.api.auth import authenticate
from functions.api.routes import audit, health, projects, queue
from merge_assist.platform.errors import (
    ConflictError,
    Forbidden,
    GitLabRefused,
    NotFoundError,
    Unauthenticated,
    Unavailable,
)

logger = Logger()
tracer = Tracer()
app = APIGatewayHttpResolver(enable_validation=True)

API_PREFIX = "/api/v1"
OPENAPI_PATH = f"{API_PREFIX}/openapi.json"
SECURITY_SCHEME = "cognito"

for module in (projects, queue, audit, health):
    app.include_router(module.router, prefix=API_PREFIX)


def problem(status: int, message: str) -> Response[Any]:
    return Response(status_code=status, content_type="application/json", body={"message": message})


def _invalid_request(error: RequestValidationError) -> Response[Any]:
    details = [
        {"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")), "type": e.get("type")}
        for e in error.errors()
    ]
    return Response(
        status_code=400,
        content_type="application/json",
        body={"message": "the request is not valid", "errors": details},
    )


def _invalid_change(error: ValidationError) -> Response[Any]:
    # A change that is valid on its own but not with the rest (e.g. of a project's config).
    messages = "; ".join(
        f"{'.'.join(str(part) for part in e['loc'])}: {e['msg']}" for e in error.errors()
    )
    return problem(400, messages or "the change is not valid")


def _bad_value(error: ValueError) -> Response[Any]:
    return problem(400, str(error))


def _not_found(error: NotFoundError) -> Response[Any]:
    return problem(404, str(error))


def _forbidden(error: Forbidden) -> Response[Any]:
    return problem(403, str(error))


def _conflict(error: ConflictError) -> Response[Any]:
    return problem(409, str(error))


def _gitlab_refused(error: GitLabRefused) -> Response[Any]:
    if error.status == 404:
        return problem(404, f"GitLab: {error}")
    return problem(502, f"GitLab refused: {error}")


def _unavailable(error: Unavailable) -> Response[Any]:
    return problem(503, str(error))


def _unreachable(error: requests.RequestException) -> Response[Any]:
    logger.warning("GitLab unreachable", error=type(error).__name__)
    return problem(502, "GitLab could not be reached")


for _kind, _answer in (
    (RequestValidationError, _invalid_request),
    (ValidationError, _invalid_change),
    (ValueError, _bad_value),
    (NotFoundError, _not_found),
    (Forbidden, _forbidden),
    (ConflictError, _conflict),
    (GitLabRefused, _gitlab_refused),
    (Unavailable, _unavailable),
    (requests.RequestException, _unreachable),
):
    app.exception_handler(_kind)(_answer)


@app.get(OPENAPI_PATH, include_in_schema=False)
def openapi() -> dict[str, Any]:
    return openapi_document()


def openapi_document() -> dict[str, Any]:
    schema: dict[str, Any] = app.get_openapi_schema(
        title="Merge Assist API",
        version=merge_assist.__version__,
        description="The dashboard's and admin automation's API. Every operation needs a "
        "Cognito access token of the deployment's user pool as a bearer token.",
        security_schemes={SECURITY_SCHEME: HTTPBearer(bearerFormat="JWT")},
        security=[{SECURITY_SCHEME: []}],
    ).model_dump(mode="json", by_alias=True, exclude_none=True)
    # Malformed requests are answered 400 (see _invalid_request), not the generator's 422;
    # the refusals every route can give are documented once here.
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["400"] = responses.pop("422")
                responses["400"]["description"] = "The request is not valid"
            refusals = [
                ("401", "No valid access token"),
                ("403", "The caller may not do this"),
                ("503", "The user pool's keys could not be fetched; try again"),
            ]
            if "{" in path or method == "post":
                refusals.append(("404", "No such project, merge request, batch or grant"))
            if method in ("put", "post", "delete"):
                refusals.append(("409", "It changed meanwhile, or is not in a state for this"))
            if path.endswith("/projects") or method == "delete":
                refusals.append(("502", "GitLab refused the request"))
            for status, text in refusals:
                responses.setdefault(status, {"description": text, "content": _PROBLEM})
            # The generator gives a "null" JSON body to routes answering Response[None].
            if "204" in responses:
                responses["204"].pop("content", None)
    return schema


_PROBLEM = {
    "application/json": {
        "schema": {
            "type": "object",
            "properties": {"message": {"type": "string"}},
            "required": ["message"],
        }
    }
}


def _refusal(status: int, message: str) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"message": message}),
    }


# The event holds the bearer token: never log it, whatever POWERTOOLS_LOGGER_LOG_EVENT says;
# and a warm container must not log one caller's name on the next caller's lines.
@wiring.metrics.log_metrics
@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_HTTP, log_event=False, clear_state=True
)
@tracer.capture_lambda_handler(capture_response=False)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    raw_path = str(event.get("rawPath") or "")
    if "%" in raw_path and "%2f" not in raw_path.lower():
        # API Gateway hands rawPath over as sent; the resolver matches routes on it, so a
        # username like "jos%C3%A9" would otherwise reach the route still encoded. An
        # encoded "/" stays encoded, and so matches no route.
        event = {**event, "rawPath": unquote(raw_path)}
    if event.get("rawPath") != OPENAPI_PATH:
        headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
        try:
            principal = authenticate(headers.get("authorization"), wiring.store())
        except Unauthenticated as refusal:
            logger.info("refused: not authenticated", reason=str(refusal))
            return _refusal(401, "Unauthorized")
        except Forbidden as refusal:
            logger.info("refused: no role", reason=str(refusal))
            return _refusal(403, str(refusal))
        except Unavailable as error:
            logger.warning("cannot authenticate", reason=str(error))
            return _refusal(503, "Service Unavailable")
        request_id = str(event.get("requestContext", {}).get("requestId") or context.aws_request_id)
        caller.begin(principal, request_id)
        logger.append_keys(username=principal.username)
    return app.resolve(event, context)

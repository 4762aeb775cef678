"""The API's HTTP plumbing: the path as API Gateway hands it over, the problem documents
refusals answer with, and which status each error the routes raise is answered with."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import requests
from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from pydantic import ValidationError

from merge_assist.platform.errors import (
    ConflictError,
    Forbidden,
    GitLabRefused,
    NotFoundError,
    Unavailable,
)

logger = Logger(child=True)

# The JSON document of every refusal: {"message": "..."}.
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"message": {"type": "string"}},
    "required": ["message"],
}


def decoded_path(event: dict[str, Any]) -> dict[str, Any]:
    """The event with its path decoded. API Gateway hands rawPath over as sent; the resolver
    matches routes on it, so a username like "jos%C3%A9" would otherwise reach the route
    still encoded. An encoded "/" stays encoded, and so matches no route."""
    raw_path = str(event.get("rawPath") or "")
    if "%" in raw_path and "%2f" not in raw_path.lower():
        return {**event, "rawPath": unquote(raw_path)}
    return event


def refusal(status: int, message: str) -> dict[str, Any]:
    """A refusal answered before routing, as API Gateway's proxy integration expects it."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({"message": message}),
    }


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


def answer_errors(app: APIGatewayHttpResolver) -> None:
    """Have ``app`` answer the errors routes raise with their status and a problem document
    (the most specific handler wins: a ``NotFoundError`` is no plain ``ValueError``)."""
    for kind, answer in (
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
        app.exception_handler(kind)(answer)

"""The API's OpenAPI document: what Powertools generates from the routes, with what the
generator cannot know added (the bearer scheme, the refusals every route can give) and
what it gets wrong for this API corrected (400, not 422, for a malformed request; no body
for a 204). ``functions.api.openapi`` writes it for the dashboard's typed client."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer

import merge_assist
from functions.api.http import PROBLEM_SCHEMA

TITLE = "Merge Assist API"
DESCRIPTION = (
    "The dashboard's and admin automation's API. Every operation needs a Cognito access "
    "token of the deployment's user pool as a bearer token."
)
SECURITY_SCHEME = "cognito"

_PROBLEM = {"application/json": {"schema": PROBLEM_SCHEMA}}


def document(app: APIGatewayHttpResolver) -> dict[str, Any]:
    """The document of ``app``'s routes, as JSON."""
    schema: dict[str, Any] = app.get_openapi_schema(
        title=TITLE,
        version=merge_assist.__version__,
        description=DESCRIPTION,
        security_schemes={SECURITY_SCHEME: HTTPBearer(bearerFormat="JWT")},
        security=[{SECURITY_SCHEME: []}],
    ).model_dump(mode="json", by_alias=True, exclude_none=True)
    # Malformed requests are answered 400 (``functions.api.http``), not the generator's 422;
    # the refusals every route can give are documented once here.
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["400"] = responses.pop("422")
                responses["400"]["description"] = "The request is not valid"
            for status, text in _refusals(path, method):
                responses.setdefault(status, {"description": text, "content": _PROBLEM})
            # The generator gives a "null" JSON body to routes answering Response[None].
            if "204" in responses:
                responses["204"].pop("content", None)
    return schema


def _refusals(path: str, method: str) -> list[tuple[str, str]]:
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
    return refusals

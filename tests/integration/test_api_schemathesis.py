"""Property-based requests generated from the API's own OpenAPI description, sent over
HTTP to the local stack's API Gateway stand-in (``local.http_front``: its routes, its JWT
authorizer, its event format) and answered by the real handler.

The property, for every operation: no answer is a 5xx, every answer's status, content
type, headers and body are as the document says, whatever the schema forbids is refused,
and an operation that needs a token refuses a request without one or with a bad one.
Each operation starts from a freshly seeded world (two connected projects with queues,
batches, events and grants) that its examples then change as they go."""

from __future__ import annotations

import json
import re
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import requests
import responses
import schemathesis
from hypothesis import HealthCheck, settings
from moto.core.models import responses_mock

from functions.api import app
from functions.api.app import openapi_document
from local.authorizer import JwtAuthorizer
from local.http_front import HttpFront, compile_route
from local.runtime import InvocationResult, make_context
from merge_assist.adapters.dynamodb_store import DynamoDBStore
from merge_assist.platform.access import Grant, Role
from merge_assist.platform.resources import ROUTES
from tests.conftest import MakeMR
from tests.integration.api_harness import (
    ACCOUNT_ID,
    CLIENT_ID,
    ISSUER,
    ApiCaller,
    TokenFactory,
    api,
    jwks_url,
    seed_project,
    tokens,
)

__all__ = ["api", "jwks_url", "tokens"]  # fixtures

CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {
            # The admin's token goes with every request (see test_api): the security
            # scheme is not a parameter to generate or drop. Whether the API insists on
            # it is what ignored_auth probes, with no token and with a bad one.
            "with-security-parameters": False,
        },
        "checks": {
            # Both judge how a method the document does not list is refused: that is
            # the gateway's part (API Gateway's ANY /api/v1/{proxy+} route, here the
            # local front), not the handler's.
            "unsupported_method": {"enabled": False},
            "allow_header_conformance": {"enabled": False},
            # Demands 2xx for every request the schema admits, but the API rightly refuses
            # (400) what JSON Schema as generated from its models cannot say: exactly one
            # of priority/before/after, at least one setting to change, admin is a group
            # and never a grant, only cursors it handed out, null for a setting that has
            # no null value. negative_data_rejection still holds it to refusing all that
            # the schema forbids.
            "positive_data_acceptance": {"enabled": False},
        },
        "phases": {
            # Methods the gateway routes to the function; TRACE it answers itself.
            "coverage": {"unexpected-methods": ["GET", "PUT", "POST", "DELETE", "PATCH"]},
        },
        # Half the time a parameter names what the seeded world has, so requests reach
        # real projects, merge requests, batches and grants, not only 404s.
        "dictionaries": {
            "projects": {"values": [1, 2, 3]},
            "project_refs": {"values": [1, 2, 3, "group/one", "group/three"]},
            "iids": {"values": [10, 11, 12, 13, 14, 15, 16, 17]},
            "batches": {"values": ["1-main-seed", "1-main-landed", "2-main-seed"]},
            "usernames": {"values": ["grace", "vera", "owen"]},
        },
        "parameters": {
            "path.project_id": {"dictionary": "projects", "probability": 0.5},
            "query.project_id": {"dictionary": "projects", "probability": 0.5},
            "path.iid": {"dictionary": "iids", "probability": 0.5},
            "body.before": {"dictionary": "iids", "probability": 0.5},
            "body.after": {"dictionary": "iids", "probability": 0.5},
            "path.batch_id": {"dictionary": "batches", "probability": 0.5},
            "path.username": {"dictionary": "usernames", "probability": 0.5},
            "query.username": {"dictionary": "usernames", "probability": 0.5},
            "body.project": {"dictionary": "project_refs", "probability": 0.5},
        },
    }
)
schema = schemathesis.openapi.from_dict(openapi_document(), config=CONFIG)


# role → (username, Cognito groups)
USERS = {"admin": ("ada", ["admin"])}


@dataclass
class Front:
    url: str
    tokens: TokenFactory
    # The tracebacks of exceptions that escaped the handler (answered 500 by the front).
    crashes: list[str] = field(default_factory=list)

    def headers_of(self, role: str) -> dict[str, str]:
        username, groups = USERS[role]
        return {
            "Authorization": f"Bearer {self.tokens.token(username, *groups)}",
            # The front writes an answer's head and body apart: on a kept-alive
            # connection each answer would wait ~40 ms for a delayed ACK.
            "Connection": "close",
        }


@pytest.fixture(scope="module")
def served(tokens: TokenFactory, jwks_url: str) -> Iterator[Front]:
    """The front and the handler behind it, for every operation's world in turn: the
    handler finds the world of the test at hand through its wiring."""
    crashes: list[str] = []

    def invoke(function_name: str, event: dict[str, Any]) -> InvocationResult:
        """Lambda's part: run the handler, and report what escapes it as a failed
        invocation, which the front answers 500 as API Gateway does."""
        assert function_name == "api"
        try:
            answer = app.handler(event, make_context("test-api", 512, 29))
        except Exception as error:
            crashes.append(traceback.format_exc())
            failure = {"errorMessage": str(error), "errorType": type(error).__name__}
            return InvocationResult(json.dumps(failure).encode(), function_error="Unhandled")
        return InvocationResult(json.dumps(answer).encode())

    http = HttpFront(
        [compile_route(route, route.function) for route in ROUTES],
        invoke,
        authorizer=JwtAuthorizer(issuer=ISSUER, audiences=[CLIENT_ID], jwks_url=jwks_url),
        web_dir=None,
        account_id=ACCOUNT_ID,
        port=0,
    )
    http.start()
    try:
        yield Front(url=http.url, tokens=tokens, crashes=crashes)
    finally:
        http.stop()


@pytest.fixture
def front(served: Front, api: ApiCaller, store: DynamoDBStore, make_mr: MakeMR) -> Front:
    """Two connected projects with their queues, batches, events and grants, and a third
    project GitLab has that is not connected yet."""
    for project_id, path in ((1, "group/one"), (2, "group/two")):
        seed_project(api, store, make_mr, project_id, path)
        for username, role in (("grace", Role.VIEWER), ("vera", Role.PRIORITY_MANAGER)):
            store.save_grant(
                Grant(username=username, project_id=project_id, roles=[role], granted_by="ada")
            )
    api.gitlab.add_project(3, "group/three")
    # In-process moto answers every ``requests`` call to a URL with ".amazonaws.com/" in it
    # (its catch-all for what it does not mock), and a generated path may have one, such
    # as a project id drawn from a service principal's name: the front must get them all.
    for method in ("GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS"):
        responses_mock.add(
            responses.PassthroughResponse(method, re.compile(re.escape(served.url) + "/.*"))
        )
    served.crashes.clear()
    return served


def test_every_path_reaches_the_front(front: Front) -> None:
    answer = requests.delete(
        f"{front.url}/api/v1/projects/lambda.amazonaws.com/grants/vera",
        headers=front.headers_of("admin"),
        timeout=10,
    )

    assert answer.status_code == 400
    assert answer.headers["content-type"] == "application/json"


@schema.parametrize()
# Who calls (admin reaches every route). Also what keeps each operation's test apart:
# under pytest 9.2, schemathesis 4.32's items without a parametrization all get the node
# id ``test_api``, so pytest-xdist (as `make test` runs it) would run only one of them.
@pytest.mark.parametrize("role", ["admin"])
@settings(
    max_examples=25,
    deadline=None,
    # The same examples on every run and machine; no example database to drift from.
    derandomize=True,
    database=None,
    # The world is meant to be shared by an operation's examples.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
def test_api(case: schemathesis.Case[Any], front: Front, role: str) -> None:
    try:
        case.call_and_validate(base_url=front.url, headers=front.headers_of(role))
    except BaseException:  # schemathesis' FailureGroup is a BaseExceptionGroup
        if front.crashes:
            print("The handler raised:", *front.crashes, sep="\n")
        raise
    finally:
        front.crashes.clear()


def test_answers_without_content_are_documented_without_content() -> None:
    # RFC 9110: a 204 has no content, so no client can read the JSON document promised.
    documented = {
        f"{method.upper()} {path}": response["content"]
        for path, operations in openapi_document()["paths"].items()
        for method, operation in operations.items()
        for status, response in operation["responses"].items()
        if status == "204" and "content" in response
    }

    assert documented == {}

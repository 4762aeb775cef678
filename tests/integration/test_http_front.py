"""API Gateway HTTP API (payload 2.0) behaviour of the local HTTP front, without AWS."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from local.http_front import (
    HttpFront,
    compile_route,
    http_api_event,
    match_route,
    translate,
)
from local.runtime import InvocationResult
from merge_assist.platform.resources import HttpRoute


def _routes() -> list[Any]:
    return [
        compile_route(HttpRoute("ANY", "/api/v1/{proxy+}", "api", True), "fn-api"),
        compile_route(HttpRoute("POST", "/webhook/gitlab", "webhook", False), "fn-webhook"),
        compile_route(HttpRoute("GET", "/api/v1/projects/{id}", "detail", False), "fn-detail"),
    ]


def test_most_specific_route_wins_and_parameters_are_extracted() -> None:
    routes = _routes()

    detail = match_route(routes, "GET", "/api/v1/projects/42")
    greedy = match_route(routes, "DELETE", "/api/v1/projects/42")
    webhook = match_route(routes, "POST", "/webhook/gitlab")

    assert detail is not None
    assert detail[0].function_name == "fn-detail"
    assert detail[1] == {"id": "42"}
    assert greedy is not None
    assert greedy[0].function_name == "fn-api"
    assert greedy[1] == {"proxy": "projects/42"}
    assert webhook is not None
    assert webhook[0].function_name == "fn-webhook"
    assert match_route(routes, "GET", "/webhook/gitlab") is None


def test_event_has_the_http_api_v2_shape() -> None:
    event = http_api_event(
        method="POST",
        raw_path="/api/v1/x",
        raw_query="a=1&a=2&b=",
        headers={"content-type": "application/json", "cookie": "s=1; t=2", "host": "h"},
        body=b'{"k": 1}',
        route_key="ANY /api/v1/{proxy+}",
        path_parameters={"proxy": "x"},
        source_ip="127.0.0.1",
        claims={"sub": "u"},
        account_id="123456789012",
    )

    assert event["version"] == "2.0"
    assert event["queryStringParameters"] == {"a": "1,2", "b": ""}
    assert event["cookies"] == ["s=1", "t=2"]
    assert "cookie" not in event["headers"]
    assert event["body"] == '{"k": 1}'
    assert event["isBase64Encoded"] is False
    assert event["requestContext"]["http"]["method"] == "POST"
    assert event["requestContext"]["authorizer"]["jwt"]["claims"] == {"sub": "u"}


def test_binary_bodies_are_base64_encoded() -> None:
    event = http_api_event(
        method="POST",
        raw_path="/",
        raw_query="",
        headers={"content-type": "application/octet-stream"},
        body=b"\x00\xff",
        route_key="POST /",
        path_parameters={},
        source_ip="127.0.0.1",
        claims=None,
        account_id="1",
    )

    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\x00\xff"
    assert "authorizer" not in event["requestContext"]


def test_responses_follow_api_gateway_rules() -> None:
    structured = translate(
        InvocationResult(
            json.dumps(
                {
                    "statusCode": 202,
                    "headers": {"X-A": "1"},
                    "cookies": ["c=1"],
                    "body": base64.b64encode(b"bin").decode(),
                    "isBase64Encoded": True,
                }
            ).encode()
        )
    )
    bare = translate(InvocationResult(b'{"ok": true}'))
    failed = translate(InvocationResult(b'{"errorMessage": "x"}', function_error="Unhandled"))

    assert (structured.status, structured.body) == (202, b"bin")
    assert ("x-a", "1") in structured.headers
    assert ("set-cookie", "c=1") in structured.headers
    assert (bare.status, json.loads(bare.body)) == (200, {"ok": True})
    assert (failed.status, json.loads(failed.body)) == (500, {"message": "Internal Server Error"})


@pytest.fixture
def front(tmp_path: Path) -> HttpFront:
    (tmp_path / "index.html").write_text("<html>dashboard</html>")
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "app.js").write_text("console.log(1)")
    (tmp_path.parent / "secret.txt").write_text("do not serve")

    def invoke(name: str, event: dict[str, Any]) -> InvocationResult:
        return InvocationResult(json.dumps({"function": name, "path": event["rawPath"]}).encode())

    return HttpFront(_routes(), invoke, authorizer=None, web_dir=tmp_path, account_id="1", port=0)


def test_static_files_and_client_side_routes_are_served(front: HttpFront) -> None:
    index = front.handle("GET", "/", {}, b"", "127.0.0.1")
    script = front.handle("GET", "/assets/app.js", {}, b"", "127.0.0.1")
    client_route = front.handle("GET", "/projects/7/queue", {}, b"", "127.0.0.1")
    missing_asset = front.handle("GET", "/assets/missing.js", {}, b"", "127.0.0.1")
    escape = front.handle("GET", "/../secret.txt", {}, b"", "127.0.0.1")

    assert index.status == 200
    assert b"dashboard" in index.body
    assert script.status == 200
    assert ("content-type", "text/javascript") in script.headers
    assert client_route.status == 200
    assert b"dashboard" in client_route.body
    assert missing_asset.status == 404
    assert escape.status == 404


def test_authorized_route_without_authorizer_is_refused(front: HttpFront) -> None:
    refused = front.handle("GET", "/api/v1/anything", {}, b"", "127.0.0.1")
    open_route = front.handle("POST", "/webhook/gitlab", {}, b"{}", "127.0.0.1")

    assert refused.status == 401
    assert json.loads(open_route.body) == {"function": "fn-webhook", "path": "/webhook/gitlab"}


def test_unbuilt_dashboard_says_how_to_build_it(tmp_path: Path) -> None:
    front = HttpFront(
        [],
        lambda n, e: InvocationResult(b"null"),
        authorizer=None,
        web_dir=tmp_path / "dist",
        account_id="1",
        port=0,
    )

    response = front.handle("GET", "/", {}, b"", "127.0.0.1")

    assert response.status == 404
    assert b"make web" in response.body

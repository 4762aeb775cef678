"""Plays API Gateway (HTTP API, payload format 2.0) in front of the real handlers, and
serves the built dashboard.

Routes come from ``merge_assist.platform.resources.ROUTES``, the list the CDK app builds the cloud's
HTTP API from. Responses follow API Gateway's rules: the function's
``statusCode``/``headers``/``body``/``isBase64Encoded``/``cookies``, or a bare JSON value
answered as 200 ``application/json``; a failed function is a 500 ``Internal Server Error``.
"""

from __future__ import annotations

import base64
import json
import logging
import mimetypes
import re
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from local.authorizer import JwtAuthorizer, Unauthorized
from local.observers import Observers
from local.runtime import InvocationResult
from merge_assist.platform.dashboard import CONFIG_FILE
from merge_assist.platform.resources import HttpRoute

log = logging.getLogger(__name__)

# API Gateway HTTP APIs refuse request bodies above 10 MB.
MAX_BODY_BYTES = 10 * 1024 * 1024

Invoke = Callable[[str, dict[str, Any]], InvocationResult]
# Told of every request API Gateway would bill: (route key, request body bytes).
RequestObserver = Callable[[str, int], None]


@dataclass(frozen=True)
class CompiledRoute:
    route: HttpRoute
    function_name: str
    pattern: re.Pattern[str]

    @property
    def route_key(self) -> str:
        return f"{self.route.method} {self.route.path}"


def compile_route(route: HttpRoute, function_name: str) -> CompiledRoute:
    regex = ""
    for part in re.split(r"(\{[^}]+\})", route.path):
        if part.startswith("{") and part.endswith("+}"):
            regex += f"(?P<{part[1:-2]}>.+)"
        elif part.startswith("{"):
            regex += f"(?P<{part[1:-1]}>[^/]+)"
        else:
            regex += re.escape(part)
    return CompiledRoute(route, function_name, re.compile(f"^{regex}$"))


def match_route(
    routes: Sequence[CompiledRoute], method: str, path: str
) -> tuple[CompiledRoute, dict[str, str]] | None:
    """Most specific route first, as API Gateway does: exact method before ANY, fewer
    greedy parameters before more."""
    ranked = sorted(
        routes, key=lambda r: (r.route.method == "ANY", "+}" in r.route.path, -len(r.route.path))
    )
    for compiled in ranked:
        if compiled.route.method not in ("ANY", method):
            continue
        found = compiled.pattern.match(path)
        if found:
            return compiled, {name: unquote(value) for name, value in found.groupdict().items()}
    return None


def http_api_event(
    *,
    method: str,
    raw_path: str,
    raw_query: str,
    headers: dict[str, str],
    body: bytes,
    route_key: str,
    path_parameters: dict[str, str],
    source_ip: str,
    claims: dict[str, str] | None,
    account_id: str,
) -> dict[str, Any]:
    now = datetime.now(UTC)
    query: dict[str, str] = {}
    for name, value in parse_qsl(raw_query, keep_blank_values=True):
        query[name] = f"{query[name]},{value}" if name in query else value
    cookies = [c.strip() for c in headers.get("cookie", "").split(";") if c.strip()]
    content_type = headers.get("content-type", "")
    textual = (
        not body
        or content_type.startswith(("text/", "application/json"))
        or ("charset" in content_type)
    )
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": {name: value for name, value in headers.items() if name != "cookie"},
        "requestContext": {
            "accountId": account_id,
            "apiId": "local",
            "domainName": headers.get("host", "127.0.0.1"),
            "domainPrefix": headers.get("host", "127.0.0.1").split(".")[0],
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": str(uuid.uuid4()),
            "routeKey": route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": not textual,
    }
    if cookies:
        event["cookies"] = cookies
    if query:
        event["queryStringParameters"] = query
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body:
        try:
            event["body"] = body.decode("utf-8") if textual else None
        except UnicodeDecodeError:
            textual = False  # declared as text but is not: API Gateway base64-encodes it
        if not textual:
            event["body"] = base64.b64encode(body).decode()
        event["isBase64Encoded"] = not textual
    if claims is not None:
        event["requestContext"]["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
    return event


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def json_response(status: int, document: Any) -> HttpResponse:
    return HttpResponse(
        status, [("content-type", "application/json")], json.dumps(document).encode()
    )


def translate(result: InvocationResult) -> HttpResponse:
    if result.function_error:
        return json_response(500, {"message": "Internal Server Error"})
    try:
        answer = result.json()
    except ValueError:
        return HttpResponse(200, [("content-type", "text/plain")], result.payload)
    if not (isinstance(answer, dict) and "statusCode" in answer):
        return json_response(200, answer)
    headers = [(str(k).lower(), str(v)) for k, v in (answer.get("headers") or {}).items()]
    for name, values in (answer.get("multiValueHeaders") or {}).items():
        headers.extend((str(name).lower(), str(v)) for v in values)
    headers.extend(("set-cookie", cookie) for cookie in answer.get("cookies") or [])
    raw = answer.get("body") or ""
    body = base64.b64decode(raw) if answer.get("isBase64Encoded") else str(raw).encode()
    return HttpResponse(int(answer["statusCode"]), headers, body)


class HttpFront:
    def __init__(
        self,
        routes: Sequence[CompiledRoute],
        invoke: Invoke,
        *,
        authorizer: JwtAuthorizer | None,
        web_dir: Path | None,
        account_id: str,
        host: str = "127.0.0.1",
        port: int = 8080,
    ) -> None:
        self._routes = list(routes)
        self._invoke = invoke
        self._authorizer = authorizer
        self._web_dir = web_dir
        self._account_id = account_id
        # The dashboard's config.json, known once the stack is up (``dashboard_config``).
        self.site_config: dict[str, Any] | None = None
        self.observers: Observers[RequestObserver] = Observers()
        self._server = ThreadingHTTPServer((host, port), self._handler_class())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="http-front", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def handle(
        self, method: str, target: str, headers: dict[str, str], body: bytes, source_ip: str
    ) -> HttpResponse:
        url = urlsplit(target)
        found = match_route(self._routes, method, url.path)
        if found is None:
            if method in ("GET", "HEAD"):
                return self._static(url.path)
            return json_response(404, {"message": "Not Found"})
        compiled, parameters = found
        claims = None
        if compiled.route.authorized:
            if self._authorizer is None:
                return json_response(401, {"message": "Unauthorized"})
            try:
                claims = self._authorizer.authorize(headers.get("authorization"))
            except Unauthorized as refusal:
                log.info("refused %s %s: %s", method, url.path, refusal)
                return json_response(401, {"message": "Unauthorized"})
        # Requests the authorizer refuses are not billed; everything else routed is.
        for observer in self.observers:
            observer(compiled.route_key, len(body))
        event = http_api_event(
            method=method,
            raw_path=url.path,
            raw_query=url.query,
            headers=headers,
            body=body,
            route_key=compiled.route_key,
            path_parameters=parameters,
            source_ip=source_ip,
            claims=claims,
            account_id=self._account_id,
        )
        started = time.perf_counter()
        result = self._invoke(compiled.function_name, event)
        log.debug("%s %s in %.1f ms", method, url.path, (time.perf_counter() - started) * 1000)
        return translate(result)

    def _static(self, path: str) -> HttpResponse:
        if path == f"/{CONFIG_FILE}" and self.site_config is not None:
            return HttpResponse(
                200,
                [("content-type", "application/json"), ("cache-control", "no-store")],
                json.dumps(self.site_config).encode(),
            )
        if self._web_dir is None or not (self._web_dir / "index.html").is_file():
            return HttpResponse(
                404,
                [("content-type", "text/plain; charset=utf-8")],
                b"The dashboard is not built: run `make web`.\n",
            )
        root = self._web_dir.resolve()
        candidate = (root / unquote(path).lstrip("/")).resolve()
        if not candidate.is_relative_to(root):
            return json_response(404, {"message": "Not Found"})
        if not candidate.is_file():
            if Path(path).suffix:  # a missing asset, not a client-side route
                return json_response(404, {"message": "Not Found"})
            candidate = root / "index.html"
        content_type = mimetypes.guess_type(candidate.name)[0] or "application/octet-stream"
        return HttpResponse(200, [("content-type", content_type)], candidate.read_bytes())

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                if length > MAX_BODY_BYTES:
                    response = json_response(413, {"message": "Request Entity Too Large"})
                    self.close_connection = True
                else:
                    body = self.rfile.read(length) if length else b""
                    headers = {name.lower(): value for name, value in self.headers.items()}
                    try:
                        response = front.handle(
                            self.command, self.path, headers, body, self.client_address[0]
                        )
                    except Exception:
                        log.exception("HTTP front failed on %s %s", self.command, self.path)
                        response = json_response(500, {"message": "Internal Server Error"})
                self.send_response(response.status, HTTPStatus(response.status).phrase)
                for name, value in response.headers:
                    self.send_header(name, value)
                self.send_header("content-length", str(len(response.body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(response.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _serve

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s " + format, self.address_string(), *args)

        return Handler

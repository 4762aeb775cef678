"""Plays API Gateway's WebSocket API for the local stack: the dashboard's live-update socket
at ``merge_assist.platform.resources.WEBSOCKET_PATH`` in front of the real ``websocket``
function, and the management API (``@connections``) that the ``updates`` function posts to.

As API Gateway does: an upgrade request is handed to the ``$connect`` route before it is
accepted, and a non-2xx answer fails the handshake with that status; each message goes to
``$default`` (whose answer's body, if any, is sent back, the route having a route response);
a closed socket goes to ``$disconnect``. ``POST /@connections/{id}`` sends its body to the
socket, ``DELETE`` closes it, ``GET`` describes it, and any of them answers 410
``GoneException`` for a socket that is not open, so boto3's ``apigatewaymanagementapi``
client works against it unchanged.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response
from websockets.sync.server import Server, ServerConnection, serve

from local.runtime import InvocationResult
from merge_assist.platform.resources import WEBSOCKET_PATH

log = logging.getLogger(__name__)

Invoke = Callable[[str, dict[str, Any]], InvocationResult]

# API Gateway's limit on one WebSocket message (and on a PostToConnection body).
MAX_MESSAGE_BYTES = 128 * 1024
# A socket whose handshake was answered but never completed is given up after this.
HANDSHAKE_SECONDS = 10.0
LOCAL_API_ID = "local"
_SOCKETS_LOG = logging.getLogger(f"{__name__}.sockets")
_SOCKETS_LOG.setLevel(logging.WARNING)
_MANAGEMENT_PATH = re.compile(r"^(?:/[^/@]+)?/@connections/(?P<connection_id>[^/]+)$")


def _request_time(moment: datetime) -> str:
    return moment.strftime("%d/%b/%Y:%H:%M:%S +0000")


def new_connection_id() -> str:
    """Opaque and URL-safe, like API Gateway's (e.g. ``L0SM9cOFvHcCIhw=``)."""
    return base64.urlsafe_b64encode(os.urandom(10)).decode()


def websocket_event(
    route_key: str,
    connection_id: str,
    *,
    domain_name: str,
    stage: str,
    source_ip: str,
    connected_at: int,
    headers: Headers | None = None,
    query: str = "",
    body: str | None = None,
    is_base64: bool = False,
    close_code: int | None = None,
    close_reason: str = "",
) -> dict[str, Any]:
    """The event API Gateway hands a WebSocket route's Lambda proxy integration."""
    event_type = {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route_key, "MESSAGE")
    now = datetime.now(UTC)
    request_context: dict[str, Any] = {
        "routeKey": route_key,
        "eventType": event_type,
        "extendedRequestId": str(uuid.uuid4()),
        "requestTime": _request_time(now),
        "messageDirection": "IN",
        "stage": stage,
        "connectedAt": connected_at,
        "requestTimeEpoch": int(now.timestamp() * 1000),
        "identity": {"sourceIp": source_ip},
        "requestId": str(uuid.uuid4()),
        "domainName": domain_name,
        "connectionId": connection_id,
        "apiId": LOCAL_API_ID,
    }
    event: dict[str, Any] = {"requestContext": request_context, "isBase64Encoded": is_base64}
    if event_type == "CONNECT":
        assert headers is not None
        event["headers"] = {name: headers[name] for name in headers}
        event["multiValueHeaders"] = {name: headers.get_all(name) for name in headers}
        pairs = parse_qsl(query, keep_blank_values=True)
        if pairs:
            event["queryStringParameters"] = dict(pairs)
            multi: dict[str, list[str]] = {}
            for name, value in pairs:
                multi.setdefault(name, []).append(value)
            event["multiValueQueryStringParameters"] = multi
    elif event_type == "MESSAGE":
        request_context["messageId"] = str(uuid.uuid4())
        event["body"] = body
    else:
        request_context["disconnectStatusCode"] = close_code
        request_context["disconnectReason"] = close_reason
    return event


def status_of(result: InvocationResult) -> tuple[int, Any]:
    """The status API Gateway takes from a proxy integration's answer (500 if it failed)."""
    if result.function_error:
        return 500, None
    try:
        answer = result.json()
    except ValueError:
        return 500, None
    if not isinstance(answer, dict):
        return 200, answer
    status = answer.get("statusCode", 200)
    return (status if isinstance(status, int) else 500), answer


@dataclass
class Peer:
    """One socket, from the moment ``$connect`` accepts it; messages posted before the
    handshake completes wait for it."""

    connection_id: str
    source_ip: str
    user_agent: str
    connected_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    last_active_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    socket: ServerConnection | None = None
    waiting: list[bytes] = field(default_factory=list)
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def open(self) -> bool:
        if self.closed:
            return False
        stalled = time.time() - self.connected_at.timestamp() > HANDSHAKE_SECONDS
        return self.socket is not None or not stalled

    def attach(self, socket: ServerConnection) -> None:
        # Under the lock, so that nothing posted meanwhile overtakes what was waiting.
        with self.lock:
            self.socket = socket
            for message in self.waiting:
                _send(socket, message)
            self.waiting.clear()

    def post(self, message: bytes) -> None:
        with self.lock:
            if self.socket is None:
                self.waiting.append(message)
            else:
                _send(self.socket, message)


def _send(socket: ServerConnection, message: bytes) -> None:
    # API Gateway delivers posted data as a text frame when it is text.
    try:
        socket.send(message.decode())
    except UnicodeDecodeError:
        socket.send(message)


class WebSocketFront:
    def __init__(
        self,
        invoke: Invoke,
        function_name: str,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        management_port: int = 0,
        stage: str = "local",
    ) -> None:
        self._invoke = invoke
        self._function = function_name
        self._stage = stage
        self._peers: dict[str, Peer] = {}
        self._pending: dict[ServerConnection, str] = {}
        self._lock = threading.Lock()
        self._server: Server = serve(
            self._session,
            host,
            port,
            process_request=self._check_path,
            process_response=self._connect,
            max_size=MAX_MESSAGE_BYTES,
            # Every open and close at INFO would drown the stack's own log.
            logger=_SOCKETS_LOG,
        )
        self._management = ThreadingHTTPServer((host, management_port), self._handler_class())
        self._management.daemon_threads = True
        self._threads: list[threading.Thread] = []

    @property
    def url(self) -> str:
        host, port = self._server.socket.getsockname()[:2]
        return f"ws://{host}:{port}{WEBSOCKET_PATH}"

    @property
    def domain_name(self) -> str:
        host, port = self._server.socket.getsockname()[:2]
        return f"{host}:{port}"

    @property
    def callback_url(self) -> str:
        """What the ``updates`` function is given as the management API's endpoint (in the
        cloud: ``https://<api>.execute-api.<region>.amazonaws.com/<stage>``)."""
        host, port = self._management.server_address[:2]
        return f"http://{host!s}:{port}/{self._stage}"

    def start(self) -> None:
        for name, target in (
            ("websocket-front", self._server.serve_forever),
            ("websocket-management", lambda: self._management.serve_forever(poll_interval=0.1)),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        # Open sockets are closed first, so each one's $disconnect runs while the
        # management API still answers.
        self._server.shutdown()
        self._management.shutdown()
        self._management.server_close()

    def connection_ids(self) -> list[str]:
        with self._lock:
            return [cid for cid, peer in self._peers.items() if peer.open()]

    # -- the socket -------------------------------------------------------------------

    def _check_path(self, connection: ServerConnection, request: Request) -> Response | None:
        if urlsplit(request.path).path != WEBSOCKET_PATH:
            # API Gateway answers a path after the stage with 403.
            return connection.respond(HTTPStatus.FORBIDDEN, "Forbidden\n")
        return None

    def _connect(
        self, connection: ServerConnection, request: Request, response: Response
    ) -> Response | None:
        if response.status_code != HTTPStatus.SWITCHING_PROTOCOLS:
            return None
        peer = Peer(
            new_connection_id(),
            source_ip=str(connection.remote_address[0]),
            user_agent=request.headers.get("user-agent", ""),
        )
        event = self._event(
            "$connect", peer, headers=request.headers, query=urlsplit(request.path).query
        )
        status, _ = status_of(self._invoke(self._function, event))
        if not 200 <= status < 300:
            log.info("websocket connection refused with %d", status)
            if status not in HTTPStatus.__members__.values():
                status = HTTPStatus.INTERNAL_SERVER_ERROR
            return connection.respond(status, f"{HTTPStatus(status).phrase}\n")
        with self._lock:
            self._peers[peer.connection_id] = peer
            self._pending[connection] = peer.connection_id
        return None

    def _event(self, route_key: str, peer: Peer, **details: Any) -> dict[str, Any]:
        return websocket_event(
            route_key,
            peer.connection_id,
            domain_name=self.domain_name,
            stage=self._stage,
            source_ip=peer.source_ip,
            connected_at=int(peer.connected_at.timestamp() * 1000),
            **details,
        )

    def _session(self, connection: ServerConnection) -> None:
        with self._lock:
            peer = self._peers[self._pending.pop(connection)]
        peer.attach(connection)
        try:
            for message in connection:
                peer.last_active_at = datetime.now(UTC)
                if isinstance(message, bytes):
                    body, is_base64 = base64.b64encode(message).decode(), True
                else:
                    body, is_base64 = message, False
                event = self._event("$default", peer, body=body, is_base64=is_base64)
                _, answer = status_of(self._invoke(self._function, event))
                reply = answer.get("body") if isinstance(answer, dict) else None
                if reply:
                    connection.send(str(reply))
        except ConnectionClosed:
            pass
        finally:
            with self._lock:
                peer.closed = True
                self._peers.pop(peer.connection_id, None)
            event = self._event(
                "$disconnect",
                peer,
                close_code=connection.close_code,
                close_reason=connection.close_reason or "",
            )
            self._invoke(self._function, event)

    # -- the management API -----------------------------------------------------------

    def _peer(self, connection_id: str) -> Peer | None:
        with self._lock:
            peer = self._peers.get(connection_id)
        return peer if peer is not None and peer.open() else None

    def manage(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, Any] | None]:
        found = _MANAGEMENT_PATH.match(urlsplit(path).path)
        if found is None:
            return 404, {"message": "Not Found"}
        peer = self._peer(unquote(found["connection_id"]))
        if peer is None:
            return 410, None
        if method == "POST":
            return self._post(peer, body)
        if method == "DELETE":
            if peer.socket is not None:
                peer.socket.close()
            return 204, None
        if method == "GET":
            return 200, {
                "ConnectedAt": peer.connected_at.isoformat(),
                "Identity": {"SourceIp": peer.source_ip, "UserAgent": peer.user_agent},
                "LastActiveAt": peer.last_active_at.isoformat(),
            }
        return 405, {"message": "Method Not Allowed"}

    @staticmethod
    def _post(peer: Peer, body: bytes) -> tuple[int, dict[str, Any] | None]:
        if len(body) > MAX_MESSAGE_BYTES:
            return 413, {"message": "Message too long"}
        try:
            peer.post(body)
        except ConnectionClosed:
            return 410, None
        return 200, None

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        front = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                status, document = front.manage(self.command, self.path, body)
                error_type = {
                    410: "GoneException",
                    413: "PayloadTooLargeException",
                    404: "NotFoundException",
                }.get(status)
                if status == 410:
                    document = {"message": f"connection {self.path.rsplit('/', 1)[-1]} is gone"}
                payload = json.dumps(document).encode() if document is not None else b""
                self.send_response(status, HTTPStatus(status).phrase)
                self.send_header("content-type", "application/json")
                if error_type:
                    self.send_header("x-amzn-ErrorType", error_type)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("%s " + format, self.address_string(), *args)

        return Handler

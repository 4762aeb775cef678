"""AWS calls made inside the stack's process reach moto's server application directly.

moto's threaded server is werkzeug's development server, which answers every request with
``Connection: close``: each AWS call paid a TCP connect, a new server thread and a close,
and with every function, poller and stand-in of the stack in one process, that transport,
not the product, was what a burst measured. A botocore ``before-send`` handler gives a
request whose URL is the local moto endpoint to the same WSGI application the server runs
(same routing, same backends, same locks), in the caller's thread, and hands its answer
back to botocore as the server's would be. Calls from other processes (the CLI, a browser)
still go over HTTP to the server, which keeps running."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

import boto3
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.compat import HTTPHeaders
from botocore.handlers import BUILTIN_HANDLERS
from moto.core.botocore_stubber import MockRawResponse
from moto.server import ThreadedMotoServer
from werkzeug.test import EnvironBuilder

log = logging.getLogger(__name__)

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

_lock = threading.Lock()
_apps: dict[str, WsgiApp] = {}
_registered = False


def server_app(server: ThreadedMotoServer) -> WsgiApp:
    """The WSGI application a started server runs (moto keeps it on its werkzeug server)."""
    # moto exposes no accessor for it.
    werkzeug_server: Any = server._server
    if werkzeug_server is None:
        raise RuntimeError("the moto server is not started")
    app: WsgiApp = werkzeug_server.app
    return app


def send(request: AWSPreparedRequest, **_: Any) -> AWSResponse | None:
    """botocore's ``before-send``: an answer for a request to a local moto, else None (the
    request goes out over the network as usual)."""
    parts = urlsplit(request.url)
    app = _apps.get(f"{parts.scheme}://{parts.netloc}")
    if app is None:
        return None
    body: Any = request.body
    if hasattr(body, "read"):
        body = body.read()
    if isinstance(body, str):
        body = body.encode()
    headers = [
        (key, value.decode() if isinstance(value, bytes) else value)
        for key, value in request.headers.items()
    ]
    environ = EnvironBuilder(
        method=request.method,
        base_url=f"{parts.scheme}://{parts.netloc}",
        path=parts.path,
        query_string=parts.query,
        headers=headers,
        data=bytes(body or b""),
    ).get_environ()
    answered: dict[str, Any] = {}

    def start_response(status: str, response_headers: list[tuple[str, str]], *_: Any) -> None:
        answered["status"] = int(status.split(maxsplit=1)[0])
        answered["headers"] = HTTPHeaders()
        for key, value in response_headers:
            answered["headers"][key] = value

    try:
        chunks = app(environ, start_response)
        try:
            data = b"".join(chunks)
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
    except Exception:
        # What werkzeug's server does with an exception in the application.
        log.exception("moto failed on %s %s", request.method, parts.path)
        return AWSResponse(
            request.url, 500, HTTPHeaders(), MockRawResponse(b"Internal Server Error")
        )
    return AWSResponse(request.url, answered["status"], answered["headers"], MockRawResponse(data))


@contextmanager
def in_process(app: WsgiApp, endpoints: Iterable[str]) -> Iterator[None]:
    """While the block runs, this process's AWS calls to ``endpoints`` (``http://host:port``)
    are answered by ``app``, for clients of sessions created from now on (the default session
    among them); older clients still go over HTTP."""
    global _registered  # noqa: PLW0603 - one handler per process, found by every session
    bases = [endpoint.rstrip("/") for endpoint in endpoints]
    with _lock:
        if not _registered:
            BUILTIN_HANDLERS.append(("before-send", send))
            _registered = True
        for base in bases:
            _apps[base] = app
    # The default session predates the handler if it exists: boto3 makes a new one, with the
    # handler, on its next use. (Registering it on the old one as well would have a session
    # made after the first stack run every request twice: botocore calls every
    # ``before-send`` handler, and keeps the first answer.)
    boto3.DEFAULT_SESSION = None
    try:
        yield
    finally:
        with _lock:
            for base in bases:
                _apps.pop(base, None)

"""The WSGI application: git smart HTTP for ``*.git`` paths, the REST API under
``/api/v4`` with token auth, injected faults (``faults.py``) and GitLab's error bodies."""

from __future__ import annotations

import contextlib
import json
import logging
import socket
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from werkzeug.wrappers import Request, Response

from local.gitlab_sim.api import (
    groups,
    issues,
    merge_requests,
    pipelines,
    projects,
    repository,
    sim,
    tokens,
    users,
)
from local.gitlab_sim.api.core import (
    API_PREFIX,
    Ctx,
    Reply,
    Router,
    Services,
    error,
    read_params,
)
from local.gitlab_sim.errors import ApiError
from local.gitlab_sim.faults import Fault, is_mutating
from local.gitlab_sim.smart_http import GitHttp, StartResponse, is_git_request
from local.gitlab_sim.store import NotFound

log = logging.getLogger(__name__)

# Fault rules never apply to the simulator's own control endpoints.
SIM_PREFIX = "/-/sim"


def build_router() -> Router:
    router = Router()
    for module in (
        users,
        tokens,
        projects,
        repository,
        merge_requests,
        issues,
        groups,
        pipelines,
        sim,
    ):
        module.register(router)
    return router


@dataclass
class SimulatorApp:
    services: Services
    router: Router
    git: GitHttp

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if is_git_request(environ.get("PATH_INFO", "")):
            return self._git(environ, start_response)
        response = self.handle(Request(environ))
        if isinstance(response, _Dropped):
            return _drop(environ, start_response)
        return response(environ, start_response)

    def _git(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO", "")
        faults = self.services.faults
        fault = faults.for_request(method, path, git=True)
        if fault is not None:
            answer = _faulted(fault, text=True)
            if isinstance(answer, _Dropped):
                return _drop(environ, start_response)
            if answer is not None:
                return answer(environ, start_response)
        if not is_mutating(method, path):
            return self.git(environ, start_response)
        answered: list[tuple[str, list[tuple[str, str]]]] = []
        written: list[bytes] = []

        # dulwich writes the receive-pack report through start_response's ``write``.
        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            answered.append((status, headers))
            return written.append

        returned = list(self.git(environ, capture))
        body = [*written, *returned]
        status, headers = answered[-1]
        lost = faults.after_effect(method, path, git=True) if int(status[:3]) < 400 else None
        if lost is not None:
            answer = _faulted(lost, text=True)
            if isinstance(answer, _Dropped):
                return _drop(environ, start_response)
            if answer is not None:
                return answer(environ, start_response)
        start_response(status, headers)
        return body

    def handle(self, request: Request) -> Response:
        raw = str(
            request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.path
        ).split("?", 1)[0]
        if not raw.startswith(API_PREFIX + "/"):
            return error(404, "404 Not Found")
        path = raw[len(API_PREFIX) :]
        controls = path.startswith(SIM_PREFIX)
        if not controls:
            fault = self.services.faults.for_request(request.method, path)
            faulted = None if fault is None else _faulted(fault)
            if faulted is not None:
                return faulted
        response = self._answer(request, path)
        if controls or response.status_code >= 400 or not is_mutating(request.method, path):
            return response
        lost = self.services.faults.after_effect(request.method, path)
        return response if lost is None else (_faulted(lost) or response)

    # Each early return is one of GitLab's refusals, checked in GitLab's order.
    def _answer(self, request: Request, path: str) -> Response:  # noqa: PLR0911
        user = self._user(request)
        if user is None:
            tokens.refused(self.services.store, request, path)
            return error(401, "401 Unauthorized")
        for observer in self.services.request_observers:
            observer(user.username, request.method, path)
        matched = self.router.match(request.method, path)
        if matched is None:
            if self.router.known_path(path):
                return error(405, "405 Method Not Allowed")
            return error(404, "404 Not Found")
        handler, path_params = matched
        try:
            reply = handler(Ctx(request, user, read_params(request), path_params, self.services))
        except json.JSONDecodeError:
            return error(400, "400 Bad request - invalid JSON body")
        except ApiError as err:
            return error(err.status, err.message)
        except NotFound as err:
            return error(404, str(err))
        except (KeyError, ValueError, TypeError) as err:
            log.info("bad request %s %s: %r", request.method, path, err)
            return error(400, f"400 Bad request - {err}")
        return self._render(reply)

    @staticmethod
    def _render(reply: Reply) -> Response:
        if reply.raw is not None:
            response = Response(reply.raw, status=reply.status, content_type=reply.content_type)
        elif reply.status == 204:
            response = Response(status=204)
        else:
            response = Response(
                json.dumps(reply.body), status=reply.status, content_type=reply.content_type
            )
        for name, value in reply.headers.items():
            response.headers[name] = value
        return response

    def _user(self, request: Request) -> Any:
        store = self.services.store
        token = tokens.request_token(request)
        user = store.user_for_token(token) if token else None
        sudo = request.headers.get("Sudo") or request.args.get("sudo")
        if user is not None and sudo and user.is_admin:
            try:
                return store.user(int(sudo)) if sudo.isdigit() else store.user_by_username(sudo)
            except NotFound:
                return None
        return user


class _Dropped(Response):
    """No answer: the connection is closed instead."""


def _faulted(fault: Fault, *, text: bool = False) -> Response | None:
    """What the fault answers (after its latency); None lets the request through."""
    if fault.latency_s:
        time.sleep(fault.latency_s)
    if fault.drop_connection:
        return _Dropped()
    if fault.status is None:
        return None
    message = f"{fault.status} Simulated fault"
    response = (
        Response(message, status=fault.status, content_type="text/plain")
        if text
        else error(fault.status, message)
    )
    if fault.retry_after is not None:
        response.headers["Retry-After"] = str(fault.retry_after)
    return response


def _drop(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Closes the client's connection before a byte of the answer: the server's write then
    fails as on any connection the client dropped, which it ignores."""
    connection = environ.get("werkzeug.socket")
    if connection is not None:
        with contextlib.suppress(OSError):
            connection.shutdown(socket.SHUT_RDWR)
    start_response("502 Bad Gateway", [("Content-Length", "0")])
    return [b""]

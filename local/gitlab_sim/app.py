"""The WSGI application: git smart HTTP for ``*.git`` paths, the REST API under
``/api/v4`` with token auth, injected faults and GitLab's error bodies."""

from __future__ import annotations

import json
import logging
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
from local.gitlab_sim.merge_requests import ApiError
from local.gitlab_sim.smart_http import GitHttp, StartResponse, is_git_request
from local.gitlab_sim.store import NotFound

log = logging.getLogger(__name__)

# Fault rules never apply to the simulator's own control endpoints.
SIM_PREFIX = "/-/sim"


def build_router() -> Router:
    router = Router()
    for module in (users, projects, repository, merge_requests, issues, groups, pipelines, sim):
        module.register(router)
    return router


@dataclass
class SimulatorApp:
    services: Services
    router: Router
    git: GitHttp

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if is_git_request(environ.get("PATH_INFO", "")):
            return self.git(environ, start_response)
        response = self.handle(Request(environ))
        return response(environ, start_response)

    # Each early return is one of GitLab's refusals, checked in GitLab's order.
    def handle(self, request: Request) -> Response:  # noqa: PLR0911
        raw = str(
            request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or request.path
        ).split("?", 1)[0]
        if not raw.startswith(API_PREFIX + "/"):
            return error(404, "404 Not Found")
        path = raw[len(API_PREFIX) :]
        faulted = None if path.startswith(SIM_PREFIX) else self._fault(request.method, path)
        if faulted is not None:
            return faulted
        user = self._user(request)
        if user is None:
            return error(401, "401 Unauthorized")
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

    def _fault(self, method: str, path: str) -> Response | None:
        fault = self.services.faults.for_request(method, path)
        if fault is None:
            return None
        if fault.latency_s:
            time.sleep(fault.latency_s)
        if fault.status is None:
            return None
        response = error(fault.status, f"{fault.status} Simulated fault")
        if fault.retry_after is not None:
            response.headers["Retry-After"] = str(fault.retry_after)
        return response

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
        token = request.headers.get("PRIVATE-TOKEN")
        if token is None:
            auth = request.headers.get("Authorization", "")
            if auth.startswith("Bearer "):
                token = auth[7:]
        if token is None:
            token = request.args.get("private_token")
        user = store.user_for_token(token) if token else None
        sudo = request.headers.get("Sudo") or request.args.get("sudo")
        if user is not None and sudo and user.is_admin:
            try:
                return store.user(int(sudo)) if sudo.isdigit() else store.user_by_username(sudo)
            except NotFound:
                return None
        return user

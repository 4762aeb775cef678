"""Routing, authentication, parameters, pagination and GitLab's error bodies."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode

from werkzeug.wrappers import Request, Response

from local.gitlab_sim.errors import ApiError
from local.gitlab_sim.faults import Faults
from local.gitlab_sim.issues import IssueService
from local.gitlab_sim.merge_requests import MergeRequestService
from local.gitlab_sim.models import MergeRequest, Project, User
from local.gitlab_sim.pipelines import PipelineService
from local.gitlab_sim.pushes import PushService
from local.gitlab_sim.serializers import Serializer
from local.gitlab_sim.store import NotFound, Store
from local.gitlab_sim.webhooks import WebhookService
from local.observers import Observers

API_PREFIX = "/api/v4"
MAX_PER_PAGE = 100

# Told of every authenticated REST request: (username, method, path under /api/v4).
RequestObserver = Callable[[str, str, str], None]


@dataclass
class Services:
    store: Store
    pipelines: PipelineService
    pushes: PushService
    merge_requests: MergeRequestService
    webhooks: WebhookService
    serializer: Serializer
    faults: Faults
    issues: IssueService
    # The GitLabSimulator, for the admin-only scenario endpoints (api/sim.py).
    scenario: Any = None
    # A benchmark's hook: who calls the REST API, and how often.
    request_observers: Observers[RequestObserver] = field(default_factory=Observers)


@dataclass
class Reply:
    body: Any
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None
    content_type: str = "application/json"


@dataclass
class Ctx:
    request: Request
    user: User
    params: dict[str, Any]
    path: dict[str, str]
    services: Services

    @property
    def store(self) -> Store:
        return self.services.store

    @property
    def ser(self) -> Serializer:
        return self.services.serializer

    def project(self) -> Project:
        return self.store.project(self.path["id"], self.user)

    def merge_request(self) -> tuple[Project, MergeRequest]:
        project = self.project()
        try:
            iid = int(self.path["iid"])
        except ValueError as err:
            raise NotFound("404 Not found") from err
        return project, self.store.merge_request(project.id, iid)

    def get(self, name: str, default: Any = None) -> Any:
        return self.params.get(name, default)

    def int_param(self, name: str) -> int | None:
        value = self.params.get(name)
        if value in (None, ""):
            return None
        try:
            return int(value)
        except (TypeError, ValueError) as err:
            raise ApiError(400, {"error": f"{name} is invalid"}) from err

    def require(self, *names: str) -> None:
        missing = [n for n in names if self.params.get(n) in (None, "")]
        if missing:
            raise ApiError(400, {"error": f"{', '.join(missing)} is missing"})

    def admin(self) -> None:
        if not self.user.is_admin:
            raise ApiError(403, "403 Forbidden")


Handler = Callable[[Ctx], Reply]


@dataclass
class Route:
    method: str
    pattern: re.Pattern[str]
    handler: Handler


class Router:
    def __init__(self) -> None:
        self.routes: list[Route] = []

    def add(self, method: str, template: str, handler: Handler) -> None:
        """``:name`` matches one path segment, ``*name`` the rest of the path."""
        regex = re.sub(r":(\w+)", r"(?P<\1>[^/]+)", template)
        regex = re.sub(r"\*(\w+)", r"(?P<\1>.+)", regex)
        self.routes.append(Route(method, re.compile(f"^{regex}$"), handler))

    def match(self, method: str, raw_path: str) -> tuple[Handler, dict[str, str]] | None:
        for route in self.routes:
            if route.method != method:
                continue
            found = route.pattern.match(raw_path)
            if found:
                return route.handler, {k: unquote(v) for k, v in found.groupdict().items()}
        return None

    def known_path(self, raw_path: str) -> bool:
        return any(route.pattern.match(raw_path) for route in self.routes)


def error(status: int, message: Any) -> Response:
    return Response(
        json.dumps({"message": message}), status=status, content_type="application/json"
    )


def read_params(request: Request) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for key in request.args:
        values = request.args.getlist(key)
        name = key[:-2] if key.endswith("[]") else key
        params[name] = values if key.endswith("[]") or len(values) > 1 else values[0]
    if request.mimetype == "application/json" and request.get_data():
        body = json.loads(request.get_data())
        if not isinstance(body, dict):
            raise ApiError(400, "400 Bad request - body must be a JSON object")
        params.update(body)
    elif request.form:
        for key in request.form:
            values = request.form.getlist(key)
            name = key[:-2] if key.endswith("[]") else key
            params[name] = values if key.endswith("[]") or len(values) > 1 else values[0]
    return params


def paginate(ctx: Ctx, items: Sequence[Any]) -> Reply:
    """GitLab's offset pagination with its headers."""
    try:
        page = max(1, int(ctx.params.get("page", 1)))
        per_page = min(MAX_PER_PAGE, max(1, int(ctx.params.get("per_page", 20))))
    except (TypeError, ValueError) as err:
        raise ApiError(400, {"error": "page is invalid"}) from err
    total = len(items)
    pages = max(1, math.ceil(total / per_page))
    chunk = list(items[(page - 1) * per_page : page * per_page])
    request = ctx.request
    base = ctx.store.base_url + request.path

    def link(number: int) -> str:
        query = dict(request.args.items())
        query.update({"page": str(number), "per_page": str(per_page)})
        return f"{base}?{urlencode(query)}"

    links = []
    if page > 1:
        links.append(f'<{link(page - 1)}>; rel="prev"')
    if page < pages:
        links.append(f'<{link(page + 1)}>; rel="next"')
    links += [f'<{link(1)}>; rel="first"', f'<{link(pages)}>; rel="last"']
    headers = {
        "X-Page": str(page),
        "X-Per-Page": str(per_page),
        "X-Next-Page": str(page + 1) if page < pages else "",
        "X-Prev-Page": str(page - 1) if page > 1 else "",
        "X-Total": str(total),
        "X-Total-Pages": str(pages),
        "Link": ", ".join(links),
    }
    return Reply(chunk, headers=headers)


def sort_items(
    ctx: Ctx, items: list[Any], allowed: dict[str, Callable[[Any], Any]], default: str
) -> list[Any]:
    order_by = str(ctx.params.get("order_by") or default)
    if order_by not in allowed:
        raise ApiError(400, {"error": "order_by does not have a valid value"})
    sort = str(ctx.params.get("sort") or "desc")
    if sort not in ("asc", "desc"):
        raise ApiError(400, {"error": "sort does not have a valid value"})
    return sorted(items, key=allowed[order_by], reverse=sort == "desc")


def truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.lower() in ("true", "1", "yes")
    return bool(value)

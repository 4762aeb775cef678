"""``GET /health``: what on-call looks at first, per project the caller may see."""

# No "from __future__ import annotations": the resolver reads route signatures at run time.

import threading
import time
from datetime import timedelta

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

import merge_assist
from functions.api import caller, wiring
from functions.api.schemas import GitLabHealth, Health, ProjectHealth, QueueHealth
from merge_assist.adapters.aws import register_cache
from merge_assist.platform.access import Action
from merge_assist.platform.clock import utc_now
from merge_assist.platform.config import ProjectConfig
from merge_assist.platform.settings import get_settings

logger = Logger(child=True)
router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]

# Failed executions older than this are history, not a health problem.
RECENT = timedelta(hours=24)


# Any viewer may load the page, as often as they like: GitLab is asked at most this often
# per container, so the page cannot spend the bot's rate limit.
GITLAB_PROBE_SECONDS = 30.0

_probed: dict[str, tuple[float, GitLabHealth]] = {}
_probe_lock = threading.Lock()


def _gitlab() -> GitLabHealth:
    url = get_settings().gitlab_url
    with _probe_lock:
        cached = _probed.get(url)
        if cached and time.monotonic() - cached[0] < GITLAB_PROBE_SECONDS:
            return cached[1]
        health = _probe(url)
        _probed[url] = (time.monotonic(), health)
        return health


def _probe(url: str) -> GitLabHealth:
    try:
        wiring.gitlab().current_user_id()
    # A probe reports every failure as "unreachable" instead of failing itself.
    except Exception as error:
        logger.warning("GitLab probe failed", error=type(error).__name__)
        return GitLabHealth(reachable=False, url=url, error=type(error).__name__)
    return GitLabHealth(reachable=True, url=url)


def forget_gitlab_probe() -> None:
    with _probe_lock:
        _probed.clear()


register_cache(forget_gitlab_probe)


def _project(config: ProjectConfig) -> ProjectHealth:
    problems: list[str] = []
    queue = None
    executions: dict[str, int] = {}
    operations = wiring.operations()
    try:
        depth = operations.queue_depth(config.project_id)
        queue = QueueHealth(
            messages=depth.messages, in_flight=depth.in_flight, dead_letters=depth.dead_letters
        )
        if depth.dead_letters:
            problems.append(f"{depth.dead_letters} event(s) in the dead-letter queue")
    except Exception as error:
        logger.warning("queue probe failed", project_id=config.project_id, error=repr(error))
        problems.append("the project's queues cannot be read")
    try:
        executions = operations.executions(config.project_id, utc_now() - RECENT)
    except Exception as error:
        logger.warning("execution probe failed", project_id=config.project_id, error=repr(error))
        problems.append("the merge workflow's executions cannot be listed")
    failed = sum(executions.get(status, 0) for status in ("FAILED", "TIMED_OUT", "ABORTED"))
    if failed:
        problems.append(f"{failed} batch execution(s) failed in the last 24 hours")
    return ProjectHealth(
        project_id=config.project_id,
        path=config.path,
        paused=config.paused,
        queue=queue,
        executions=executions,
        problems=problems,
    )


@router.get(
    "/health",
    summary="GitLab reachability, queue depths, dead letters and executions per project",
    tags=["health"],
)
def health() -> Health:
    principal = caller.current()
    try:
        configs = wiring.store().list_projects()
        store = "ok"
    except Exception as error:
        logger.warning("store probe failed", error=repr(error))
        configs, store = [], "unreachable"
    projects = [_project(c) for c in configs if principal.may(Action.VIEW, c.project_id)]
    gitlab = _gitlab()
    healthy = store == "ok" and gitlab.reachable and not any(p.problems for p in projects)
    return Health(
        status="ok" if healthy else "degraded",
        version=merge_assist.__version__,
        checked_at=utc_now(),
        store=store,
        gitlab=gitlab,
        projects=projects,
    )

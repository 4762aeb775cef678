"""What on-call looks at first (``GET /health``): whether the table can be read, whether
GitLab answers the bot, and per project its queue depths, dead letters and the batch
executions that failed lately.

A probe that fails is a finding, never a failure of the check: the report says what could
not be read. The report is healthy only when the table and GitLab answer and no project
has a problem."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, Protocol

import merge_assist
from merge_assist.admin.ports import Operations
from merge_assist.platform.access import Action, Principal
from merge_assist.platform.config import ProjectConfig
from merge_assist.platform.ports import Clock

# Failed executions older than this are history, not a health problem.
RECENT = timedelta(hours=24)
# The execution statuses that count as a failed batch.
FAILED = ("FAILED", "TIMED_OUT", "ABORTED")
# Any viewer may load the page, as often as they like: GitLab is asked at most this often
# per container, so the page cannot spend the bot's rate limit.
GITLAB_PROBE_SECONDS = 30.0


class ConnectedProjects(Protocol):
    """The part of the store the check reads (``ProjectStore`` has it)."""

    def list_projects(self) -> list[ProjectConfig]: ...


@dataclass(frozen=True)
class ProbeFailure:
    """A probe that raised: which one, for which project, and the error as it may be logged."""

    probe: str
    error: str
    project_id: int | None = None


@dataclass(frozen=True)
class GitLabStatus:
    reachable: bool
    url: str
    # The error's type only: its text may quote a URL or a token.
    error: str | None = None


@dataclass(frozen=True)
class QueueStatus:
    messages: int
    in_flight: int
    dead_letters: int


@dataclass(frozen=True)
class ProjectStatus:
    project_id: int
    path: str | None
    paused: bool
    # None when the project's queues could not be read.
    queue: QueueStatus | None
    executions: dict[str, int]
    problems: list[str]


@dataclass(frozen=True)
class HealthReport:
    status: Literal["ok", "degraded"]
    version: str
    checked_at: datetime
    store: Literal["ok", "unreachable"]
    gitlab: GitLabStatus
    projects: list[ProjectStatus]
    # What failed while checking, for the log; GitLab's only when it was asked this time.
    failures: list[ProbeFailure] = field(default_factory=list)


class GitLabProbe:
    """Asks GitLab who the bot is, at most once per ``every`` seconds; in between, the last
    answer stands. Safe to share between threads."""

    def __init__(
        self,
        url: str,
        ask: Callable[[], object],
        *,
        every: float = GITLAB_PROBE_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """``ask`` raises when GitLab does not answer the bot."""
        self._url = url
        self._ask = ask
        self._every = every
        self._monotonic = monotonic
        self._last: tuple[float, GitLabStatus] | None = None
        self._lock = threading.Lock()

    def status(self) -> tuple[GitLabStatus, ProbeFailure | None]:
        """GitLab's status, and the failure if GitLab was asked now and did not answer."""
        with self._lock:
            if self._last and self._monotonic() - self._last[0] < self._every:
                return self._last[1], None
            failure = None
            try:
                self._ask()
                status = GitLabStatus(reachable=True, url=self._url)
            # A probe reports every failure as "unreachable" instead of failing itself.
            except Exception as error:
                name = type(error).__name__
                failure = ProbeFailure("GitLab", name)
                status = GitLabStatus(reachable=False, url=self._url, error=name)
            self._last = (self._monotonic(), status)
            return status, failure


class HealthCheck:
    def __init__(
        self, store: ConnectedProjects, operations: Operations, gitlab: GitLabProbe, clock: Clock
    ) -> None:
        self._store = store
        self._operations = operations
        self._gitlab = gitlab
        self._clock = clock

    def check(self, viewer: Principal) -> HealthReport:
        """The report on the projects ``viewer`` may see (every one, for an admin)."""
        failures: list[ProbeFailure] = []
        try:
            configs = self._store.list_projects()
            store: Literal["ok", "unreachable"] = "ok"
        except Exception as error:
            failures.append(ProbeFailure("store", repr(error)))
            configs, store = [], "unreachable"
        projects = [
            self._project(config, failures)
            for config in configs
            if viewer.may(Action.VIEW, config.project_id)
        ]
        gitlab, failed = self._gitlab.status()
        if failed is not None:
            failures.append(failed)
        healthy = store == "ok" and gitlab.reachable and not any(p.problems for p in projects)
        return HealthReport(
            status="ok" if healthy else "degraded",
            version=merge_assist.__version__,
            checked_at=self._clock.now(),
            store=store,
            gitlab=gitlab,
            projects=projects,
            failures=failures,
        )

    def _project(self, config: ProjectConfig, failures: list[ProbeFailure]) -> ProjectStatus:
        project_id = config.project_id
        problems: list[str] = []
        queue = None
        executions: dict[str, int] = {}
        try:
            depth = self._operations.queue_depth(project_id)
            queue = QueueStatus(
                messages=depth.messages, in_flight=depth.in_flight, dead_letters=depth.dead_letters
            )
            if depth.dead_letters:
                problems.append(f"{depth.dead_letters} event(s) in the dead-letter queue")
        except Exception as error:
            failures.append(ProbeFailure("queue", repr(error), project_id))
            problems.append("the project's queues cannot be read")
        try:
            executions = self._operations.executions(project_id, self._clock.now() - RECENT)
        except Exception as error:
            failures.append(ProbeFailure("execution", repr(error), project_id))
            problems.append("the merge workflow's executions cannot be listed")
        failed = sum(executions.get(status, 0) for status in FAILED)
        if failed:
            problems.append(f"{failed} batch execution(s) failed in the last 24 hours")
        return ProjectStatus(
            project_id=project_id,
            path=config.path,
            paused=config.paused,
            queue=queue,
            executions=executions,
            problems=problems,
        )

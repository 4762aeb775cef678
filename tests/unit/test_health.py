"""The health check: what it reads, what counts as healthy, and that GitLab is asked at most
once per probe interval however often the page is loaded."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

import pytest

from merge_assist.admin.health import (
    GITLAB_PROBE_SECONDS,
    RECENT,
    GitLabProbe,
    GitLabStatus,
    HealthCheck,
    ProbeFailure,
    QueueStatus,
)
from merge_assist.platform.access import Grant, Principal, Role, principal
from merge_assist.platform.config import ProjectConfig
from merge_assist.platform.errors import NotFoundError

NOW = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
URL = "https://gitlab.example.test"
ADMIN = principal("ada", frozenset({Role.ADMIN}), [])


class Clock:
    def now(self) -> datetime:
        return NOW


@dataclass
class Store:
    projects: list[ProjectConfig] = field(default_factory=list)
    down: bool = False

    def list_projects(self) -> list[ProjectConfig]:
        if self.down:
            raise ConnectionError("table unreachable")
        return self.projects


@dataclass(frozen=True)
class Depth:
    messages: int = 0
    in_flight: int = 0
    dead_letters: int = 0


@dataclass
class Operations:
    depths: dict[int, Depth] = field(default_factory=dict)
    counts: dict[int, dict[str, int]] = field(default_factory=dict)
    listing_fails: bool = False
    asked_since: list[datetime] = field(default_factory=list)

    def queue_depth(self, project_id: int) -> Depth:
        if project_id not in self.depths:
            raise NotFoundError(f"project {project_id} has no queues")
        return self.depths[project_id]

    def executions(self, project_id: int, since: datetime) -> dict[str, int]:
        self.asked_since.append(since)
        if self.listing_fails:
            raise TimeoutError("Step Functions did not answer")
        return self.counts.get(project_id, {})


@dataclass
class GitLab:
    down: bool = False
    asked: int = 0

    def ask(self) -> int:
        self.asked += 1
        if self.down:
            raise ConnectionError(f"{URL} refused the connection")
        return 99


@dataclass
class Monotonic:
    seconds: float = 1000.0

    def __call__(self) -> float:
        return self.seconds


def _check(store: Store, operations: Operations, gitlab: GitLab) -> HealthCheck:
    return HealthCheck(store, operations, GitLabProbe(URL, gitlab.ask), Clock())


def _viewer_of(project_id: int) -> Principal:
    grant = Grant(username="vera", project_id=project_id, roles=[Role.VIEWER], granted_by="ada")
    return principal("vera", frozenset({Role.VIEWER}), [grant])


def test_a_deployment_with_nothing_wrong_is_ok() -> None:
    store = Store([ProjectConfig(project_id=1, path="group/one")])
    operations = Operations(depths={1: Depth(messages=3, in_flight=1)}, counts={1: {"RUNNING": 1}})

    report = _check(store, operations, GitLab()).check(ADMIN)

    assert (report.status, report.store, report.checked_at) == ("ok", "ok", NOW)
    assert report.gitlab == GitLabStatus(reachable=True, url=URL)
    [project] = report.projects
    assert project.queue == QueueStatus(messages=3, in_flight=1, dead_letters=0)
    assert (project.executions, project.problems) == ({"RUNNING": 1}, [])
    assert report.failures == []
    # Failed executions count from a day back.
    assert operations.asked_since == [NOW - RECENT]


def test_only_the_projects_the_viewer_may_see_are_checked() -> None:
    store = Store([ProjectConfig(project_id=1), ProjectConfig(project_id=2)])
    operations = Operations(depths={1: Depth(), 2: Depth(dead_letters=4)})

    report = _check(store, operations, GitLab()).check(_viewer_of(1))

    # The other project's dead letters are not the viewer's to see, nor to be told about.
    assert [p.project_id for p in report.projects] == [1]
    assert report.status == "ok"


def test_dead_letters_and_failed_executions_are_problems() -> None:
    store = Store([ProjectConfig(project_id=1)])
    operations = Operations(
        depths={1: Depth(dead_letters=2)},
        counts={1: {"RUNNING": 1, "FAILED": 1, "TIMED_OUT": 1, "ABORTED": 1}},
    )

    report = _check(store, operations, GitLab()).check(ADMIN)

    assert report.status == "degraded"
    assert report.projects[0].problems == [
        "2 event(s) in the dead-letter queue",
        "3 batch execution(s) failed in the last 24 hours",
    ]


def test_what_cannot_be_read_is_a_problem_and_a_failure_not_an_error() -> None:
    store = Store([ProjectConfig(project_id=1, paused=True)])
    operations = Operations(listing_fails=True)

    report = _check(store, operations, GitLab()).check(ADMIN)

    [project] = report.projects
    assert (project.queue, project.executions, project.paused) == (None, {}, True)
    assert project.problems == [
        "the project's queues cannot be read",
        "the merge workflow's executions cannot be listed",
    ]
    assert [(f.probe, f.project_id) for f in report.failures] == [("queue", 1), ("execution", 1)]
    assert report.status == "degraded"


def test_an_unreadable_table_is_unreachable_and_lists_no_project() -> None:
    report = _check(Store(down=True), Operations(), GitLab()).check(ADMIN)

    assert (report.status, report.store, report.projects) == ("degraded", "unreachable", [])
    assert report.failures == [ProbeFailure("store", repr(ConnectionError("table unreachable")))]


def test_gitlab_down_is_degraded_and_its_error_named_by_type_only() -> None:
    report = _check(Store(), Operations(), GitLab(down=True)).check(ADMIN)

    assert report.status == "degraded"
    assert report.gitlab == GitLabStatus(reachable=False, url=URL, error="ConnectionError")
    # The error's text quotes the URL; neither the answer nor the log line does.
    assert report.failures == [ProbeFailure("GitLab", "ConnectionError")]


@pytest.mark.parametrize("down", [False, True], ids=["up", "down"])
def test_gitlab_is_asked_at_most_once_per_interval(down: bool) -> None:
    gitlab = GitLab(down=down)
    clock = Monotonic()
    probe = GitLabProbe(URL, gitlab.ask, monotonic=clock)

    first, failed = probe.status()
    clock.seconds += GITLAB_PROBE_SECONDS - 1
    again, failed_again = probe.status()
    clock.seconds += 1
    later, _ = probe.status()

    assert gitlab.asked == 2
    assert again == first == later
    assert (failed is not None, failed_again) == (down, None)

"""``merge-assist bench queue``: Merge Assist against marge-bot on one seeded workload.

Every contender gets a fresh simulator project, the same merge requests on the same
arrival schedule, and the same simulated CI. Merge Assist runs on the local stack (the
real handlers and state machine); marge-bot runs unmodified as a subprocess against the
same simulator. The metrics are read from the simulator afterwards (its pipelines, its
merge requests, the target branch's history), the same way for every contender."""

from __future__ import annotations

import contextlib
import math
import os
import platform
import random
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from dulwich.objects import Commit

if TYPE_CHECKING:
    from local.gitlab_sim import GitLabSimulator
    from local.gitlab_sim.models import Project
    from local.invariants import LandingLog
    from local.stack import LocalStack, LocalStackConfig

SIZES = {"small": 16, "large": 48}
FAIL_RATE = 0.10
CONFLICT_RATE = 0.10
MEAN_GAP_CI = 0.5
DURATION_S = 60.0
# 60 simulated seconds of CI take 1.2 s of wall time.
TIME_SCALE = 0.02
TARGET = "main"
MAINTAINER = 40
DEVELOPER = 30
DEVELOPER_NAME = "bench-dev"
REPO_ROOT = Path(__file__).resolve().parents[1]


# -- the workload -----------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One merge request: its own file, and the earlier MR it clashes with, if any."""

    index: int
    arrives_after: float  # in CI durations from the start of the run
    semantic_partner: int | None = None
    textual_partner: int | None = None

    @property
    def branch(self) -> str:
        return f"change/{self.index:03d}"

    @property
    def path(self) -> str:
        return f"changes/c{self.index:03d}.txt"


@dataclass(frozen=True)
class Workload:
    seed: int
    changes: tuple[Change, ...]
    fail_rate: float = FAIL_RATE
    conflict_rate: float = CONFLICT_RATE
    mean_gap_ci: float = MEAN_GAP_CI
    duration_s: float = DURATION_S
    pending_s: float = 0.0
    time_scale: float = TIME_SCALE

    @property
    def ci_seconds(self) -> float:
        """One CI run on the wall clock: the unit waits are reported in."""
        return (self.pending_s + self.duration_s) * self.time_scale

    @property
    def bad(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.semantic_partner is not None)

    @property
    def conflicting(self) -> tuple[Change, ...]:
        return tuple(c for c in self.changes if c.textual_partner is not None)

    @staticmethod
    def shared_path(later: Change) -> str:
        return f"shared/s{later.index:03d}.txt"

    def initial_files(self) -> dict[str, str]:
        files = {"README.md": "# bench\n"}
        for change in self.conflicting:
            files[self.shared_path(change)] = "first\nsecond\nthird\n"
        return files

    def files(self, change: Change) -> dict[str, str | None]:
        """Its own file, plus its edit of the middle line of every shared file it clashes
        over (the earlier MR and the later one write different lines there)."""
        files: dict[str, str | None] = {change.path: f"change {change.index}\n"}
        for later in self.conflicting:
            if change.index in (later.index, later.textual_partner):
                files[self.shared_path(later)] = f"first\nsecond by {change.index}\nthird\n"
        return files

    def conflict_pairs(self) -> list[tuple[str, str]]:
        by_index = {c.index: c for c in self.changes}
        return [
            (change.path, by_index[change.semantic_partner].path)
            for change in self.bad
            if change.semantic_partner is not None
        ]


def generate_workload(
    size: int,
    seed: int,
    *,
    fail_rate: float = FAIL_RATE,
    conflict_rate: float = CONFLICT_RATE,
    time_scale: float = TIME_SCALE,
) -> Workload:
    """``round(fail_rate * size)`` MRs fail CI together with an earlier partner and
    ``round(conflict_rate * size)`` others edit the same lines as an earlier one; the first
    MR has no earlier partner, so it is neither."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible workload, not a secret
    arrivals = [0.0]
    for _ in range(size - 1):
        arrivals.append(arrivals[-1] + rng.expovariate(1 / MEAN_GAP_CI))
    candidates = list(range(1, size))
    bad = set(rng.sample(candidates, min(len(candidates), round(fail_rate * size))))
    rest = [i for i in candidates if i not in bad]
    conflicting = set(rng.sample(rest, min(len(rest), round(conflict_rate * size))))
    changes = tuple(
        Change(
            index=i,
            arrives_after=round(arrivals[i], 4),
            semantic_partner=rng.randrange(i) if i in bad else None,
            textual_partner=rng.randrange(i) if i in conflicting else None,
        )
        for i in range(size)
    )
    return Workload(
        seed=seed,
        changes=changes,
        fail_rate=fail_rate,
        conflict_rate=conflict_rate,
        time_scale=time_scale,
    )


# -- the floors -------------------------------------------------------------------------


@dataclass(frozen=True)
class Floors:
    entropy: float  # H(p): no scheme that learns each change's fate can use fewer
    dorfman: float  # 2·sqrt(p): two-stage group testing at its best group size


def floors(p: float) -> Floors:
    if not 0 < p < 1:
        raise ValueError("p must be strictly between 0 and 1")
    entropy = -p * math.log2(p) - (1 - p) * math.log2(1 - p)
    return Floors(entropy=entropy, dorfman=2 * math.sqrt(p))


# -- what a run leaves behind, and the metrics computed from it ------------------------


@dataclass(frozen=True)
class PipelineRecord:
    sha: str
    ref: str
    status: str


@dataclass(frozen=True)
class MergeRequestRecord:
    index: int
    outcome: str  # merged | rejected | unfinished
    ready_at: float | None  # seconds since the epoch: its own pipeline passed
    merged_at: float | None
    initial_sha: str


@dataclass(frozen=True)
class RunRecord:
    merge_requests: tuple[MergeRequestRecord, ...]
    pipelines: tuple[PipelineRecord, ...]
    # The target's first-parent commits since the start, newest first, with their trees.
    target_commits: tuple[tuple[str, str], ...]
    passed_trees: frozenset[str]
    # Each commit the target was moved to whose tree had not passed a pipeline by then.
    untested_heads: tuple[str, ...]
    finished: bool
    wall_seconds: float


@dataclass(frozen=True)
class ContenderResult:
    name: str
    merged: int
    rejected: int
    unfinished: int
    pipelines: int  # every pipeline but the MRs' own first ones
    target_pipelines: int  # of those, on the target branch after it moved
    waits_ci: tuple[float, ...]  # ready → merged, in CI durations, one per merged MR
    wrongly_rejected: tuple[int, ...]
    untested_commits: tuple[str, ...]
    untested_heads: tuple[str, ...]
    finished: bool
    wall_seconds: float

    @property
    def pipelines_per_merged(self) -> float:
        return self.pipelines / self.merged if self.merged else math.inf

    @property
    def mean_wait(self) -> float:
        return sum(self.waits_ci) / len(self.waits_ci) if self.waits_ci else math.nan

    @property
    def p95_wait(self) -> float:
        return percentile(self.waits_ci, 95) if self.waits_ci else math.nan


def percentile(values: Sequence[float], percent: float) -> float:
    """Nearest rank: the smallest value with at least ``percent``% of them at or below it."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = math.ceil(percent / 100 * len(ordered))
    return ordered[min(len(ordered), max(rank, 1)) - 1]


def extra_pipelines(
    pipelines: Iterable[PipelineRecord], initial_shas: Iterable[str]
) -> list[PipelineRecord]:
    """All pipelines but the first one on each MR's original head: those every contender
    gets alike, before it acts."""
    owed = set(initial_shas)
    extra: list[PipelineRecord] = []
    for pipeline in pipelines:
        if pipeline.sha in owed:
            owed.discard(pipeline.sha)
        else:
            extra.append(pipeline)
    return extra


def wrongly_rejected(workload: Workload, outcomes: dict[int, str]) -> list[int]:
    """Rejected MRs none of whose partners (semantic or textual) is on the target at the
    end: nothing in the target stopped them from landing."""
    wrong: list[int] = []
    for change in workload.changes:
        if outcomes.get(change.index) != "rejected":
            continue
        partners = [p for p in (change.semantic_partner, change.textual_partner) if p is not None]
        if not any(outcomes.get(p) == "merged" for p in partners):
            wrong.append(change.index)
    return wrong


def untested_commits(
    target_commits: Iterable[tuple[str, str]], passed_trees: frozenset[str]
) -> list[str]:
    return [sha for sha, tree in target_commits if tree not in passed_trees]


def compute(name: str, workload: Workload, record: RunRecord) -> ContenderResult:
    outcomes = {mr.index: mr.outcome for mr in record.merge_requests}
    extra = extra_pipelines(record.pipelines, [mr.initial_sha for mr in record.merge_requests])
    waits = tuple(
        (mr.merged_at - mr.ready_at) / workload.ci_seconds
        for mr in record.merge_requests
        if mr.outcome == "merged" and mr.merged_at is not None and mr.ready_at is not None
    )
    return ContenderResult(
        name=name,
        merged=sum(1 for o in outcomes.values() if o == "merged"),
        rejected=sum(1 for o in outcomes.values() if o == "rejected"),
        unfinished=sum(1 for o in outcomes.values() if o == "unfinished"),
        pipelines=len(extra),
        target_pipelines=sum(1 for p in extra if p.ref == TARGET),
        waits_ci=waits,
        wrongly_rejected=tuple(wrongly_rejected(workload, outcomes)),
        untested_commits=tuple(untested_commits(record.target_commits, record.passed_trees)),
        untested_heads=record.untested_heads,
        finished=record.finished,
        wall_seconds=record.wall_seconds,
    )


# -- driving one contender --------------------------------------------------------------


def _epoch(iso: str | None) -> float | None:
    return None if iso is None else datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


@dataclass
class _Run:
    """One contender's project: opens the workload's MRs on schedule, then waits until the
    contender has settled every one (``outcome`` says how it left each MR)."""

    gitlab: GitLabSimulator
    project: Project
    workload: Workload
    assignee: str
    iids: dict[int, int] = field(default_factory=dict)
    start_sha: str = ""
    log: LandingLog | None = None

    def __post_init__(self) -> None:
        from local.invariants import LandingLog

        self.start_sha = self.gitlab.branch_sha(self.project, TARGET) or ""
        self.log = LandingLog(self.gitlab, self.project.id, TARGET)

    def open(self, change: Change) -> None:
        from local.gitlab_sim import gitops

        store = self.gitlab.store
        with store.lock:
            # Every MR branches off the target as it was at the start, so each one's own
            # pipeline passes whatever landed before it arrived.
            repo = store.repo(self.project.id)
            gitops.set_ref(
                repo, f"refs/heads/{change.branch}", self.start_sha, expected_old=gitops.ZERO_SHA
            )
            self.iids[change.index] = self.gitlab.create_merge_request(
                self.project,
                change.branch,
                f"Change {change.index}",
                self.workload.files(change),
                author=DEVELOPER_NAME,
                assignees=[self.assignee],
            )

    def drive(
        self, outcome: Callable[[int, int], str | None], idle: Callable[[], bool], deadline_s: float
    ) -> RunRecord:
        started = time.monotonic()
        pending = list(self.workload.changes)
        finished = False
        settled_once = False
        while time.monotonic() - started < deadline_s:
            elapsed_ci = (time.monotonic() - started) / self.workload.ci_seconds
            while pending and pending[0].arrives_after <= elapsed_ci:
                self.open(pending.pop(0))
            if not pending:
                settled = idle() and all(
                    outcome(index, iid) is not None for index, iid in self.iids.items()
                )
                # Twice in a row: an MR may be between two states for a moment.
                if settled and settled_once:
                    finished = True
                    break
                settled_once = settled
            time.sleep(0.1 if pending else 0.5)
        wall = time.monotonic() - started
        return self._record(outcome, finished, wall)

    def _record(
        self, outcome: Callable[[int, int], str | None], finished: bool, wall: float
    ) -> RunRecord:
        from local.invariants import untested_landings

        store = self.gitlab.store
        heads: list[str] = []
        if self.log is not None:
            self.log.close()
            heads = untested_landings(self.gitlab, self.project.id, self.log.updates)
        outcomes = {index: outcome(index, iid) or "unfinished" for index, iid in self.iids.items()}
        with store.lock:
            repo = store.repo(self.project.id)
            pipelines = sorted(
                (p for p in store.pipelines.values() if p.project_id == self.project.id),
                key=lambda p: p.id,
            )

            def tree(sha: str) -> str:
                commit = repo[sha.encode()]
                if not isinstance(commit, Commit):
                    raise TypeError(f"{sha} is not a commit")
                return bytes(commit.tree).decode()

            passed = frozenset(tree(p.sha) for p in pipelines if p.status == "success")
            commits: list[tuple[str, str]] = []
            sha = self.gitlab.branch_sha(self.project, TARGET) or self.start_sha
            while sha != self.start_sha:
                commit = repo[sha.encode()]
                assert isinstance(commit, Commit)
                commits.append((sha, bytes(commit.tree).decode()))
                if not commit.parents:
                    break
                sha = commit.parents[0].decode()
            records = []
            for index, iid in self.iids.items():
                mr = store.merge_request(self.project.id, iid)
                initial = mr.sha_history[0] if mr.sha_history else mr.sha
                own = next(
                    (p for p in pipelines if p.sha == initial and p.status == "success"), None
                )
                records.append(
                    MergeRequestRecord(
                        index=index,
                        outcome=outcomes[index],
                        ready_at=_epoch(own.finished_at) if own else None,
                        merged_at=_epoch(mr.merged_at) if mr.state == "merged" else None,
                        initial_sha=initial,
                    )
                )
        return RunRecord(
            merge_requests=tuple(records),
            pipelines=tuple(PipelineRecord(p.sha, p.ref, p.status) for p in pipelines),
            target_commits=tuple(commits),
            passed_trees=passed,
            untested_heads=tuple(heads),
            finished=finished,
            wall_seconds=wall,
        )


def deadline_seconds(workload: Workload) -> float:
    """Generous: every MR alone, one after another, eight CI runs each, after the last
    arrival, plus two minutes."""
    last = workload.changes[-1].arrives_after if workload.changes else 0.0
    return (last + 8 * len(workload.changes)) * workload.ci_seconds + 120


def _new_project(
    gitlab: GitLabSimulator, workload: Workload, name: str, members: dict[str, int]
) -> Project:
    with contextlib.suppress(ValueError):
        gitlab.create_user(DEVELOPER_NAME, name="Bench Developer")
    project = gitlab.create_project(
        name,
        namespace="bench",
        files=workload.initial_files(),
        members={**members, DEVELOPER_NAME: DEVELOPER},
        only_allow_merge_if_pipeline_succeeds=True,
    )
    gitlab.set_pipeline_rules(
        project,
        fail_paths=[],
        conflict_pairs=workload.conflict_pairs(),
        flaky_rate=0.0,
        seed=workload.seed,
        duration_s=workload.duration_s,
        pending_s=workload.pending_s,
    )
    return project


def stack_config(data_dir: Path, workload: Workload) -> LocalStackConfig:
    from local.stack import LocalStackConfig

    return LocalStackConfig(
        data_dir=data_dir, http_port=0, web_dir=None, gitlab_time_scale=workload.time_scale
    )


def run_merge_assist(
    stack: LocalStack, workload: Workload, strategy: str, batch_size: int
) -> ContenderResult:
    """One run on an already started stack whose simulator runs at ``workload.time_scale``."""
    from merge_assist.adapters.aws import store_from_settings
    from merge_assist.adapters.gitlab_gateway import PythonGitLabGateway
    from merge_assist.adapters.project_infra import AwsProjectInfrastructure
    from merge_assist.admin.onboarding import connect_project
    from merge_assist.platform.errors import NotFoundError
    from merge_assist.queue.models import StatusCategory

    gitlab = stack.gitlab
    if gitlab is None:
        raise RuntimeError("the queue benchmark needs the embedded GitLab simulator")
    name = (
        f"merge-assist-{strategy}" if strategy == "serial" else f"merge-assist-batch-{batch_size}"
    )
    project = _new_project(
        gitlab, workload, f"{name}-{uuid.uuid4().hex[:6]}", {stack.bot_username: MAINTAINER}
    )
    token = stack.client("secretsmanager").get_secret_value(SecretId=stack.names.bot_token_secret)[
        "SecretString"
    ]
    store = store_from_settings()
    connect_project(
        store,
        AwsProjectInfrastructure(stack.names),
        PythonGitLabGateway(stack.gitlab_url, token),
        project.id,
        webhook_url=f"{stack.url}/webhook/gitlab",
        settings={"strategy": strategy, "batch_size": batch_size},
    )
    run = _Run(gitlab, project, workload, stack.bot_username)

    def outcome(index: int, iid: int) -> str | None:
        if gitlab.merge_request(project, iid)["state"] == "merged":
            return "merged"
        try:
            state = store.get_merge_request(project.id, iid)
        except NotFoundError:
            return None
        if state.status is StatusCategory.REJECTED:
            return "rejected"
        # Not ready after its own pipeline passed: the queue let it go (a conflict with
        # the target), with the reason on the MR.
        if state.status is StatusCategory.NOT_READY and state.reasons and own_pipeline_passed(iid):
            return "rejected"
        return None

    def own_pipeline_passed(iid: int) -> bool:
        with gitlab.store.lock:
            mr = gitlab.store.merge_request(project.id, iid)
            initial = mr.sha_history[0] if mr.sha_history else mr.sha
            return any(
                p.sha == initial and p.status == "success"
                for p in gitlab.store.pipelines.values()
                if p.project_id == project.id
            )

    def idle() -> bool:
        return store.get_branch_lock(project.id, TARGET) is None

    record = run.drive(outcome, idle, deadline_seconds(workload))
    return compute(name, workload, record)


def run_marge(
    stack: LocalStack, workload: Workload, *, batch: bool, log_dir: Path
) -> ContenderResult:
    """marge-bot as its docs set it up: its own user with maintainer rights, HTTPS with its
    token, pipelines required by the project; CI and git timeouts well above what the
    simulated CI takes; everything else its defaults."""
    from bench import marge_runner

    gitlab = stack.gitlab
    if gitlab is None:
        raise RuntimeError("the queue benchmark needs the embedded GitLab simulator")
    name = "marge-bot --batch" if batch else "marge-bot"
    username = f"marge-{uuid.uuid4().hex[:6]}"
    bot, token = gitlab.create_user(username, name="Marge Bot")
    project = _new_project(
        gitlab, workload, f"marge{'-batch' if batch else ''}-{username}", {username: MAINTAINER}
    )
    run = _Run(gitlab, project, workload, username)
    command = [
        sys.executable,
        marge_runner.__file__,
        "--gitlab-url",
        gitlab.url,
        "--use-https",
        "--ci-timeout",
        "60s",
        "--git-timeout",
        "60s",
        *(["--batch"] if batch else []),
    ]
    env = dict(os.environ, MARGE_AUTH_TOKEN=token, PYTHONPATH=str(REPO_ROOT))

    def outcome(index: int, iid: int) -> str | None:
        with gitlab.store.lock:
            mr = gitlab.store.merge_request(project.id, iid)
            if mr.state == "merged":
                return "merged"
            if mr.state == "closed" or bot.id not in mr.assignee_ids:
                return "rejected"
        return None

    log_dir.mkdir(parents=True, exist_ok=True)
    log = log_dir / f"{username}.log"
    with log.open("w") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            record = run.drive(outcome, lambda: process.poll() is None, deadline_seconds(workload))
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    if process.returncode not in (0, -15) and not record.finished:
        raise RuntimeError(f"marge-bot stopped: see {log}")
    return compute(name, workload, record)


# -- the whole benchmark ----------------------------------------------------------------


@dataclass(frozen=True)
class QueueBenchmark:
    size: str
    workload: Workload
    results: tuple[ContenderResult, ...]
    cpu_count: int
    python: str
    wall_seconds: float
    # At the end of the run: 1, 5 and 15 minutes (the figures are wall-clock ones).
    load_average: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def table(self) -> str:
        return render_table(self.workload, self.results)


def render_table(workload: Workload, results: Sequence[ContenderResult]) -> str:
    floor = floors(workload.fail_rate)
    header = (
        f"{'contender':<24}{'merged':>7}{'rej':>5}{'unfin':>6}{'pipes':>7}{'target':>7}"
        f"{'pipes/MR':>10}{'wait mean':>11}{'wait p95':>10}{'wrong rej':>10}{'untested':>9}"
        f"{'heads':>6}"
        f"{'wall s':>8}"
    )
    lines = [header]
    for r in results:
        lines.append(
            f"{r.name:<24}{r.merged:>7}{r.rejected:>5}{r.unfinished:>6}{r.pipelines:>7}"
            f"{r.target_pipelines:>7}{r.pipelines_per_merged:>10.2f}{r.mean_wait:>11.2f}"
            f"{r.p95_wait:>10.2f}{len(r.wrongly_rejected):>10}{len(r.untested_commits):>9}"
            f"{len(r.untested_heads):>6}"
            f"{r.wall_seconds:>8.0f}" + ("" if r.finished else "  DID NOT FINISH")
        )
    lines += [
        f"{'floor H(p)':<24}{'':>32}{floor.entropy:>10.2f}",
        f"{'floor Dorfman 2*sqrt(p)':<24}{'':>32}{floor.dorfman:>10.2f}",
    ]
    return "\n".join(lines)


def describe(workload: Workload) -> str:
    return (
        f"{len(workload.changes)} MRs, seed {workload.seed}, p = {workload.fail_rate:.2f} "
        f"({len(workload.bad)} fail CI with an earlier partner), "
        f"{len(workload.conflicting)} edit the same lines as an earlier MR; arrivals "
        f"{workload.mean_gap_ci} CI apart on average; CI {workload.duration_s:.0f} s simulated "
        f"(pending {workload.pending_s:.0f} s) = {workload.ci_seconds:.2f} s wall"
    )


def contenders(default_batch: int) -> list[tuple[str, int]]:
    sizes = sorted({2, 4, 8, default_batch})
    return [("serial", 1), *(("batch", n) for n in sizes)]


def run_benchmark(
    size: str = "small",
    seed: int = 1,
    *,
    data_dir: Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> QueueBenchmark:
    import tempfile

    from local.stack import LocalStack
    from merge_assist.platform.config import ProjectConfig

    workload = generate_workload(SIZES[size], seed)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    started = time.monotonic()
    results: list[ContenderResult] = []
    with contextlib.ExitStack() as cleanup:
        if data_dir is None:
            data_dir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        with LocalStack(stack_config(data_dir, workload)) as stack:
            for strategy, batch_size in contenders(ProjectConfig(project_id=1).batch_size):
                progress(f"Merge Assist {strategy} {batch_size} ...")
                results.append(run_merge_assist(stack, workload, strategy, batch_size))
            for batch in (False, True):
                progress(f"marge-bot{' --batch' if batch else ''} ...")
                results.append(run_marge(stack, workload, batch=batch, log_dir=data_dir / "marge"))
    return QueueBenchmark(
        size=size,
        workload=workload,
        results=tuple(results),
        cpu_count=os.cpu_count() or 0,
        python=platform.python_version(),
        wall_seconds=time.monotonic() - started,
        load_average=os.getloadavg(),
    )

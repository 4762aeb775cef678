"""``merge-assist bench queue``: Merge Assist against marge-bot on one seeded workload.

Every contender gets a fresh simulator project, the same merge requests on the same
arrival schedule, and the same simulated CI. Merge Assist runs on the local stack (the
real handlers and state machine); marge-bot runs unmodified as a subprocess against the
same simulator. The metrics are read from the simulator afterwards (its pipelines, its
merge requests, the target branch's history), the same way for every contender; Merge
Assist's own records (its batches, its event log) and what it did during the run (the
dispatcher's invocations, the bot's REST calls) explain where its waits went."""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import random
import re
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from dulwich.object_store import tree_lookup_path
from dulwich.objects import Commit

if TYPE_CHECKING:
    from local.gitlab_sim import GitLabSimulator
    from local.gitlab_sim.models import Project
    from local.invariants import LandingLog
    from local.stack import LocalStack, LocalStackConfig
    from merge_assist.adapters.dynamodb_store import DynamoDBStore

SIZES = {"small": 16, "large": 48}
FAIL_RATE = 0.10
CONFLICT_RATE = 0.10
MEAN_GAP_CI = 0.5
DURATION_S = 60.0
# 60 simulated seconds of CI take 1.2 s of wall time. A longer CI run lengthens the
# pipelines' simulated duration, not the clock: the simulator's other delays (rebases, hook
# back-off) stay what they are, as they would on a real GitLab with slower CI.
TIME_SCALE = 0.02
DEFAULT_CI_SECONDS = DURATION_S * TIME_SCALE
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
    ci_seconds: float | None = None,
) -> Workload:
    """``round(fail_rate * size)`` MRs fail CI together with an earlier partner and
    ``round(conflict_rate * size)`` others edit the same lines as an earlier one; the first
    MR has no earlier partner, so it is neither. ``ci_seconds``: one CI run's wall time
    (default: 60 simulated seconds at ``time_scale``)."""
    if ci_seconds is not None and not ci_seconds > 0:
        raise ValueError("ci_seconds must be positive")
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
        duration_s=DURATION_S if ci_seconds is None else ci_seconds / time_scale,
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
    # Merge Assist's event log: the first time it recorded the MR queued.
    queued_at: float | None = None
    # The last pipeline that passed before the merge on a commit holding the MR's change
    # (created, finished): the CI run a polling bot waited for last.
    tested: tuple[float, float] | None = None


@dataclass(frozen=True)
class AwaitedPipeline:
    """One pipeline a batch waited for: created and finished in the simulator, and the
    batch's verdict on it (its ``tested`` step: the workflow's wait had ended)."""

    created_at: float | None
    finished_at: float | None
    verdict_at: float


@dataclass(frozen=True)
class BatchRecord:
    id: str
    created_at: float
    # Its last step or save: the branch was its own until then.
    ended_at: float
    landed: tuple[int, ...]  # the workload indexes of the MRs it landed
    tests: tuple[AwaitedPipeline, ...]


@dataclass(frozen=True)
class Dispatch:
    """One invocation of the dispatcher: the SQS records it was given, its wall time, and
    how many of the records were echoes (events that cannot change a decision, by the
    dispatcher's own rule ``can_change_decision``)."""

    records: int
    seconds: float
    echoes: int = 0


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
    # Merge Assist's batches of the project; none for a bot that polls.
    batches: tuple[BatchRecord, ...] = ()
    # The dispatcher's invocations for the project; None for a bot that polls (no events).
    dispatches: tuple[Dispatch, ...] | None = None
    # The REST calls the contender's bot user made during the run.
    api_calls: int | None = None


@dataclass(frozen=True)
class WaitParts:
    """Where one merged MR's wait (ready → merged) went. A polling bot has only ``total``
    and ``ci``; for Merge Assist the parts add up to ``total``."""

    total: float
    ci: float | None
    ready_to_queued: float | None = None
    behind_batch: float | None = None
    idle: float | None = None
    workflow: float | None = None
    resumed: float | None = None
    other: float | None = None

    def scaled(self, unit: float) -> WaitParts:
        def part(value: float | None) -> float | None:
            return None if value is None else value / unit

        return WaitParts(
            total=self.total / unit,
            ci=part(self.ci),
            ready_to_queued=part(self.ready_to_queued),
            behind_batch=part(self.behind_batch),
            idle=part(self.idle),
            workflow=part(self.workflow),
            resumed=part(self.resumed),
            other=part(self.other),
        )

    def parts(self) -> list[float | None]:
        """Everything but ``total``, in the order the report lists them."""
        return [
            self.ready_to_queued,
            self.behind_batch,
            self.idle,
            self.workflow,
            self.ci,
            self.resumed,
            self.other,
        ]


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
    # SQS records the dispatcher was given; None for a bot that polls.
    events: int | None = None
    # The dispatcher's time per record in ms, one per record (see ``per_record_ms``).
    dispatch_ms: tuple[float, ...] = ()
    # The same, for the records of invocations that were given only echoes.
    echo_ms: tuple[float, ...] = ()
    api_calls: int | None = None
    # One per merged MR, in CI durations.
    wait_parts: tuple[WaitParts, ...] = ()

    @property
    def pipelines_per_merged(self) -> float:
        return self.pipelines / self.merged if self.merged else math.inf

    @property
    def mean_wait(self) -> float:
        return sum(self.waits_ci) / len(self.waits_ci) if self.waits_ci else math.nan

    @property
    def p95_wait(self) -> float:
        return percentile(self.waits_ci, 95) if self.waits_ci else math.nan

    @property
    def events_per_merged(self) -> float | None:
        if self.events is None:
            return None
        return self.events / self.merged if self.merged else math.inf

    @property
    def dispatch_median_ms(self) -> float | None:
        return percentile(self.dispatch_ms, 50) if self.dispatch_ms else None

    @property
    def dispatch_p95_ms(self) -> float | None:
        return percentile(self.dispatch_ms, 95) if self.dispatch_ms else None

    @property
    def echo_median_ms(self) -> float | None:
        return percentile(self.echo_ms, 50) if self.echo_ms else None

    @property
    def api_calls_per_merged(self) -> float | None:
        if self.api_calls is None:
            return None
        return self.api_calls / self.merged if self.merged else math.inf

    @property
    def mean_parts(self) -> WaitParts | None:
        return mean_parts(self.wait_parts)


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
    """All pipelines but the first one on each MR's original head (those every contender
    gets alike, before it acts) and those CI skipped (a push with ``ci.skip``): the CI
    runs a contender spent."""
    owed = set(initial_shas)
    extra: list[PipelineRecord] = []
    for pipeline in pipelines:
        if pipeline.status == "skipped":
            continue
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


def per_record_ms(dispatches: Iterable[Dispatch], *, echoes_only: bool = False) -> list[float]:
    """Each invocation's wall time divided by its record count, once for each of its
    records: percentiles over these are over events, not invocations. ``echoes_only``:
    only the invocations all of whose records were echoes, so their time is an echo's."""
    times: list[float] = []
    for dispatch in dispatches:
        if echoes_only and dispatch.echoes != dispatch.records:
            continue
        if dispatch.records:
            times += [dispatch.seconds * 1000 / dispatch.records] * dispatch.records
    return times


def overlap(start: float, end: float, intervals: Iterable[tuple[float, float]]) -> float:
    """How much of [start, end] the union of ``intervals`` covers."""
    clipped = sorted((max(a, start), min(b, end)) for a, b in intervals if b > start and a < end)
    covered, reach = 0.0, start
    for a, b in clipped:
        if b > reach:
            covered += b - max(a, reach)
            reach = b
    return covered


_QUEUE = "queue"


def decompose(
    mr: MergeRequestRecord, landing: BatchRecord | None, others: Iterable[BatchRecord]
) -> WaitParts:
    """Merge Assist's wait for a merged MR, in seconds, cut at the instants its records
    give: queued, the landing batch created, each pipeline it waited for created, finished
    and judged, merged. Each instant is clamped between the one before and the merge, so
    the parts never go negative and always add up to the wait; a missing instant merges
    the two parts around it into ``other``. The time between queued and the landing
    batch's start is ``behind_batch`` while another batch of the project ran (one before
    it, or an earlier batch of this MR that put it back in line), ``idle`` otherwise."""
    if mr.ready_at is None or mr.merged_at is None:
        raise ValueError("only a merged MR that was ready has a wait")
    start, end = mr.ready_at, max(mr.merged_at, mr.ready_at)
    cuts: list[tuple[str, float | None]] = [("ready_to_queued", mr.queued_at)]
    if landing is not None:
        cuts.append((_QUEUE, landing.created_at))
        for test in landing.tests:
            cuts += [
                ("workflow", test.created_at),
                ("ci", test.finished_at),
                ("resumed", test.verdict_at),
            ]
        cuts.append(("workflow", end))
    else:
        cuts.append(("other", end))
    sums = dict.fromkeys(
        ("ready_to_queued", "behind_batch", "idle", "workflow", "ci", "resumed", "other"), 0.0
    )
    busy = [(b.created_at, b.ended_at) for b in others if landing is None or b.id != landing.id]
    previous, missing = start, False
    for name, instant in cuts:
        if instant is None:
            missing = True
            continue
        at = min(max(instant, previous), end)
        if missing:
            sums["other"] += at - previous
        elif name == _QUEUE:
            behind = overlap(previous, at, busy)
            sums["behind_batch"] += behind
            sums["idle"] += at - previous - behind
        else:
            sums[name] += at - previous
        previous, missing = at, False
    return WaitParts(total=end - start, **sums)


def polled_parts(mr: MergeRequestRecord) -> WaitParts:
    """A polling bot's wait: the total, and the part of it its last CI run took."""
    if mr.ready_at is None or mr.merged_at is None:
        raise ValueError("only a merged MR that was ready has a wait")
    ci = None
    if mr.tested is not None:
        created, finished = mr.tested
        ci = max(0.0, min(finished, mr.merged_at) - max(created, mr.ready_at))
    return WaitParts(total=mr.merged_at - mr.ready_at, ci=ci)


def mean_parts(parts: Sequence[WaitParts]) -> WaitParts | None:
    """Each part's mean over the MRs that have it (for Merge Assist: all of them, so the
    means add up to the mean total)."""
    if not parts:
        return None
    means: dict[str, float | None] = {}
    for name in asdict(parts[0]):
        known = [v for v in (getattr(p, name) for p in parts) if v is not None]
        means[name] = sum(known) / len(known) if known else None
    total = means.pop("total")
    assert total is not None
    return WaitParts(total=total, **means)


def compute(name: str, workload: Workload, record: RunRecord) -> ContenderResult:
    outcomes = {mr.index: mr.outcome for mr in record.merge_requests}
    extra = extra_pipelines(record.pipelines, [mr.initial_sha for mr in record.merge_requests])
    waited = [
        mr
        for mr in record.merge_requests
        if mr.outcome == "merged" and mr.merged_at is not None and mr.ready_at is not None
    ]
    waits = tuple(
        (mr.merged_at - mr.ready_at) / workload.ci_seconds
        for mr in waited
        if mr.merged_at is not None and mr.ready_at is not None
    )
    landing = {index: batch for batch in record.batches for index in batch.landed}
    polls = record.dispatches is None
    parts = tuple(
        (
            polled_parts(mr) if polls else decompose(mr, landing.get(mr.index), record.batches)
        ).scaled(workload.ci_seconds)
        for mr in waited
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
        events=None if polls else sum(d.records for d in record.dispatches or ()),
        dispatch_ms=tuple(per_record_ms(record.dispatches or ())),
        echo_ms=tuple(per_record_ms(record.dispatches or (), echoes_only=True)),
        api_calls=record.api_calls,
        wait_parts=parts,
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
            green = [p for p in pipelines if p.status == "success" and p.finished_at]
            by_index = {change.index: change for change in self.workload.changes}

            def holds(sha: str, path: str) -> bool:
                commit = repo[sha.encode()]
                assert isinstance(commit, Commit)
                try:
                    tree_lookup_path(repo.__getitem__, commit.tree, path.encode())
                except KeyError:
                    return False
                return True

            def tested(path: str, merged_at: float | None) -> tuple[float, float] | None:
                if merged_at is None:
                    return None
                for pipeline in reversed(green):
                    finished = _epoch(pipeline.finished_at)
                    created = _epoch(pipeline.created_at)
                    if finished is None or created is None or finished > merged_at:
                        continue
                    if holds(pipeline.sha, path):
                        return created, finished
                return None

            records = []
            for index, iid in self.iids.items():
                mr = store.merge_request(self.project.id, iid)
                initial = mr.sha_history[0] if mr.sha_history else mr.sha
                own = next(
                    (p for p in pipelines if p.sha == initial and p.status == "success"), None
                )
                merged_at = _epoch(mr.merged_at) if mr.state == "merged" else None
                records.append(
                    MergeRequestRecord(
                        index=index,
                        outcome=outcomes[index],
                        ready_at=_epoch(own.finished_at) if own else None,
                        merged_at=merged_at,
                        initial_sha=initial,
                        tested=tested(by_index[index].path, merged_at),
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
        data_dir=data_dir,
        http_port=0,
        web_dir=None,
        gitlab_time_scale=workload.time_scale,
        # The workflow asks GitLab about a pipeline only if its webhook is this late: well
        # after a CI run, however long the run is.
        pipeline_poll_seconds=max(30, math.ceil(3 * workload.ci_seconds)),
    )


# -- what the contenders did, counted while they ran -------------------------------------

_QUEUE_ARN = re.compile(r":[^:]*-project-(\d+)\.fifo$")


@contextlib.contextmanager
def dispatcher_log(
    stack: LocalStack, project_id: int, bot_user_id: int
) -> Iterator[list[Dispatch]]:
    """The dispatcher's invocations for the project's queue while the block runs.

    The local Lambda runtime's observers are told a function's name and wall time, not its
    event, so the bench puts a timing wrapper around the dispatcher's handler for the block
    (``LambdaRuntime.register`` with a handler) and puts the real one back after. Each SQS
    batch comes from one queue: its first record's ``eventSourceARN`` names the project."""
    from merge_assist.platform.events import QueueEvent
    from merge_assist.platform.resources import function_spec
    from merge_assist.queue.dispatch import can_change_decision

    def echoes(records: list[Any]) -> int:
        count = 0
        for record in records:
            try:
                event = QueueEvent.model_validate_json(record.get("body", ""))
            except ValueError:
                continue  # the dispatcher parks what it cannot read; no echo
            count += not can_change_decision(event, bot_user_id)
        return count

    name = stack.names.function("dispatcher")
    spec = function_spec("dispatcher")
    real = stack.runtime.handler(name)
    seen: list[Dispatch] = []
    lock = threading.Lock()

    def timed(event: Any, context: Any) -> Any:
        records = event.get("Records") or [] if isinstance(event, dict) else []
        source = str(records[0].get("eventSourceARN", "")) if records else ""
        match = _QUEUE_ARN.search(source)
        started = time.perf_counter()
        try:
            return real(event, context)
        finally:
            elapsed = time.perf_counter() - started
            if match is not None and int(match.group(1)) == project_id:
                dispatch = Dispatch(len(records), elapsed, echoes=echoes(records))
                with lock:
                    seen.append(dispatch)

    stack.runtime.register(name, spec, handler=timed)
    try:
        yield seen
    finally:
        stack.runtime.register(name, spec, handler=real)


@contextlib.contextmanager
def rest_calls(gitlab: GitLabSimulator) -> Iterator[Counter[str]]:
    """REST calls (``/api/v4``, not git over HTTP) to the simulator by the user each
    authenticated as, while the block runs."""
    calls: Counter[str] = Counter()
    lock = threading.Lock()

    def count(username: str, method: str, path: str) -> None:
        with lock:
            calls[username] += 1

    gitlab.services.request_observers.add(count)
    try:
        yield calls
    finally:
        gitlab.services.request_observers.remove(count)


def queue_history(
    store: DynamoDBStore, gitlab: GitLabSimulator, project_id: int, iids: dict[int, int]
) -> tuple[dict[int, float], tuple[BatchRecord, ...]]:
    """From Merge Assist's records of the project: when each MR (by workload index) was
    first queued, by the event log, and its batches with the pipelines they waited for."""
    from merge_assist.audit.models import AuditAction
    from merge_assist.queue.models import BatchStepKind

    index_of = {iid: index for index, iid in iids.items()}
    queued: dict[int, float] = {}
    cursor: str | None = None
    while True:
        entries, cursor = store.list_audit(project_id, limit=500, cursor=cursor)
        for entry in entries:
            if (
                entry.action is AuditAction.STATUS_CHANGED
                and entry.details.get("to") == "queued"
                and entry.merge_request in index_of
            ):
                index = index_of[entry.merge_request]
                at = entry.at.timestamp()
                queued[index] = min(at, queued.get(index, at))
        if cursor is None:
            break
    sim = gitlab.store
    batches: list[BatchRecord] = []
    for batch in store.list_batches(project_id, limit=1000):
        tests: list[AwaitedPipeline] = []
        for step in batch.steps:
            if step.kind is not BatchStepKind.TESTED:
                continue
            with sim.lock:
                pipeline = sim.pipelines.get(step.pipeline_id) if step.pipeline_id else None
                created = _epoch(pipeline.created_at) if pipeline else None
                finished = _epoch(pipeline.finished_at) if pipeline else None
            tests.append(AwaitedPipeline(created, finished, step.at.timestamp()))
        ended = max([batch.updated_at, *(step.at for step in batch.steps)])
        batches.append(
            BatchRecord(
                id=batch.id,
                created_at=batch.created_at.timestamp(),
                ended_at=ended.timestamp(),
                landed=tuple(index_of[iid] for iid in batch.landed if iid in index_of),
                tests=tuple(tests),
            )
        )
    return queued, tuple(sorted(batches, key=lambda b: b.created_at))


def run_merge_assist(
    stack: LocalStack,
    workload: Workload,
    contender: Contender,
    progress: Callable[[str], None] = lambda _: None,
) -> ContenderResult:
    """One run on an already started stack whose simulator runs at ``workload.time_scale``.
    A wrongly rejected MR is reported through ``progress`` with the reasons the queue gave."""
    from merge_assist.adapters.aws import store_from_settings
    from merge_assist.adapters.gitlab_gateway import PythonGitLabGateway
    from merge_assist.adapters.project_infra import AwsProjectInfrastructure
    from merge_assist.admin.onboarding import connect_project
    from merge_assist.platform.errors import NotFoundError
    from merge_assist.queue.models import Reason, StatusCategory

    gitlab = stack.gitlab
    if gitlab is None:
        raise RuntimeError("the queue benchmark needs the embedded GitLab simulator")
    name = contender.name
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
        settings={
            "strategy": contender.strategy,
            "batch_size": contender.batch_size,
            "skip_target_pipeline": contender.skip_target_pipeline,
            "train_depth": contender.train_depth,
        },
    )
    run = _Run(gitlab, project, workload, stack.bot_username)
    reasons: dict[int, list[Reason]] = {}

    def outcome(index: int, iid: int) -> str | None:
        if gitlab.merge_request(project, iid)["state"] == "merged":
            return "merged"
        try:
            state = store.get_merge_request(project.id, iid)
        except NotFoundError:
            return None
        if state.status is StatusCategory.REJECTED:
            reasons[index] = state.reasons
            return "rejected"
        # Not ready after its own pipeline passed: the queue let it go (a conflict with
        # the target), with the reason on the MR.
        if state.status is StatusCategory.NOT_READY and state.reasons and own_pipeline_passed(iid):
            reasons[index] = state.reasons
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

    bot_user_id = gitlab.store.user_by_username(stack.bot_username).id
    with (
        dispatcher_log(stack, project.id, bot_user_id) as dispatches,
        rest_calls(gitlab) as calls,
    ):
        record = run.drive(outcome, idle, deadline_seconds(workload))
    queued, batches = queue_history(store, gitlab, project.id, run.iids)
    record = replace(
        record,
        merge_requests=tuple(
            replace(mr, queued_at=queued.get(mr.index)) for mr in record.merge_requests
        ),
        batches=batches,
        dispatches=tuple(dispatches),
        api_calls=calls[stack.bot_username],
    )
    result = compute(name, workload, record)
    for index in result.wrongly_rejected:
        why = "; ".join(f"{r.code}: {r.message}" for r in reasons.get(index, [])) or "no reason"
        progress(f"  {name}: MR {index} wrongly rejected ({why})")
    return result


MARGE_LOG_TAIL = 60


def marge_name(*, batch: bool) -> str:
    """The name a marge-bot run's results go by: its command line's."""
    return "marge-bot --batch" if batch else "marge-bot"


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
    name = marge_name(batch=batch)
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
        f"{max(60, math.ceil(10 * workload.ci_seconds))}s",
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
    with log.open("w") as out, rest_calls(gitlab) as calls:
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
        # The log goes with the run's temporary directory: what it ended with is kept here.
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-MARGE_LOG_TAIL:])
        raise RuntimeError(
            f"marge-bot stopped (exit {process.returncode}); the end of its log:\n{tail}"
        )
    return compute(name, workload, replace(record, api_calls=calls[username]))


# -- the whole benchmark ----------------------------------------------------------------

FORMAT = 1


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
    # When the run ended (UTC, ISO 8601): runs made at different times go in one report.
    ended_at: str = ""

    @property
    def heading(self) -> str:
        """``CI 1.2 s, 16 MRs, seed 1``: what sets this run apart from another."""
        return (
            f"CI {self.workload.ci_seconds:g} s, {len(self.workload.changes)} MRs, "
            f"seed {self.workload.seed}"
        )

    def table(self) -> str:
        return render_table(self.workload, self.results)

    def breakdown(self) -> str:
        return render_breakdown(self.results)

    def to_json(self) -> str:
        return json.dumps({"format": FORMAT, **asdict(self)}, indent=1)

    @staticmethod
    def from_json(text: str) -> QueueBenchmark:
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise ValueError(f"not a queue run of format {FORMAT}: {data.get('format')!r}")
        workload = data["workload"]
        changes = tuple(Change(**change) for change in workload.pop("changes"))
        results = [_result_from(result) for result in data["results"]]
        one, five, fifteen = data["load_average"]
        return QueueBenchmark(
            size=data["size"],
            workload=Workload(**workload, changes=changes),
            results=tuple(results),
            cpu_count=data["cpu_count"],
            python=data["python"],
            wall_seconds=data["wall_seconds"],
            load_average=(one, five, fifteen),
            ended_at=data.get("ended_at", ""),
        )


def _result_from(data: dict[str, Any]) -> ContenderResult:
    return ContenderResult(
        name=data["name"],
        merged=data["merged"],
        rejected=data["rejected"],
        unfinished=data["unfinished"],
        pipelines=data["pipelines"],
        target_pipelines=data["target_pipelines"],
        waits_ci=tuple(data["waits_ci"]),
        wrongly_rejected=tuple(data["wrongly_rejected"]),
        untested_commits=tuple(data["untested_commits"]),
        untested_heads=tuple(data["untested_heads"]),
        finished=data["finished"],
        wall_seconds=data["wall_seconds"],
        events=data["events"],
        dispatch_ms=tuple(data["dispatch_ms"]),
        # Runs saved before echoes were timed apart have none.
        echo_ms=tuple(data.get("echo_ms", ())),
        api_calls=data["api_calls"],
        wait_parts=tuple(WaitParts(**part) for part in data["wait_parts"]),
    )


def load_queue_run(path: Path) -> QueueBenchmark:
    return QueueBenchmark.from_json(path.read_text())


def gather(queues: Sequence[QueueBenchmark]) -> list[QueueBenchmark]:
    """Runs of one workload (same MRs, seed and CI duration) as one run, so contenders run at
    different times share a table: their results in the benchmark's order, a contender run
    again showing its later run, the wall time summed and the machine's figures the last
    run's. Runs of different workloads stay apart, in the order given."""
    from merge_assist.platform.config import DEFAULT_BATCH_SIZE

    order = {
        marge_name(batch=c.strategy == "batch") if c.bot == "marge-bot" else c.name: i
        for i, c in enumerate(contenders(DEFAULT_BATCH_SIZE))
    }

    def rank(result: ContenderResult) -> int:
        return order.get(result.name, len(order))

    gathered: list[QueueBenchmark] = []
    for queue in queues:
        same = next((i for i, g in enumerate(gathered) if g.workload == queue.workload), None)
        if same is None:
            gathered.append(queue)
            continue
        earlier, later = sorted((gathered[same], queue), key=lambda q: q.ended_at)
        results = {r.name: r for r in earlier.results} | {r.name: r for r in later.results}
        gathered[same] = replace(
            later,
            results=tuple(sorted(results.values(), key=rank)),
            wall_seconds=earlier.wall_seconds + later.wall_seconds,
        )
    return gathered


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


NONE = "\u2013"  # an en dash: no such figure for this contender
# The wait's parts as the tables list them, after the total.
PART_HEADINGS = (
    "ready→queued",
    "behind batch",
    "idle",
    "workflow",
    "CI",
    "pipeline→resumed",
    "other",
)


def figure(value: float | None) -> str:
    if value is None:
        return NONE
    return "n/a" if math.isnan(value) or math.isinf(value) else f"{value:.2f}"


def breakdown_row(result: ContenderResult) -> list[str]:
    """The figures that explain a wait: events and dispatcher time, GitLab calls, and the
    mean wait in parts (CI durations)."""
    parts = result.mean_parts
    return [
        figure(result.events_per_merged),
        figure(result.dispatch_median_ms),
        figure(result.dispatch_p95_ms),
        figure(result.echo_median_ms),
        figure(result.api_calls_per_merged),
        figure(parts.total if parts else None),
        *(figure(value) for value in (parts.parts() if parts else [None] * len(PART_HEADINGS))),
    ]


BREAKDOWN_HEADINGS = (
    "events/MR",
    "disp ms p50",
    "disp ms p95",
    "echo ms p50",
    "API/MR",
    "wait",
    *PART_HEADINGS,
)


def render_breakdown(results: Sequence[ContenderResult]) -> str:
    widths = [max(len(h), 6) + 2 for h in BREAKDOWN_HEADINGS]
    lines = [
        f"{'contender':<24}"
        + "".join(f"{h:>{w}}" for h, w in zip(BREAKDOWN_HEADINGS, widths, strict=True))
    ]
    for r in results:
        cells = breakdown_row(r)
        lines.append(
            f"{r.name:<24}" + "".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True))
        )
    lines.append("(per merged MR; waits in CI durations, mean over merged MRs)")
    return "\n".join(lines)


def describe(workload: Workload) -> str:
    return (
        f"{len(workload.changes)} MRs, seed {workload.seed}, p = {workload.fail_rate:.2f} "
        f"({len(workload.bad)} fail CI with an earlier partner), "
        f"{len(workload.conflicting)} edit the same lines as an earlier MR; arrivals "
        f"{workload.mean_gap_ci} CI apart on average; CI {workload.duration_s:.0f} s simulated "
        f"(pending {workload.pending_s:.0f} s) = {workload.ci_seconds:.2f} s wall"
    )


@dataclass(frozen=True)
class Contender:
    name: str  # as ``--contenders`` takes it
    bot: str  # merge-assist | marge-bot
    strategy: str = "batch"  # Merge Assist's; marge-bot: "batch" for --batch
    batch_size: int | Literal["auto"] = 1
    skip_target_pipeline: bool = False  # Merge Assist's landing push with ``ci.skip``
    train_depth: int = 2  # Merge Assist's train: cars tested at once


def contenders(default_batch: int) -> list[Contender]:
    sizes = sorted({2, 4, 8, default_batch})
    return [
        Contender("merge-assist-serial", "merge-assist", "serial", 1),
        *(Contender(f"merge-assist-batch-{n}", "merge-assist", "batch", n) for n in sizes),
        Contender(
            f"merge-assist-batch-{default_batch}-ci-skip",
            "merge-assist",
            "batch",
            default_batch,
            skip_target_pipeline=True,
        ),
        Contender("merge-assist-batch-auto", "merge-assist", "batch", "auto"),
        Contender(
            "merge-assist-batch-auto-ci-skip",
            "merge-assist",
            "batch",
            "auto",
            skip_target_pipeline=True,
        ),
        *(
            Contender(
                f"merge-assist-train-{depth}",
                "merge-assist",
                "train",
                default_batch,
                train_depth=depth,
            )
            for depth in (2, 4)
        ),
        # Cars of one MR each, as GitLab's merge trains build them: a red car names its
        # culprit without bisecting, at one pipeline per car.
        Contender("merge-assist-train-4x1", "merge-assist", "train", 1, train_depth=4),
        Contender(
            "merge-assist-train-4x1-ci-skip",
            "merge-assist",
            "train",
            1,
            skip_target_pipeline=True,
            train_depth=4,
        ),
        Contender(
            "merge-assist-train-2-ci-skip",
            "merge-assist",
            "train",
            default_batch,
            skip_target_pipeline=True,
        ),
        Contender(
            "merge-assist-train-auto-ci-skip",
            "merge-assist",
            "train",
            "auto",
            skip_target_pipeline=True,
        ),
        Contender("marge-bot", "marge-bot", "serial"),
        Contender("marge-bot-batch", "marge-bot", "batch"),
    ]


def select_contenders(names: Sequence[str] | None, default_batch: int) -> list[Contender]:
    """The named contenders in the benchmark's order (all of them for None); a name it does
    not know is a ``ValueError`` that lists those it does."""
    every = contenders(default_batch)
    if names is None:
        return every
    known = {c.name for c in every}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(
            f"unknown contender {', '.join(unknown)}; choose from {', '.join(sorted(known))}"
        )
    return [c for c in every if c.name in names]


def run_benchmark(
    size: str = "small",
    seed: int = 1,
    *,
    ci_seconds: float = DEFAULT_CI_SECONDS,
    only: Sequence[str] | None = None,
    data_dir: Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> QueueBenchmark:
    import tempfile

    from local.stack import LocalStack
    from merge_assist.platform.config import DEFAULT_BATCH_SIZE

    workload = generate_workload(SIZES[size], seed, ci_seconds=ci_seconds)
    chosen = select_contenders(only, DEFAULT_BATCH_SIZE)
    os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
    started = time.monotonic()
    results: list[ContenderResult] = []
    with contextlib.ExitStack() as cleanup:
        if data_dir is None:
            data_dir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="bench-")))
        with LocalStack(stack_config(data_dir, workload)) as stack:
            stack.runtime.warm()
            for contender in chosen:
                progress(f"{contender.name} ...")
                if contender.bot == "marge-bot":
                    result = run_marge(
                        stack,
                        workload,
                        batch=contender.strategy == "batch",
                        log_dir=data_dir / "marge",
                    )
                else:
                    result = run_merge_assist(stack, workload, contender, progress)
                results.append(result)
    return QueueBenchmark(
        size=size,
        workload=workload,
        results=tuple(results),
        cpu_count=os.cpu_count() or 0,
        python=platform.python_version(),
        wall_seconds=time.monotonic() - started,
        load_average=os.getloadavg(),
        ended_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )

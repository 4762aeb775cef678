"""``python -m bench.git_work``: what a batch's git work costs on the local stack.

One simulator project; batch after batch of MRs, each step of the merge workflow
(select, build, land) invoked through the local Lambda runtime, as the state machine
invokes it, so the figures include the handler's own work, the store and GitLab's REST
calls. The wait for CI and the verdict run between build and land, untimed. The first
batch starts with no local repository (a cold Lambda); the later ones find it warm, which
is what a busy queue sees. ``--profile`` writes one cProfile file per step (warm batches
only), for ``python -m pstats`` or snakeviz."""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from local.gitlab_sim import GitLabSimulator
    from local.gitlab_sim.models import Project
    from local.stack import LocalStack

STEPS = ("select", "build", "land")
TARGET = "main"
MAINTAINER = 40
DEVELOPER = 30
DEVELOPER_NAME = "bench-dev"
# The project's size matters: a fetch or a push that sends more than what is new grows
# with it.
FILES = 400
DIRECTORIES = 20
# A target with some past: what a fetch, a push or an ancestry check walks grows with it.
HISTORY = 300
SHARED_FILE = "src/shared.txt"
SHARED_SPACING = 4
# The goal for select + build + land of one warm batch (DESIGN.md, "Performance").
BUDGET_S = 0.5


@dataclass
class Spent:
    """Where one step's wall time went, as seen from the step's own thread."""

    seconds: float = 0.0
    git_seconds: float = 0.0  # inside the repository: fetch, merges, push
    gitlab_calls: int = 0
    gitlab_seconds: float = 0.0
    aws_calls: int = 0
    aws_seconds: float = 0.0


@dataclass(frozen=True)
class BatchTimes:
    batch_id: str
    spent: dict[str, Spent]
    landed: int

    @property
    def seconds(self) -> dict[str, float]:
        return {step: spent.seconds for step, spent in self.spent.items()}

    @property
    def total(self) -> float:
        return sum(self.spent[step].seconds for step in STEPS)

    @property
    def git_total(self) -> float:
        return sum(self.spent[step].git_seconds for step in STEPS)


@dataclass(frozen=True)
class GitWorkBenchmark:
    size: int
    files: int
    history: int
    batches: tuple[BatchTimes, ...]
    cpu_count: int = field(default_factory=lambda: os.cpu_count() or 0)

    @property
    def cold(self) -> BatchTimes:
        return self.batches[0]

    @property
    def warm(self) -> tuple[BatchTimes, ...]:
        return self.batches[1:]

    def median(self, step: str) -> float:
        return statistics.median(b.seconds[step] for b in self.warm)

    @property
    def median_total(self) -> float:
        return statistics.median(b.total for b in self.warm)

    def table(self) -> str:
        warm = self.warm

        def median(values: Sequence[float]) -> float:
            return statistics.median(values)

        lines = [
            f"{self.size}-MR batches on a project of {self.files} files and {self.history} "
            f"commits; 1 cold + {len(warm)} warm, {self.cpu_count} CPUs (medians of the warm "
            "batches; git: inside the repository, REST: GitLab API, AWS: DynamoDB and co.)",
            f"{'step':<8}{'cold s':>8}{'warm s':>8}{'min s':>7}{'max s':>7}{'git s':>8}"
            f"{'REST':>6}{'REST s':>8}{'AWS':>6}{'AWS s':>8}",
        ]
        for step in STEPS:
            spent = [b.spent[step] for b in warm]
            walls = [x.seconds for x in spent]
            lines.append(
                f"{step:<8}{self.cold.spent[step].seconds:>8.3f}{median(walls):>8.3f}"
                f"{min(walls):>7.3f}{max(walls):>7.3f}"
                f"{median([x.git_seconds for x in spent]):>8.3f}"
                f"{median([x.gitlab_calls for x in spent]):>6.0f}"
                f"{median([x.gitlab_seconds for x in spent]):>8.3f}"
                f"{median([x.aws_calls for x in spent]):>6.0f}"
                f"{median([x.aws_seconds for x in spent]):>8.3f}"
            )
        totals = [b.total for b in warm]
        lines.append(
            f"{'total':<8}{self.cold.total:>8.3f}{median(totals):>8.3f}{min(totals):>7.3f}"
            f"{max(totals):>7.3f}{median([b.git_total for b in warm]):>8.3f}"
        )
        git = median([b.git_total for b in warm])
        lines.append(
            f"git work of a warm batch: {git:.3f} s "
            f"({'within' if git <= BUDGET_S else 'OVER'} {BUDGET_S} s); "
            f"select + build + land: {self.median_total:.3f} s "
            f"({'within' if self.median_total <= BUDGET_S else 'OVER'} {BUDGET_S} s)"
        )
        return "\n".join(lines)


def initial_files(count: int = FILES) -> dict[str, str]:
    """A project of ``count`` small files in a few directories, so trees have some depth."""
    files = {"README.md": "# bench\n", SHARED_FILE: "".join(f"line {n}\n" for n in range(60))}
    for index in range(count - 2):
        lines = "".join(f"line {n} of file {index}\n" for n in range(20))
        files[f"src/d{index % DIRECTORIES:02d}/f{index:04d}.txt"] = lines
    return files


class _Ledger:
    """Books the time of the step running in the calling thread: AWS calls where botocore
    makes them (the local stack answers them in-process, without HTTP), GitLab's REST calls
    where urllib3 sends them (python-gitlab and dulwich send through it), and the time spent
    inside the project's repository. Other threads (pollers, the simulator's own work) are
    not the step's and are left out."""

    REPOSITORY_CALLS = ("fetch", "push", "build_batch", "is_ancestor", "same_tree")

    def __init__(self, gitlab_port: int, aws_port: int) -> None:
        self.gitlab_port, self.aws_port = gitlab_port, aws_port
        self.current: Spent | None = None
        self.thread: int | None = None
        self._depth = threading.local()

    @contextlib.contextmanager
    def installed(self) -> Iterator[None]:
        from urllib3.connectionpool import HTTPConnectionPool

        from merge_assist.adapters.repositories import ReauthenticatingRepository

        ledger = self
        original_urlopen = HTTPConnectionPool.urlopen

        def urlopen(pool: HTTPConnectionPool, method: str, url: str, *args: Any, **kw: Any) -> Any:
            spent = ledger.mine()
            depth = getattr(ledger._depth, "http", 0)
            if spent is None or depth:
                return original_urlopen(pool, method, url, *args, **kw)
            ledger._depth.http = 1
            started = time.perf_counter()
            try:
                return original_urlopen(pool, method, url, *args, **kw)
            finally:
                ledger._depth.http = 0
                elapsed = time.perf_counter() - started
                if pool.port == ledger.gitlab_port and "/api/v4/" in url:
                    spent.gitlab_calls += 1
                    spent.gitlab_seconds += elapsed

        originals = {
            name: getattr(ReauthenticatingRepository, name) for name in self.REPOSITORY_CALLS
        }

        def booked(name: str) -> Callable[..., Any]:
            method = originals[name]

            def call(*args: Any, **kwargs: Any) -> Any:
                spent = ledger.mine()
                if spent is None:
                    return method(*args, **kwargs)
                started = time.perf_counter()
                try:
                    return method(*args, **kwargs)
                finally:
                    spent.git_seconds += time.perf_counter() - started

            return call

        HTTPConnectionPool.urlopen = urlopen  # type: ignore[method-assign, assignment]
        for name in self.REPOSITORY_CALLS:
            setattr(ReauthenticatingRepository, name, booked(name))
        try:
            with self._aws_calls_booked():
                yield
        finally:
            HTTPConnectionPool.urlopen = original_urlopen  # type: ignore[method-assign]
            for name, method in originals.items():
                setattr(ReauthenticatingRepository, name, method)

    @contextlib.contextmanager
    def _aws_calls_booked(self) -> Iterator[None]:
        from botocore.endpoint import Endpoint

        ledger = self
        original = Endpoint.make_request
        aws_host = f":{self.aws_port}"

        def make_request(endpoint: Endpoint, *args: Any, **kw: Any) -> Any:
            spent = ledger.mine()
            if spent is None or not str(endpoint.host).endswith(aws_host):
                return original(endpoint, *args, **kw)
            started = time.perf_counter()
            try:
                return original(endpoint, *args, **kw)
            finally:
                spent.aws_calls += 1
                spent.aws_seconds += time.perf_counter() - started

        Endpoint.make_request = make_request  # type: ignore[method-assign, assignment]
        try:
            yield
        finally:
            Endpoint.make_request = original  # type: ignore[method-assign]

    def mine(self) -> Spent | None:
        return self.current if threading.get_ident() == self.thread else None

    @contextlib.contextmanager
    def booking(self, spent: Spent) -> Iterator[None]:
        self.current, self.thread = spent, threading.get_ident()
        try:
            yield
        finally:
            self.current, self.thread = None, None


class _Steps:
    """The workflow's step functions, invoked through the local Lambda runtime."""

    def __init__(self, stack: LocalStack, ledger: _Ledger, profile_dir: Path | None) -> None:
        self.stack = stack
        self.ledger = ledger
        self.profile_dir = profile_dir
        self.profiles: dict[str, cProfile.Profile] = {}

    def invoke(self, key: str, event: dict[str, Any]) -> Any:
        result = self.stack.runtime.invoke(self.stack.names.function(key), event)
        if result.function_error:
            raise RuntimeError(f"{key} failed: {result.payload.decode()}")
        return result.json()

    def timed(
        self, step: str, key: str, event: dict[str, Any], *, profile: bool
    ) -> tuple[Any, Spent]:
        profiler = self.profiles.setdefault(step, cProfile.Profile()) if profile else None
        spent = Spent()
        with self.ledger.booking(spent):
            started = time.perf_counter()
            if profiler is not None:
                profiler.enable()
            try:
                answer = self.invoke(key, event)
            finally:
                if profiler is not None:
                    profiler.disable()
                spent.seconds = time.perf_counter() - started
        return answer, spent

    def dump_profiles(self) -> list[Path]:
        if self.profile_dir is None:
            return []
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        written = []
        for step, profiler in self.profiles.items():
            path = self.profile_dir / f"{step}.prof"
            profiler.dump_stats(str(path))
            written.append(path)
        return written


def _add_history(gitlab: GitLabSimulator, project: Project, commits: int) -> None:
    """``commits`` small commits on the target, one file changed in each."""
    from local.gitlab_sim import gitops

    with gitlab.store.lock:
        repo = gitlab.store.repo(project.id)
        head = gitops.branch_sha(repo, TARGET)
        assert head is not None
        author = gitops.Identity("Bench Developer", "bench-dev@example.com")
        for number in range(commits):
            path = f"src/d{number % DIRECTORIES:02d}/f{number % (FILES - 2):04d}.txt"
            tree = gitops.apply_actions(
                repo, head, [{"action": "update", "file_path": path, "content": f"v{number}\n"}]
            )
            head = gitops.make_commit(repo, tree, [head], f"Past change {number}", author)
        gitops.set_ref(repo, f"refs/heads/{TARGET}", head)


def _queue(stack: LocalStack, project: Project, iids: Sequence[int]) -> None:
    """The MRs queued in the store as the dispatcher leaves ready MRs (no webhooks: nothing
    but the steps below acts on the project)."""
    from merge_assist.adapters.aws import store_from_settings
    from merge_assist.queue.models import MergeRequestState, StatusCategory

    assert stack.gitlab is not None
    store = store_from_settings()
    ready = datetime.now(UTC) - timedelta(minutes=1)
    for order, iid in enumerate(iids):
        mr = stack.gitlab.merge_request(project, iid)
        store.save_merge_request(
            MergeRequestState(
                project_id=project.id,
                iid=iid,
                sha=mr["sha"],
                judged_sha=mr["sha"],
                source_branch=mr["source_branch"],
                target_branch=TARGET,
                title=mr["title"],
                web_url=mr["web_url"],
                status=StatusCategory.QUEUED,
                ready_since=ready + timedelta(seconds=order),
                bot_assigned=True,
                gitlab_state="opened",
            )
        )


def _open_merge_requests(
    gitlab: GitLabSimulator, project: Project, batch: int, size: int, assignee: str
) -> list[int]:
    shared = gitlab.read_file(project, TARGET, SHARED_FILE)
    assert shared is not None
    lines = shared.decode().splitlines(keepends=True)
    iids = []
    for index in range(size):
        name = f"b{batch:03d}-m{index}"
        # Every MR also edits the shared file, each on its own line, so each merge is a
        # real three-way merge of one file's contents.
        edited = list(lines)
        line = (SHARED_SPACING * index) % len(edited)
        edited[line] = f"line {line} edited by {name}\n"
        iids.append(
            gitlab.create_merge_request(
                project,
                f"change/{name}",
                f"Change {name}",
                {f"changes/{name}.txt": f"change {name}\n", SHARED_FILE: "".join(edited)},
                author=DEVELOPER_NAME,
                assignees=[assignee],
            )
        )
    return iids


def _one_batch(
    steps: _Steps,
    gitlab: GitLabSimulator,
    project: Project,
    batch: int,
    size: int,
    *,
    profile: bool,
) -> BatchTimes:
    assert steps.stack is not None
    iids = _open_merge_requests(gitlab, project, batch, size, steps.stack.bot_username)
    if not gitlab.wait_idle(timeout=60):
        raise RuntimeError("the simulator did not settle before the batch")
    _queue(steps.stack, project, iids)
    batch_id = f"bench-git-{batch:03d}"
    run = {"project_id": project.id, "target_branch": TARGET, "batch_id": batch_id}
    ref = {"project_id": project.id, "batch_id": batch_id}
    seconds: dict[str, Spent] = {}

    selected, seconds["select"] = steps.timed("select", "workflow-select", run, profile=profile)
    if selected["merge_requests"] != iids:
        raise RuntimeError(f"select took {selected['merge_requests']}, not {iids}")
    built, seconds["build"] = steps.timed("build", "workflow-build", ref, profile=profile)
    if built["next"] != "test":
        raise RuntimeError(f"build ended with {built}")

    # The wait for CI, untimed: the pipeline the push started, then its verdict.
    deadline = (datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    check = {"project_id": project.id, "sha": built["sha"], "ref": built["ref"]}
    checked: dict[str, Any] = {"finished": False}
    waited = time.monotonic()
    while not checked["finished"]:
        if time.monotonic() - waited > 60:
            raise RuntimeError(f"no pipeline finished for {built['sha']}")
        gitlab.wait_idle(timeout=60)
        checked = steps.invoke("workflow-check-pipeline", {**check, "deadline": deadline})
    verdict = steps.invoke("workflow-verdict", {**ref, "pipeline": checked["outcome"]})
    if verdict["next"] != "land":
        raise RuntimeError(f"the verdict was {verdict} after {checked['outcome']}")

    landed, seconds["land"] = steps.timed("land", "workflow-land", ref, profile=profile)
    if landed["next"] != "release":
        raise RuntimeError(f"land ended with {landed}")
    steps.invoke("workflow-release", run)
    target = gitlab.branch_sha(project, TARGET)
    if target != built["sha"]:
        raise RuntimeError(f"{TARGET} is at {target}, not at the tested {built['sha']}")
    return BatchTimes(batch_id, seconds, landed=len(iids))


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """One JSON log line per Lambda event would bury the figures."""
    previous = os.environ.get("POWERTOOLS_LOG_LEVEL")
    os.environ["POWERTOOLS_LOG_LEVEL"] = previous or "WARNING"
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("POWERTOOLS_LOG_LEVEL", None)


def run(
    batches: int = 8,
    size: int = 5,
    *,
    files: int = FILES,
    history: int = HISTORY,
    profile_dir: Path | None = None,
    data_dir: Path | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> GitWorkBenchmark:
    from local.stack import LocalStack, LocalStackConfig
    from merge_assist.adapters.aws import store_from_settings
    from merge_assist.platform.config import Landing, ProjectConfig, Strategy

    if batches < 2:
        raise ValueError("at least two batches: one cold, one warm")
    with contextlib.ExitStack() as cleanup:
        cleanup.enter_context(_quiet())
        if data_dir is None:
            data_dir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="bench-git-")))
        config = LocalStackConfig(
            data_dir=data_dir,
            http_port=0,
            web_dir=None,
            gitlab_time_scale=0.01,
            # The watcher would start the queue by itself; here only the bench does.
            schedule_scale=1000.0,
        )
        stack = cleanup.enter_context(LocalStack(config))
        gitlab = stack.gitlab
        if gitlab is None:
            raise RuntimeError("the git benchmark needs the embedded GitLab simulator")
        gitlab.create_user(DEVELOPER_NAME, name="Bench Developer")
        project = gitlab.create_project(
            "git-work",
            namespace="bench",
            files=initial_files(files),
            members={stack.bot_username: MAINTAINER, DEVELOPER_NAME: DEVELOPER},
            only_allow_merge_if_pipeline_succeeds=True,
        )
        gitlab.set_pipeline_rules(project, fail_paths=[], flaky_rate=0.0, duration_s=1, pending_s=0)
        _add_history(gitlab, project, history)
        store_from_settings().save_project(
            ProjectConfig(
                project_id=project.id,
                path=project.path_with_namespace,
                strategy=Strategy.BATCH,
                batch_size=size,
                landing=Landing.PUSH,
            )
        )
        ledger = _Ledger(gitlab.port, urlsplit(stack.aws_endpoint).port or 0)
        cleanup.enter_context(ledger.installed())
        steps = _Steps(stack, ledger, profile_dir)
        measured = []
        for number in range(batches):
            profile = profile_dir is not None and number > 0
            times = _one_batch(steps, gitlab, project, number, size, profile=profile)
            progress(
                f"batch {number + 1}/{batches}"
                + (" (cold)" if number == 0 else "")
                + ": "
                + ", ".join(f"{step} {times.seconds[step]:.3f} s" for step in STEPS)
            )
            measured.append(times)
        for path in steps.dump_profiles():
            progress(f"profile: {path}")
    return GitWorkBenchmark(size=size, files=files, history=history, batches=tuple(measured))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.git_work", description=__doc__)
    add_arguments(parser)
    return run_command(parser.parse_args(argv))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--batches", type=int, default=8, help="batches in all (1st is cold)")
    parser.add_argument("--batch-size", type=int, default=5, help="MRs per batch")
    parser.add_argument("--files", type=int, default=FILES, help="files in the project")
    parser.add_argument(
        "--history", type=int, default=HISTORY, help="commits on the target before the first batch"
    )
    parser.add_argument("--profile", type=Path, help="folder for one cProfile file per step")


def run_command(args: argparse.Namespace) -> int:
    result = run(
        args.batches,
        args.batch_size,
        files=args.files,
        history=args.history,
        profile_dir=args.profile,
        progress=lambda line: print(f"  {line}", flush=True),
    )
    print(result.table(), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

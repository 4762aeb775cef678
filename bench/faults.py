"""``merge-assist bench faults``: the fault suite's mix at scale.

One project on the embedded stack, ``mrs`` merge requests that could all merge opened about
a CI run apart, while GitLab misbehaves as ``tests/e2e/test_faults.py`` makes it: a fifth
of REST and git requests answered 5xx or 429, a fifth of webhooks dropped, some delivered
twice or out of order, and the functions crashing after a fifth of their GitLab side
effects. When the last MR is opened the faults stop, and the queue must drain by itself.
Printed: MRs merged, lost (must be 0), untested landings (must be 0), the time to drain
after the faults stopped, and GitLab calls and retries (the gateway's own metrics)."""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from local.invariants import LandingLog, landed_merges, unaccounted, untested_landings

FAULT_RATE = 0.2
CRASH_RATE = 0.2
DUPLICATE_RATE = 0.1
DELAY_RATE = 0.1
# Simulated CI seconds of each pipeline (x ``TIME_SCALE`` on the wall clock).
CI_SECONDS = 20
TIME_SCALE = 0.05
SCHEDULE_SCALE = 0.02  # the 5-minute watcher every 6 s
PIPELINE_POLL_SECONDS = 5
# The project queue's visibility timeout: 360 s deployed; a crashed dispatcher's messages
# would otherwise wait that long, which measures the setting, not the queue.
VISIBILITY_SECONDS = 10
DRAIN_LIMIT_SECONDS = 900.0
MAINTAINER = 40
DEVELOPER = 30


@dataclass(frozen=True)
class FaultBench:
    mrs: int
    seed: int
    merged: int
    lost: dict[int, str]
    untested: list[str]
    drain_seconds: float | None
    gitlab_calls: int
    gitlab_retries: int
    gitlab_auth_failures: int

    def table(self) -> str:
        drain = (
            f"{self.drain_seconds:.0f} s"
            if self.drain_seconds is not None
            else f"did not drain in {DRAIN_LIMIT_SECONDS:.0f} s"
        )
        rows = [
            ("MRs opened", str(self.mrs)),
            ("merged", str(self.merged)),
            ("lost or unaccounted (must be 0)", str(len(self.lost))),
            ("untested landings (must be 0)", str(len(self.untested))),
            ("time to drain after the faults stopped", drain),
            ("GitLab calls (every try)", str(self.gitlab_calls)),
            ("GitLab retries", str(self.gitlab_retries)),
        ]
        width = max(len(name) for name, _ in rows)
        lines = [f"  {name:<{width}}  {value}" for name, value in rows]
        lines += [f"  !{iid}: {why}" for iid, why in sorted(self.lost.items())]
        return "\n".join(lines)

    @property
    def passed(self) -> bool:
        return not self.lost and not self.untested and self.drain_seconds is not None


def metric_totals(lines: list[str], names: tuple[str, ...]) -> dict[str, int]:
    """Sums of the named metrics over Embedded Metric Format documents, one a line."""
    totals = dict.fromkeys(names, 0)
    for line in lines:
        try:
            document: Any = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(document, dict):
            continue
        for name in names:
            value = document.get(name)
            values = value if isinstance(value, list) else [value]
            totals[name] += int(sum(v for v in values if isinstance(v, (int, float))))
    return totals


def run(mrs: int = 100, seed: int = 1, progress: Any = print) -> FaultBench:  # noqa: PLR0915
    from local.stack import LocalStack, LocalStackConfig
    from merge_assist.adapters import project_infra
    from merge_assist.adapters.aws import store_from_settings
    from merge_assist.adapters.gitlab_gateway import PythonGitLabGateway
    from merge_assist.adapters.project_infra import AwsProjectInfrastructure
    from merge_assist.admin.onboarding import connect_project
    from merge_assist.platform.errors import NotFoundError
    from merge_assist.queue.models import StatusCategory

    with contextlib.ExitStack() as stack_exit:
        data = Path(stack_exit.enter_context(tempfile.TemporaryDirectory(prefix="bench-faults-")))
        stack_exit.enter_context(
            _patched(project_infra, "VISIBILITY_TIMEOUT_SECONDS", VISIBILITY_SECONDS)
        )
        stack = stack_exit.enter_context(
            LocalStack(
                LocalStackConfig(
                    data_dir=data,
                    http_port=0,
                    web_dir=None,
                    gitlab_time_scale=TIME_SCALE,
                    schedule_scale=SCHEDULE_SCALE,
                    pipeline_poll_seconds=PIPELINE_POLL_SECONDS,
                )
            )
        )
        gitlab = stack.gitlab
        if gitlab is None:
            raise RuntimeError("the faults benchmark needs the embedded GitLab simulator")
        with contextlib.suppress(ValueError):
            gitlab.create_user("dev", name="Bench Developer")
        project = gitlab.create_project(
            f"faults-{uuid.uuid4().hex[:6]}",
            namespace="bench",
            files={"README.md": "# bench\n"},
            members={stack.bot_username: MAINTAINER, "dev": DEVELOPER},
        )
        gitlab.set_pipeline_rules(
            project, pending_s=1, duration_s=CI_SECONDS, fail_paths=[], flaky_rate=0.0
        )
        token = stack.client("secretsmanager").get_secret_value(
            SecretId=stack.names.bot_token_secret
        )["SecretString"]
        gateway = PythonGitLabGateway(stack.gitlab_url, token)
        bot_id = gateway.current_user_id()
        store = store_from_settings()
        connect_project(
            store,
            AwsProjectInfrastructure(stack.names),
            gateway,
            project.id,
            webhook_url=f"{stack.url}/webhook/gitlab",
        )
        log = LandingLog(gitlab, project.id, "main")
        stack_exit.callback(log.close)
        before = _metrics(stack.metrics_file)

        iids: list[int] = []
        progress(f"opening {mrs} MRs under faults (seed {seed}) ...")
        with contextlib.ExitStack() as faults:
            gitlab.inject_fault(status=503, rate=FAULT_RATE / 2, seed=seed, scope="all")
            gitlab.inject_fault(status=429, retry_after=1, rate=FAULT_RATE / 2, seed=seed + 1)
            gitlab.drop_webhooks(rate=FAULT_RATE, seed=seed + 2)
            gitlab.duplicate_webhooks(rate=DUPLICATE_RATE, seed=seed + 3)
            gitlab.delay_webhooks(rate=DELAY_RATE, seed=seed + 4)
            faults.callback(gitlab.clear_faults)
            faults.enter_context(
                stack.runtime.crashing_after_side_effects(
                    stack.gitlab_url, CRASH_RATE, seed=seed + 5
                )
            )
            for n in range(mrs):
                iids.append(
                    gitlab.create_merge_request(
                        project,
                        f"feature/f{n}",
                        f"Change {n}",
                        {f"src/f{n}.py": f"F{n} = {n}\n"},
                        author="dev",
                        assignees=[stack.bot_username],
                    )
                )
                time.sleep(CI_SECONDS * TIME_SCALE / 2)
                if n % 20 == 19:
                    progress(f"  {n + 1} opened")
        stopped = time.monotonic()
        progress("faults stopped; draining ...")

        def merged_now() -> list[int]:
            return [iid for iid in iids if gitlab.merge_request(project, iid)["state"] == "merged"]

        drain: float | None = None
        while time.monotonic() - stopped < DRAIN_LIMIT_SECONDS:
            if len(merged_now()) == len(iids) and store.get_branch_lock(project.id, "main") is None:
                drain = time.monotonic() - stopped
                break
            time.sleep(1.0)

        states = []
        for iid in iids:
            with contextlib.suppress(NotFoundError):
                states.append(store.get_merge_request(project.id, iid))
        heads = {iid: gitlab.merge_request(project, iid)["sha"] for iid in iids}
        landings = log.by(bot_id)
        merges = landed_merges(gitlab, project.id, landings, heads)
        merges += [iid for iid in merged_now() if iid not in merges]
        lost = unaccounted(iids, states, merges)
        # Still queued when the drain limit passed counts as lost here: nothing was wrong
        # with any of these MRs.
        for state in states:
            if state.status is not StatusCategory.MERGED and state.iid not in lost:
                lost[state.iid] = f"not merged: {state.status.value} after the drain limit"
        totals = _totals(before, _metrics(stack.metrics_file))
        return FaultBench(
            mrs=mrs,
            seed=seed,
            merged=len(merged_now()),
            lost=lost,
            untested=untested_landings(gitlab, project.id, landings),
            drain_seconds=drain,
            gitlab_calls=totals["GitLabApiCalls"],
            gitlab_retries=totals["GitLabApiRetries"],
            gitlab_auth_failures=totals["GitLabAuthFailures"],
        )


METRICS = ("GitLabApiCalls", "GitLabApiRetries", "GitLabAuthFailures")


def _metrics(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def _totals(before: list[str], after: list[str]) -> dict[str, int]:
    return metric_totals(after[len(before) :], METRICS)


@contextlib.contextmanager
def _patched(module: Any, name: str, value: Any) -> Any:
    original = getattr(module, name)
    setattr(module, name, value)
    try:
        yield
    finally:
        setattr(module, name, original)

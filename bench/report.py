"""``docs/benchmarks.md`` and ``docs/benchmarks.png`` from the benchmarks' results."""

from __future__ import annotations

import math
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.merge_queue import ContenderResult, QueueBenchmark
    from bench.webhook import WebhookBenchmark


def _number(value: float) -> str:
    return "n/a" if math.isnan(value) or math.isinf(value) else f"{value:.2f}"


def queue_section(queue: QueueBenchmark) -> str:
    from bench.merge_queue import MEAN_GAP_CI, describe, floors

    workload = queue.workload
    floor = floors(workload.fail_rate)
    rows = [
        "| contender | merged | rejected | unfinished | pipelines | of which on target "
        "| pipelines / merged MR | wait mean (CI) | wait p95 (CI) | wrongly rejected "
        "| untested first-parent commits | untested target heads | wall s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in queue.results:
        name = r.name if r.finished else f"{r.name} (did not finish)"
        rows.append(
            f"| {name} | {r.merged} | {r.rejected} | {r.unfinished} | {r.pipelines} "
            f"| {r.target_pipelines} | {_number(r.pipelines_per_merged)} "
            f"| {_number(r.mean_wait)} | {_number(r.p95_wait)} | {len(r.wrongly_rejected)} "
            f"| {len(r.untested_commits)} | {len(r.untested_heads)} | {r.wall_seconds:.0f} |"
        )
    rows += [
        f"| floor H(p), p = {workload.fail_rate:.2f} | | | | | | {floor.entropy:.2f} | | | | | | |",
        f"| floor Dorfman 2√p, p = {workload.fail_rate:.2f} | | | | | | {floor.dorfman:.2f} "
        "| | | | | | |",
    ]
    partners = ", ".join(
        f"{c.index}→{c.semantic_partner}" for c in workload.bad if c.semantic_partner is not None
    )
    clashes = ", ".join(
        f"{c.index}→{c.textual_partner}"
        for c in workload.conflicting
        if c.textual_partner is not None
    )
    return "\n".join(
        [
            "## The queue: Merge Assist against marge-bot",
            "",
            f"Workload (`--size {queue.size} --seed {workload.seed}`): {describe(workload)}.",
            f"Semantic pairs (MR → its earlier partner): {partners or 'none'}; "
            f"textual clashes: {clashes or 'none'}.",
            f"Whole run: {queue.wall_seconds:.0f} s; load average at its end "
            f"{' / '.join(f'{v:.1f}' for v in queue.load_average)} (1 / 5 / 15 min) on "
            f"{queue.cpu_count} CPUs, Python {queue.python}.",
            "",
            *rows,
            "",
            "### What was run",
            "",
            "Every contender gets a fresh project on the same embedded GitLab simulator, the",
            "same merge requests opened on the same schedule (exponential gaps, mean "
            f"{MEAN_GAP_CI} CI durations), the same simulated CI (fixed duration, no flakes) and "
            "`only_allow_merge_if_pipeline_succeeds`. Contenders run one after another, never "
            "at the same time. Each MR branches off the target as it was at the start and adds "
            "its own file, so its own pipeline passes; a *bad* MR fails CI on any tree that also "
            "holds its earlier partner's file (a semantic conflict: the simulator's "
            "`conflict_pairs`); a *clashing* MR edits the same line of a shared file as its "
            "earlier partner.",
            "",
            "- **Merge Assist** runs on the local stack: the real webhook receiver, dispatcher, "
            "workflow functions and the real state machine in moto's interpreter; `serial`, and "
            "`batch` at sizes 2, 4, 8 and the configured default, landing by `push`.",
            "- **marge-bot 1.4.0** runs unmodified as a subprocess with its own maintainer user, "
            "HTTPS with its token, `--ci-timeout 60s --git-timeout 60s` (far above the simulated "
            "CI), its default rebase-then-merge behaviour, and `--batch` for the batch run. Its "
            "fixed sleeps (5 to 30 s between polls, tuned for real CI) are capped at 0.2 s so its "
            "polling keeps pace with the compressed CI; nothing else of it is changed.",
            "- A run ends when every MR is merged or left (rejected, closed or unassigned with a "
            "comment) or a generous deadline passes; an unfinished run is marked.",
            "",
            "### How each metric is counted",
            "",
            "- **pipelines**: every pipeline the simulator ran for the project, except each "
            "MR's own first pipeline (identical for every contender, run before any bot acts). "
            "It includes the pipelines GitLab runs on the target branch after each push or "
            "merge (column *of which on target*): a team pays for those too. "
            "**pipelines / merged MR** divides by the MRs that landed.",
            "- **wait**: from the moment the MR's own pipeline passed (it was ready) to the moment "
            "GitLab recorded it merged, for merged MRs, in units of one CI run's wall time; mean "
            "and p95 (nearest rank).",
            "- **wrongly rejected**: an MR left unmerged although none of its partners (semantic "
            "or textual) is on the target at the end: nothing in the target stopped it landing.",
            "- **untested first-parent commits**: commits on the target's first-parent history "
            "since the start whose exact tree no pipeline ever passed. A batch that lands "
            "several MRs as a chain of merge commits has untested intermediate commits here "
            "even though the target never pointed at them.",
            "- **untested target heads**: commits the target was moved to whose exact tree had "
            "not passed a pipeline by then (the queue's invariant 1), whoever moved it. "
            "marge-bot's `--batch` mode, once the batch pipeline passed, rebases each MR of "
            "the batch and fast-forwards the target to it, one push per MR: the target moves "
            "through each MR's rebased head, and only the last of them has the tested tree.",
            "",
            "### The floors",
            "",
            f"At p = {workload.fail_rate:.2f}, no scheme that learns each change's fate from "
            "pass/fail pipelines can use fewer than H(p) = -p log2(p) - (1-p) log2(1-p) = "
            f"{floor.entropy:.3f} pipelines per change on average; two-stage (Dorfman) group "
            f"testing at its best group size needs about 2√p = {floor.dorfman:.3f} (the exact "
            "optimum at p = 0.10 is 0.594, with groups of 4). The contenders' figures are per "
            "*merged* MR and include the target-branch pipelines, so they sit above these "
            "floors by construction; the floors show how much room is left.",
            "",
            "### Reading the waits",
            "",
            "CI is compressed to about a second of wall time so the whole comparison runs in "
            "minutes. Fixed costs that do not shrink with it (Merge Assist's webhook → queue → "
            "Step Functions → Lambda path, run here by moto in one process, and git fetches "
            "and pushes; marge-bot's clone, rebase and polling) are therefore large in units of "
            "CI. With real CI runs of many minutes, these costs shrink towards zero and the "
            "waits approach the number of CI runs each MR waits behind.",
            "",
            "The largest such cost for Merge Assist is its event path. Every webhook of a "
            "project and target branch goes through one SQS FIFO message group, handled in "
            "order by the dispatcher (a few events a second on the local stack, each one "
            "reading GitLab and DynamoDB). Sixteen MRs arriving within about ten seconds, "
            "each bringing several webhooks (open, pipeline, label and note updates, many "
            "caused by the queue's own labels and comments), build a backlog of tens of "
            "events, and a batch's pipeline webhook waits behind it: watching the project "
            "queue during a `batch` run shows it peak near 70 messages while the batch "
            "pipelines finish in about a second. marge-bot polls GitLab instead and does "
            "not pay this. In the cloud, with CI runs of minutes and MRs minutes apart, the "
            "backlog does not form; here it is the main reason Merge Assist's waits exceed "
            "marge-bot's, and a dispatcher that keeps up with bursts is the fix it points to.",
            "",
            "Merge Assist's `serial` strategy polls a rebase with a Step Functions Wait state "
            "of at least one second (`rebase_poll_seconds`), close to one compressed CI run.",
        ]
    )


def webhook_section(webhook: WebhookBenchmark) -> str:
    from bench.webhook import GOAL_IMPORT_MS, GOAL_P99_MS

    rows = ["| event | n | p50 ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|"]
    for kind, count, p50, p99, worst in webhook.rows():
        rows.append(f"| {kind} | {count} | {p50:.2f} | {p99:.2f} | {worst:.2f} |")
    imports = sorted(webhook.imports)
    median = imports[len(imports) // 2]
    return "\n".join(
        [
            "## The webhook receiver",
            "",
            "In-process, every AWS call answered by moto: the handler's own time for realistic "
            "deliveries of each event type, each a new delivery (parse, authenticate, "
            f"idempotency record, SQS send). Goal: p99 under {GOAL_P99_MS:.0f} ms.",
            "",
            *rows,
            "",
            f"Cold import of `functions.webhook.app` in {len(imports)} fresh interpreters: "
            f"median {median:.0f} ms, min {imports[0]:.0f} ms, max {imports[-1]:.0f} ms "
            f"(goal {GOAL_IMPORT_MS:.0f} ms).",
        ]
    )


def chart(queue: QueueBenchmark, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bench.merge_queue import floors

    results: list[ContenderResult] = list(queue.results)
    names = [r.name for r in results]
    floor = floors(queue.workload.fail_rate)
    figure, (pipes, waits) = plt.subplots(1, 2, figsize=(12, 5))
    positions = list(range(len(results)))
    pipes.bar(positions, [_finite(r.pipelines_per_merged) for r in results], color="#4c72b0")
    pipes.axhline(floor.entropy, color="#c44e52", linestyle="--", label="H(p)")
    pipes.axhline(floor.dorfman, color="#dd8452", linestyle=":", label="Dorfman 2√p")
    pipes.set_title("CI pipelines per merged MR")
    pipes.legend()
    waits.bar(positions, [_finite(r.mean_wait) for r in results], color="#55a868")
    waits.set_title("Mean wait, ready → merged (CI durations)")
    for axis in (pipes, waits):
        axis.set_xticks(positions, names, rotation=30, ha="right")
    figure.suptitle(
        f"{len(queue.workload.changes)} MRs, p = {queue.workload.fail_rate:.2f}, "
        f"seed {queue.workload.seed}"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _finite(value: float) -> float:
    return 0.0 if math.isnan(value) or math.isinf(value) else value


def write(
    docs: Path,
    *,
    webhook: WebhookBenchmark | None,
    queue: QueueBenchmark | None,
    cost: str | None = None,
) -> list[Path]:
    """``cost`` is ``bench_cost.cost_report``'s markdown section, as it is."""
    docs.mkdir(parents=True, exist_ok=True)
    markdown = docs / "benchmarks.md"
    sections = [
        "# Benchmarks",
        "",
        "Written by `merge-assist bench all` (`make bench`) on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC: {os.cpu_count()} CPUs, Python "
        f"{platform.python_version()} ({platform.system()} {platform.machine()}).",
    ]
    written = [markdown]
    if queue is not None:
        sections += ["", queue_section(queue), "", "![The queue benchmark](benchmarks.png)"]
        chart(queue, docs / "benchmarks.png")
        written.append(docs / "benchmarks.png")
    if cost is not None:
        sections += ["", cost]
    if webhook is not None:
        sections += ["", webhook_section(webhook)]
    markdown.write_text("\n".join(sections) + "\n")
    return written

"""``docs/benchmarks.md`` and ``docs/benchmarks.png`` from the benchmarks' results."""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.merge_queue import ContenderResult, QueueBenchmark
    from bench.webhook import WebhookBenchmark


def _number(value: float) -> str:
    return "n/a" if math.isnan(value) or math.isinf(value) else f"{value:.2f}"


def queue_run_section(queue: QueueBenchmark, chart_name: str | None) -> str:
    """One run's heading, workload, tables and chart."""
    from bench.merge_queue import BREAKDOWN_HEADINGS, NONE, breakdown_row, describe, floors

    workload = queue.workload
    floor = floors(workload.fail_rate)
    rows = [
        "| contender | merged | rejected | unfinished | pipelines | of which on target "
        "| pipelines / merged MR | wait mean (CI) | wait p95 (CI) | wrongly rejected "
        "| untested first-parent commits | untested target heads | wall s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in queue.results:
        rows.append(
            f"| {_name(r)} | {r.merged} | {r.rejected} | {r.unfinished} | {r.pipelines} "
            f"| {r.target_pipelines} | {_number(r.pipelines_per_merged)} "
            f"| {_number(r.mean_wait)} | {_number(r.p95_wait)} | {len(r.wrongly_rejected)} "
            f"| {len(r.untested_commits)} | {len(r.untested_heads)} | {r.wall_seconds:.0f} |"
        )
    rows += [
        f"| floor H(p), p = {workload.fail_rate:.2f} | | | | | | {floor.entropy:.2f} | | | | | | |",
        f"| floor Dorfman 2√p, p = {workload.fail_rate:.2f} | | | | | | {floor.dorfman:.2f} "
        "| | | | | | |",
    ]
    assert len(BREAKDOWN_HEADINGS) == len(BREAKDOWN_COLUMNS)
    breakdown = [
        "| contender | " + " | ".join(BREAKDOWN_COLUMNS) + " |",
        "|---|" + "---:|" * len(BREAKDOWN_COLUMNS),
        *(f"| {_name(r)} | " + " | ".join(breakdown_row(r)) + " |" for r in queue.results),
    ]
    partners = ", ".join(
        f"{c.index}→{c.semantic_partner}" for c in workload.bad if c.semantic_partner is not None
    )
    clashes = ", ".join(
        f"{c.index}→{c.textual_partner}"
        for c in workload.conflicting
        if c.textual_partner is not None
    )
    ended = f", ended {queue.ended_at}" if queue.ended_at else ""
    return "\n".join(
        [
            f"### {queue.heading}",
            "",
            f"Workload (`--size {queue.size} --seed {workload.seed} "
            f"--ci-seconds {workload.ci_seconds:g}`): {describe(workload)}.",
            f"Semantic pairs (MR → its earlier partner): {partners or 'none'}; "
            f"textual clashes: {clashes or 'none'}.",
            f"Whole run: {queue.wall_seconds:.0f} s{ended}; load average at its end "
            f"{' / '.join(f'{v:.1f}' for v in queue.load_average)} (1 / 5 / 15 min) on "
            f"{queue.cpu_count} CPUs, Python {queue.python}.",
            "",
            *rows,
            "",
            "Where the waits went (per merged MR; the wait and its parts are means over the "
            f"merged MRs, in CI durations; {NONE} where a contender has no such figure):",
            "",
            *breakdown,
            *(["", f"![The queue benchmark, {queue.heading}]({chart_name})"] if chart_name else []),
        ]
    )


BREAKDOWN_COLUMNS = (
    "events / merged MR",
    "dispatcher ms / event, median",
    "dispatcher ms / event, p95",
    "dispatcher ms / echo, median",
    "GitLab API calls / merged MR",
    "wait (CI)",
    "ready → queued",
    "queued, behind another batch",
    "queued, idle",
    "workflow steps",
    "CI",
    "pipeline → resumed",
    "other",
)


def _name(result: ContenderResult) -> str:
    return result.name if result.finished else f"{result.name} (did not finish)"


def queue_section(queues: Sequence[QueueBenchmark], chart_names: Sequence[str | None]) -> str:
    """Every run's tables, then what was run and how each figure is counted, once."""
    from bench.merge_queue import DEFAULT_CI_SECONDS, MEAN_GAP_CI, NONE, floors

    first = queues[0].workload
    floor = floors(first.fail_rate)
    scales = ", ".join(f"CI {q.workload.ci_seconds:g} s" for q in queues)
    runs: list[str] = []
    for queue, chart_name in zip(queues, chart_names, strict=True):
        runs += [queue_run_section(queue, chart_name), ""]
    return "\n".join(
        [
            "## The queue: Merge Assist against marge-bot",
            "",
            f"{len(queues)} run{'s' if len(queues) > 1 else ''} ({scales}), each made by "
            "`merge-assist bench queue` with the options its heading names (the quick run: "
            f"`--ci-seconds {DEFAULT_CI_SECONDS:g}`, the default), saved with `--json` and "
            "gathered here by `--queue-run`.",
            "",
            *runs,
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
            "`--ci-seconds S` makes one CI run take S seconds of wall time by lengthening the "
            "pipelines' simulated duration (S / 0.02 simulated seconds); the simulator's clock "
            "scale stays at 0.02, so its other delays (rebases, webhook back-off) are the same "
            "in every run, as they would be on one GitLab with slower or faster CI. Waits are "
            "reported in units of S.",
            "",
            "- **Merge Assist** runs on the local stack: the real webhook receiver, dispatcher, "
            "workflow functions and the real state machine in moto's interpreter; `serial`, and "
            "`batch` at sizes 2, 4, 8, the configured default and `auto` (up to the default "
            "`batch_size_max`), and `train` (`train-D`: up to D cars tested at once, each car a "
            "batch of the configured default size built on the tested commit of the car ahead; "
            "`train-4x1`: four cars of one MR each, as GitLab's merge trains build them; "
            "`train-auto`: cars of the `auto` size), all with the default three-way bisection, "
            "landing by `push` (`-ci-skip`: with `skip_target_pipeline`, so "
            "the landing push starts no target pipeline; skipped pipelines are not counted). Its "
            "workflow falls back to asking GitLab about a pipeline whose webhook is late by "
            "`pipeline_poll_seconds` = the larger of 30 s and 3 CI runs. Its functions are "
            "initialized before the first contender starts, as provisioned concurrency would "
            "have them: the runs measure the queue, not one burst of cold starts (the webhook "
            "benchmark measures a cold start).",
            "- **marge-bot 1.4.0** runs unmodified as a subprocess with its own maintainer user, "
            "HTTPS with its token, `--ci-timeout` of the larger of 60 s and 10 CI runs, "
            "`--git-timeout 60s`, its default rebase-then-merge behaviour, and `--batch` for the "
            "batch run. Its fixed sleeps (5 to 30 s between polls, tuned for real CI) are "
            "capped at 0.2 s so its polling keeps pace with the compressed CI; nothing else of "
            "it is changed.",
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
            "- **events / merged MR**: the SQS records the `dispatcher` function was given for "
            "the contender's project queue during its run (each invocation's `Records`, "
            "read from its event by a timing wrapper the benchmark puts around the handler in "
            "the local Lambda runtime), divided by the merged MRs. Every webhook GitLab sent "
            "that the receiver queued counts, the echoes of the bot's own labels and comments "
            f"included; a record handed back and redelivered counts again. {NONE} for marge-bot, "
            "which polls.",
            "- **dispatcher ms / event**: each invocation's wall time (the handler's call, as "
            "the local runtime runs it in-process against moto) divided by its record count "
            "and attributed to each of its records; median and p95 (nearest rank) over the "
            "records.",
            "- **dispatcher ms / echo**: the same, over the records of the invocations that "
            "were given only echoes (events that cannot change a decision, by the dispatcher's "
            "own rule, `can_change_decision`: unfinished pipelines, the bot's own notes and "
            "label changes); an invocation given echoes and other events is left out, since "
            "its time cannot be split.",
            "- **GitLab API calls / merged MR**: the REST requests (`/api/v4/...`, not git over "
            "HTTP) the simulator answered, counted by the user whose token authenticated them, "
            "while the contender's run lasted (from its first MR opened to its end; onboarding "
            "the project is not included), for the contender's bot user: Merge Assist's bot, "
            "or marge-bot's own user. Merge Assist's bot is one user for all its contenders, "
            "so a call it makes then for another project (the watcher's reconciling, every "
            "five minutes) counts too; requests GitLab refuses as unauthenticated do not.",
            "- **the wait's parts** (Merge Assist): each merged MR's wait is cut at the instants "
            "its records give, all on the one machine's clock: *ready → queued* until the "
            "first `queued` status in Merge Assist's event log for the MR; then, until the "
            "batch that landed it was created (its batch record's `created_at`), *queued, "
            "behind another batch* while another batch of the project held the branch (from "
            "its creation to its last step: one ahead of it, or an earlier batch of the MR's "
            "own that put it back in line) and *queued, idle* the rest; then, for each "
            "pipeline that batch waited for (its `tested` steps), *workflow steps* until the "
            "pipeline was created in the simulator, *CI* until it finished there, and "
            "*pipeline → resumed* until the batch's `tested` step recorded the verdict (the "
            "workflow's wait had ended and it had read the result); and *workflow steps* again "
            "from the last verdict to GitLab's merge. A bisected batch has several pipelines, "
            "so several CI parts. Each instant is clamped between the one before it and the "
            "merge (a pipeline that existed before its batch, as for a serial batch whose "
            "rebase was a no-op, counts only from the batch's start), so the parts are never "
            "negative and add up to the wait; an instant missing from the records joins the "
            "two parts around it into *other*. Means over the merged MRs, in CI durations.",
            "- **the wait's parts** (marge-bot): only the total, and *CI*: the part of the wait "
            "that its last CI run took, the latest-created pipeline that passed before the "
            "merge on a commit holding the MR's change (the batch pipeline for `--batch`).",
            "",
            "### The floors",
            "",
            f"At p = {first.fail_rate:.2f}, no scheme that learns each change's fate from "
            "pass/fail pipelines can use fewer than H(p) = -p log2(p) - (1-p) log2(1-p) = "
            f"{floor.entropy:.3f} pipelines per change on average; two-stage (Dorfman) group "
            f"testing at its best group size needs about 2√p = {floor.dorfman:.3f} (the exact "
            "optimum at p = 0.10 is 0.594, with groups of 4). The contenders' figures are per "
            "*merged* MR and include the target-branch pipelines, so they sit above these "
            "floors by construction; the floors show how much room is left.",
            "",
            "### Reading the waits",
            "",
            f"In the quick run CI is compressed to {DEFAULT_CI_SECONDS:g} s of wall time so the "
            "whole comparison runs in minutes. Fixed costs that do not shrink with it (Merge "
            "Assist's webhook → queue → Step Functions → Lambda path, run here by moto in one "
            "process, and git fetches and pushes; marge-bot's clone, rebase and polling) are "
            "therefore large in units of CI. In a run with longer CI (`--ci-seconds 12`) the "
            "same costs weigh ten times less; with real CI runs of many minutes they shrink "
            "towards zero and the waits approach the number of CI runs each MR waits behind. "
            "The parts of the wait show which costs these are: *CI* is the testing itself and "
            "*behind another batch* the queue's order (stretched by the overhead of the batches "
            "ahead); the other parts are overhead.",
            "",
            "Each MR's webhooks go through the SQS FIFO message group of the branch its work "
            "happens on (its source branch, or the batch branch for a batch's pipeline), so "
            "groups are handled in parallel, and the dispatcher only records the echoes of the "
            "bot's own labels, notes and unfinished pipelines (the *events / merged MR* and "
            "*dispatcher ms* columns). What is left of the overhead at compressed CI is the "
            "local stack's own: every function runs in one Python process on the machine's "
            "cores, each AWS call is answered by moto's Python backends in the caller's thread "
            "(a few milliseconds, about what a call takes in the cloud, but taken from the "
            "same interpreter as everything else), and a burst of sixteen MRs makes the "
            "functions' invocations contend for that one interpreter (the dispatcher's p95). "
            "Batches go one after another, and each pays that overhead in its select, build and "
            "land steps, so *behind another batch* grows with it. In the cloud, with CI runs of "
            "minutes and MRs minutes apart, none of these is a large part of a wait, as the run "
            "with longer CI shows.",
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
    figure.suptitle(f"{queue.heading}, p = {queue.workload.fail_rate:.2f}")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _finite(value: float) -> float:
    return 0.0 if math.isnan(value) or math.isinf(value) else value


def chart_names(count: int) -> list[str]:
    """``benchmarks.png`` for the first run (where the quick run's chart always was), then
    ``benchmarks-2.png`` ..."""
    return ["benchmarks.png", *(f"benchmarks-{n}.png" for n in range(2, count + 1))]


def write(
    docs: Path,
    *,
    webhook: WebhookBenchmark | None,
    queues: Sequence[QueueBenchmark] = (),
    cost: str | None = None,
) -> list[Path]:
    """``queues``: the queue runs, each with its own tables and chart, in this order;
    ``cost`` is ``bench_cost.cost_report``'s markdown section, as it is."""
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
    if queues:
        names = chart_names(len(queues))
        sections += ["", queue_section(queues, names)]
        for queue, name in zip(queues, names, strict=True):
            chart(queue, docs / name)
            written.append(docs / name)
    if cost is not None:
        sections += ["", cost]
    if webhook is not None:
        sections += ["", webhook_section(webhook)]
    markdown.write_text("\n".join(sections) + "\n")
    return written

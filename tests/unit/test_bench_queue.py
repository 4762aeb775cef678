"""The queue benchmark's workload, metrics and floors, on hand-made data."""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, cast

import pytest

from bench.merge_queue import (
    NONE,
    AwaitedPipeline,
    BatchRecord,
    Change,
    ContenderResult,
    Dispatch,
    MergeRequestRecord,
    PipelineRecord,
    QueueBenchmark,
    RunRecord,
    WaitParts,
    Workload,
    compute,
    decompose,
    dispatcher_log,
    extra_pipelines,
    floors,
    gather,
    generate_workload,
    load_queue_run,
    mean_parts,
    overlap,
    per_record_ms,
    percentile,
    polled_parts,
    select_contenders,
    untested_commits,
    wrongly_rejected,
)
from bench.report import write
from bench.webhook import WebhookBenchmark
from cli.main import build_parser
from local.runtime import LambdaRuntime
from merge_assist.platform.resources import ResourceNames, function_spec

if TYPE_CHECKING:
    from local.stack import LocalStack


def test_the_same_seed_gives_the_same_workload_and_another_seed_another() -> None:
    assert generate_workload(48, 7) == generate_workload(48, 7)
    assert generate_workload(48, 7) != generate_workload(48, 8)


@pytest.mark.parametrize(("size", "bad"), [(16, 2), (48, 5)])
def test_the_failure_rate_and_conflict_rate_are_respected(size: int, bad: int) -> None:
    workload = generate_workload(size, 3)
    assert len(workload.changes) == size
    assert len(workload.bad) == bad
    assert len(workload.conflicting) == bad
    # A change is either bad or clashing, never both.
    assert not {c.index for c in workload.bad} & {c.index for c in workload.conflicting}
    assert len(workload.conflict_pairs()) == bad


def test_partners_arrive_earlier_and_arrivals_are_ordered() -> None:
    for seed in range(20):
        workload = generate_workload(48, seed)
        arrivals = [c.arrives_after for c in workload.changes]
        assert arrivals == sorted(arrivals)
        assert arrivals[0] == 0.0
        for change in workload.changes:
            for partner in (change.semantic_partner, change.textual_partner):
                assert partner is None or partner < change.index


def test_gaps_average_about_half_a_ci_run() -> None:
    gaps = []
    for seed in range(30):
        arrivals = [c.arrives_after for c in generate_workload(48, seed).changes]
        gaps += [b - a for a, b in itertools.pairwise(arrivals)]
    assert 0.4 < sum(gaps) / len(gaps) < 0.6


def test_clashing_changes_edit_the_same_line_of_one_shared_file() -> None:
    workload = Workload(seed=0, changes=(Change(0, 0.0), Change(1, 0.5, textual_partner=0)))
    shared = "shared/s001.txt"
    assert workload.initial_files()[shared] == "first\nsecond\nthird\n"
    first, second = (workload.files(c) for c in workload.changes)
    assert set(first) == {"changes/c000.txt", shared}
    assert set(second) == {"changes/c001.txt", shared}
    assert first[shared] != second[shared]


def test_floors() -> None:
    at_ten_percent = floors(0.10)
    assert at_ten_percent.entropy == pytest.approx(0.469, abs=5e-4)
    assert at_ten_percent.dorfman == pytest.approx(0.632, abs=5e-4)
    assert floors(0.5).entropy == pytest.approx(1.0)
    with pytest.raises(ValueError, match="between 0 and 1"):
        floors(0.0)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 21)]
    assert percentile(values, 95) == 19.0
    assert percentile(values, 50) == 10.0
    assert percentile(values, 100) == 20.0
    assert percentile([3.0], 95) == 3.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 95)


def test_only_each_mrs_first_own_pipeline_is_left_out() -> None:
    pipelines = [
        PipelineRecord("a", "refs/merge-requests/1/head", "success"),
        PipelineRecord("b", "refs/merge-requests/2/head", "success"),
        PipelineRecord("a", "change/000", "success"),  # the same head, run again
        PipelineRecord("c", "merge-assist/batch/main", "failed"),
        PipelineRecord("d", "main", "success"),
        PipelineRecord("c", "main", "skipped"),  # landed with ci.skip: no CI ran
    ]
    extra = extra_pipelines(pipelines, ["a", "b"])
    assert [p.ref for p in extra] == ["change/000", "merge-assist/batch/main", "main"]


WORKLOAD = Workload(
    seed=0,
    changes=(
        Change(0, 0.0),
        Change(1, 0.1),
        Change(2, 0.2, semantic_partner=0),
        Change(3, 0.3, textual_partner=1),
        Change(4, 0.4, semantic_partner=1),
    ),
)


def test_a_rejection_is_wrong_unless_a_partner_landed() -> None:
    outcomes = {0: "merged", 1: "rejected", 2: "rejected", 3: "rejected", 4: "unfinished"}
    # 2's partner (0) landed: right. 1 had no partner: wrong. 3's partner (1) did not
    # land: wrong. 4 is not rejected.
    assert wrongly_rejected(WORKLOAD, outcomes) == [1, 3]
    assert wrongly_rejected(WORKLOAD, {**outcomes, 1: "merged"}) == []


def test_untested_commits_are_those_whose_tree_never_passed() -> None:
    commits = [("c3", "t3"), ("c2", "t2"), ("c1", "t1")]
    assert untested_commits(commits, frozenset({"t1", "t3"})) == ["c2"]
    assert untested_commits([], frozenset()) == []


def test_compute_counts_and_waits_in_ci_durations() -> None:
    ci = WORKLOAD.ci_seconds
    record = RunRecord(
        merge_requests=(
            MergeRequestRecord(
                0, "merged", ready_at=100.0, merged_at=100.0 + 2 * ci, initial_sha="a"
            ),
            MergeRequestRecord(
                1, "merged", ready_at=100.0, merged_at=100.0 + 4 * ci, initial_sha="b"
            ),
            MergeRequestRecord(2, "rejected", ready_at=101.0, merged_at=None, initial_sha="c"),
            MergeRequestRecord(3, "rejected", ready_at=101.0, merged_at=None, initial_sha="d"),
            MergeRequestRecord(4, "unfinished", ready_at=None, merged_at=None, initial_sha="e"),
        ),
        pipelines=(
            *(PipelineRecord(sha, "mr", "success") for sha in "abcde"),
            PipelineRecord("x", "merge-assist/batch/main", "failed"),
            PipelineRecord("y", "merge-assist/batch/main", "success"),
            PipelineRecord("y", "main", "success"),
        ),
        target_commits=(("y", "ty"), ("z", "tz")),
        passed_trees=frozenset({"ty"}),
        untested_heads=(),
        finished=False,
        wall_seconds=12.0,
    )
    result = compute("batch", WORKLOAD, record)
    assert (result.merged, result.rejected, result.unfinished) == (2, 2, 1)
    assert (result.pipelines, result.target_pipelines) == (3, 1)
    assert result.pipelines_per_merged == 1.5
    assert result.waits_ci == pytest.approx((2.0, 4.0))
    assert result.mean_wait == pytest.approx(3.0)
    assert result.p95_wait == pytest.approx(4.0)
    assert result.wrongly_rejected == ()  # both partners (0 and 1) landed
    assert result.untested_commits == ("z",)
    assert not result.finished


def test_nothing_merged_has_no_ratio_and_no_waits() -> None:
    record = RunRecord((), (), (), frozenset(), (), True, 1.0)
    result = compute("none", WORKLOAD, record)
    assert math.isinf(result.pipelines_per_merged)
    assert math.isnan(result.mean_wait)
    assert math.isnan(result.p95_wait)


def test_the_cli_takes_the_queue_benchmarks_options() -> None:
    args = build_parser().parse_args(["bench", "queue", "--size", "large", "--seed", "3"])
    assert (args.which, args.size, args.seed, args.report) == ("queue", "large", 3, None)
    assert build_parser().parse_args(["bench", "all", "--no-report"]).report is False
    assert build_parser().parse_args(["bench", "webhook"]).iterations == 200


def test_the_report_has_the_tables_the_floors_and_a_chart(tmp_path: Path) -> None:
    workload = generate_workload(16, 1)
    result = ContenderResult(
        name="merge-assist-batch-5",
        merged=14,
        rejected=2,
        unfinished=0,
        pipelines=10,
        target_pipelines=4,
        waits_ci=(1.0, 2.0, 3.0),
        wrongly_rejected=(),
        untested_commits=(),
        untested_heads=(),
        finished=True,
        wall_seconds=30.0,
    )
    stuck = ContenderResult("marge-bot", 0, 0, 16, 3, 0, (), (), (), (), False, 99.0)
    queue = QueueBenchmark("small", workload, (result, stuck), 2, "3.11.9", 120.0)
    webhook = WebhookBenchmark(samples={"push": [1.0, 2.0, 3.0]}, imports=[100.0, 120.0])
    written = write(tmp_path, webhook=webhook, queues=[queue])
    markdown = (tmp_path / "benchmarks.md").read_text()
    assert written == [tmp_path / "benchmarks.md", tmp_path / "benchmarks.png"]
    assert (tmp_path / "benchmarks.png").read_bytes().startswith(b"\x89PNG")
    assert "| merge-assist-batch-5 | 14 | 2 | 0 | 10 | 4 | 0.71 | 2.00 | 3.00 |" in markdown
    assert "marge-bot (did not finish)" in markdown
    assert "floor H(p), p = 0.10 | | | | | | 0.47" in markdown
    assert "| push | 3 |" in markdown


# -- the figures that explain a wait ----------------------------------------------------


def _merged(ready: float, merged: float, queued: float | None = None) -> MergeRequestRecord:
    return MergeRequestRecord(
        0, "merged", ready_at=ready, merged_at=merged, initial_sha="a", queued_at=queued
    )


def test_the_union_of_intervals_is_counted_once_and_only_inside_the_window() -> None:
    assert overlap(0.0, 10.0, []) == 0.0
    assert overlap(0.0, 10.0, [(2.0, 4.0), (3.0, 5.0), (8.0, 20.0)]) == pytest.approx(5.0)
    assert overlap(0.0, 10.0, [(-5.0, 1.0), (10.0, 12.0)]) == pytest.approx(1.0)
    assert overlap(5.0, 5.0, [(0.0, 10.0)]) == 0.0


def test_a_bisected_batchs_wait_splits_into_parts_that_add_up() -> None:
    # Ready at 100, queued at 101; another batch holds the branch 102-105; the landing
    # batch starts at 106, tests twice (a red batch, then the prefix that lands), merged at 125.
    landing = BatchRecord(
        id="b2",
        created_at=106.0,
        ended_at=126.0,
        landed=(0,),
        tests=(
            AwaitedPipeline(created_at=107.0, finished_at=111.0, verdict_at=112.5),
            AwaitedPipeline(created_at=113.0, finished_at=117.0, verdict_at=120.0),
        ),
    )
    ahead = BatchRecord("b1", created_at=102.0, ended_at=105.0, landed=(), tests=())
    parts = decompose(_merged(100.0, 125.0, queued=101.0), landing, [ahead, landing])
    assert parts.total == pytest.approx(25.0)
    assert parts.ready_to_queued == pytest.approx(1.0)
    assert parts.behind_batch == pytest.approx(3.0)
    assert parts.idle == pytest.approx(2.0)  # 101-102 and 105-106
    assert parts.ci == pytest.approx(8.0)
    assert parts.resumed == pytest.approx(1.5 + 3.0)
    # Batch start → first pipeline, verdict → next pipeline, last verdict → merged.
    assert parts.workflow == pytest.approx(1.0 + 0.5 + 5.0)
    assert parts.other == 0.0
    assert sum(p or 0.0 for p in parts.parts()) == pytest.approx(parts.total)


def test_a_pipeline_older_than_its_batch_counts_from_the_batchs_start() -> None:
    # A serial batch whose rebase changed nothing waits for the MR's own finished pipeline.
    landing = BatchRecord(
        "b1", 103.0, 110.0, (0,), (AwaitedPipeline(90.0, 99.0, verdict_at=104.0),)
    )
    parts = decompose(_merged(100.0, 106.0, queued=101.0), landing, [landing])
    assert parts.ci == 0.0
    assert parts.workflow == pytest.approx(0.0 + 2.0)
    assert parts.resumed == pytest.approx(1.0)
    assert parts.idle == pytest.approx(2.0)
    assert sum(p or 0.0 for p in parts.parts()) == pytest.approx(parts.total)
    assert all(p is not None and p >= 0 for p in parts.parts())


def test_what_the_records_do_not_tell_goes_to_other() -> None:
    landing = BatchRecord(
        "b1", 103.0, 110.0, (0,), (AwaitedPipeline(None, None, verdict_at=107.0),)
    )
    # No queued entry: ready → batch start is "other"; no pipeline: batch start → verdict too.
    parts = decompose(_merged(100.0, 108.0), landing, [landing])
    assert parts.other == pytest.approx(3.0 + 4.0)
    assert parts.ready_to_queued == parts.idle == parts.ci == 0.0
    assert parts.workflow == pytest.approx(1.0)
    assert sum(p or 0.0 for p in parts.parts()) == pytest.approx(parts.total)
    unknown_batch = decompose(_merged(100.0, 108.0, queued=102.0), None, [])
    assert (unknown_batch.ready_to_queued, unknown_batch.other) == (2.0, 6.0)


def test_a_polling_bots_ci_is_the_part_of_its_wait_its_last_pipeline_took() -> None:
    mr = replace(_merged(100.0, 110.0), tested=(98.0, 105.0))
    parts = polled_parts(mr)
    assert (parts.total, parts.ci) == (10.0, 5.0)
    assert parts.ready_to_queued is None
    assert parts.other is None
    assert polled_parts(_merged(100.0, 110.0)).ci is None


def test_mean_parts_average_each_part_over_the_mrs_that_have_it() -> None:
    one = WaitParts(total=4.0, ci=2.0, workflow=2.0)
    two = WaitParts(total=8.0, ci=None, workflow=4.0)
    mean = mean_parts([one, two])
    assert mean is not None
    assert (mean.total, mean.ci, mean.workflow, mean.idle) == (6.0, 2.0, 3.0, None)
    assert mean_parts([]) is None


def test_dispatcher_time_is_shared_by_an_invocations_records() -> None:
    dispatches = [Dispatch(records=2, seconds=0.010), Dispatch(1, 0.030), Dispatch(0, 1.0)]
    times = per_record_ms(dispatches)
    assert times == pytest.approx([5.0, 5.0, 30.0])
    assert percentile(times, 50) == pytest.approx(5.0)
    assert percentile(times, 95) == pytest.approx(30.0)


def test_an_echos_time_is_taken_only_from_invocations_given_nothing_else() -> None:
    dispatches = [Dispatch(2, 0.010, echoes=2), Dispatch(2, 0.030, echoes=1), Dispatch(1, 0.004)]
    assert per_record_ms(dispatches, echoes_only=True) == pytest.approx([5.0, 5.0])
    result = compute("merge-assist-batch-5", WORKLOAD, _run(tuple(dispatches), queued_at=100.0))
    assert result.echo_median_ms == pytest.approx(5.0)
    assert result.dispatch_median_ms == pytest.approx(5.0)
    assert compute("marge-bot", WORKLOAD, _run(None)).echo_median_ms is None


def _run(dispatches: tuple[Dispatch, ...] | None, **mr: Any) -> RunRecord:
    ci = WORKLOAD.ci_seconds
    record = MergeRequestRecord(
        0, "merged", ready_at=100.0, merged_at=100.0 + 4 * ci, initial_sha="a", **mr
    )
    landing = BatchRecord(
        "b1",
        created_at=100.0 + ci,
        ended_at=100.0 + 4 * ci,
        landed=(0,),
        tests=(AwaitedPipeline(100.0 + ci, 100.0 + 2 * ci, 100.0 + 3 * ci),),
    )
    return RunRecord(
        (record, MergeRequestRecord(1, "rejected", 100.0, None, "b")),
        (),
        (),
        frozenset(),
        (),
        True,
        1.0,
        batches=(landing,) if dispatches is not None else (),
        dispatches=dispatches,
        api_calls=30,
    )


def test_compute_gives_events_dispatcher_time_calls_and_parts_per_merged_mr() -> None:
    dispatches = (Dispatch(3, 0.03), Dispatch(1, 0.002))
    result = compute("merge-assist-batch-5", WORKLOAD, _run(dispatches, queued_at=100.0))
    assert result.events == 4
    assert result.events_per_merged == 4.0
    assert result.dispatch_median_ms == pytest.approx(10.0)
    assert result.dispatch_p95_ms == pytest.approx(10.0)
    assert result.api_calls_per_merged == 30.0
    parts = result.mean_parts
    assert parts is not None
    # In CI durations: queued at once, idle 1, CI 1, resumed 1, landing 1.
    assert parts.total == pytest.approx(4.0)
    assert result.mean_wait == pytest.approx(4.0)
    assert [parts.ready_to_queued, parts.idle, parts.ci, parts.resumed, parts.workflow] == (
        pytest.approx([0.0, 1.0, 1.0, 1.0, 1.0])
    )
    assert [parts.behind_batch, parts.other] == [0.0, 0.0]


def test_a_bot_that_polls_has_no_events_and_only_total_and_ci() -> None:
    ci = WORKLOAD.ci_seconds
    result = compute("marge-bot", WORKLOAD, _run(None, tested=(100.0, 100.0 + ci)))
    assert result.events is None
    assert result.events_per_merged is None
    assert result.dispatch_median_ms is None
    assert result.api_calls_per_merged == 30.0
    parts = result.mean_parts
    assert parts is not None
    assert [parts.total, parts.ci] == pytest.approx([4.0, 1.0])
    assert parts.idle is None
    table = QueueBenchmark("small", WORKLOAD, (result,), 2, "3.11", 1.0).breakdown()
    row = table.splitlines()[1]
    assert row.startswith("marge-bot")
    assert row.split()[1:3] == [NONE, NONE]


def test_ci_seconds_lengthens_the_pipelines_not_the_clock() -> None:
    quick, slow = generate_workload(16, 1), generate_workload(16, 1, ci_seconds=12)
    assert quick.ci_seconds == pytest.approx(1.2)
    assert slow.ci_seconds == pytest.approx(12.0)
    assert slow.time_scale == quick.time_scale
    assert slow.duration_s == pytest.approx(600.0)
    assert slow.changes == quick.changes
    with pytest.raises(ValueError, match="positive"):
        generate_workload(16, 1, ci_seconds=0)


def test_contenders_are_chosen_by_name_in_the_benchmarks_order() -> None:
    chosen = select_contenders(["marge-bot", "merge-assist-batch-5"], 5)
    assert [c.name for c in chosen] == ["merge-assist-batch-5", "marge-bot"]
    assert [c.name for c in select_contenders(None, 5)] == [
        "merge-assist-serial",
        "merge-assist-batch-2",
        "merge-assist-batch-4",
        "merge-assist-batch-5",
        "merge-assist-batch-8",
        "merge-assist-batch-5-ci-skip",
        "merge-assist-batch-auto",
        "merge-assist-batch-auto-ci-skip",
        "merge-assist-train-2",
        "merge-assist-train-4",
        "merge-assist-train-4x1",
        "merge-assist-train-4x1-ci-skip",
        "merge-assist-train-2-ci-skip",
        "merge-assist-train-auto-ci-skip",
        "marge-bot",
        "marge-bot-batch",
    ]
    with pytest.raises(ValueError, match="unknown contender merge-assist-batch-3"):
        select_contenders(["merge-assist-batch-3"], 5)


def test_the_cli_takes_the_scale_the_contenders_and_the_runs_to_report() -> None:
    args = build_parser().parse_args(
        [
            "bench",
            "queue",
            "--ci-seconds",
            "12",
            "--contenders",
            "merge-assist-batch-5,marge-bot",
            "--json",
            "out.json",
        ]
    )
    assert (args.ci_seconds, args.contenders, args.json) == (
        12.0,
        "merge-assist-batch-5,marge-bot",
        "out.json",
    )
    assert build_parser().parse_args(["bench", "queue"]).ci_seconds == pytest.approx(1.2)
    report = build_parser().parse_args(
        ["bench", "report", "--queue-run", "a.json", "--queue-run", "b.json"]
    )
    assert (report.which, report.queue_run) == ("report", ["a.json", "b.json"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["bench", "queue", "--ci-seconds", "0"])


def _queue_run(ci_seconds: float) -> QueueBenchmark:
    workload = generate_workload(16, 1, ci_seconds=ci_seconds)
    ours = ContenderResult(
        "merge-assist-batch-5",
        14,
        2,
        0,
        10,
        4,
        (1.0, 3.0),
        (),
        (),
        (),
        True,
        30.0,
        events=70,
        dispatch_ms=(10.0, 10.0, 40.0),
        api_calls=280,
        wait_parts=(
            WaitParts(1.0, 0.5, 0.1, 0.0, 0.1, 0.2, 0.1, 0.0),
            WaitParts(3.0, 1.0, 0.1, 1.0, 0.4, 0.3, 0.2, 0.0),
        ),
    )
    marge = ContenderResult(
        "marge-bot", 15, 1, 0, 20, 15, (2.0,), (), (), (), True, 40.0,
        api_calls=900, wait_parts=(WaitParts(2.0, 1.0),),
    )  # fmt: skip
    return QueueBenchmark("small", workload, (ours, marge), 2, "3.11.9", 120.0, (1.0, 0.5, 0.2))


def test_a_run_written_as_json_reads_back_the_same(tmp_path: Path) -> None:
    run = _queue_run(12.0)
    path = tmp_path / "run.json"
    path.write_text(run.to_json())
    assert load_queue_run(path) == run
    path.write_text('{"format": 0}')
    with pytest.raises(ValueError, match="format"):
        load_queue_run(path)


def test_runs_of_one_workload_share_a_table_in_the_benchmarks_order() -> None:
    first = replace(_queue_run(12.0), ended_at="2026-12-01T10:00:00+00:00")
    train = replace(first.results[0], name="merge-assist-train-4x1")
    marge_again = replace(first.results[1], merged=16)
    later = replace(
        first,
        results=(marge_again, train),
        wall_seconds=80.0,
        ended_at="2026-12-01T12:00:00+00:00",
        load_average=(0.3, 0.3, 0.3),
    )
    other = _queue_run(1.2)
    gathered = gather([later, other, first])
    assert [q.workload.ci_seconds for q in gathered] == [12.0, 1.2]
    both = gathered[0]
    assert [r.name for r in both.results] == [
        "merge-assist-batch-5",
        "merge-assist-train-4x1",
        "marge-bot",
    ]
    assert both.results[2].merged == 16  # the later run of marge-bot
    assert both.wall_seconds == 200.0
    assert both.load_average == (0.3, 0.3, 0.3)
    assert gathered[1] == other


def test_the_report_shows_each_run_under_its_own_heading_with_its_breakdown(
    tmp_path: Path,
) -> None:
    written = write(tmp_path, webhook=None, queues=[_queue_run(1.2), _queue_run(12.0)])
    markdown = (tmp_path / "benchmarks.md").read_text()
    assert written == [
        tmp_path / "benchmarks.md",
        tmp_path / "benchmarks.png",
        tmp_path / "benchmarks-2.png",
    ]
    assert "### CI 1.2 s, 16 MRs, seed 1" in markdown
    assert "### CI 12 s, 16 MRs, seed 1" in markdown
    assert markdown.index("### CI 1.2 s") < markdown.index("### CI 12 s")
    # events/MR 70/14, dispatcher p50 and p95, no echo timed, calls/MR 280/14, then the wait
    # and its parts.
    assert (
        f"| merge-assist-batch-5 | 5.00 | 10.00 | 40.00 | {NONE} | 20.00 | 2.00 | 0.10 | 0.50 "
        "| 0.25 | 0.25 | 0.75 | 0.15 | 0.00 |" in markdown
    )
    assert (
        f"| marge-bot | {NONE} | {NONE} | {NONE} | {NONE} | 60.00 | 2.00 | {NONE} | {NONE} "
        in markdown
    )
    # The shared explanations once, whatever the number of runs.
    assert markdown.count("### How each metric is counted") == 1
    assert "**events / merged MR**" in markdown
    assert "**the wait's parts** (Merge Assist)" in markdown


def test_the_dispatcher_log_counts_the_records_of_its_projects_queue_only() -> None:
    names = ResourceNames("bench")
    runtime = LambdaRuntime("123456789012", "us-east-1")
    name = names.function("dispatcher")
    given: list[int] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        given.append(len(event["Records"]))
        return {"batchItemFailures": []}

    runtime.register(name, function_spec("dispatcher"), handler=handler)
    stack = cast("LocalStack", SimpleNamespace(names=names, runtime=runtime))

    bot = 99

    def note_by(actor_id: int) -> str:
        event = {"kind": "note", "idempotency_key": "k", "project_id": 7, "actor_id": actor_id}
        return json.dumps(event)

    def batch(project_id: int, bodies: list[str]) -> dict[str, Any]:
        arn = f"arn:aws:sqs:us-east-1:123456789012:{names.project_queue(project_id)}"
        return {"Records": [{"eventSourceARN": arn, "body": body} for body in bodies]}

    with dispatcher_log(stack, 7, bot) as dispatches:
        # The bot's own note is an echo; a person's note and a body no event could be
        # read from are not.
        runtime.invoke(name, batch(7, [note_by(bot), note_by(5), "{}"]))
        runtime.invoke(name, batch(17, [note_by(bot)] * 5))  # another project's queue
        runtime.invoke(name, batch(7, [note_by(bot)]))
    runtime.invoke(name, batch(7, ["{}", "{}"]))  # after the block, with the real handler back

    assert [(d.records, d.echoes) for d in dispatches] == [(3, 1), (1, 1)]
    assert per_record_ms(dispatches, echoes_only=True) == [dispatches[1].seconds * 1000]
    assert all(d.seconds >= 0 for d in dispatches)
    assert given == [3, 5, 1, 2]
    assert runtime.handler(name) is handler

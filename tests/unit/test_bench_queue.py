"""The queue benchmark's workload, metrics and floors, on hand-made data."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pytest

from bench.merge_queue import (
    Change,
    ContenderResult,
    MergeRequestRecord,
    PipelineRecord,
    QueueBenchmark,
    RunRecord,
    Workload,
    compute,
    extra_pipelines,
    floors,
    generate_workload,
    percentile,
    untested_commits,
    wrongly_rejected,
)
from bench.report import write
from bench.webhook import WebhookBenchmark
from cli.main import build_parser


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
    written = write(tmp_path, webhook=webhook, queue=queue)
    markdown = (tmp_path / "benchmarks.md").read_text()
    assert written == [tmp_path / "benchmarks.md", tmp_path / "benchmarks.png"]
    assert (tmp_path / "benchmarks.png").read_bytes().startswith(b"\x89PNG")
    assert "| merge-assist-batch-5 | 14 | 2 | 0 | 10 | 4 | 0.71 | 2.00 | 3.00 |" in markdown
    assert "marge-bot (did not finish)" in markdown
    assert "floor H(p), p = 0.10 | | | | | | 0.47" in markdown
    assert "| push | 3 |" in markdown

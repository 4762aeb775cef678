"""The git benchmark's figures: medians of the warm batches, the cold one apart."""

from __future__ import annotations

import pytest

from bench.git_work import STEPS, BatchTimes, GitWorkBenchmark, Spent


def _batch(number: int, seconds: float, git: float) -> BatchTimes:
    return BatchTimes(
        f"b{number}",
        {step: Spent(seconds=seconds, git_seconds=git) for step in STEPS},
        landed=5,
    )


def test_warm_medians_leave_the_cold_batch_out() -> None:
    result = GitWorkBenchmark(
        size=5,
        files=10,
        history=0,
        batches=(
            _batch(0, 9.0, 3.0),
            _batch(1, 0.1, 0.05),
            _batch(2, 0.3, 0.1),
            _batch(3, 0.2, 0.2),
        ),
    )
    assert result.median("build") == 0.2
    assert result.median_total == pytest.approx(0.6)
    table = result.table()
    build = next(line.split() for line in table.splitlines() if line.startswith("build"))
    assert build[:5] == ["build", "9.000", "0.200", "0.100", "0.300"]
    assert "git work of a warm batch: 0.300 s (within 0.5 s)" in table
    assert "select + build + land: 0.600 s (OVER 0.5 s)" in table

"""The queue benchmark's own code path on a tiny workload: Merge Assist in batch mode on the
local stack, then marge-bot ``--batch`` against the same simulator; four MRs, the last
failing CI together with the first."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.merge_queue import (
    Change,
    ContenderResult,
    Workload,
    render_table,
    run_marge,
    run_merge_assist,
)
from local.stack import LocalStack

pytestmark = pytest.mark.e2e

WORKLOAD = Workload(
    seed=0,
    changes=(
        Change(0, 0.0),
        Change(1, 0.1),
        Change(2, 0.2),
        Change(3, 0.3, semantic_partner=0),
    ),
    time_scale=0.01,
)
STACK_SETTINGS = {"web_dir": None, "gitlab_time_scale": WORKLOAD.time_scale}


def _assert_sane(result: ContenderResult) -> None:
    assert result.finished, result
    assert (result.merged, result.rejected, result.unfinished) == (3, 1, 0), result
    assert result.wrongly_rejected == ()
    assert result.pipelines > 0
    assert len(result.waits_ci) == 3
    assert all(wait > 0 for wait in result.waits_ci)


def test_merge_assist_batch_and_marge_bot_batch_on_one_tiny_workload(
    stack: LocalStack, tmp_path: Path
) -> None:
    ours = run_merge_assist(stack, WORKLOAD, "batch", 4)
    _assert_sane(ours)
    assert ours.untested_heads == ()

    marge = run_marge(stack, WORKLOAD, batch=True, log_dir=tmp_path)
    _assert_sane(marge)

    table = render_table(WORKLOAD, [ours, marge])
    assert "merge-assist-batch-4" in table
    assert "marge-bot --batch" in table
    assert "floor H(p)" in table

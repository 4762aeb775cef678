"""The queue benchmark's own code path on a tiny workload: Merge Assist in batch mode on the
local stack, then marge-bot ``--batch`` against the same simulator; four MRs, the last
failing CI together with the first."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.merge_queue import (
    Change,
    Contender,
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
    # One of the failing pair lands and the other is rejected. Which one depends on which
    # the bot learns is ready first: webhooks are delivered in parallel (as GitLab's are),
    # so MR 3's may overtake MR 0's, and then MR 0 is the one that fails on the target.
    assert result.wrongly_rejected in ((), (0,)), result
    assert result.pipelines > 0
    assert len(result.waits_ci) == 3
    assert all(wait > 0 for wait in result.waits_ci)


def test_merge_assist_batch_and_marge_bot_batch_on_one_tiny_workload(
    stack: LocalStack, tmp_path: Path
) -> None:
    ours = run_merge_assist(
        stack, WORKLOAD, Contender("merge-assist-batch-4", "merge-assist", "batch", 4)
    )
    _assert_sane(ours)
    assert ours.untested_heads == ()
    # The figures that explain the waits: every event of the project went to the
    # dispatcher, the bot called GitLab, and each wait's parts add up to it.
    assert ours.events is not None
    assert ours.events >= 4
    assert len(ours.dispatch_ms) == ours.events
    assert ours.api_calls is not None
    assert ours.api_calls > 0
    assert len(ours.wait_parts) == 3
    for parts, wait in zip(ours.wait_parts, ours.waits_ci, strict=True):
        assert parts.total == pytest.approx(wait)
        assert sum(part or 0.0 for part in parts.parts()) == pytest.approx(wait)
        assert parts.ci is not None
        assert parts.ci > 0
        # Everything was in the records: nothing left unattributed.
        assert parts.other == pytest.approx(0.0)

    marge = run_marge(stack, WORKLOAD, batch=True, log_dir=tmp_path)
    _assert_sane(marge)
    assert marge.events is None
    assert marge.api_calls is not None
    assert marge.api_calls > 0
    assert all(parts.ci is not None for parts in marge.wait_parts)

    table = render_table(WORKLOAD, [ours, marge])
    assert "merge-assist-batch-4" in table
    assert "marge-bot --batch" in table
    assert "floor H(p)" in table

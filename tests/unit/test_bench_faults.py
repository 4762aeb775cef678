"""The faults benchmark's arithmetic: metric totals from EMF lines, and what counts as a pass."""

from __future__ import annotations

import json

from bench.faults import FaultBench, metric_totals


def test_metric_totals_sum_emf_values_and_skip_what_is_not_a_document() -> None:
    lines = [
        json.dumps({"_aws": {}, "GitLabApiCalls": 3, "GitLabApiRetries": [1, 2]}),
        "not json",
        json.dumps(["a list"]),
        json.dumps({"GitLabApiCalls": 4}),
    ]

    assert metric_totals(lines, ("GitLabApiCalls", "GitLabApiRetries", "Other")) == {
        "GitLabApiCalls": 7,
        "GitLabApiRetries": 3,
        "Other": 0,
    }


def _bench(**changes: object) -> FaultBench:
    fields: dict[str, object] = {
        "mrs": 3,
        "seed": 1,
        "merged": 3,
        "lost": {},
        "untested": [],
        "drain_seconds": 12.0,
        "gitlab_calls": 10,
        "gitlab_retries": 2,
        "gitlab_auth_failures": 0,
    }
    fields.update(changes)
    return FaultBench(**fields)  # type: ignore[arg-type]


def test_a_run_passes_only_with_nothing_lost_nothing_untested_and_a_drain() -> None:
    assert _bench().passed
    assert not _bench(lost={2: "lost: the store no longer knows it"}).passed
    assert not _bench(untested=["abc"]).passed
    assert not _bench(drain_seconds=None).passed
    assert "!2: lost" in _bench(lost={2: "lost: the store no longer knows it"}).table()

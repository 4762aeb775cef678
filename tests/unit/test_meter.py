"""The Powertools meter writes the catalogue's metrics as CloudWatch EMF on stdout."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from merge_assist.adapters.meter import PowertoolsMeter, lambda_metrics
from merge_assist.platform.metrics import Metric


@pytest.fixture
def meter() -> Iterator[tuple[PowertoolsMeter, Any]]:
    metrics = lambda_metrics()
    yield PowertoolsMeter(metrics), metrics
    metrics.clear_metrics()


def _documents(out: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.splitlines() if line.startswith('{"_aws"')]


def test_dimensioned_metrics_go_out_one_by_one_and_the_rest_at_the_flush(
    meter: tuple[PowertoolsMeter, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    recorder, metrics = meter
    recorder.record(Metric.EVENTS_RECEIVED, EventType="push")
    recorder.record(Metric.EVENTS_RECEIVED, EventType="note")
    recorder.record(Metric.TIME_TO_MERGE, 90)
    recorder.record(Metric.TIME_TO_MERGE, 30)
    metrics.flush_metrics()

    first, second, flushed = _documents(capsys.readouterr().out)
    for document in (first, second, flushed):
        assert document["_aws"]["CloudWatchMetrics"][0]["Namespace"] == "MergeAssist"
        assert document["service"] == "merge-assist"
    assert (first["EventType"], second["EventType"]) == ("push", "note")
    assert first["_aws"]["CloudWatchMetrics"][0]["Dimensions"] == [["service", "EventType"]]
    assert flushed["TimeToMerge"] == [90.0, 30.0]
    assert flushed["_aws"]["CloudWatchMetrics"][0]["Metrics"] == [
        {"Name": "TimeToMerge", "Unit": "Seconds"}
    ]


def test_dimensions_other_than_the_catalogues_are_refused(
    meter: tuple[PowertoolsMeter, Any],
) -> None:
    recorder, _ = meter
    with pytest.raises(ValueError, match="EventType"):
        recorder.record(Metric.EVENTS_RECEIVED)
    with pytest.raises(ValueError, match="ProjectId"):
        recorder.record(Metric.MERGE_REQUESTS_QUEUED, ProjectId="7")


def test_metrics_go_to_the_metrics_file_when_one_is_named(
    meter: tuple[PowertoolsMeter, Any],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = tmp_path / "metrics.jsonl"
    monkeypatch.setenv("MERGE_ASSIST_METRICS_FILE", str(target))
    recorder, metrics = meter

    recorder.record(Metric.EVENTS_RECEIVED, EventType="push")
    recorder.record(Metric.MERGE_REQUESTS_QUEUED)
    metrics.flush_metrics()

    assert _documents(capsys.readouterr().out) == []
    written = [json.loads(line) for line in target.read_text().splitlines()]
    assert [("EventsReceived" in d, "MergeRequestsQueued" in d) for d in written] == [
        (True, False),
        (False, True),
    ]

"""Every metric in the catalogue is emitted by some code: an alarm or a dashboard widget on a
metric nothing records would watch a line that never moves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import merge_assist
from merge_assist.platform.metrics import CATALOGUE, Metric

ROOT = Path(merge_assist.__file__).resolve().parents[3]
CATALOGUE_FILE = Path(merge_assist.__file__).resolve().parent / "metrics.py"
SOURCES = [ROOT / "layers" / "core", ROOT / "functions"]
USE = re.compile(r"\bMetric\.([A-Z][A-Z0-9_]*)\b")


def _used() -> dict[str, list[str]]:
    used: dict[str, list[str]] = {}
    for source in SOURCES:
        for path in sorted(source.rglob("*.py")):
            if path.resolve() == CATALOGUE_FILE:
                continue
            for name in USE.findall(path.read_text(encoding="utf-8")):
                used.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return used


def test_the_sources_are_found() -> None:
    assert all(source.is_dir() for source in SOURCES)
    assert "functions/webhook/app.py" in _used()["EVENTS_RECEIVED"]


@pytest.mark.parametrize("metric", list(Metric), ids=lambda metric: metric.name)
def test_each_metric_is_recorded_somewhere(metric: Metric) -> None:
    assert metric.name in _used(), f"nothing records Metric.{metric.name}"


def test_every_metric_has_one_catalogue_entry() -> None:
    assert sorted(spec.metric for spec in CATALOGUE) == sorted(Metric)


def test_the_code_names_no_metric_the_catalogue_lacks() -> None:
    assert set(_used()) <= {metric.name for metric in Metric}

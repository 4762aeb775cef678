"""A ``Meter`` that keeps what it is told, checked against the catalogue as the Powertools
meter checks it, so a test cannot pass on a metric the alarms would never see."""

from __future__ import annotations

from dataclasses import dataclass, field

from merge_assist.platform.metrics import Metric, spec


@dataclass
class RecordingMeter:
    records: list[tuple[Metric, float, dict[str, str]]] = field(default_factory=list)

    def record(self, metric: Metric, value: float = 1, **dimensions: str) -> None:
        assert set(dimensions) == set(spec(metric).dimensions), (metric, dimensions)
        self.records.append((metric, value, dimensions))

    def values(self, metric: Metric) -> list[float]:
        return [value for recorded, value, _ in self.records if recorded is metric]

    def names(self) -> set[Metric]:
        return {metric for metric, _, _ in self.records}

    def clear(self) -> None:
        self.records.clear()

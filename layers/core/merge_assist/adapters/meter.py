"""The core's ``Meter`` on Powertools Metrics: CloudWatch Embedded Metric Format, written to
stdout where Lambda hands it to CloudWatch Logs, or to ``MERGE_ASSIST_METRICS_FILE`` when
set (the local stack's handlers share the console with what the stack prints)."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Mapping
from typing import Any

from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.metrics.functions import is_metrics_disabled
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import (
    AmazonCloudWatchEMFProvider,
)

from merge_assist.platform.metrics import NAMESPACE, SERVICE, Metric, NullMeter, spec

__all__ = ["NullMeter", "PowertoolsMeter", "lambda_metrics"]

METRICS_FILE_VARIABLE = "MERGE_ASSIST_METRICS_FILE"
_file_lock = threading.Lock()


def _emit(document: Mapping[str, Any]) -> None:
    line = json.dumps(document, separators=(",", ":"))
    path = os.environ.get(METRICS_FILE_VARIABLE)
    if not path:
        print(line, file=sys.stdout, flush=True)
        return
    with _file_lock, open(path, "a", encoding="utf-8") as out:
        out.write(line + "\n")


class _Provider(AmazonCloudWatchEMFProvider):
    """Most invocations count nothing of their own (a comment posted, a pipeline awaited),
    and the dimensioned metrics leave at once: an empty set at the end is normal here, not
    the forgotten metric Powertools warns about on every such invocation."""

    def flush_metrics(self, raise_on_empty_metrics: bool = False) -> None:
        if not self.metric_set:
            if raise_on_empty_metrics:
                super().flush_metrics(raise_on_empty_metrics=True)
            return
        if not is_metrics_disabled():
            _emit(self.serialize_metric_set())
        self.clear_metrics()


def lambda_metrics() -> Metrics:
    """The function's metrics, to decorate its handler with ``log_metrics``. Named here and
    not only by the environment, so a function run locally without it still emits."""
    return Metrics(provider=_Provider(namespace=NAMESPACE, service=SERVICE))


class PowertoolsMeter:
    """Metrics without dimensions of their own join the invocation's metric set, flushed
    once by ``log_metrics``. A metric with dimensions goes out at once as its own EMF
    document: the set's dimensions apply to all its metrics, so one invocation could not
    count two EventType values there."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics

    def record(self, metric: Metric, value: float = 1, **dimensions: str) -> None:
        declared = spec(metric)
        if set(dimensions) != set(declared.dimensions):
            # The alarms select on exactly the catalogue's dimensions: a metric emitted with
            # others would be a different CloudWatch metric that nothing watches.
            raise ValueError(
                f"{metric} takes dimensions {declared.dimensions}, got {tuple(dimensions)}"
            )
        unit = MetricUnit(declared.unit.value)
        if not dimensions:
            self._metrics.add_metric(name=metric.value, unit=unit, value=value)
            return
        service = self._metrics.service or SERVICE
        alone = _Provider(namespace=self._metrics.namespace or NAMESPACE, service=service)
        alone.add_dimension(name="service", value=service)
        for name, dimension_value in dimensions.items():
            alone.add_dimension(name=name, value=dimension_value)
        alone.add_metric(name=metric.value, unit=unit, value=value)
        alone.flush_metrics()

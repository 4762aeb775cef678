"""Plays EventBridge's scheduled rules for the local stack.

The rules are created in moto as the CDK app creates them in the cloud; moto stores them
but never fires them. ``Scheduler`` reads the enabled ``rate(...)`` rules and their Lambda
targets from the EventBridge API and invokes the targets asynchronously at that rate (times
``scale``, so tests and demos need not wait five minutes)."""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from local.background import BackgroundLoop
from local.runtime import LambdaRuntime, function_name_from

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient

log = logging.getLogger(__name__)

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}


def rate_seconds(expression: str) -> float | None:
    """Seconds between runs of a ``rate(...)`` expression; None for anything else."""
    found = _RATE.match(expression.strip())
    if not found:
        return None
    return int(found.group(1)) * _UNIT_SECONDS[found.group(2).rstrip("s")]


def scheduled_event(rule_arn: str, account: str, region: str) -> dict[str, Any]:
    """The event EventBridge hands a target of a scheduled rule."""
    return {
        "version": "0",
        "id": f"local-{time.monotonic_ns()}",
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "account": account,
        "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "region": region,
        "resources": [rule_arn],
        "detail": {},
    }


class Scheduler:
    def __init__(
        self,
        runtime: LambdaRuntime,
        events_client: EventBridgeClient,
        *,
        account: str,
        region: str,
        scale: float = 1.0,
        tick_seconds: float = 0.1,
    ) -> None:
        self._runtime = runtime
        self._events = events_client
        self._account = account
        self._region = region
        self._scale = scale
        self._next_run: dict[str, float] = {}
        self._loop = BackgroundLoop("scheduler", self._tick, tick_seconds)
        self.fired: dict[str, int] = {}

    def start(self) -> None:
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()

    def _tick(self) -> bool:
        self.run_due(time.monotonic())
        return False

    def run_due(self, now: float) -> None:
        for rule in self._events.list_rules()["Rules"]:
            period = rate_seconds(rule.get("ScheduleExpression", ""))
            if period is None or rule.get("State") != "ENABLED":
                continue
            name = rule["Name"]
            due = self._next_run.setdefault(name, now + period * self._scale)
            if now < due:
                continue
            self._next_run[name] = now + period * self._scale
            self._fire(rule["Name"], rule["Arn"])

    def _fire(self, rule_name: str, rule_arn: str) -> None:
        for target in self._events.list_targets_by_rule(Rule=rule_name)["Targets"]:
            function_name = function_name_from(target["Arn"])
            if not self._runtime.knows(function_name):
                log.warning("%s targets %s, which does not run here", rule_name, target["Arn"])
                continue
            self.fired[rule_name] = self.fired.get(rule_name, 0) + 1
            self._runtime.invoke_async(
                function_name, scheduled_event(rule_arn, self._account, self._region)
            )

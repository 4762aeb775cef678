"""Scheduled rules fire on the local stack as EventBridge fires them in the cloud."""

from __future__ import annotations

import time
from typing import Any

import pytest

from local.provision import rate_expression
from local.scheduler import Scheduler, rate_seconds
from local.stack import ACCOUNT_ID, LocalStack
from merge_assist.platform.resources import PYTHON_RUNTIME, WATCHER_SCHEDULE_MINUTES, FunctionSpec

pytestmark = pytest.mark.e2e


def test_rate_expressions() -> None:
    assert rate_seconds("rate(1 minute)") == 60
    assert rate_seconds("rate(5 minutes)") == 300
    assert rate_seconds("rate(2 hours)") == 7200
    assert rate_seconds("rate(1 day)") == 86400
    assert rate_seconds("cron(0 12 * * ? *)") is None
    assert rate_seconds(rate_expression(WATCHER_SCHEDULE_MINUTES)) == WATCHER_SCHEDULE_MINUTES * 60


def test_the_watcher_schedule_exists_as_in_the_cloud(stack: LocalStack) -> None:
    events = stack.client("events")
    rule = events.describe_rule(Name=stack.names.watcher_schedule)
    [target] = events.list_targets_by_rule(Rule=stack.names.watcher_schedule)["Targets"]

    assert rule["ScheduleExpression"] == rate_expression(WATCHER_SCHEDULE_MINUTES)
    assert rule["State"] == "ENABLED"
    assert target["Arn"].endswith(f":function:{stack.names.function('watcher')}")


def test_rules_fire_their_lambda_targets_at_their_rate(stack: LocalStack) -> None:
    received: list[dict[str, Any]] = []
    name = "scheduled-probe"
    stack.runtime.register(
        name,
        FunctionSpec(key=name, handler="tests.probe.handler", description="probe"),
        handler=lambda event, context: received.append(event),
    )
    function_arn = stack.client("lambda").create_function(
        FunctionName=name,
        Runtime=PYTHON_RUNTIME,
        Role=f"arn:aws:iam::{ACCOUNT_ID}:role/{stack.names.prefix}-lambda",
        Handler="tests.probe.handler",
        Code={"ZipFile": b"PK\x05\x06" + b"\x00" * 18},
    )["FunctionArn"]
    events = stack.client("events")
    events.put_rule(Name="probe-every-minute", ScheduleExpression="rate(1 minute)")
    events.put_targets(Rule="probe-every-minute", Targets=[{"Id": "p", "Arn": function_arn}])
    events.put_rule(Name="probe-disabled", ScheduleExpression="rate(1 minute)", State="DISABLED")
    events.put_targets(Rule="probe-disabled", Targets=[{"Id": "p", "Arn": function_arn}])
    scheduler = Scheduler(stack.runtime, events, account=ACCOUNT_ID, region="us-east-1")

    scheduler.run_due(1000.0)  # first sight: the first run is one period away
    scheduler.run_due(1059.0)
    scheduler.run_due(1060.0)
    scheduler.run_due(1119.0)
    scheduler.run_due(1120.5)
    deadline = time.monotonic() + 10  # the invocations are asynchronous, as in the cloud
    while len(received) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)

    assert scheduler.fired.get("probe-every-minute") == 2
    assert "probe-disabled" not in scheduler.fired
    assert len(received) == 2
    assert received[0]["detail-type"] == "Scheduled Event"
    assert received[0]["resources"][0].endswith(":rule/probe-every-minute")

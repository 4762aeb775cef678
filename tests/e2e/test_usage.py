"""The cost model's counts on the local stack: a real MR through the webhook, the queue and
one batch, counted inside ``metered`` and nowhere else."""

from __future__ import annotations

import time

import pytest
from botocore.endpoint import Endpoint

from bench.usage import OUTSIDE, metered
from local.stack import LocalStack
from merge_assist.queue.models import StatusCategory
from tests.e2e.merge_queue import Scenario

pytestmark = pytest.mark.e2e

STACK_SETTINGS = {"web_dir": None, "pipeline_poll_seconds": 5}


def _quiet(stack: LocalStack, seconds: float = 0.5, timeout: float = 30.0) -> None:
    """Until no function has been invoked for ``seconds``: the stream's stragglers of one
    step must not spill into the next."""
    deadline = time.monotonic() + timeout
    last, since = dict(stack.runtime.invocations), time.monotonic()
    while time.monotonic() - since < seconds:
        assert time.monotonic() < deadline, "the stack never went quiet"
        time.sleep(0.1)
        now = dict(stack.runtime.invocations)
        if now != last:
            last, since = now, time.monotonic()


def test_a_batch_is_counted_inside_the_block_and_nowhere_else(
    stack: LocalStack, scenario_name: str
) -> None:
    scenario = Scenario.open(stack, scenario_name, settings={"batch_size": 2}, duration_s=10)
    before = scenario.open_mr("feature/before", {"src/before.py": "B = 1\n"})
    scenario.wait_status([before], StatusCategory.QUEUED)
    _quiet(stack)
    invocations_before = dict(stack.runtime.invocations)
    unpatched = Endpoint.make_request

    with metered(stack) as meter:
        during = scenario.open_mr("feature/during", {"src/during.py": "D = 1\n"})
        scenario.wait_status([during], StatusCategory.QUEUED)
        scenario.start()
        scenario.settle(timeout=60)
        _quiet(stack)
        invocations_during = dict(stack.runtime.invocations)
    usage = meter.snapshot()
    assert Endpoint.make_request is unpatched

    webhooks = stack.runtime.invocations.get(stack.names.function("webhook"), 0)
    scenario.open_mr("feature/after", {"src/after.py": "A = 1\n"})
    scenario.wait_for(
        lambda: stack.runtime.invocations.get(stack.names.function("webhook"), 0) > webhooks,
        "a webhook after the block",
    )
    _quiet(stack)
    assert meter.snapshot() == usage, "counted after the block ended"

    assert scenario.status(before) is StatusCategory.MERGED
    assert scenario.status(during) is StatusCategory.MERGED
    ran = {
        name: count - invocations_before.get(name, 0)
        for name, count in invocations_during.items()
        if count > invocations_before.get(name, 0)
    }
    assert {f.function: f.invocations for f in usage.functions} == ran
    assert all(f.billed_ms >= f.invocations for f in usage.functions)
    assert usage.lambda_gb_seconds > 0
    assert usage.executions == 1
    assert usage.state_transitions > 0
    assert usage.http_api_requests > 0
    assert usage.sqs_fifo_requests > 0
    assert usage.dynamodb_read_units > 0
    assert usage.dynamodb_write_units > 0
    # The test's own look at the store is counted apart, never billed.
    assert usage.calls("dynamodb", billed=False) > 0
    assert all(not c.billed for c in usage.api_calls if c.caller == OUTSIDE)
    assert usage.calls("dynamodbstreams", billed=True) == 0

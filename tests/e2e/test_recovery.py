"""Recovery by hand on the local stack, through the CLI as an operator runs it: dead
letters moved back to their project's queue, a running batch cancelled and retried."""

from __future__ import annotations

import json
from typing import Any

import pytest

from cli.main import main
from local.stack import LocalStack
from merge_assist.platform.gitlab_events import parse_hook
from merge_assist.platform.intake import Enqueue, decide
from merge_assist.platform.resources import MERGE_WORKFLOW
from merge_assist.queue.models import BatchState, StatusCategory
from merge_assist.queue.workflow.start import batch_id_for
from tests.e2e.merge_queue import Scenario

pytestmark = pytest.mark.e2e

STACK_SETTINGS = {"web_dir": None, "pipeline_poll_seconds": 5}


def _cli(stack: LocalStack, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main([*args, "--local", str(stack.config.data_dir)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _document(out: str) -> Any:
    """The command's JSON; the in-process functions log their own JSON lines to stdout."""
    return json.loads(out[out.index("{\n") :])


def _execution_status(stack: LocalStack, name: str) -> str:
    arn = stack.endpoints()["state_machines"][MERGE_WORKFLOW]
    execution_arn = arn.replace(":stateMachine:", ":execution:") + f":{name}"
    status: str = stack.client("stepfunctions").describe_execution(executionArn=execution_arn)[
        "status"
    ]
    return status


def test_dead_letters_go_back_to_the_queue_once(
    stack: LocalStack, scenario_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    scenario = Scenario.open(stack, scenario_name)
    gitlab = stack.gitlab
    assert gitlab is not None
    try:
        # GitLab's MR events are lost on the way: what the dispatcher never saw is put in
        # the dead-letter queue, as if it had failed there five times.
        gitlab.drop_webhooks("Merge Request Hook")
        iid = scenario.open_mr("feature/lost", {"src/lost.py": "LOST = 1\n"})
        assert gitlab.wait_idle()
        gitlab.clear_faults()
        dropped = [d for d in scenario.deliveries() if d.dropped]
        assert dropped
        assert scenario.status(iid) is None
        config = scenario.store.get_project(scenario.project.id)
        sqs = stack.client("sqs")
        dlq = sqs.get_queue_url(
            QueueName=stack.names.project_dead_letter_queue(scenario.project.id)
        )["QueueUrl"]
        for delivery in dropped:
            decision = decide(parse_hook(delivery.body), config, delivery.idempotency_key)
            assert isinstance(decision, Enqueue)
            sqs.send_message(
                QueueUrl=dlq,
                MessageBody=decision.event.model_dump_json(exclude_none=True),
                MessageGroupId=decision.event.message_group_id,
                MessageDeduplicationId=decision.event.idempotency_key,
            )

        code, out, _ = _cli(stack, capsys, "dlq", "redrive", str(scenario.project.id), "--json")
        assert code == 0
        assert _document(out)["moved"] == len(dropped)
        scenario.wait_status([iid], StatusCategory.QUEUED)

        code, out, _ = _cli(stack, capsys, "dlq", "redrive", scenario.project.path_with_namespace)
        assert code == 0
        assert "Moved 0 message(s)" in out
    finally:
        scenario.close()


def test_a_cancelled_batch_is_retried_until_its_mrs_merge(
    stack: LocalStack, scenario_name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # A pipeline of 400 simulated seconds takes 20 s: time to cancel the batch mid-test.
    scenario = Scenario.open(stack, scenario_name, settings={"batch_size": 5}, duration_s=400)
    try:
        iids = [scenario.open_mr(f"feature/{n}", {f"src/f{n}.py": f"N = {n}\n"}) for n in range(2)]
        scenario.wait_status(iids, StatusCategory.QUEUED)
        scenario.start()
        scenario.wait_for(
            lambda: bool(scenario.batches()) and scenario.batches()[-1].state is BatchState.TESTING,
            "the batch to be testing",
        )
        batch_id = scenario.batches()[-1].id

        code, out, err = _cli(stack, capsys, "batch", "retry", batch_id)
        assert code == 1
        assert "is running" in err

        # Paused, so no event starts the queue again behind the operator's back.
        store = scenario.store
        store.save_project(
            store.get_project(scenario.project.id).model_copy(update={"paused": True})
        )
        code, out, _ = _cli(stack, capsys, "batch", "cancel", batch_id)
        assert code == 0, out
        assert f"Cancelled batch {batch_id}" in out
        assert "The next batch is not started" in out
        assert store.get_batch(batch_id).state is BatchState.CANCELLED
        assert all(scenario.status(iid) is StatusCategory.QUEUED for iid in iids)
        assert store.get_branch_lock(scenario.project.id, "main") is None
        # Step Functions ends a stopped execution at once (ABORTED); moto's interpreter
        # when the task it is in is over (its waiting task then reports FAILED).
        scenario.wait_for(
            lambda: _execution_status(stack, batch_id) != "RUNNING", "the execution to stop"
        )
        assert store.get_batch(batch_id).state is BatchState.CANCELLED

        code, out, _ = _cli(stack, capsys, "batch", "cancel", batch_id)
        assert code == 0
        assert "already cancelled" in out
        code, out, _ = _cli(stack, capsys, "batch", "retry", batch_id)
        assert code == 0
        assert "No batch started (the project is paused)" in out

        store.save_project(
            store.get_project(scenario.project.id).model_copy(update={"paused": False})
        )
        code, out, _ = _cli(stack, capsys, "batch", "retry", batch_id, "--json")
        assert code == 0
        retried: dict[str, Any] = _document(out)
        assert retried["next_batch"] == batch_id_for(
            scenario.project.id, "main", f"retry:{batch_id}"
        )
        assert retried["requeued"] == []  # the cancel had put them back in line already
        # An event (the cancelled batch's pipeline ending) may start the queue first; the
        # retry then says which batch runs instead.
        assert retried["started"] or "runs on main" in retried["why_not_started"], retried
        scenario.settle(timeout=120)
        assert all(scenario.status(iid) is StatusCategory.MERGED for iid in iids)
        batches = {batch.id: batch.state for batch in scenario.batches()}
        assert batches[batch_id] is BatchState.CANCELLED
        if retried["started"]:
            assert batches[retried["next_batch"]] is BatchState.LANDED

        # Again: the retry batch's execution has ended; nothing starts, nothing moves.
        code, out, _ = _cli(stack, capsys, "batch", "retry", batch_id)
        assert code == 0
        assert "No batch started" in out
        assert {batch.id: batch.state for batch in scenario.batches()} == batches
        scenario.assert_invariants(replay=False)
    finally:
        scenario.close()

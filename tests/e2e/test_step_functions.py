"""The real ASL runs in moto's interpreter and its Lambda tasks reach the real handlers."""

from __future__ import annotations

import inspect
import json
from datetime import UTC, datetime, timedelta
from importlib.metadata import version

import pytest
from botocore.exceptions import ClientError
from moto.awslambda_simple.models import LambdaSimpleBackend

from local.stack import LocalStack
from merge_assist.adapters.aws import store_from_settings
from merge_assist.platform.config import ProjectConfig, Strategy
from merge_assist.queue.models import BatchState, MergeRequestState, StatusCategory

pytestmark = pytest.mark.e2e


def _queue(project_id: int, priorities: dict[int, int]) -> None:
    store = store_from_settings()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for offset, (iid, priority) in enumerate(priorities.items()):
        store.save_merge_request(
            MergeRequestState(
                project_id=project_id,
                iid=iid,
                sha=f"{iid:040x}",
                source_branch=f"feature-{iid}",
                target_branch="main",
                status=StatusCategory.QUEUED,
                ready_since=start + timedelta(minutes=offset),
                priority=priority,
            )
        )


def test_moto_lambda_hook_is_the_one_the_local_runtime_patches() -> None:
    # The local runtime replaces this method; a moto upgrade that changes it must fail here.
    assert version("moto") == "5.2.5"
    parameters = list(inspect.signature(LambdaSimpleBackend.invoke).parameters)
    assert parameters == [
        "self",
        "function_name",
        "qualifier",
        "body",
        "headers",
        "response_headers",
    ]


def _run(project_id: int, batch_id: str) -> dict[str, object]:
    return {
        "project_id": project_id,
        "target_branch": "main",
        "batch_id": batch_id,
        "pipeline_poll_seconds": 5,
        "rebase_poll_seconds": 1,
        "failed": False,
    }


def _select(stack: LocalStack, project_id: int, batch_id: str) -> dict[str, object]:
    response = stack.client("lambda").invoke(
        FunctionName=stack.names.function("workflow-select"),
        Payload=json.dumps(_run(project_id, batch_id)),
    )
    assert "FunctionError" not in response
    selection: dict[str, object] = json.loads(response["Payload"].read())
    return selection


def test_select_takes_the_queue_head_and_records_the_batch(stack: LocalStack) -> None:
    store = store_from_settings()
    store.save_project(ProjectConfig(project_id=41, batch_size=2))
    _queue(41, {1: 0, 2: 0, 3: 7})

    selection = _select(stack, 41, "41-main-a")
    again = _select(stack, 41, "41-main-a")  # a retried step

    assert selection == {"empty": False, "strategy": "batch", "merge_requests": [3, 1]}
    assert again == selection
    batch = store.get_batch("41-main-a")
    assert batch.merge_requests == [3, 1]
    assert batch.batch_branch == "merge-assist/batch/main"
    assert store.get_merge_request(41, 3).status is StatusCategory.BATCHING
    assert store.get_merge_request(41, 3).batch_id == "41-main-a"
    assert store.get_merge_request(41, 2).status is StatusCategory.QUEUED
    lock = store.get_branch_lock(41, "main")
    assert lock is not None
    assert lock.batch_id == "41-main-a"


def test_config_change_takes_effect_at_next_batch(stack: LocalStack) -> None:
    store = store_from_settings()
    config = store.save_project(ProjectConfig(project_id=42, batch_size=5))
    _queue(42, {5: 0, 6: 0})
    store.save_project(config.model_copy(update={"strategy": Strategy.SERIAL}))

    selection = _select(stack, 42, "42-main-a")

    assert selection == {"empty": False, "strategy": "serial", "merge_requests": [5]}


def test_empty_queue_ends_without_a_batch(stack: LocalStack) -> None:
    store = store_from_settings()
    store.save_project(ProjectConfig(project_id=43))

    result = stack.execute("merge-batch", _run(43, "43-main-a"))

    assert result.status == "SUCCEEDED", result.cause
    assert result.output["selection"]["empty"] is True
    assert result.output["released"] == {"state": None, "next_batch": None}
    assert store.get_branch_lock(43, "main") is None


def test_a_failing_step_releases_the_branch_and_fails_the_execution(stack: LocalStack) -> None:
    store = store_from_settings()
    store.save_project(ProjectConfig(project_id=45))
    _queue(45, {9: 0})
    # MR !9 has no repository behind it: building the batch fails.
    result = stack.execute("merge-batch", _run(45, "45-main-a"), timeout_seconds=90)

    assert result.status == "FAILED"
    assert result.error == "BatchFailed"
    requeued = store.get_merge_request(45, 9)
    assert requeued.status is StatusCategory.QUEUED
    assert requeued.batch_id is None
    assert store.get_batch("45-main-a").state is BatchState.FAILED
    assert store.get_branch_lock(45, "main") is None


def test_invoke_api_reaches_the_handler_and_reports_function_errors(stack: LocalStack) -> None:
    lambda_client = stack.client("lambda")
    store_from_settings().save_project(ProjectConfig(project_id=44))
    name = stack.names.function("workflow-select")

    ok = lambda_client.invoke(FunctionName=name, Payload=json.dumps(_run(44, "44-main-a")))
    assert "FunctionError" not in ok
    assert json.loads(ok["Payload"].read())["empty"] is True

    bad = lambda_client.invoke(FunctionName=name, Payload=json.dumps({"project_id": "x"}))
    assert bad["FunctionError"] == "Unhandled"
    error = json.loads(bad["Payload"].read())
    assert error["errorType"] == "ValidationError"

    with pytest.raises(ClientError) as missing:
        lambda_client.invoke(FunctionName=f"{stack.names.prefix}-nope", Payload=b"{}")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_a_new_batch_reclaims_mrs_held_by_a_batch_that_died(stack: LocalStack) -> None:
    store = store_from_settings()
    store.save_project(ProjectConfig(project_id=46, batch_size=5))
    _queue(46, {1: 0, 2: 0})
    # !1 was being tested by a batch whose execution died; its lock has expired.
    held = store.get_merge_request(46, 1)
    store.save_merge_request(
        held.model_copy(update={"status": StatusCategory.TESTING, "batch_id": "46-main-dead"})
    )

    selection = _select(stack, 46, "46-main-next")

    assert selection["merge_requests"] == [1, 2]
    reclaimed = store.get_merge_request(46, 1)
    assert reclaimed.batch_id == "46-main-next"
    assert reclaimed.ready_since == held.ready_since

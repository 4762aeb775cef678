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
from merge_assist.models import MergeRequestState, ProjectConfig, StatusCategory, Strategy

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


def test_execution_runs_real_asl_and_real_handler(stack: LocalStack) -> None:
    store_from_settings().save_project(ProjectConfig(project_id=41, batch_size=2))
    _queue(41, {1: 0, 2: 0, 3: 7})
    function = stack.names.function("workflow-select")
    before = stack.runtime.invocations.get(function, 0)

    result = stack.execute("merge-batch", {"project_id": 41, "target_branch": "main"})

    assert result.status == "SUCCEEDED", result.cause
    assert result.output == {
        "project_id": 41,
        "target_branch": "main",
        "strategy": "batch",
        "landing": "push",
        "merge_requests": [3, 1],
        "empty": False,
    }
    assert stack.runtime.invocations[function] == before + 1


def test_config_change_takes_effect_at_next_execution(stack: LocalStack) -> None:
    store = store_from_settings()
    config = store.save_project(ProjectConfig(project_id=42, batch_size=5))
    _queue(42, {5: 0, 6: 0})
    store.save_project(config.model_copy(update={"strategy": Strategy.SERIAL}))

    result = stack.execute("merge-batch", {"project_id": 42, "target_branch": "main"})

    assert result.status == "SUCCEEDED"
    assert result.output["merge_requests"] == [5]
    assert result.output["strategy"] == "serial"


def test_empty_queue_ends_without_a_batch(stack: LocalStack) -> None:
    store_from_settings().save_project(ProjectConfig(project_id=43))

    result = stack.execute("merge-batch", {"project_id": 43, "target_branch": "main"})

    assert result.status == "SUCCEEDED"
    assert result.output["select"]["selection"]["empty"] is True


def test_handler_exception_fails_the_execution_with_its_error(stack: LocalStack) -> None:
    result = stack.execute("merge-batch", {"project_id": 404404, "target_branch": "main"})

    assert result.status == "FAILED"
    assert result.error == "NotFoundError"
    assert "project 404404 is not connected" in (result.cause or "")


def test_invoke_api_reaches_the_handler_and_reports_function_errors(stack: LocalStack) -> None:
    lambda_client = stack.client("lambda")
    store_from_settings().save_project(ProjectConfig(project_id=44))
    name = stack.names.function("workflow-select")

    ok = lambda_client.invoke(
        FunctionName=name, Payload=json.dumps({"project_id": 44, "target_branch": "main"})
    )
    assert "FunctionError" not in ok
    assert json.loads(ok["Payload"].read())["empty"] is True

    bad = lambda_client.invoke(FunctionName=name, Payload=json.dumps({"project_id": "x"}))
    assert bad["FunctionError"] == "Unhandled"
    error = json.loads(bad["Payload"].read())
    assert error["errorType"] == "ValidationError"

    with pytest.raises(ClientError) as missing:
        lambda_client.invoke(FunctionName=f"{stack.names.prefix}-nope", Payload=b"{}")
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"

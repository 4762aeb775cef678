"""The callback pattern end to end: an execution waits in a ``waitForTaskToken`` task on
the real wait function; GitLab's pipeline webhook, through the receiver, the queue and the
dispatcher, resumes it with the pipeline's outcome."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from local.stack import ACCOUNT_ID, LocalStack
from merge_assist.adapters.aws import store_from_settings
from merge_assist.adapters.gitlab_gateway import PythonGitLabGateway
from merge_assist.adapters.project_infra import AwsProjectInfrastructure
from merge_assist.admin.onboarding import connect_project

pytestmark = pytest.mark.e2e

MAINTAINER = 40


@pytest.fixture(scope="module")
def waiting_machine(stack: LocalStack) -> str:
    """A one-state machine around the real wait function, as the workflow will use it."""
    assert stack.provisioned is not None
    definition = {
        "StartAt": "WaitForPipeline",
        "States": {
            "WaitForPipeline": {
                "Type": "Task",
                "Resource": "arn:aws:states:::lambda:invoke.waitForTaskToken",
                "Parameters": {
                    "FunctionName": stack.provisioned.function_arns["workflow-wait-pipeline"],
                    "Payload": {
                        "project_id.$": "$.project_id",
                        "sha.$": "$.sha",
                        "timeout_seconds.$": "$.timeout_seconds",
                        "task_token.$": "$$.Task.Token",
                    },
                },
                "TimeoutSeconds": 60,
                "End": True,
            }
        },
    }
    return str(
        stack.client("stepfunctions").create_state_machine(
            name="pipeline-wait-probe",
            definition=json.dumps(definition),
            roleArn=f"arn:aws:iam::{ACCOUNT_ID}:role/{stack.names.prefix}-states",
        )["stateMachineArn"]
    )


def _connected_project(stack: LocalStack, name: str) -> Any:
    gitlab = stack.gitlab
    assert gitlab is not None
    project = gitlab.create_project(
        name, namespace="ci", files={"README.md": "x\n"}, members={stack.bot_username: MAINTAINER}
    )
    token = stack.client("secretsmanager").get_secret_value(SecretId=stack.names.bot_token_secret)[
        "SecretString"
    ]
    connect_project(
        store_from_settings(),
        AwsProjectInfrastructure(stack.names),
        PythonGitLabGateway(stack.gitlab_url, token),
        project.id,
        webhook_url=f"{stack.url}/webhook/gitlab",
    )
    # Long enough for the wait to be registered before the pipeline finishes.
    gitlab.set_pipeline_rules(project, pending_s=1, duration_s=60, fail_paths=["ci/fail"])
    return project


@pytest.mark.parametrize(
    ("files", "status"),
    [({"app.py": "ok = True\n"}, "success"), ({"ci/fail": "boom\n"}, "failed")],
    ids=["green", "red"],
)
def test_the_pipeline_webhook_resumes_the_waiting_execution(
    stack: LocalStack, waiting_machine: str, files: dict[str, str | None], status: str
) -> None:
    gitlab = stack.gitlab
    assert gitlab is not None
    project = _connected_project(stack, f"wait-{status}")
    iid = gitlab.create_merge_request(
        project, f"feature/{status}", "Change", files, assignees=[stack.bot_username]
    )
    sha = gitlab.branch_sha(project, f"feature/{status}")
    assert sha is not None
    sfn = stack.client("stepfunctions")

    execution = sfn.start_execution(
        stateMachineArn=waiting_machine,
        name=f"wait-{status}",
        input=json.dumps({"project_id": project.id, "sha": sha, "timeout_seconds": 60}),
    )["executionArn"]
    result = _finished(stack, execution)

    assert result["status"] == "SUCCEEDED", result
    output = json.loads(result["output"])
    assert output["sha"] == sha
    assert output["status"] == status
    assert output["pipeline_id"] == gitlab.merge_request(project, iid)["head_pipeline"]["id"]
    # The dispatcher removes the token right after resuming, as the execution goes on.
    deadline = time.monotonic() + 10
    while store_from_settings().get_task_token(project.id, sha) is not None:
        assert time.monotonic() < deadline, "the task token was not removed"
        time.sleep(0.05)


def _finished(stack: LocalStack, execution_arn: str, timeout: float = 60.0) -> dict[str, Any]:
    sfn = stack.client("stepfunctions")
    deadline = time.monotonic() + timeout
    while True:
        described: dict[str, Any] = sfn.describe_execution(executionArn=execution_arn)
        if described["status"] != "RUNNING":
            return described
        assert time.monotonic() < deadline, "the execution is still waiting"
        time.sleep(0.1)

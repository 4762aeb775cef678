"""``Executions`` on AWS Step Functions."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import boto3

from merge_assist.adapters.aws import register_cache
from merge_assist.platform.caching import built_once
from merge_assist.platform.settings import get_settings

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient


@built_once
def stepfunctions_client() -> SFNClient:
    return boto3.client("stepfunctions")


class StepFunctionsExecutions:
    def __init__(
        self, client: SFNClient | None = None, state_machine_arn: str | None = None
    ) -> None:
        self._client = client or stepfunctions_client()
        self._state_machine_arn = state_machine_arn

    @property
    def state_machine_arn(self) -> str:
        arn = self._state_machine_arn or get_settings().state_machine_arn
        if not arn:
            raise RuntimeError("MERGE_ASSIST_STATE_MACHINE_ARN is not set")
        return arn

    def start(self, name: str, execution_input: dict[str, Any]) -> bool:
        arn = self.state_machine_arn
        try:
            self._client.start_execution(
                stateMachineArn=arn, name=name, input=json.dumps(execution_input)
            )
        except self._client.exceptions.ExecutionAlreadyExists:
            # Standard workflows keep names unique for 90 days: a retried start lands here.
            execution_arn = arn.replace(":stateMachine:", ":execution:") + f":{name}"
            described = self._client.describe_execution(executionArn=execution_arn)
            return described["status"] == "RUNNING"
        return True

    def resume(self, task_token: str, output: dict[str, Any]) -> bool:
        try:
            self._client.send_task_success(taskToken=task_token, output=json.dumps(output))
        except (
            self._client.exceptions.TaskTimedOut,
            self._client.exceptions.InvalidToken,
            self._client.exceptions.TaskDoesNotExist,
        ):
            return False
        return True


register_cache(stepfunctions_client.cache_clear)

"""``Executions`` on AWS Step Functions."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import boto3

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient


@lru_cache(maxsize=1)
def stepfunctions_client() -> SFNClient:
    return boto3.client("stepfunctions")


class StepFunctionsExecutions:
    def __init__(self, client: SFNClient | None = None) -> None:
        self._client = client or stepfunctions_client()

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

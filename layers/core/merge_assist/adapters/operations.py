"""``Operations`` on AWS: SQS queue attributes and Step Functions' execution list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING

from merge_assist.adapters.executions import stepfunctions_client
from merge_assist.adapters.project_queues import queue_url, sqs_client
from merge_assist.platform.resources import ResourceNames
from merge_assist.platform.settings import get_settings

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions.literals import ExecutionStatusType

# The statuses the health page counts; SUCCEEDED executions are the normal case.
COUNTED: tuple[ExecutionStatusType, ...] = ("RUNNING", "FAILED", "TIMED_OUT", "ABORTED")
# Listing stops after this many executions per status: the page is for a glance, not a report.
MAX_LISTED = 1000


@dataclass(frozen=True)
class Depth:
    messages: int
    in_flight: int
    dead_letters: int


class AwsOperations:
    def __init__(self, names: ResourceNames, state_machine_arn: str | None = None) -> None:
        self._names = names
        self._state_machine_arn = state_machine_arn

    def queue_depth(self, project_id: int) -> Depth:
        attributes = sqs_client().get_queue_attributes(
            QueueUrl=queue_url(self._names.project_queue(project_id)),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        dead = sqs_client().get_queue_attributes(
            QueueUrl=queue_url(self._names.project_dead_letter_queue(project_id)),
            AttributeNames=["ApproximateNumberOfMessages"],
        )["Attributes"]
        return Depth(
            messages=int(attributes.get("ApproximateNumberOfMessages", 0)),
            in_flight=int(attributes.get("ApproximateNumberOfMessagesNotVisible", 0)),
            dead_letters=int(dead.get("ApproximateNumberOfMessages", 0)),
        )

    def executions(self, project_id: int, since: datetime) -> dict[str, int]:
        arn = self._state_machine_arn or get_settings().state_machine_arn
        if not arn:
            return {}
        # Executions are named after their batch, whose id starts with the project id.
        prefix = f"{project_id}-"
        counts: dict[str, int] = {}
        paginator = stepfunctions_client().get_paginator("list_executions")
        for status in COUNTED:
            count = 0
            pages = paginator.paginate(
                stateMachineArn=arn,
                statusFilter=status,
                PaginationConfig={"MaxItems": MAX_LISTED, "PageSize": 100},
            )
            for page in pages:
                for execution in page["executions"]:
                    if not execution["name"].startswith(prefix):
                        continue
                    if status != "RUNNING" and execution["startDate"] < since:
                        continue
                    count += 1
            counts[status] = count
        return counts

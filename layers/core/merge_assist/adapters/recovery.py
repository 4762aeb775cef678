"""What ``merge_assist.admin.recovery`` needs of AWS: the SQS calls of a redrive, the merge
workflow's executions by name (status, stop), and the stack's outputs the CLI reads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import boto3
from botocore.exceptions import ClientError

from merge_assist.adapters.executions import StepFunctionsExecutions
from merge_assist.admin.recovery import QueuedMessage
from merge_assist.platform.errors import NotFoundError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

# How long a received dead letter stays hidden: ample for sending and deleting it; if the
# run dies in between, the next run after this sees it again.
RECEIVE_VISIBILITY_SECONDS = 60
# A short long-poll: FIFO short polling may answer empty while messages are there.
RECEIVE_WAIT_SECONDS = 1
# ReceiveMessage also gives the (unsupported) list values, which SendMessage refuses.
_SENDABLE = ("DataType", "StringValue", "BinaryValue")
_MISSING_QUEUE = ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist")


class SqsMessageQueues:
    def __init__(
        self,
        client: SQSClient | None = None,
        *,
        visibility_seconds: int = RECEIVE_VISIBILITY_SECONDS,
    ) -> None:
        self._sqs = client or boto3.client("sqs")
        self._visibility_seconds = visibility_seconds

    def url(self, name: str) -> str:
        try:
            return self._sqs.get_queue_url(QueueName=name)["QueueUrl"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in _MISSING_QUEUE:
                raise NotFoundError(f"queue {name} does not exist") from error
            raise

    def receive(self, url: str, max_messages: int) -> list[QueuedMessage]:
        response = self._sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=max(1, min(10, max_messages)),
            VisibilityTimeout=self._visibility_seconds,
            WaitTimeSeconds=RECEIVE_WAIT_SECONDS,
            MessageSystemAttributeNames=["MessageGroupId", "MessageDeduplicationId"],
            MessageAttributeNames=["All"],
        )
        return [
            QueuedMessage(
                body=message["Body"],
                receipt=message["ReceiptHandle"],
                group_id=message.get("Attributes", {}).get("MessageGroupId"),
                deduplication_id=message.get("Attributes", {}).get("MessageDeduplicationId"),
                attributes=message.get("MessageAttributes", {}),
            )
            for message in response.get("Messages", [])
        ]

    def send(self, url: str, message: QueuedMessage) -> None:
        request: dict[str, Any] = {"QueueUrl": url, "MessageBody": message.body}
        if message.group_id:
            request["MessageGroupId"] = message.group_id
        if message.deduplication_id:
            request["MessageDeduplicationId"] = message.deduplication_id
        if message.attributes:
            request["MessageAttributes"] = {
                name: {key: value for key, value in attribute.items() if key in _SENDABLE}
                for name, attribute in message.attributes.items()
            }
        self._sqs.send_message(**request)

    def delete(self, url: str, receipt: str) -> None:
        self._sqs.delete_message(QueueUrl=url, ReceiptHandle=receipt)

    def count(self, url: str) -> int:
        attributes = self._sqs.get_queue_attributes(
            QueueUrl=url,
            AttributeNames=[
                "ApproximateNumberOfMessages",
                "ApproximateNumberOfMessagesNotVisible",
            ],
        )["Attributes"]
        return sum(int(value) for value in attributes.values())


class StepFunctionsBatchExecutions(StepFunctionsExecutions):
    """Executions are named after their batch (``workflow.start``); their ARN is the state
    machine's with ``execution`` for ``stateMachine`` and the name appended."""

    def execution_arn(self, name: str) -> str:
        return self.state_machine_arn.replace(":stateMachine:", ":execution:") + f":{name}"

    def status(self, name: str) -> str | None:
        try:
            described = self._client.describe_execution(executionArn=self.execution_arn(name))
        except self._client.exceptions.ExecutionDoesNotExist:
            return None
        return described["status"]

    def stop(self, name: str, cause: str) -> bool:
        if self.status(name) != "RUNNING":
            return False
        self._client.stop_execution(
            executionArn=self.execution_arn(name), error="Cancelled", cause=cause
        )
        return True


def stack_outputs(stack_name: str) -> dict[str, str]:
    """The deployed stack's outputs (the stack is named after the deployment prefix)."""
    stack = boto3.client("cloudformation").describe_stacks(StackName=stack_name)["Stacks"][0]
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}

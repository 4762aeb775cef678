"""``ProjectInfrastructure`` on AWS: Secrets Manager, SQS FIFO queues and Lambda's event
source mapping. Names come from ``ResourceNames``; IAM for all of it is scoped to the
project prefixes (``<prefix>-project-*`` queues, ``<prefix>/projects/*`` secrets)."""

from __future__ import annotations

import json
import secrets
from typing import TYPE_CHECKING

import boto3
from botocore.exceptions import ClientError

from merge_assist.platform.config import WebhookSecret
from merge_assist.platform.errors import NotFoundError
from merge_assist.platform.resources import (
    PROJECT_DEAD_LETTERS_ALARM,
    PROJECT_QUEUE_AGE_ALARM,
    PROJECT_QUEUE_AGE_SECONDS,
    ResourceNames,
    function_spec,
    project_alarm_name,
)
from merge_assist.platform.settings import get_settings

if TYPE_CHECKING:
    from mypy_boto3_cloudwatch import CloudWatchClient
    from mypy_boto3_lambda import LambdaClient
    from mypy_boto3_secretsmanager import SecretsManagerClient
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType

# Lambda's advice for SQS sources: a visibility timeout of six times the function timeout.
VISIBILITY_TIMEOUT_SECONDS = 6 * function_spec("dispatcher").timeout_seconds
# A message that fails this often goes to the dead-letter queue, where an alarm sees it.
MAX_RECEIVE_COUNT = 5
DLQ_RETENTION_SECONDS = 14 * 24 * 3600
DISPATCHER_BATCH_SIZE = 10


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


class AwsProjectInfrastructure:
    def __init__(
        self,
        names: ResourceNames,
        *,
        secretsmanager: SecretsManagerClient | None = None,
        sqs: SQSClient | None = None,
        lambda_client: LambdaClient | None = None,
        cloudwatch: CloudWatchClient | None = None,
        alarm_topic_arn: str | None = None,
    ) -> None:
        self._names = names
        self._cloudwatch = cloudwatch or boto3.client("cloudwatch")
        self._alarm_topic_arn = alarm_topic_arn or get_settings().alarm_topic_arn
        self._secrets = secretsmanager or boto3.client("secretsmanager")
        self._sqs = sqs or boto3.client("sqs")
        self._lambda = lambda_client or boto3.client("lambda")

    def ensure_webhook_secret(self, project_id: int) -> WebhookSecret:
        name = self._names.webhook_secret(project_id)
        try:
            return self._read_secret(name)
        except ClientError as error:
            if _code(error) != "ResourceNotFoundException":
                raise
        fresh = WebhookSecret(secret_token=secrets.token_urlsafe(32))
        try:
            self._secrets.create_secret(
                Name=name,
                Description=f"GitLab webhook secret token of project {project_id}",
                SecretString=fresh.model_dump_json(exclude_none=True),
            )
        except ClientError as error:
            if _code(error) != "ResourceExistsException":
                raise
            return self._read_secret(name)  # a concurrent connect won; use its token
        return fresh

    def _read_secret(self, name: str) -> WebhookSecret:
        value = self._secrets.get_secret_value(SecretId=name)["SecretString"]
        return WebhookSecret.model_validate(json.loads(value))

    def read_webhook_secret(self, project_id: int) -> WebhookSecret:
        try:
            return self._read_secret(self._names.webhook_secret(project_id))
        except ClientError as error:
            if _code(error) == "ResourceNotFoundException":
                raise NotFoundError(f"project {project_id} has no webhook secret") from error
            raise

    def write_webhook_secret(self, project_id: int, secret: WebhookSecret) -> None:
        try:
            self._secrets.put_secret_value(
                SecretId=self._names.webhook_secret(project_id),
                SecretString=secret.model_dump_json(exclude_none=True),
            )
        except ClientError as error:
            if _code(error) == "ResourceNotFoundException":
                raise NotFoundError(f"project {project_id} has no webhook secret") from error
            raise

    def ensure_queues(self, project_id: int) -> str:
        dlq_url = self._ensure_queue(
            self._names.project_dead_letter_queue(project_id),
            {"MessageRetentionPeriod": str(DLQ_RETENTION_SECONDS)},
        )
        dlq_arn = self._queue_arn(dlq_url)
        queue_url = self._ensure_queue(
            self._names.project_queue(project_id),
            {
                "VisibilityTimeout": str(VISIBILITY_TIMEOUT_SECONDS),
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
                ),
            },
        )
        return self._queue_arn(queue_url)

    def _ensure_queue(self, name: str, attributes: dict[QueueAttributeNameType, str]) -> str:
        fifo: dict[QueueAttributeNameType, str] = {
            "FifoQueue": "true",
            "SqsManagedSseEnabled": "true",
            **attributes,
        }
        try:
            return self._sqs.create_queue(QueueName=name, Attributes=fifo)["QueueUrl"]
        except ClientError as error:
            if _code(error) not in ("QueueAlreadyExists", "QueueNameExists"):
                raise
        # It exists with other attributes (an older version made it): bring it up to date.
        url = self._sqs.get_queue_url(QueueName=name)["QueueUrl"]
        self._sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
        return url

    def _queue_arn(self, url: str) -> str:
        attributes = self._sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])
        return attributes["Attributes"]["QueueArn"]

    def ensure_event_source(self, queue_arn: str) -> None:
        function = self._names.function("dispatcher")
        existing = self._lambda.list_event_source_mappings(
            EventSourceArn=queue_arn, FunctionName=function
        )["EventSourceMappings"]
        if existing:
            for mapping in existing:
                if mapping.get("State") in ("Disabled", "Disabling"):
                    self._lambda.update_event_source_mapping(UUID=mapping["UUID"], Enabled=True)
            return
        self._lambda.create_event_source_mapping(
            EventSourceArn=queue_arn,
            FunctionName=function,
            BatchSize=DISPATCHER_BATCH_SIZE,
            FunctionResponseTypes=["ReportBatchItemFailures"],
            Enabled=True,
        )

    def ensure_alarms(self, project_id: int) -> None:
        # PutMetricAlarm replaces an alarm of the same name: calling it again changes nothing.
        actions = [self._alarm_topic_arn] if self._alarm_topic_arn else []
        for slug, queue, metric, threshold in (
            (
                PROJECT_DEAD_LETTERS_ALARM,
                self._names.project_dead_letter_queue(project_id),
                "ApproximateNumberOfMessagesVisible",
                1,
            ),
            (
                PROJECT_QUEUE_AGE_ALARM,
                self._names.project_queue(project_id),
                "ApproximateAgeOfOldestMessage",
                PROJECT_QUEUE_AGE_SECONDS,
            ),
        ):
            self._cloudwatch.put_metric_alarm(
                AlarmName=project_alarm_name(self._names, slug, project_id),
                AlarmDescription=(
                    f"{slug} of project {project_id}. Runbook: docs/runbook.md#{slug}"
                ),
                Namespace="AWS/SQS",
                MetricName=metric,
                Dimensions=[{"Name": "QueueName", "Value": queue}],
                Statistic="Maximum",
                Period=300,
                EvaluationPeriods=1,
                Threshold=threshold,
                ComparisonOperator="GreaterThanOrEqualToThreshold",
                TreatMissingData="notBreaching",
                AlarmActions=actions,
                OKActions=actions,
            )

    def remove(self, project_id: int) -> None:
        # DeleteAlarms ignores names that do not exist.
        self._cloudwatch.delete_alarms(
            AlarmNames=[
                project_alarm_name(self._names, slug, project_id)
                for slug in (PROJECT_DEAD_LETTERS_ALARM, PROJECT_QUEUE_AGE_ALARM)
            ]
        )
        for name in (
            self._names.project_queue(project_id),
            self._names.project_dead_letter_queue(project_id),
        ):
            try:
                url = self._sqs.get_queue_url(QueueName=name)["QueueUrl"]
            except ClientError as error:
                if _code(error) in ("AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"):
                    continue
                raise
            arn = self._queue_arn(url)
            for mapping in self._lambda.list_event_source_mappings(EventSourceArn=arn)[
                "EventSourceMappings"
            ]:
                self._lambda.delete_event_source_mapping(UUID=mapping["UUID"])
            self._sqs.delete_queue(QueueUrl=url)
        try:
            # A webhook secret is replaceable (re-connecting issues a new one and updates the
            # hook), so it goes at once rather than after a recovery window.
            self._secrets.delete_secret(
                SecretId=self._names.webhook_secret(project_id), ForceDeleteWithoutRecovery=True
            )
        except ClientError as error:
            if _code(error) != "ResourceNotFoundException":
                raise

"""Ingest: the per-project resources GitLab's webhooks flow through, and who may create them.

Connecting a project (``merge-assist project add``, see ``merge_assist.adapters.project_infra``)
creates its SQS FIFO queue and dead-letter queue, its webhook secret and the event source
mapping from the queue to the ``dispatcher`` function at run time, so none of them is in the
stack. Every permission on them is scoped to the deployment's name prefixes instead: the
patterns below, used for the functions' roles and for the onboarding policy the operator
attaches to whoever runs the admin CLI.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import ArnFormat, Stack
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from constructs import Construct, IConstruct

from infra.constructs.state_machine_arns import named_executions_arn, named_state_machine_arn
from infra.constructs.storage import Storage
from infra.nag import acknowledge, stack_arn_finding
from merge_assist.platform.resources import MERGE_WORKFLOW, TABLE, ResourceNames

ONBOARDING_SECRET_ACTIONS = (
    "secretsmanager:CreateSecret",
    "secretsmanager:GetSecretValue",
    "secretsmanager:PutSecretValue",
    "secretsmanager:DescribeSecret",
    "secretsmanager:DeleteSecret",
    "secretsmanager:TagResource",
)
ONBOARDING_QUEUE_ACTIONS = (
    "sqs:CreateQueue",
    "sqs:GetQueueUrl",
    "sqs:GetQueueAttributes",
    "sqs:SetQueueAttributes",
    "sqs:DeleteQueue",
    "sqs:TagQueue",
)
ONBOARDING_MAPPING_ACTIONS = (
    "lambda:UpdateEventSourceMapping",
    "lambda:DeleteEventSourceMapping",
)
# The admin CLI's Store calls; it never scans and never writes merge request state.
ONBOARDING_TABLE_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
)


# ``merge-assist dlq redrive``: dead letters back to their project queue.
OPERATOR_QUEUE_ACTIONS = (
    "sqs:GetQueueUrl",
    "sqs:GetQueueAttributes",
    "sqs:ReceiveMessage",
    "sqs:SendMessage",
    "sqs:DeleteMessage",
)
# ``merge-assist batch retry|cancel``: batches, their MRs and the branch lock.
OPERATOR_TABLE_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:DeleteItem",
    "dynamodb:Query",
)
OPERATOR_EXECUTION_ACTIONS = ("states:DescribeExecution", "states:StopExecution")


def project_secret_prefix(names: ResourceNames) -> str:
    """Every ``ResourceNames.webhook_secret`` starts with this."""
    return f"{names.prefix}/projects/"


def project_queues_arn(scope: IConstruct, names: ResourceNames) -> str:
    """Matches every project queue and project dead-letter queue of the deployment."""
    return Stack.of(scope).format_arn(
        service="sqs",
        resource=f"{names.project_queue_prefix}*",
        arn_format=ArnFormat.NO_RESOURCE_NAME,
    )


# Each connected project's queue alarms (AwsProjectInfrastructure.ensure_alarms / remove).
ONBOARDING_ALARM_ACTIONS = ("cloudwatch:PutMetricAlarm", "cloudwatch:DeleteAlarms")


def project_alarms_arn(scope: IConstruct, names: ResourceNames) -> str:
    """Matches every project's queue alarms, ``<prefix>-project-<slug>-<id>``."""
    return Stack.of(scope).format_arn(
        service="cloudwatch",
        resource="alarm",
        resource_name=f"{names.prefix}-project-*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def project_alarms_finding(names: ResourceNames) -> str:
    return stack_arn_finding("cloudwatch", f"alarm:{names.prefix}-project-*")


def project_secrets_arn(scope: IConstruct, names: ResourceNames) -> str:
    """Matches every project's webhook secret, including the suffix Secrets Manager appends."""
    return Stack.of(scope).format_arn(
        service="secretsmanager",
        resource="secret",
        resource_name=f"{project_secret_prefix(names)}*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def project_secrets_finding(names: ResourceNames) -> str:
    """The IAM5 finding id of :func:`project_secrets_arn`."""
    return stack_arn_finding("secretsmanager", f"secret:{project_secret_prefix(names)}*")


def project_queues_finding(names: ResourceNames) -> str:
    """The IAM5 finding id of :func:`project_queues_arn`."""
    return stack_arn_finding("sqs", f"{names.project_queue_prefix}*")


def event_source_mappings_arn(scope: IConstruct) -> str:
    return Stack.of(scope).format_arn(
        service="lambda",
        resource="event-source-mapping",
        resource_name="*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )


def onboarding_policy_name(names: ResourceNames) -> str:
    return f"{names.prefix}-project-onboarding"


def operator_policy_name(names: ResourceNames) -> str:
    return f"{names.prefix}-operator"


class Ingest(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        storage: Storage,
        functions: Mapping[str, lambda_.IFunction],
    ) -> None:
        super().__init__(scope, construct_id)
        table = storage.table
        dispatcher_only = {
            "StringEquals": {"lambda:FunctionArn": functions["dispatcher"].function_arn}
        }
        # Left unattached: the operator attaches it to the role or group of the people (or the
        # pipeline) that run `merge-assist project add|remove|config` against this deployment.
        self.onboarding_policy = iam.ManagedPolicy(
            self,
            "OnboardingPolicy",
            managed_policy_name=onboarding_policy_name(names),
            description=(
                f"Connect, configure and disconnect GitLab projects of the Merge Assist "
                f"deployment {names.prefix} (merge-assist project add|remove|config)"
            ),
            statements=[
                iam.PolicyStatement(
                    sid="ProjectWebhookSecrets",
                    actions=list(ONBOARDING_SECRET_ACTIONS),
                    resources=[project_secrets_arn(self, names)],
                ),
                # The CLI calls GitLab with the bot's token, as the functions do.
                iam.PolicyStatement(
                    sid="BotToken",
                    actions=["secretsmanager:GetSecretValue"],
                    resources=[storage.bot_token.secret_arn],
                ),
                iam.PolicyStatement(
                    sid="ProjectQueues",
                    actions=list(ONBOARDING_QUEUE_ACTIONS),
                    resources=[project_queues_arn(self, names)],
                ),
                iam.PolicyStatement(
                    sid="ProjectAlarms",
                    actions=list(ONBOARDING_ALARM_ACTIONS),
                    resources=[project_alarms_arn(self, names)],
                ),
                # Creating a mapping has no resource type to scope; the condition keeps the
                # caller from wiring a queue to any function but the dispatcher.
                iam.PolicyStatement(
                    sid="CreateDispatcherEventSources",
                    actions=["lambda:CreateEventSourceMapping"],
                    resources=["*"],
                    conditions=dispatcher_only,
                ),
                # Mapping UUIDs are Lambda's choice; the condition leaves other functions'
                # mappings in the account alone.
                iam.PolicyStatement(
                    sid="ChangeDispatcherEventSources",
                    actions=list(ONBOARDING_MAPPING_ACTIONS),
                    resources=[event_source_mappings_arn(self)],
                    conditions=dispatcher_only,
                ),
                iam.PolicyStatement(
                    sid="ReadEventSources",
                    actions=["lambda:GetEventSourceMapping"],
                    resources=[event_source_mappings_arn(self)],
                ),
                iam.PolicyStatement(
                    sid="ListEventSources",
                    actions=["lambda:ListEventSourceMappings"],
                    resources=["*"],
                ),
                iam.PolicyStatement(
                    sid="ProjectConfigs",
                    actions=list(ONBOARDING_TABLE_ACTIONS),
                    resources=[table.table_arn, f"{table.table_arn}/index/{TABLE.index_name}"],
                ),
                # The CLI finds the webhook URL in the stack's ApiUrl output.
                iam.PolicyStatement(
                    sid="StackOutputs",
                    actions=["cloudformation:DescribeStacks"],
                    resources=[Stack.of(self).stack_id],
                ),
            ],
        )
        acknowledge(
            self.onboarding_policy,
            "AwsSolutions-IAM5",
            "lambda:ListEventSourceMappings has no resource type, and "
            "lambda:CreateEventSourceMapping has none either: it is restricted by the "
            "lambda:FunctionArn condition to the dispatcher function instead.",
            findings=["Resource::*"],
        )
        acknowledge(
            self.onboarding_policy,
            "AwsSolutions-IAM5",
            "Webhook secrets are created per project at run time, when the CLI connects the "
            "project, under this deployment's <prefix>/projects/ name prefix; only the project "
            "id and Secrets Manager's suffix after it are left open.",
            findings=[project_secrets_finding(names)],
        )
        acknowledge(
            self.onboarding_policy,
            "AwsSolutions-IAM5",
            "Each project's queue alarms are created when it is connected and deleted when it "
            "is disconnected, named <prefix>-project-<slug>-<project id>; only what follows "
            "this deployment's <prefix>-project- alarm name prefix is left open.",
            findings=[project_alarms_finding(names)],
        )
        acknowledge(
            self.onboarding_policy,
            "AwsSolutions-IAM5",
            "Project queues and their dead-letter queues are created per project at run time, "
            "when the CLI connects the project, under this deployment's <prefix>-project- "
            "queue name prefix; only the project id after it is left open.",
            findings=[project_queues_finding(names)],
        )
        acknowledge(
            self.onboarding_policy,
            "AwsSolutions-IAM5",
            "Lambda assigns an event source mapping's UUID when connecting a project creates "
            "it, so its ARN cannot be known when the stack is deployed; changes are held to "
            "the dispatcher's mappings by the lambda:FunctionArn condition.",
            findings=[stack_arn_finding("lambda", "event-source-mapping:*")],
        )
        self.operator_policy = self._operator_policy(names, storage)

    def _operator_policy(self, names: ResourceNames, storage: Storage) -> iam.ManagedPolicy:
        """Recovery by hand (``merge-assist dlq redrive``, ``merge-assist batch retry|cancel``);
        left unattached like the onboarding policy, and apart from it: the API function,
        which onboards projects, gets none of this."""
        table = storage.table
        policy = iam.ManagedPolicy(
            self,
            "OperatorPolicy",
            managed_policy_name=operator_policy_name(names),
            description=(
                f"Recover the Merge Assist deployment {names.prefix} by hand: redrive a "
                f"project's dead letters, retry or cancel a batch"
            ),
            statements=[
                iam.PolicyStatement(
                    sid="RedriveProjectQueues",
                    actions=list(OPERATOR_QUEUE_ACTIONS),
                    resources=[project_queues_arn(self, names)],
                ),
                iam.PolicyStatement(
                    sid="BatchState",
                    actions=list(OPERATOR_TABLE_ACTIONS),
                    resources=[table.table_arn, f"{table.table_arn}/index/{TABLE.index_name}"],
                ),
                iam.PolicyStatement(
                    sid="StartMergeWorkflow",
                    actions=["states:StartExecution"],
                    resources=[named_state_machine_arn(self, names, MERGE_WORKFLOW)],
                ),
                iam.PolicyStatement(
                    sid="MergeWorkflowExecutions",
                    actions=list(OPERATOR_EXECUTION_ACTIONS),
                    resources=[named_executions_arn(self, names, MERGE_WORKFLOW)],
                ),
                # The CLI finds the state machine in the stack's outputs.
                iam.PolicyStatement(
                    sid="StackOutputs",
                    actions=["cloudformation:DescribeStacks"],
                    resources=[Stack.of(self).stack_id],
                ),
            ],
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5",
            "Project queues and their dead-letter queues are created per project at run time "
            "under this deployment's <prefix>-project- queue name prefix; a redrive reads the "
            "project's dead-letter queue and sends to its queue, whichever project it is.",
            findings=[project_queues_finding(names)],
        )
        acknowledge(
            policy,
            "AwsSolutions-IAM5",
            "Merge workflow executions are named after their batch at run time; the pattern "
            "covers only the executions of this deployment's merge workflow.",
            findings=[
                stack_arn_finding("states", f"execution:{names.state_machine(MERGE_WORKFLOW)}:*")
            ],
        )
        return policy

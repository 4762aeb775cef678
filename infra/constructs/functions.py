"""The core Lambda layer and every function listed in
``merge_assist.platform.resources.FUNCTIONS``."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from aws_cdk import (
    AssetHashType,
    Aws,
    BundlingOptions,
    Duration,
    RemovalPolicy,
    Size,
)
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra import REPO_ROOT
from infra.bundling import CoreLayerBundling, FunctionCodeBundling, handler_package
from infra.constructs import LOG_RETENTION, pascal_case
from infra.constructs.ingest import (
    project_queues_arn,
    project_queues_finding,
    project_secrets_arn,
    project_secrets_finding,
)
from infra.constructs.state_machine_arns import (
    executions_finding,
    named_executions_arn,
    named_state_machine_arn,
)
from infra.constructs.storage import Storage
from infra.nag import acknowledge, arn_finding
from merge_assist.platform.resources import (
    BOT_TOKEN_ROTATION_DAYS,
    FUNCTIONS,
    MERGE_WORKFLOW,
    PYTHON_RUNTIME,
    STATE_MACHINES,
    STREAM_SUBSCRIPTIONS,
    FunctionSpec,
    ResourceNames,
    function_environment,
)

CORE_PACKAGE_DIR = REPO_ROOT / "layers" / "core" / "merge_assist"
FUNCTIONS_DIR = REPO_ROOT / "functions"
PYPROJECT = REPO_ROOT / "pyproject.toml"


class TableAccess(enum.Enum):
    NONE = "none"
    READ = "read"
    READ_WRITE = "read-write"
    # Adds items (PutItem only): may neither read nor change what is there.
    APPEND = "append"


class QueueAccess(enum.Enum):
    """What a function does with the per-project FIFO queues (see ``infra.constructs.ingest``)."""

    NONE = "none"
    SEND = "send"
    CONSUME = "consume"


QUEUE_ACTIONS: Mapping[QueueAccess, tuple[str, ...]] = MappingProxyType(
    {
        QueueAccess.NONE: (),
        # Senders look the queue up by name (ResourceNames.project_queue) before sending.
        QueueAccess.SEND: ("sqs:SendMessage", "sqs:GetQueueUrl"),
        # What Lambda's event source mapping polls with, using the function's role.
        QueueAccess.CONSUME: (
            "sqs:ReceiveMessage",
            "sqs:DeleteMessage",
            "sqs:GetQueueAttributes",
            "sqs:ChangeMessageVisibility",
        ),
    }
)


RESUME_ACTIONS = ("states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat")
# Starting a batch (merge_assist.queue.workflow.start): StartExecution on the state machine, and
# DescribeExecution on its executions to tell a retried start from a finished batch.
START_ACTIONS = ("states:StartExecution",)
DESCRIBE_EXECUTION_ACTIONS = ("states:DescribeExecution",)
LIST_EXECUTIONS_ACTIONS = ("states:ListExecutions",)
# Writing the new token to the pending version and moving AWSCURRENT to it; reading is the
# bot_token grant's.
ROTATE_SECRET_ACTIONS = ("secretsmanager:PutSecretValue", "secretsmanager:UpdateSecretVersionStage")


@dataclass(frozen=True)
class Access:
    table: TableAccess
    bot_token: bool = False
    # GetSecretValue on every project's webhook secret.
    project_secrets: bool = False
    project_queues: QueueAccess = QueueAccess.NONE
    # Completes the wait tasks of the merge workflow's executions (the callback pattern).
    resume_workflows: bool = False
    # Starts executions of the merge workflow (a batch) and describes them.
    start_workflows: bool = False
    # Lists the merge workflow's executions (the health page counts running and failed ones).
    list_workflows: bool = False
    # Connects and disconnects projects: the onboarding policy the CLI's users get
    # (infra/constructs/ingest.py), attached in infra/stack.py.
    onboard_projects: bool = False
    # Secrets Manager's rotation function for the bot token secret: writes its versions, is
    # invoked by Secrets Manager, and is scheduled on the secret the stack creates.
    rotate_bot_token: bool = False


# resources.FunctionSpec says what a function runs, not what it may touch, so least privilege is
# decided here. A function missing from this table fails the synth instead of being granted
# everything.
FUNCTION_ACCESS: Mapping[str, Access] = MappingProxyType(
    {
        # Writes its Powertools idempotency records to the table; reads the project's config
        # and webhook secret to authenticate a delivery.
        "webhook": Access(
            table=TableAccess.READ_WRITE,
            project_secrets=True,
            project_queues=QueueAccess.SEND,
        ),
        # The queues' event source mappings are created when a project is connected, long
        # after deployment, and Lambda checks the role's SQS permissions when it creates one:
        # the role must cover every project queue up front.
        # Asks GitLab (with the bot's token) how an MR stands, and tells its author. Resumes
        # the executions that wait for a pipeline, and starts a batch when an MR is queued.
        "dispatcher": Access(
            table=TableAccess.READ_WRITE,
            bot_token=True,
            project_queues=QueueAccess.CONSUME,
            resume_workflows=True,
            start_workflows=True,
        ),
        # Compares GitLab (with the bot's token) against the store and queues what it missed;
        # starts a batch for a branch whose queue has none running (taking its branch lock).
        "watcher": Access(
            table=TableAccess.READ_WRITE,
            bot_token=True,
            project_queues=QueueAccess.SEND,
            start_workflows=True,
        ),
        # Project configuration, priorities and grants are edited at run time through the
        # API, which then starts an idle queue; connecting a project asks GitLab with the
        # bot's token. Connecting a project needs what the CLI needs.
        "api": Access(
            table=TableAccess.READ_WRITE,
            bot_token=True,
            start_workflows=True,
            list_workflows=True,
            onboard_projects=True,
        ),
        # The merge workflow's steps (statemachines/merge_batch.asl.json). Every step but the
        # pipeline check records its progress in the batch record and the MRs' states.
        # Creates the batch record, takes the branch lock and moves the MRs it selects.
        "workflow-select": Access(table=TableAccess.READ_WRITE),
        # Talks to GitLab's API and pushes the batch branch over HTTPS with the bot's token;
        # on a train it starts the next car, or cancels the cars behind (waking them).
        "workflow-build": Access(
            table=TableAccess.READ_WRITE,
            bot_token=True,
            start_workflows=True,
            resume_workflows=True,
        ),
        # Stores the task token of the execution that waits for a pipeline, asks GitLab
        # whether the pipeline already finished, and then resumes that execution itself.
        "workflow-wait-pipeline": Access(
            table=TableAccess.READ_WRITE, bot_token=True, resume_workflows=True
        ),
        # Stores the task token of a green train car that waits for the car ahead, and
        # resumes it itself when that car has ended already.
        "workflow-wait-car-ahead": Access(table=TableAccess.READ_WRITE, resume_workflows=True),
        # Asks GitLab about a pipeline whose webhook has not come; writes nothing.
        "workflow-check-pipeline": Access(table=TableAccess.READ, bot_token=True),
        # On a train these wake the cars they cancel, or the car waiting behind a landing.
        "workflow-verdict": Access(
            table=TableAccess.READ_WRITE, bot_token=True, resume_workflows=True
        ),
        "workflow-land": Access(
            table=TableAccess.READ_WRITE, bot_token=True, resume_workflows=True
        ),
        "workflow-serial": Access(table=TableAccess.READ_WRITE, bot_token=True),
        # Comments on the MRs, releases the branch lock and starts the branch's next batch.
        "workflow-release": Access(
            table=TableAccess.READ_WRITE,
            bot_token=True,
            start_workflows=True,
            resume_workflows=True,
        ),
        # Fed from the table's stream (infra.constructs.live), it only adds the event log's
        # entries, conditionally; its own connections table is granted there.
        "updates": Access(table=TableAccess.APPEND),
        # Reads a connecting user's grants; its connections table is granted in live.
        "websocket": Access(table=TableAccess.READ),
        # Posts alarms to chat: reads only the chat webhook secret, which exists only when a
        # webhook is configured and grants the function itself (infra.constructs.ops).
        "notify": Access(table=TableAccess.NONE),
        # Rotates the bot's token in GitLab with the token itself, and in the secret.
        "rotate-bot-token": Access(table=TableAccess.NONE, bot_token=True, rotate_bot_token=True),
    }
)


def lambda_runtime(name: str) -> lambda_.Runtime:
    for runtime in lambda_.Runtime.ALL:
        if runtime.name == name:
            return runtime
    raise ValueError(f"aws-cdk-lib does not know the Lambda runtime {name!r}")


def function_access(key: str) -> Access:
    try:
        return FUNCTION_ACCESS[key]
    except KeyError:
        raise KeyError(
            f"function {key!r} has no entry in infra.constructs.functions.FUNCTION_ACCESS; "
            "add one naming what it may read and write"
        ) from None


class Functions(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        storage: Storage,
        gitlab_url: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self._names = names
        self._storage = storage
        self.runtime = lambda_runtime(PYTHON_RUNTIME)
        self.layer = lambda_.LayerVersion(
            self,
            "CoreLayer",
            description="merge_assist and its runtime dependencies",
            code=lambda_.Code.from_asset(
                str(CORE_PACKAGE_DIR.parent),
                # The bundle also depends on pyproject.toml, which is outside the source
                # directory, so only a hash of the output notices a dependency change.
                asset_hash_type=AssetHashType.OUTPUT,
                bundling=BundlingOptions(
                    image=self.runtime.bundling_image,
                    local=CoreLayerBundling(
                        pyproject=PYPROJECT,
                        core_package=CORE_PACKAGE_DIR,
                        runtime_name=self.runtime.name,
                    ),
                ),
            ),
            compatible_runtimes=[self.runtime],
            compatible_architectures=[lambda_.Architecture.X86_64],
        )
        self._code: dict[str, lambda_.Code] = {}
        environment = function_environment(
            names,
            gitlab_url=gitlab_url,
            state_machine_arn=named_state_machine_arn(self, names, MERGE_WORKFLOW),
        )
        self.functions: dict[str, lambda_.Function] = {
            spec.key: self._function(spec, names.function(spec.key), environment)
            for spec in FUNCTIONS
        }

    def _package_code(self, package: str) -> lambda_.Code:
        """One asset per package under functions/, shared by the functions it holds."""
        if package not in self._code:
            self._code[package] = lambda_.Code.from_asset(
                str(FUNCTIONS_DIR / package),
                # functions/__init__.py is copied in from outside the source directory.
                asset_hash_type=AssetHashType.OUTPUT,
                bundling=BundlingOptions(
                    image=self.runtime.bundling_image,
                    local=FunctionCodeBundling(functions_dir=FUNCTIONS_DIR, package=package),
                ),
            )
        return self._code[package]

    def _function(
        self, spec: FunctionSpec, function_name: str, environment: Mapping[str, str]
    ) -> lambda_.Function:
        access = function_access(spec.key)
        construct_id = pascal_case(spec.key)
        log_group = logs.LogGroup(
            self,
            f"{construct_id}Logs",
            log_group_name=f"/aws/lambda/{function_name}",
            retention=LOG_RETENTION,
            # A named log group left behind by a deleted stack makes the next deployment
            # with the same prefix fail; the durable record is the table's audit trail.
            removal_policy=RemovalPolicy.DESTROY,
        )
        # An own role instead of the default one, whose AWSLambdaBasicExecutionRole managed
        # policy may write to every log group in the account.
        role = iam.Role(
            self,
            f"{construct_id}Role",
            assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
            description=f"Runs the Lambda function {function_name}",
        )
        log_group.grant_write(role)
        function = lambda_.Function(
            self,
            construct_id,
            function_name=function_name,
            description=spec.description,
            runtime=self.runtime,
            architecture=lambda_.Architecture.X86_64,
            handler=spec.handler,
            code=self._package_code(handler_package(spec.handler)),
            layers=[self.layer],
            memory_size=spec.memory_mb,
            ephemeral_storage_size=Size.mebibytes(spec.ephemeral_storage_mb),
            timeout=Duration.seconds(spec.timeout_seconds),
            environment=dict(environment),
            tracing=lambda_.Tracing.ACTIVE,
            role=role,
            log_group=log_group,
            logging_format=lambda_.LoggingFormat.JSON,
        )
        reason = (
            "X-Ray's PutTraceSegments and PutTelemetryRecords do not support resource-level "
            "permissions, so active tracing needs Resource '*' for them."
        )
        if spec.key in {subscription.function for subscription in STREAM_SUBSCRIPTIONS}:
            reason += (
                " So does dynamodb:ListStreams, which the event source mapping from the "
                "table's stream polls with (infra.constructs.live)."
            )
        acknowledge(role, "AwsSolutions-IAM5", reason, findings=["Resource::*"])
        self._grant(function, role, access)
        return function

    def _grant(self, function: lambda_.Function, role: iam.Role, access: Access) -> None:
        table = self._storage.table
        if access.table is TableAccess.READ:
            table.grant_read_data(function)
        elif access.table is TableAccess.READ_WRITE:
            table.grant_read_write_data(function)
        elif access.table is TableAccess.APPEND:
            table.grant(function, "dynamodb:PutItem")
        if access.table is not TableAccess.NONE:
            acknowledge(
                role,
                "AwsSolutions-IAM5",
                "The grant covers the indexes of the single Merge Assist table only; "
                "queries by status and by project go through gsi1, and the index name is "
                "the only part left open.",
                findings=[arn_finding(table, "/index/*")],
            )
        if access.bot_token:
            self._storage.bot_token.grant_read(function)
        if access.rotate_bot_token:
            self._rotate_bot_token_with(function)
        if access.project_secrets:
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=["secretsmanager:GetSecretValue"],
                    resources=[project_secrets_arn(self, self._names)],
                )
            )
            acknowledge(
                role,
                "AwsSolutions-IAM5",
                "Webhook secrets are created per project at run time, when the project is "
                "connected, under this deployment's prefix; the grant is limited to that "
                "prefix and the bot token secret lies outside it.",
                findings=[project_secrets_finding(self._names)],
            )
        if access.resume_workflows:
            # Named, not referenced: the state machines are built from these functions.
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=list(RESUME_ACTIONS),
                    resources=[
                        named_state_machine_arn(self, self._names, machine.key)
                        for machine in STATE_MACHINES
                    ],
                )
            )
        if access.start_workflows:
            # Named as well, for the same reason.
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=list(START_ACTIONS),
                    resources=[named_state_machine_arn(self, self._names, MERGE_WORKFLOW)],
                )
            )
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=list(DESCRIBE_EXECUTION_ACTIONS),
                    resources=[named_executions_arn(self, self._names, MERGE_WORKFLOW)],
                )
            )
            acknowledge(
                role,
                "AwsSolutions-IAM5",
                "Executions are named after their batch at run time, so DescribeExecution "
                "can name the merge workflow's state machine but not the execution; only "
                "the execution name after that state machine's name is left open.",
                findings=[executions_finding(self._names, MERGE_WORKFLOW)],
            )
        if access.list_workflows:
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=list(LIST_EXECUTIONS_ACTIONS),
                    resources=[named_state_machine_arn(self, self._names, MERGE_WORKFLOW)],
                )
            )
        queue_actions = QUEUE_ACTIONS[access.project_queues]
        if queue_actions:
            function.add_to_role_policy(
                iam.PolicyStatement(
                    actions=list(queue_actions),
                    resources=[project_queues_arn(self, self._names)],
                )
            )
            acknowledge(
                role,
                "AwsSolutions-IAM5",
                "Project queues and their dead-letter queues are created per project at run "
                "time, when the project is connected, under this deployment's queue name "
                "prefix; only the project id after the prefix is left open.",
                findings=[project_queues_finding(self._names)],
            )

    def _rotate_bot_token_with(self, function: lambda_.Function) -> None:
        """Grants and the invoke permission go to whichever secret is in use, so an admin
        who brought a secret of their own can turn its rotation on (docs/runbook.md); the
        schedule exists only on the secret the stack creates."""
        secret = self._storage.bot_token
        function.add_to_role_policy(
            iam.PolicyStatement(actions=list(ROTATE_SECRET_ACTIONS), resources=[secret.secret_arn])
        )
        function.add_permission(
            "SecretsManagerInvoke",
            principal=iam.ServicePrincipal("secretsmanager.amazonaws.com"),
            source_arn=secret.secret_arn,
            source_account=Aws.ACCOUNT_ID,
        )
        schedule = secretsmanager.CfnRotationSchedule(
            self,
            "BotTokenRotation",
            secret_id=self._storage.created_bot_token.secret_arn,
            rotation_lambda_arn=function.function_arn,
            rotation_rules=secretsmanager.CfnRotationSchedule.RotationRulesProperty(
                automatically_after_days=BOT_TOKEN_ROTATION_DAYS
            ),
            # The secret holds a placeholder until the operator stores the first token: a
            # rotation at deploy time could only fail.
            rotate_immediately_on_update=False,
        )
        schedule.cfn_options.condition = self._storage.bot_token_created
        # Secrets Manager checks that it may invoke the function when the schedule is set.
        schedule.node.add_dependency(function)

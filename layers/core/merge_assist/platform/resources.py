"""The names of every AWS resource Merge Assist creates, shared by ``infra/`` and ``local/``.

The CDK app and the embedded local stack both build their resources from this module, so a
name used by a handler can never differ between the cloud and a laptop.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

DEFAULT_PREFIX = "merge-assist"
PYTHON_RUNTIME = "python3.14"


@dataclass(frozen=True)
class FunctionSpec:
    """One Lambda function: its key (the suffix of its name) and the handler it runs."""

    key: str
    handler: str
    description: str
    memory_mb: int = 512
    timeout_seconds: int = 30
    # /tmp; the workflow's git work keeps a project's repository there while warm.
    ephemeral_storage_mb: int = 512


@dataclass(frozen=True)
class HttpRoute:
    """One route of the HTTP API; ``authorized`` routes need a Cognito access token."""

    method: str
    path: str
    function: str
    authorized: bool


@dataclass(frozen=True)
class StateMachineSpec:
    """An ASL file in ``statemachines/`` and which function fills each ``${Placeholder}``."""

    key: str
    definition_file: str
    function_placeholders: Mapping[str, str] = field(default_factory=dict)


FUNCTIONS: tuple[FunctionSpec, ...] = (
    FunctionSpec(
        key="webhook",
        handler="functions.webhook.app.handler",
        description="Receives GitLab webhooks and queues them per project",
        # GitLab.com gives a hook 10 s; the receiver answers in milliseconds.
        timeout_seconds=10,
        memory_mb=1024,
    ),
    FunctionSpec(
        key="dispatcher",
        handler="functions.dispatcher.app.handler",
        description="Applies queued events to the merge requests' state",
        timeout_seconds=60,
    ),
    FunctionSpec(
        key="watcher",
        handler="functions.watcher.app.handler",
        description="Reconciles the store with GitLab, so a lost webhook only delays",
        timeout_seconds=300,
    ),
    FunctionSpec(
        key="api",
        handler="functions.api.app.handler",
        description="Dashboard and admin REST API",
        timeout_seconds=29,
    ),
    FunctionSpec(
        key="workflow-select",
        handler="functions.workflow.select.handler",
        description="Selects the merge requests of the next batch from a queue",
        timeout_seconds=60,
    ),
    FunctionSpec(
        key="workflow-build",
        ephemeral_storage_mb=4096,
        handler="functions.workflow.build.handler",
        description="Builds the batch commit with git and pushes it to the batch branch",
        # Fetching and merging a large repository takes memory and time; /tmp keeps it.
        memory_mb=2048,
        timeout_seconds=900,
    ),
    FunctionSpec(
        key="workflow-wait-pipeline",
        handler="functions.workflow.wait_pipeline.handler",
        description="Registers a workflow execution as waiting for a pipeline",
        timeout_seconds=30,
    ),
    FunctionSpec(
        key="workflow-wait-car-ahead",
        handler="functions.workflow.wait_car_ahead.handler",
        description="Registers a green train car as waiting for the car ahead to land",
        timeout_seconds=30,
    ),
    FunctionSpec(
        key="workflow-check-pipeline",
        handler="functions.workflow.check_pipeline.handler",
        description="Asks GitLab for a pipeline whose webhook has not come",
        timeout_seconds=60,
    ),
    FunctionSpec(
        key="workflow-verdict",
        handler="functions.workflow.verdict.handler",
        description="Decides what a batch pipeline means: land, bisect or reject",
        timeout_seconds=300,
    ),
    FunctionSpec(
        key="workflow-land",
        ephemeral_storage_mb=4096,
        handler="functions.workflow.land.handler",
        description="Lands a tested batch on its target branch",
        memory_mb=2048,
        timeout_seconds=900,
    ),
    FunctionSpec(
        key="workflow-serial",
        handler="functions.workflow.serial.handler",
        description="Serial strategy: rebases a merge request through GitLab",
        timeout_seconds=60,
    ),
    FunctionSpec(
        key="workflow-release",
        handler="functions.workflow.release.handler",
        description="Ends a batch, releases its branch and starts the next one",
        timeout_seconds=120,
    ),
    FunctionSpec(
        key="updates",
        handler="functions.updates.app.handler",
        description="Turns the table's changes into the event log and the dashboard's live updates",
        timeout_seconds=60,
    ),
    FunctionSpec(
        key="websocket",
        handler="functions.websocket.app.handler",
        description="Opens and closes the dashboard's live-update WebSocket connections",
        # API Gateway gives a WebSocket integration 29 s.
        timeout_seconds=10,
    ),
    FunctionSpec(
        key="notify",
        handler="functions.notify.app.handler",
        description="Posts CloudWatch alarms from the alarm topic to Slack or Microsoft Teams",
        memory_mb=256,
        timeout_seconds=30,
    ),
    FunctionSpec(
        key="rotate-bot-token",
        handler="functions.rotate_bot_token.app.handler",
        description="Rotates the GitLab bot token in its secret for Secrets Manager",
        memory_mb=256,
        timeout_seconds=60,
    ),
)

ROUTES: tuple[HttpRoute, ...] = (
    # GitLab authenticates with the project's secret token, checked by the handler.
    HttpRoute(method="POST", path="/webhook/gitlab", function="webhook", authorized=False),
    # The API's description is public, as a schema registry or a client generator needs it.
    HttpRoute(method="GET", path="/api/v1/openapi.json", function="api", authorized=False),
    HttpRoute(method="ANY", path="/api/v1/{proxy+}", function="api", authorized=True),
)

STATE_MACHINES: tuple[StateMachineSpec, ...] = (
    StateMachineSpec(
        key="merge-batch",
        definition_file="merge_batch.asl.json",
        function_placeholders=MappingProxyType(
            {
                "SelectBatchFunctionArn": "workflow-select",
                "BuildBatchFunctionArn": "workflow-build",
                "WaitForPipelineFunctionArn": "workflow-wait-pipeline",
                "WaitForCarAheadFunctionArn": "workflow-wait-car-ahead",
                "CheckPipelineFunctionArn": "workflow-check-pipeline",
                "VerdictFunctionArn": "workflow-verdict",
                "LandBatchFunctionArn": "workflow-land",
                "SerialFunctionArn": "workflow-serial",
                "ReleaseBatchFunctionArn": "workflow-release",
            }
        ),
    ),
)

# How often the watcher compares GitLab with the store.
WATCHER_SCHEDULE_MINUTES = 5

# Secrets Manager rotates the bot token this often when the stack manages its secret. Each
# new token lives longer than that, so a failed rotation leaves two weeks to fix it before
# the token in use expires.
BOT_TOKEN_ROTATION_DAYS = 30
BOT_TOKEN_LIFETIME_DAYS = 45


@dataclass(frozen=True)
class StreamSubscription:
    """A function fed from the table's change stream (the cloud's event source mapping and
    the local stream poller are both built from it).

    Records are delivered when their new image is an item of one of ``kinds``, or when an
    item of one of ``removed_kinds`` is deleted; the rest never reach the function. TTL
    deletions of finished MRs, batches and old audit entries are many and of no interest,
    which is why removals are filtered apart."""

    function: str
    kinds: tuple[str, ...]
    removed_kinds: tuple[str, ...] = ()
    batch_size: int = 100
    # Retries of a failing batch before it is reported to the failure queue and skipped; a
    # stuck record must not hold up the dashboard and the event log behind it forever.
    retry_attempts: int = 5
    max_record_age_seconds: int = 3600

    def filter_patterns(self) -> list[dict[str, Any]]:
        """Lambda event filter patterns (any one matching lets a record through), matched
        against the record as the stream has it (DynamoDB JSON)."""
        patterns: list[dict[str, Any]] = [
            {"dynamodb": {"NewImage": {"kind": {"S": list(self.kinds)}}}}
        ]
        if self.removed_kinds:
            patterns.append(
                {
                    "eventName": ["REMOVE"],
                    "dynamodb": {"OldImage": {"kind": {"S": list(self.removed_kinds)}}},
                }
            )
        return patterns


# The table's items the dashboard shows live, and whose changes the event log records.
LIVE_KINDS: tuple[str, ...] = ("project", "merge_request", "batch", "audit")

STREAM_SUBSCRIPTIONS: tuple[StreamSubscription, ...] = (
    StreamSubscription(function="updates", kinds=LIVE_KINDS, removed_kinds=("project",)),
)

# Where the dashboard opens its live-update WebSocket: the local stack serves this path, and
# in the cloud a custom domain's API mapping (or the dashboard's CloudFront) puts the stage
# there, since API Gateway refuses any path after a WebSocket stage's name.
WEBSOCKET_PATH = "/ws/updates"
WEBSOCKET_STAGE = "updates"
WEBSOCKET_ROUTE_SELECTION = "$request.body.action"

USER_GROUPS: tuple[str, ...] = ("admin", "project_owner", "priority_manager", "viewer")


def function_spec(key: str) -> FunctionSpec:
    for spec in FUNCTIONS:
        if spec.key == key:
            return spec
    raise KeyError(f"no function {key!r} in merge_assist.platform.resources.FUNCTIONS")


@dataclass(frozen=True)
class ResourceNames:
    """Physical names derived from one prefix (one deployment = one prefix)."""

    prefix: str = DEFAULT_PREFIX

    @property
    def table(self) -> str:
        return f"{self.prefix}-state"

    @property
    def bot_token_secret(self) -> str:
        return f"{self.prefix}/gitlab-bot-token"

    @property
    def project_queue_prefix(self) -> str:
        """Every project queue's name starts with this; IAM for onboarding is scoped to it."""
        return f"{self.prefix}-project-"

    @property
    def user_pool(self) -> str:
        return f"{self.prefix}-users"

    @property
    def user_pool_client(self) -> str:
        return f"{self.prefix}-dashboard"

    @property
    def http_api(self) -> str:
        return f"{self.prefix}-http"

    @property
    def connections_table(self) -> str:
        """The dashboard's open WebSocket connections (apart from the state table, whose
        stream they are fed from)."""
        return f"{self.prefix}-connections"

    @property
    def websocket_api(self) -> str:
        return f"{self.prefix}-ws"

    def stream_failures_queue(self, function_key: str) -> str:
        """Where a stream subscription reports the batches it gave up on."""
        return f"{self.prefix}-{function_spec(function_key).key}-stream-failures"

    def function(self, key: str) -> str:
        return f"{self.prefix}-{function_spec(key).key}"

    def state_machine(self, key: str) -> str:
        return f"{self.prefix}-{key}"

    @property
    def watcher_schedule(self) -> str:
        """The EventBridge rule that runs the watcher every ``WATCHER_SCHEDULE_MINUTES``."""
        return f"{self.prefix}-watcher"

    def webhook_secret(self, project_id: int) -> str:
        return f"{self.prefix}/projects/{project_id}/webhook-secret"

    def project_queue(self, project_id: int) -> str:
        return f"{self.project_queue_prefix}{project_id}.fifo"

    def project_dead_letter_queue(self, project_id: int) -> str:
        return f"{self.project_queue_prefix}{project_id}-dlq.fifo"


# Environment variables every function receives; ``merge_assist.platform.settings`` reads them.
ENV_PREFIX = "MERGE_ASSIST_"


# The merge workflow's state machine; functions start its executions.
MERGE_WORKFLOW = "merge-batch"


def state_machine_arn(names: ResourceNames, key: str, *, region: str, account: str) -> str:
    """Known before the state machine exists, so functions that its definition names can
    still be told where it is without a circular reference."""
    return f"arn:aws:states:{region}:{account}:stateMachine:{names.state_machine(key)}"


def function_environment(
    names: ResourceNames,
    *,
    gitlab_url: str,
    state_machine_arn: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> dict[str, str]:
    env = {
        f"{ENV_PREFIX}RESOURCE_PREFIX": names.prefix,
        f"{ENV_PREFIX}TABLE_NAME": names.table,
        f"{ENV_PREFIX}BOT_TOKEN_SECRET": names.bot_token_secret,
        f"{ENV_PREFIX}GITLAB_URL": gitlab_url,
        "POWERTOOLS_SERVICE_NAME": "merge-assist",
        "POWERTOOLS_METRICS_NAMESPACE": "MergeAssist",
    }
    if state_machine_arn is not None:
        env[f"{ENV_PREFIX}STATE_MACHINE_ARN"] = state_machine_arn
    env.update(extra or {})
    return env


@dataclass(frozen=True)
class TableSchema:
    """The single table's key schema; items and their keys are described in
    ``merge_assist.adapters.dynamodb_store``."""

    partition_key: str = "pk"
    sort_key: str = "sk"
    index_name: str = "gsi1"
    index_partition_key: str = "gsi1pk"
    index_sort_key: str = "gsi1sk"
    ttl_attribute: str = "expires_at"


TABLE = TableSchema()


@dataclass(frozen=True)
class ConnectionsSchema:
    """The connections table: one item per open WebSocket, gone by TTL when its token
    expires (see ``merge_assist.adapters.live``)."""

    partition_key: str = "connection_id"
    ttl_attribute: str = "expires_at"


CONNECTIONS_TABLE = ConnectionsSchema()


# -- Operations: alarms, their topic and the dashboard (infra.constructs.ops) --------------


def alarm_name(names: ResourceNames, slug: str) -> str:
    """A CloudWatch alarm of the deployment; ``slug`` is its heading in docs/runbook.md."""
    return f"{names.prefix}-{slug}"


def alarm_topic_name(names: ResourceNames) -> str:
    """The SNS topic every alarm notifies (email, and the ``notify`` function for chat)."""
    return f"{names.prefix}-alarms"


def dashboard_name(names: ResourceNames) -> str:
    return names.prefix


def chat_webhook_secret_name(names: ResourceNames) -> str:
    """The Slack or Teams webhook URL the ``notify`` function posts alarms to."""
    return f"{names.prefix}/chat-webhook-url"


# Alarms on a connected project's own queues, created when it is connected and removed with
# it (CloudWatch cannot alarm on "every queue with this prefix"); slugs are runbook headings.
PROJECT_DEAD_LETTERS_ALARM = "project-dead-letters"
PROJECT_QUEUE_AGE_ALARM = "project-queue-age"
PROJECT_ALARM_SLUGS: tuple[str, ...] = (PROJECT_DEAD_LETTERS_ALARM, PROJECT_QUEUE_AGE_ALARM)
# Events wait this long in a project queue before its age alarm fires.
PROJECT_QUEUE_AGE_SECONDS = 15 * 60


def project_alarm_name(names: ResourceNames, slug: str, project_id: int) -> str:
    """Under the ``<prefix>-project-`` name prefix the onboarding policy is scoped to."""
    return f"{names.prefix}-{slug}-{project_id}"

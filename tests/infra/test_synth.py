"""The synthesized stack: built from ``merge_assist.platform.resources``, clean under cdk-nag
and cfn-lint.

The app is synthesized once for the module, with asset bundling switched off (no pip download,
no file copies) and with the context of cdk.json, so the feature flags match ``cdk synth``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

import pytest
from aws_cdk.assertions import Match, Template
from cfnlint.api import lint
from cfnlint.config import ManualArgs
from cfnlint.helpers import REGIONS

from infra.app import (
    DEFAULT_DASHBOARD_URLS,
    STACK_ID,
    cdk_json_context,
    check_prefix,
    context_list,
    create_app,
)
from infra.constructs.api import THROTTLE_BURST, THROTTLE_RATE
from infra.constructs.functions import (
    FUNCTION_ACCESS,
    QUEUE_ACTIONS,
    RESUME_ACTIONS,
    TableAccess,
)
from infra.constructs.state_machine_arns import named_state_machine_arn
from infra.constructs.workflow import STATEMACHINES_DIR, check_placeholders
from infra.nag import MIN_REASON_WORDS
from infra.stack import MergeAssistStack
from local.asl import placeholders, render
from merge_assist.platform.resources import (
    DEFAULT_PREFIX,
    ENV_PREFIX,
    FUNCTIONS,
    MERGE_WORKFLOW,
    PYTHON_RUNTIME,
    ROUTES,
    STATE_MACHINES,
    STREAM_SUBSCRIPTIONS,
    TABLE,
    USER_GROUPS,
    WATCHER_SCHEDULE_MINUTES,
    FunctionSpec,
    HttpRoute,
    ResourceNames,
    StateMachineSpec,
    function_environment,
    state_machine_arn,
)

pytestmark = pytest.mark.infra

NAMES = ResourceNames(DEFAULT_PREFIX)
GITLAB_URL_PARAMETER = {"Ref": "GitLabUrl"}

# The stack is built for the aws partition; China, GovCloud, the ISO and sovereign-cloud
# partitions lack Cognito user pools or other services it needs.
COMMERCIAL_REGIONS = [
    region
    for region in REGIONS
    if not region.startswith(("cn-", "us-gov-", "us-iso", "eu-isoe-", "eusc-"))
]
# W3005: CDK renders a DependsOn on a role that a GetAtt already depends on. It is redundant,
# not wrong, and comes from aws-cdk-lib, not from this app.
CFN_LINT_ACCEPTED = frozenset({"W3005"})

WRITE_ACTIONS = frozenset({"dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"})


def _arn(service: str, resource: str) -> str:
    """An ARN in the stack's own partition, region and account, as :func:`_text` renders it."""
    return f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{resource}"


# What connecting a project creates at run time (merge_assist.adapters.project_infra) is known
# to IAM only by these name patterns.
PROJECT_QUEUES = _arn("sqs", f"{DEFAULT_PREFIX}-project-*")
PROJECT_SECRETS = _arn("secretsmanager", f"secret:{DEFAULT_PREFIX}/projects/*")
EVENT_SOURCE_MAPPINGS = _arn("lambda", "event-source-mapping:*")
ONBOARDING_POLICY_NAME = f"{DEFAULT_PREFIX}-project-onboarding"
# Active tracing needs these on Resource "*"; nothing else a function does may.
XRAY_ACTIONS = frozenset({"xray:PutTraceSegments", "xray:PutTelemetryRecords"})
# Functions fed from the table's stream.
STREAM_FUNCTIONS = frozenset(subscription.function for subscription in STREAM_SUBSCRIPTIONS)

# The merge workflow's state machine, as the functions know it: by name, never by a reference
# to the StateMachine resource, whose definition names the functions (a dependency cycle).
MERGE_BATCH = NAMES.state_machine(MERGE_WORKFLOW)
MERGE_BATCH_ARN = _arn("states", f"stateMachine:{MERGE_BATCH}")
MERGE_BATCH_EXECUTIONS = _arn("states", f"execution:{MERGE_BATCH}:*")
# Who starts a batch: the dispatcher when an MR is queued, the watcher for one it missed, and
# the release step for the branch's next batch, the build step for a train's next car.
# Nothing else may start one.
WORKFLOW_STARTERS = frozenset(
    {"dispatcher", "watcher", "workflow-release", "workflow-build", "api"}
)
# Who completes a wait task: the dispatcher on the pipeline webhook, each wait step itself
# when what it waits for has happened already, and on a train the steps that cancel the
# cars behind a car (waking them) or land the car that the one behind waits for.
WORKFLOW_RESUMERS = frozenset(
    {
        "dispatcher",
        "workflow-wait-pipeline",
        "workflow-wait-car-ahead",
        "workflow-build",
        "workflow-verdict",
        "workflow-land",
        "workflow-release",
    }
)

# (action, resource, condition) with intrinsics rendered by _text; "" for no condition.
Grant = tuple[str, str, str]


def _text(value: Any) -> str:
    """A value as CloudFormation builds it, ``${...}`` standing for what it fills in."""
    if isinstance(value, str):
        return value
    if "Ref" in value:
        return f"${{{value['Ref']}}}"
    if "Fn::GetAtt" in value:
        logical_id, attribute = value["Fn::GetAtt"]
        return f"${{{logical_id}.{attribute}}}"
    if "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return str(separator).join(_text(part) for part in parts)
    if "Fn::Sub" in value and isinstance(value["Fn::Sub"], str):
        return str(value["Fn::Sub"])
    if "Fn::If" in value:
        # Every Fn::If of the stack chooses on a condition that holds with the default deploy
        # parameters (test_deploy checks that, and the other branch): render that deployment.
        _, chosen, _ = value["Fn::If"]
        return _text(chosen)
    raise AssertionError(f"no rendering for {value!r}")


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def _condition_text(condition: dict[str, dict[str, Any]]) -> str:
    return json.dumps(
        {
            operator: {key: _text(value) for key, value in keys.items()}
            for operator, keys in condition.items()
        },
        sort_keys=True,
    )


def _grants(statements: Iterable[dict[str, Any]]) -> set[Grant]:
    grants: set[Grant] = set()
    for statement in statements:
        assert statement["Effect"] == "Allow", statement
        condition = _condition_text(statement["Condition"]) if "Condition" in statement else ""
        for action in _listed(statement["Action"]):
            for resource in _listed(statement["Resource"]):
                grants.add((action, _text(resource), condition))
    return grants


@dataclass(frozen=True)
class Synthesized:
    stack: MergeAssistStack
    template: Template
    assembly_dir: Path

    @property
    def resources(self) -> dict[str, Any]:
        resources: dict[str, Any] = self.template.to_json()["Resources"]
        return resources

    def only(self, resource_type: str, properties: dict[str, Any] | None = None) -> str:
        """The logical id of the one resource of a type (with these properties)."""
        found = self.template.find_resources(
            resource_type, {"Properties": properties} if properties else None
        )
        assert len(found) == 1, f"expected one {resource_type} {properties or ''}, got {found}"
        return next(iter(found))

    def function_id(self, key: str) -> str:
        return self.only("AWS::Lambda::Function", {"FunctionName": NAMES.function(key)})


@pytest.fixture(scope="module")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    context = cdk_json_context() | {
        "aws:cdk:bundling-stacks": [],
        # Findings are reported by test_cdk_nag_finds_nothing, not raised by this fixture.
        "@aws-cdk/core:failSynthOnValidationErrors": False,
    }
    app, stack = create_app(context, outdir=str(tmp_path_factory.mktemp("cdk.out")))
    assembly = app.synth()
    # Template.from_stack reuses the assembly the app has synthesized.
    return Synthesized(stack, Template.from_stack(stack), Path(assembly.directory))


def test_stack_is_named_by_the_prefix(synthesized: Synthesized) -> None:
    assert synthesized.stack.node.id == STACK_ID
    assert synthesized.stack.stack_name == DEFAULT_PREFIX


def test_gitlab_url_is_a_deploy_parameter(synthesized: Synthesized) -> None:
    synthesized.template.has_parameter(
        "GitLabUrl", {"Type": "String", "Default": "https://gitlab.com"}
    )


def test_table(synthesized: Synthesized) -> None:
    synthesized.only("AWS::DynamoDB::Table", {"TableName": NAMES.table})
    synthesized.template.has_resource(
        "AWS::DynamoDB::Table",
        {
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "TableName": NAMES.table,
                "KeySchema": [
                    {"AttributeName": TABLE.partition_key, "KeyType": "HASH"},
                    {"AttributeName": TABLE.sort_key, "KeyType": "RANGE"},
                ],
                "AttributeDefinitions": Match.array_with(
                    [
                        {"AttributeName": name, "AttributeType": "S"}
                        for name in (
                            TABLE.partition_key,
                            TABLE.sort_key,
                            TABLE.index_partition_key,
                            TABLE.index_sort_key,
                        )
                    ]
                ),
                "GlobalSecondaryIndexes": [
                    {
                        "IndexName": TABLE.index_name,
                        "KeySchema": [
                            {"AttributeName": TABLE.index_partition_key, "KeyType": "HASH"},
                            {"AttributeName": TABLE.index_sort_key, "KeyType": "RANGE"},
                        ],
                        "Projection": {"ProjectionType": "ALL"},
                    }
                ],
                "BillingMode": "PAY_PER_REQUEST",
                "TimeToLiveSpecification": {
                    "AttributeName": TABLE.ttl_attribute,
                    "Enabled": True,
                },
                "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
                "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"},
            },
        },
    )


def test_bot_token_secret(synthesized: Synthesized) -> None:
    synthesized.template.has_resource(
        "AWS::SecretsManager::Secret",
        {"DeletionPolicy": "Retain", "Properties": {"Name": NAMES.bot_token_secret}},
    )


def test_core_layer(synthesized: Synthesized) -> None:
    synthesized.template.has_resource_properties(
        "AWS::Lambda::LayerVersion",
        {"CompatibleRuntimes": [PYTHON_RUNTIME], "CompatibleArchitectures": ["x86_64"]},
    )


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.key)
def test_function(synthesized: Synthesized, spec: FunctionSpec) -> None:
    layer = synthesized.only("AWS::Lambda::LayerVersion", {"CompatibleRuntimes": [PYTHON_RUNTIME]})
    function = synthesized.resources[synthesized.function_id(spec.key)]["Properties"]
    variables = function["Environment"]["Variables"]

    assert function["Handler"] == spec.handler
    assert function["Runtime"] == PYTHON_RUNTIME
    assert function["Architectures"] == ["x86_64"]
    assert function["Layers"] == [{"Ref": layer}]
    shared = function_environment(
        NAMES, gitlab_url="${GitLabUrl}", state_machine_arn=MERGE_BATCH_ARN
    )
    # What a construct adds for one function (its user pool, its WebSocket endpoint) is
    # asserted with that construct; here only that it is Merge Assist's own.
    assert {name: _text(variables.get(name, "<missing>")) for name in shared} == shared
    assert all(name.startswith(ENV_PREFIX) for name in variables.keys() - shared.keys())
    assert variables[f"{ENV_PREFIX}GITLAB_URL"] == GITLAB_URL_PARAMETER
    assert function["Environment"]["Variables"][f"{ENV_PREFIX}TABLE_NAME"] == NAMES.table
    assert function["MemorySize"] == spec.memory_mb
    assert function["Timeout"] == spec.timeout_seconds
    assert function["TracingConfig"] == {"Mode": "Active"}
    log_group = synthesized.resources[function["LoggingConfig"]["LogGroup"]["Ref"]]
    assert log_group["Properties"]["LogGroupName"] == f"/aws/lambda/{NAMES.function(spec.key)}"
    assert log_group["Properties"]["RetentionInDays"] > 0


# Functions CDK adds on its own, each looked at: the dashboard's deployment (copies the built
# files into the site bucket at deploy time) and the site buckets' emptying on stack deletion.
CDK_HANDLERS = ("CustomCDKBucketDeployment", "CustomS3AutoDeleteObjectsCustomResourceProvider")


def app_functions(resources: Mapping[str, Any]) -> dict[str, Any]:
    """The stack's own functions (every one named from ``FUNCTIONS``), by logical id."""
    return {
        logical_id: resource
        for logical_id, resource in resources.items()
        if resource["Type"] == "AWS::Lambda::Function" and not logical_id.startswith(CDK_HANDLERS)
    }


def test_the_stack_runs_exactly_the_functions_resources_lists(synthesized: Synthesized) -> None:
    functions = synthesized.template.find_resources("AWS::Lambda::Function")
    names = sorted(
        function["Properties"].get("FunctionName")
        for function in app_functions(synthesized.resources).values()
    )
    others = set(functions) - set(app_functions(synthesized.resources))

    assert names == sorted(NAMES.function(spec.key) for spec in FUNCTIONS)
    # A new function CDK adds (a custom resource's) gets a role outside FUNCTION_ACCESS: it
    # must show up here and be looked at before it joins CDK_HANDLERS.
    assert {next(p for p in CDK_HANDLERS if i.startswith(p)) for i in others} == set(CDK_HANDLERS)
    assert len(others) == len(CDK_HANDLERS)


def _references(value: Any) -> set[str]:
    """Every logical id or pseudo parameter a template value refers to."""
    if isinstance(value, dict):
        found = {value["Ref"]} if "Ref" in value else set()
        if "Fn::GetAtt" in value:
            found.add(value["Fn::GetAtt"][0])
        return found | {ref for item in value.values() for ref in _references(item)}
    if isinstance(value, list):
        return {ref for item in value for ref in _references(item)}
    return set()


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.key)
def test_function_is_told_the_merge_workflow_by_name(
    synthesized: Synthesized, spec: FunctionSpec
) -> None:
    function = synthesized.resources[synthesized.function_id(spec.key)]["Properties"]
    value = function["Environment"]["Variables"][f"{ENV_PREFIX}STATE_MACHINE_ARN"]

    assert _text(value) == MERGE_BATCH_ARN
    # Built from the name and the stack's pseudo parameters only: no dependency on the state
    # machine, whose definition depends on this function.
    assert _references(value) <= {"AWS::Partition", "AWS::Region", "AWS::AccountId"}


def test_the_named_state_machine_arn_is_the_deployed_one(
    synthesized: Synthesized, state_machines: dict[str, dict[str, Any]]
) -> None:
    machine = state_machines[MERGE_WORKFLOW]

    assert machine["StateMachineName"] == MERGE_BATCH
    # The local stack builds the same ARN with merge_assist.platform.resources (aws partition only).
    assert MERGE_BATCH_ARN.replace("${AWS::Partition}", "aws") == state_machine_arn(
        NAMES, MERGE_WORKFLOW, region="${AWS::Region}", account="${AWS::AccountId}"
    )
    with pytest.raises(KeyError, match="no state machine"):
        named_state_machine_arn(synthesized.stack, NAMES, "no-such-workflow")


def _role_actions(synthesized: Synthesized, role_id: str) -> set[str]:
    actions: set[str] = set()
    for policy in synthesized.template.find_resources("AWS::IAM::Policy").values():
        if {"Ref": role_id} not in policy["Properties"]["Roles"]:
            continue
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            action = statement["Action"]
            actions.update([action] if isinstance(action, str) else action)
    return actions


def _stream_failures_queue(synthesized: Synthesized, key: str) -> str:
    return synthesized.only("AWS::SQS::Queue", {"QueueName": NAMES.stream_failures_queue(key)})


def _role_id(synthesized: Synthesized, key: str) -> str:
    function = synthesized.resources[synthesized.function_id(key)]["Properties"]
    role_id: str = function["Role"]["Fn::GetAtt"][0]
    return role_id


def _bot_token(synthesized: Synthesized) -> str:
    """The bot token secret's ARN as :func:`_text` renders it."""
    secret = synthesized.only("AWS::SecretsManager::Secret", {"Name": NAMES.bot_token_secret})
    return f"${{{secret}}}"


def _role_grants(synthesized: Synthesized, role_id: str) -> set[Grant]:
    return _grants(
        statement
        for policy in synthesized.template.find_resources("AWS::IAM::Policy").values()
        if {"Ref": role_id} in policy["Properties"]["Roles"]
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
    )


def test_every_function_has_its_access_decided() -> None:
    assert FUNCTION_ACCESS.keys() == {spec.key for spec in FUNCTIONS}


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.key)
def test_function_role_grants_what_the_access_table_says(
    synthesized: Synthesized, spec: FunctionSpec
) -> None:
    function = synthesized.resources[synthesized.function_id(spec.key)]["Properties"]
    role_id = function["Role"]["Fn::GetAtt"][0]
    role = synthesized.resources[role_id]["Properties"]
    access = FUNCTION_ACCESS[spec.key]
    grants = _role_grants(synthesized, role_id)
    table = f"${{{synthesized.only('AWS::DynamoDB::Table', {'TableName': NAMES.table})}.Arn}}"
    table_actions = {action for action, resource, _ in grants if resource == table}

    if access.onboard_projects:
        onboarding = synthesized.only(
            "AWS::IAM::ManagedPolicy", {"ManagedPolicyName": ONBOARDING_POLICY_NAME}
        )
        assert role["ManagedPolicyArns"] == [{"Ref": onboarding}]
    else:
        assert "ManagedPolicyArns" not in role
    assert ("dynamodb:Query" in table_actions) == (
        access.table in (TableAccess.READ, TableAccess.READ_WRITE)
    )
    assert bool(table_actions & WRITE_ACTIONS) == (
        access.table in (TableAccess.READ_WRITE, TableAccess.APPEND)
    )
    if access.table is TableAccess.APPEND:
        assert table_actions == {"dynamodb:PutItem"}

    expected_secrets = set()
    if access.bot_token:
        expected_secrets.add(_bot_token(synthesized))
    if access.project_secrets:
        expected_secrets.add(PROJECT_SECRETS)
    assert {
        resource for action, resource, _ in grants if action == "secretsmanager:GetSecretValue"
    } == expected_secrets
    # A stream's failure queue is the event source mapping's, asserted in test_live.
    failure_queue = (
        f"${{{_stream_failures_queue(synthesized, spec.key)}.Arn}}"
        if spec.key in STREAM_FUNCTIONS
        else None
    )
    assert {
        (action, resource)
        for action, resource, _ in grants
        if action.startswith("sqs:") and resource != failure_queue
    } == {(action, PROJECT_QUEUES) for action in QUEUE_ACTIONS[access.project_queues]}
    expected_states: set[tuple[str, str]] = set()
    if access.resume_workflows:
        expected_states |= {(action, MERGE_BATCH_ARN) for action in RESUME_ACTIONS}
    if access.start_workflows:
        expected_states |= {
            ("states:StartExecution", MERGE_BATCH_ARN),
            ("states:DescribeExecution", MERGE_BATCH_EXECUTIONS),
        }
    if access.list_workflows:
        expected_states.add(("states:ListExecutions", MERGE_BATCH_ARN))
    assert {
        (action, resource) for action, resource, _ in grants if action.startswith("states:")
    } == expected_states
    unscoped = XRAY_ACTIONS
    if spec.key in STREAM_FUNCTIONS:
        # The event source mapping polls the stream with the function's role.
        unscoped |= {"dynamodb:ListStreams"}
    assert {action for action, resource, _ in grants if resource == "*"} <= unscoped
    assert all(condition == "" for _, _, condition in grants)


def test_webhook_reads_project_secrets_but_not_the_bot_token(synthesized: Synthesized) -> None:
    grants = _role_grants(synthesized, _role_id(synthesized, "webhook"))
    bot_token = _bot_token(synthesized)

    assert ("secretsmanager:GetSecretValue", PROJECT_SECRETS, "") in grants
    assert not any(resource == bot_token for _, resource, _ in grants)
    assert ("sqs:SendMessage", PROJECT_QUEUES, "") in grants
    assert ("sqs:GetQueueUrl", PROJECT_QUEUES, "") in grants
    assert ("sqs:ReceiveMessage", PROJECT_QUEUES, "") not in grants
    # Powertools keeps its idempotency records in the table.
    assert "dynamodb:PutItem" in {action for action, _, _ in grants}


def test_dispatcher_consumes_the_project_queues(synthesized: Synthesized) -> None:
    grants = _role_grants(synthesized, _role_id(synthesized, "dispatcher"))

    for action in (
        "sqs:ReceiveMessage",
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:ChangeMessageVisibility",
    ):
        assert (action, PROJECT_QUEUES, "") in grants
    assert ("sqs:SendMessage", PROJECT_QUEUES, "") not in grants
    # It reads the bot token to ask GitLab about MRs, and no project's webhook secret.
    assert ("secretsmanager:GetSecretValue", _bot_token(synthesized), "") in grants
    assert ("secretsmanager:GetSecretValue", PROJECT_SECRETS, "") not in grants
    assert "dynamodb:PutItem" in {action for action, _, _ in grants}


def _states_grants(synthesized: Synthesized, key: str) -> set[tuple[str, str]]:
    return {
        (action, resource)
        for action, resource, _ in _role_grants(synthesized, _role_id(synthesized, key))
        if action.startswith("states:")
    }


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.key)
def test_only_the_starters_start_merge_workflow_executions(
    synthesized: Synthesized, spec: FunctionSpec
) -> None:
    grants = _states_grants(synthesized, spec.key)
    starts = {resource for action, resource in grants if action == "states:StartExecution"}
    describes = {resource for action, resource in grants if action == "states:DescribeExecution"}

    if spec.key in WORKFLOW_STARTERS:
        # Exactly the merge-batch state machine, and DescribeExecution on its executions only
        # (a retried start finds its execution by name).
        assert starts == {MERGE_BATCH_ARN}
        assert describes == {MERGE_BATCH_EXECUTIONS}
    else:
        assert starts == set()
        assert describes == set()


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.key)
def test_only_the_resumers_complete_waiting_workflow_tasks(
    synthesized: Synthesized, spec: FunctionSpec
) -> None:
    grants = _states_grants(synthesized, spec.key)
    resumes = {(action, resource) for action, resource in grants if "SendTask" in action}

    if spec.key in WORKFLOW_RESUMERS:
        assert resumes == {
            ("states:SendTaskSuccess", MERGE_BATCH_ARN),
            ("states:SendTaskFailure", MERGE_BATCH_ARN),
            ("states:SendTaskHeartbeat", MERGE_BATCH_ARN),
        }
    else:
        assert resumes == set()
    lists = {resource for action, resource in grants if action == "states:ListExecutions"}
    assert lists == ({MERGE_BATCH_ARN} if FUNCTION_ACCESS[spec.key].list_workflows else set())
    # Nothing else of Step Functions: no StopExecution, no state machine changes.
    assert {action for action, _ in grants} <= {
        "states:SendTaskSuccess",
        "states:SendTaskFailure",
        "states:SendTaskHeartbeat",
        "states:StartExecution",
        "states:DescribeExecution",
        "states:ListExecutions",
    }


def test_starting_executions_is_acknowledged_only_for_the_starters(
    synthesized: Synthesized,
) -> None:
    executions_finding = (
        "AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:states:<AWS::Region>:"
        f"<AWS::AccountId>:execution:{MERGE_BATCH}:*]"
    )
    policies = synthesized.template.find_resources("AWS::IAM::Policy")
    for spec in FUNCTIONS:
        role_id = _role_id(synthesized, spec.key)
        acknowledged = set().union(
            *(
                _acknowledged(policy)
                for policy in policies.values()
                if {"Ref": role_id} in policy["Properties"]["Roles"]
            )
        )
        assert (executions_finding in acknowledged) == (spec.key in WORKFLOW_STARTERS), spec.key


def test_watcher_uses_the_bot_token_and_sends_to_the_project_queues(
    synthesized: Synthesized,
) -> None:
    grants = _role_grants(synthesized, _role_id(synthesized, "watcher"))
    bot_token = _bot_token(synthesized)

    assert ("secretsmanager:GetSecretValue", bot_token, "") in grants
    assert ("secretsmanager:GetSecretValue", PROJECT_SECRETS, "") not in grants
    assert ("sqs:SendMessage", PROJECT_QUEUES, "") in grants
    # Starting a waiting queue's batch takes its branch lock: a conditional write.
    assert "dynamodb:PutItem" in {action for action, _, _ in grants}


def test_project_patterns_match_what_connecting_a_project_creates() -> None:
    queues = PROJECT_QUEUES.rsplit(":", 1)[1]
    secrets = PROJECT_SECRETS.split(":secret:", 1)[1]
    # Secrets Manager appends "-" and six random characters to a secret's name in its ARN.
    suffix = "-AbC123"

    assert fnmatchcase(NAMES.project_queue(42), queues)
    assert fnmatchcase(NAMES.project_dead_letter_queue(42), queues)
    assert fnmatchcase(NAMES.webhook_secret(42) + suffix, secrets)
    assert not fnmatchcase(NAMES.bot_token_secret + suffix, secrets)


@pytest.fixture(scope="module")
def state_machines(synthesized: Synthesized) -> dict[str, dict[str, Any]]:
    return {
        spec.key: synthesized.resources[
            synthesized.only(
                "AWS::StepFunctions::StateMachine",
                {"StateMachineName": NAMES.state_machine(spec.key)},
            )
        ]["Properties"]
        for spec in STATE_MACHINES
    }


@pytest.mark.parametrize("spec", STATE_MACHINES, ids=lambda spec: spec.key)
def test_state_machine(
    synthesized: Synthesized,
    state_machines: dict[str, dict[str, Any]],
    spec: StateMachineSpec,
) -> None:
    machine = state_machines[spec.key]

    assert machine["StateMachineType"] == "STANDARD"
    assert machine["LoggingConfiguration"]["Level"] == "ALL"
    assert machine["LoggingConfiguration"]["IncludeExecutionData"] is True
    assert machine["TracingConfiguration"] == {"Enabled": True}
    assert machine["DefinitionSubstitutions"] == {
        placeholder: {"Fn::GetAtt": [synthesized.function_id(key), "Arn"]}
        for placeholder, key in spec.function_placeholders.items()
    }
    role_id = machine["RoleArn"]["Fn::GetAtt"][0]
    # It invokes the functions its definition names, unqualified, and no other.
    lambda_grants = {
        (action, resource)
        for action, resource, _ in _role_grants(synthesized, role_id)
        if action.startswith("lambda:")
    }
    assert {action for action, _ in lambda_grants} == {"lambda:InvokeFunction"}
    assert {resource for _, resource in lambda_grants} == {
        f"${{{synthesized.function_id(key)}.Arn}}"
        for key in set(spec.function_placeholders.values())
    }


def _definition_source(synthesized: Synthesized, machine: dict[str, Any]) -> str:
    """The definition before CloudFormation's substitutions: inline, or the staged asset."""
    if "DefinitionString" in machine:
        assert "DefinitionS3Location" not in machine
        source = machine["DefinitionString"]
        assert isinstance(source, str), "the definition must not be built from intrinsics"
        return source
    # CDK uploads a file definition as an asset; the staged copy is in the assembly.
    staged = synthesized.assembly_dir / f"asset.{machine['DefinitionS3Location']['Key']}"
    return staged.read_text(encoding="utf-8")


def _rendered_definition(synthesized: Synthesized, machine: dict[str, Any]) -> Any:
    """The definition as CloudFormation hands it to Step Functions, each substituted ARN
    shown as ``arn-of:<logical id>``."""
    substitutions = {
        placeholder: f"arn-of:{value['Fn::GetAtt'][0]}"
        for placeholder, value in machine["DefinitionSubstitutions"].items()
    }
    rendered = render(_definition_source(synthesized, machine), substitutions)
    assert "${" not in rendered
    return json.loads(rendered)


@pytest.mark.parametrize("spec", STATE_MACHINES, ids=lambda spec: spec.key)
def test_state_machine_definition_has_no_placeholder_left(
    synthesized: Synthesized,
    state_machines: dict[str, dict[str, Any]],
    spec: StateMachineSpec,
) -> None:
    machine = state_machines[spec.key]
    source = _definition_source(synthesized, machine)

    # CloudFormation leaves a placeholder without a substitution as it is, and Step Functions
    # then fails the state at run time; a substitution without a placeholder is a dead wire.
    assert placeholders(source) == set(machine["DefinitionSubstitutions"])
    assert placeholders(source) == set(spec.function_placeholders)
    # Rendered as CloudFormation does, nothing that looks like a placeholder is left.
    _rendered_definition(synthesized, machine)


def test_definition_placeholders_are_checked_at_synth(tmp_path: Path) -> None:
    for spec in STATE_MACHINES:
        check_placeholders(spec, STATEMACHINES_DIR / spec.definition_file)
    [spec] = [spec for spec in STATE_MACHINES if spec.key == MERGE_WORKFLOW]
    source = (STATEMACHINES_DIR / spec.definition_file).read_text(encoding="utf-8")
    extra = tmp_path / "extra.asl.json"
    extra.write_text(source.replace("${SelectBatchFunctionArn}", "${UnknownFunctionArn}"))

    with pytest.raises(ValueError, match="UnknownFunctionArn"):
        check_placeholders(spec, extra)


def _lambda_targets(states: dict[str, Any]) -> Iterator[str]:
    for state in states.values():
        if state.get("Resource", "").startswith("arn:aws:states:::lambda:invoke"):
            yield state["Parameters"]["FunctionName"]
        for branch in state.get("Branches", []):
            yield from _lambda_targets(branch["States"])
        for processor in ("Iterator", "ItemProcessor"):
            if processor in state:
                yield from _lambda_targets(state[processor]["States"])


# Which function each Task state of statemachines/merge_batch.asl.json runs.
MERGE_BATCH_STEPS = {
    "SelectBatch": "workflow-select",
    "BuildBatch": "workflow-build",
    "RebaseMergeRequest": "workflow-serial",
    "CheckRebase": "workflow-serial",
    "WaitForPipeline": "workflow-wait-pipeline",
    "WaitForCarAhead": "workflow-wait-car-ahead",
    "CheckPipeline": "workflow-check-pipeline",
    "ReachVerdict": "workflow-verdict",
    "LandBatch": "workflow-land",
    "ReleaseBatch": "workflow-release",
}


def test_merge_batch_definition_calls_each_step_function(
    synthesized: Synthesized, state_machines: dict[str, dict[str, Any]]
) -> None:
    definition = _rendered_definition(synthesized, state_machines[MERGE_WORKFLOW])
    states = definition["States"]

    targets = set(_lambda_targets(states))
    assert targets == {
        f"arn-of:{synthesized.function_id(key)}" for key in set(MERGE_BATCH_STEPS.values())
    }
    for state, key in MERGE_BATCH_STEPS.items():
        assert states[state]["Parameters"]["FunctionName"] == (
            f"arn-of:{synthesized.function_id(key)}"
        ), state
    # The callback pattern: the dispatcher or the step itself completes the task.
    assert states["WaitForPipeline"]["Resource"] == (
        "arn:aws:states:::lambda:invoke.waitForTaskToken"
    )


def test_user_pool_and_groups(synthesized: Synthesized) -> None:
    pool = synthesized.only("AWS::Cognito::UserPool", {"UserPoolName": NAMES.user_pool})
    synthesized.template.has_resource_properties(
        "AWS::Cognito::UserPool",
        {
            "AdminCreateUserConfig": {"AllowAdminCreateUserOnly": True},
            "MfaConfiguration": "ON",
            "UserPoolTier": "PLUS",
            "UserPoolAddOns": {"AdvancedSecurityMode": "ENFORCED"},
        },
    )
    groups = synthesized.template.find_resources("AWS::Cognito::UserPoolGroup")
    assert sorted(group["Properties"]["GroupName"] for group in groups.values()) == sorted(
        USER_GROUPS
    )
    assert all(group["Properties"]["UserPoolId"] == {"Ref": pool} for group in groups.values())


def test_dashboard_client(synthesized: Synthesized) -> None:
    synthesized.template.has_resource_properties(
        "AWS::Cognito::UserPoolClient",
        {
            "ClientName": NAMES.user_pool_client,
            "GenerateSecret": False,
            "AllowedOAuthFlows": ["code"],
            "AllowedOAuthFlowsUserPoolClient": True,
            "ExplicitAuthFlows": ["ALLOW_REFRESH_TOKEN_AUTH"],
        },
    )


def test_http_api_routes(synthesized: Synthesized) -> None:
    api = synthesized.only("AWS::ApiGatewayV2::Api", {"Name": NAMES.http_api})
    pool = synthesized.only("AWS::Cognito::UserPool")
    client = synthesized.only("AWS::Cognito::UserPoolClient")
    authorizer_id = synthesized.only("AWS::ApiGatewayV2::Authorizer")
    authorizer = synthesized.resources[authorizer_id]["Properties"]
    assert authorizer["AuthorizerType"] == "JWT"
    assert authorizer["JwtConfiguration"]["Audience"] == [{"Ref": client}]
    assert {"Fn::GetAtt": [pool, "ProviderURL"]} in authorizer["JwtConfiguration"]["Issuer"][
        "Fn::Join"
    ][1]

    routes = {
        route["Properties"]["RouteKey"]: route["Properties"]
        for route in synthesized.template.find_resources("AWS::ApiGatewayV2::Route").values()
        if route["Properties"]["ApiId"] == {"Ref": api}
    }
    assert sorted(routes) == sorted(f"{route.method} {route.path}" for route in ROUTES)
    integrations = synthesized.template.find_resources("AWS::ApiGatewayV2::Integration")
    for route in ROUTES:
        rendered = routes[f"{route.method} {route.path}"]
        assert rendered["ApiId"] == {"Ref": api}
        if route.authorized:
            assert rendered["AuthorizationType"] == "JWT"
            assert rendered["AuthorizerId"] == {"Ref": authorizer_id}
        else:
            assert rendered.get("AuthorizationType", "NONE") == "NONE"
        integration_id = rendered["Target"]["Fn::Join"][1][1]["Ref"]
        assert integrations[integration_id]["Properties"]["IntegrationUri"] == {
            "Fn::GetAtt": [synthesized.function_id(route.function), "Arn"]
        }


def test_default_stage_logs_and_throttles(synthesized: Synthesized) -> None:
    stage = synthesized.resources[
        synthesized.only("AWS::ApiGatewayV2::Stage", {"StageName": "$default"})
    ]["Properties"]
    assert stage["AutoDeploy"] is True
    assert "$context.requestId" in stage["AccessLogSettings"]["Format"]
    assert "Fn::GetAtt" in stage["AccessLogSettings"]["DestinationArn"]
    assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] == THROTTLE_RATE
    assert stage["DefaultRouteSettings"]["ThrottlingBurstLimit"] == THROTTLE_BURST


def _acknowledged(resource: Mapping[str, Any]) -> set[str]:
    rules = resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    return {rule["id"] for rule in rules}


def test_gitlab_webhook_route_needs_no_token(synthesized: Synthesized) -> None:
    assert (
        HttpRoute(method="POST", path="/webhook/gitlab", function="webhook", authorized=False)
        in ROUTES
    )
    http_api = synthesized.only("AWS::ApiGatewayV2::Api", {"Name": NAMES.http_api})
    routes = synthesized.template.find_resources(
        "AWS::ApiGatewayV2::Route", {"Properties": {"ApiId": {"Ref": http_api}}}
    )
    webhook = next(
        route
        for route in routes.values()
        if route["Properties"]["RouteKey"] == "POST /webhook/gitlab"
    )

    assert webhook["Properties"]["AuthorizationType"] == "NONE"
    assert "AuthorizerId" not in webhook["Properties"]
    # The open routes are acknowledged one by one, never the routes behind Cognito.
    public = {f"{r.method} {r.path}" for r in ROUTES if not r.authorized}
    assert public == {"POST /webhook/gitlab", "GET /api/v1/openapi.json"}
    for route in routes.values():
        key = route["Properties"]["RouteKey"]
        is_public = key in public
        assert ("AwsSolutions-APIG4" in _acknowledged(route)) == is_public, key
        assert (route["Properties"]["AuthorizationType"] == "NONE") == is_public, key


def test_outputs(synthesized: Synthesized) -> None:
    outputs = synthesized.template.to_json()["Outputs"]
    expected = {"ApiUrl", "UserPoolId", "UserPoolClientId", "TableName", "SignInUrl"}
    expected |= {"MergeBatchStateMachineArn", "ProjectOnboardingPolicyArn"}
    assert expected <= outputs.keys()


def test_watcher_runs_on_a_schedule(synthesized: Synthesized) -> None:
    rule_id = synthesized.only("AWS::Events::Rule", {"Name": NAMES.watcher_schedule})
    rule = synthesized.resources[rule_id]["Properties"]
    unit = "minute" if WATCHER_SCHEDULE_MINUTES == 1 else "minutes"
    watcher_arn = {"Fn::GetAtt": [synthesized.function_id("watcher"), "Arn"]}

    assert rule["ScheduleExpression"] == f"rate({WATCHER_SCHEDULE_MINUTES} {unit})"
    assert rule["State"] == "ENABLED"
    [target] = rule["Targets"]
    assert target["Arn"] == watcher_arn
    assert target["RetryPolicy"]["MaximumRetryAttempts"] > 0
    # A late delivery would overlap the next run instead of standing in for it.
    assert target["RetryPolicy"]["MaximumEventAgeInSeconds"] <= WATCHER_SCHEDULE_MINUTES * 60
    synthesized.template.has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": watcher_arn,
            "Principal": "events.amazonaws.com",
            "SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]},
        },
    )


def test_a_failed_watcher_run_waits_for_the_next_schedule(synthesized: Synthesized) -> None:
    synthesized.template.has_resource_properties(
        "AWS::Lambda::EventInvokeConfig",
        {
            "FunctionName": {"Ref": synthesized.function_id("watcher")},
            "MaximumRetryAttempts": 0,
        },
    )


def test_undelivered_watcher_runs_go_to_a_dead_letter_queue(synthesized: Synthesized) -> None:
    rule_id = synthesized.only("AWS::Events::Rule", {"Name": NAMES.watcher_schedule})
    [target] = synthesized.resources[rule_id]["Properties"]["Targets"]
    queue_id = target["DeadLetterConfig"]["Arn"]["Fn::GetAtt"][0]
    queue = synthesized.resources[queue_id]
    policies = [
        policy["Properties"]["PolicyDocument"]["Statement"]
        for policy in synthesized.template.find_resources("AWS::SQS::QueuePolicy").values()
        if {"Ref": queue_id} in policy["Properties"]["Queues"]
    ]

    assert queue["Type"] == "AWS::SQS::Queue"
    assert queue["Properties"]["QueueName"].startswith(f"{NAMES.prefix}-")
    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    # The queue is outside the project-queue pattern the functions may read and delete from.
    assert not fnmatchcase(queue["Properties"]["QueueName"], PROJECT_QUEUES.rsplit(":", 1)[1])
    [statements] = policies
    assert {
        "Action": "sqs:*",
        "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        "Effect": "Deny",
        "Principal": {"AWS": "*"},
        "Resource": {"Fn::GetAtt": [queue_id, "Arn"]},
    } in statements
    [allowed] = [statement for statement in statements if statement["Effect"] == "Allow"]
    assert allowed["Principal"] == {"Service": "events.amazonaws.com"}
    assert allowed["Action"] == "sqs:SendMessage"
    assert allowed["Condition"] == {
        "ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]}}
    }


@pytest.fixture(scope="module")
def onboarding_policy(synthesized: Synthesized) -> tuple[str, dict[str, Any]]:
    policy_id = synthesized.only(
        "AWS::IAM::ManagedPolicy", {"ManagedPolicyName": ONBOARDING_POLICY_NAME}
    )
    return policy_id, synthesized.resources[policy_id]["Properties"]


def test_onboarding_policy_grants_what_the_admin_cli_needs(
    synthesized: Synthesized, onboarding_policy: tuple[str, dict[str, Any]]
) -> None:
    _, policy = onboarding_policy
    table = synthesized.only("AWS::DynamoDB::Table", {"TableName": NAMES.table})
    dispatcher_only = json.dumps(
        {
            "StringEquals": {
                "lambda:FunctionArn": f"${{{synthesized.function_id('dispatcher')}.Arn}}"
            }
        },
        sort_keys=True,
    )
    expected: set[Grant] = {
        (f"secretsmanager:{action}", PROJECT_SECRETS, "")
        for action in (
            "CreateSecret",
            "GetSecretValue",
            "PutSecretValue",
            "DescribeSecret",
            "DeleteSecret",
            "TagResource",
        )
    }
    expected.add(("secretsmanager:GetSecretValue", _bot_token(synthesized), ""))
    expected |= {
        (f"sqs:{action}", PROJECT_QUEUES, "")
        for action in (
            "CreateQueue",
            "GetQueueUrl",
            "GetQueueAttributes",
            "SetQueueAttributes",
            "DeleteQueue",
            "TagQueue",
        )
    }
    expected |= {
        ("lambda:CreateEventSourceMapping", "*", dispatcher_only),
        ("lambda:UpdateEventSourceMapping", EVENT_SOURCE_MAPPINGS, dispatcher_only),
        ("lambda:DeleteEventSourceMapping", EVENT_SOURCE_MAPPINGS, dispatcher_only),
        ("lambda:GetEventSourceMapping", EVENT_SOURCE_MAPPINGS, ""),
        ("lambda:ListEventSourceMappings", "*", ""),
        ("cloudformation:DescribeStacks", "${AWS::StackId}", ""),
    }
    # Each project's queue alarms, and no other alarm of the account.
    project_alarms = (
        "arn:${AWS::Partition}:cloudwatch:${AWS::Region}:${AWS::AccountId}:"
        f"alarm:{NAMES.prefix}-project-*"
    )
    expected |= {
        ("cloudwatch:PutMetricAlarm", project_alarms, ""),
        ("cloudwatch:DeleteAlarms", project_alarms, ""),
    }
    expected |= {
        (f"dynamodb:{action}", resource, "")
        for action in ("GetItem", "PutItem", "DeleteItem", "Query")
        for resource in (f"${{{table}.Arn}}", f"${{{table}.Arn}}/index/{TABLE.index_name}")
    }

    assert _grants(policy["PolicyDocument"]["Statement"]) == expected


def test_onboarding_policy_is_scoped_to_the_deployment(
    synthesized: Synthesized, onboarding_policy: tuple[str, dict[str, Any]]
) -> None:
    policy_id, policy = onboarding_policy
    grants = _grants(policy["PolicyDocument"]["Statement"])

    assert not any("*" in action for action, _, _ in grants)
    assert {
        (action, condition != "") for action, resource, condition in grants if resource == "*"
    } == {
        ("lambda:CreateEventSourceMapping", True),
        ("lambda:ListEventSourceMappings", False),
    }
    # Attaching it to the people who onboard projects is the operator's decision.
    assert not {"Roles", "Users", "Groups"} & policy.keys()
    output = synthesized.template.to_json()["Outputs"]["ProjectOnboardingPolicyArn"]
    assert output["Value"] == {"Ref": policy_id}


def test_cdk_nag_finds_nothing(synthesized: Synthesized) -> None:
    report = json.loads((synthesized.assembly_dir / "validation-report.json").read_text())
    findings = [
        f"{violation['severity']} {violation['ruleName']} at {construct['constructPath']}"
        for plugin in report["pluginReports"]
        if plugin["pluginName"] == "AwsSolutions"
        for violation in plugin["violations"]
        for construct in violation["violatingConstructs"]
    ]
    # Warnings count as well: a finding worth keeping is worth an acknowledgement.
    assert findings == [], "\n".join(findings)


def test_every_acknowledgement_gives_a_reason(synthesized: Synthesized) -> None:
    acknowledged = [
        (logical_id, rule["id"], rule["reason"])
        for logical_id, resource in synthesized.resources.items()
        for rule in resource.get("Metadata", {}).get("cdk_nag", {}).get("rules_to_suppress", [])
    ]
    assert acknowledged, "cdk-nag acknowledgements are no longer written to the template"
    too_short = [
        f"{logical_id} {rule_id}: {reason!r}"
        for logical_id, rule_id, reason in acknowledged
        if len(reason.split()) < MIN_REASON_WORDS
    ]
    assert too_short == [], "\n".join(too_short)


def test_cfn_lint_finds_nothing(synthesized: Synthesized) -> None:
    template_path = synthesized.assembly_dir / synthesized.stack.template_file
    matches = lint(
        template_path.read_text(),
        config=ManualArgs(regions=COMMERCIAL_REGIONS),
    )
    problems = [
        f"{match.rule.id} {'/'.join(map(str, match.path))}: {match.message}"
        for match in matches
        if match.rule.id[0] in "EW" and match.rule.id not in CFN_LINT_ACCEPTED
    ]
    assert problems == [], "\n".join(problems)


@pytest.mark.parametrize(
    "prefix", ["Merge-Assist", "9lives", "trailing-", "x" * 41, "a_b", "my-aws-queue"]
)
def test_rejects_a_prefix_that_cannot_name_every_resource(prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        check_prefix(prefix)


def test_app_checks_the_prefix_from_context() -> None:
    with pytest.raises(ValueError, match="prefix"):
        create_app({"prefix": "Merge-Assist", "aws:cdk:bundling-stacks": []})


def test_context_list_accepts_cdk_json_lists_and_cli_strings() -> None:
    assert context_list(["https://a.example", "https://b.example"]) == [
        "https://a.example",
        "https://b.example",
    ]
    assert context_list("https://a.example, https://b.example,") == [
        "https://a.example",
        "https://b.example",
    ]


def test_api_answers_the_dashboards_preflight_and_knows_its_pool(
    synthesized: Synthesized,
) -> None:
    http_api = synthesized.resources[
        synthesized.only("AWS::ApiGatewayV2::Api", {"Name": NAMES.http_api})
    ]["Properties"]
    cors = http_api["CorsConfiguration"]
    environment = synthesized.resources[synthesized.function_id("api")]["Properties"][
        "Environment"
    ]["Variables"]

    assert cors["AllowOrigins"] == [url.rstrip("/") for url in DEFAULT_DASHBOARD_URLS]
    assert {"authorization", "content-type"} <= set(cors["AllowHeaders"])
    pool = synthesized.only("AWS::Cognito::UserPool", {})
    client = synthesized.only("AWS::Cognito::UserPoolClient", {})
    assert environment["MERGE_ASSIST_USER_POOL_ID"] == {"Ref": pool}
    assert environment["MERGE_ASSIST_USER_POOL_CLIENT_ID"] == {"Ref": client}
    assert "MERGE_ASSIST_WEBHOOK_URL" in environment
    # Only the API function is told about the pool: no other function checks tokens.
    others = [spec.key for spec in FUNCTIONS if spec.key not in ("api", "websocket")]
    for key in others:
        variables = synthesized.resources[synthesized.function_id(key)]["Properties"][
            "Environment"
        ]["Variables"]
        assert "MERGE_ASSIST_USER_POOL_ID" not in variables, key


def test_operator_policy_grants_what_the_recovery_commands_need(
    synthesized: Synthesized,
) -> None:
    policy_id = synthesized.only(
        "AWS::IAM::ManagedPolicy", {"ManagedPolicyName": f"{DEFAULT_PREFIX}-operator"}
    )
    policy = synthesized.resources[policy_id]["Properties"]
    table = synthesized.only("AWS::DynamoDB::Table", {"TableName": NAMES.table})
    expected: set[Grant] = {
        (f"sqs:{action}", PROJECT_QUEUES, "")
        for action in (
            "GetQueueUrl",
            "GetQueueAttributes",
            "ReceiveMessage",
            "SendMessage",
            "DeleteMessage",
        )
    }
    expected |= {
        (f"dynamodb:{action}", resource, "")
        for action in ("GetItem", "PutItem", "DeleteItem", "Query")
        for resource in (f"${{{table}.Arn}}", f"${{{table}.Arn}}/index/{TABLE.index_name}")
    }
    expected |= {
        ("states:StartExecution", MERGE_BATCH_ARN, ""),
        ("states:DescribeExecution", MERGE_BATCH_EXECUTIONS, ""),
        ("states:StopExecution", MERGE_BATCH_EXECUTIONS, ""),
        ("cloudformation:DescribeStacks", "${AWS::StackId}", ""),
    }

    assert _grants(policy["PolicyDocument"]["Statement"]) == expected
    # Attached by the operator, to the people who recover; no function role gets it.
    assert not {"Roles", "Users", "Groups"} & policy.keys()
    for resource in synthesized.template.find_resources("AWS::IAM::Role").values():
        assert {"Ref": policy_id} not in resource["Properties"].get("ManagedPolicyArns", [])
    output = synthesized.template.to_json()["Outputs"]["OperatorPolicyArn"]
    assert output["Value"] == {"Ref": policy_id}

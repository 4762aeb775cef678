"""Creates the deployment's AWS resources in moto from ``merge_assist.platform.resources``, the same
list the CDK app builds from."""

from __future__ import annotations

import io
import json
import secrets
import string
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from local.asl import render_file
from merge_assist.platform.resources import (
    CONNECTIONS_TABLE,
    FUNCTIONS,
    PYTHON_RUNTIME,
    STATE_MACHINES,
    STREAM_SUBSCRIPTIONS,
    TABLE,
    USER_GROUPS,
    WATCHER_SCHEDULE_MINUTES,
    ResourceNames,
)

if TYPE_CHECKING:
    from boto3 import Session

REPO_ROOT = Path(__file__).resolve().parents[1]
STATEMACHINES_DIR = REPO_ROOT / "statemachines"


@dataclass(frozen=True)
class DemoUser:
    username: str
    password: str
    group: str


@dataclass
class Provisioned:
    table_name: str
    bot_token_secret: str
    function_arns: dict[str, str] = field(default_factory=dict)
    state_machine_arns: dict[str, str] = field(default_factory=dict)
    user_pool_id: str = ""
    user_pool_client_id: str = ""
    issuer: str = ""
    demo_users: list[DemoUser] = field(default_factory=list)
    connections_table: str = ""
    # Function key -> the ARN of the event source mapping from the table's stream.
    stream_mappings: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def demo_password() -> str:
    """Random, and meets the pool's password policy (upper, lower, digit, symbol, length)."""
    alphabet = string.ascii_letters + string.digits
    return "Ma-" + "".join(secrets.choice(alphabet) for _ in range(16)) + "9a"


def _placeholder_zip() -> bytes:
    # moto stores the code; the local runtime imports the handler from the source tree.
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("README.txt", "Runs in-process in the local stack.\n")
    return buffer.getvalue()


def provision(
    session: Session,
    names: ResourceNames,
    *,
    environment: dict[str, str],
    bot_token: str | None,
) -> Provisioned:
    provisioned = Provisioned(table_name=names.table, bot_token_secret=names.bot_token_secret)
    create_table(session, names)
    # As in the cloud, the secret exists from the start; the bot token is put in it when known.
    secretsmanager = session.client("secretsmanager")
    if bot_token:
        secretsmanager.create_secret(Name=names.bot_token_secret, SecretString=bot_token)
    else:
        secretsmanager.create_secret(Name=names.bot_token_secret)
    role_arn = _create_role(session, f"{names.prefix}-lambda")
    lambda_client = session.client("lambda")
    code = _placeholder_zip()
    for spec in FUNCTIONS:
        created = lambda_client.create_function(
            FunctionName=names.function(spec.key),
            Runtime=PYTHON_RUNTIME,  # type: ignore[arg-type]
            Role=role_arn,
            Handler=spec.handler,
            Code={"ZipFile": code},
            Description=spec.description,
            Timeout=spec.timeout_seconds,
            MemorySize=spec.memory_mb,
            Environment={"Variables": environment},
        )
        provisioned.function_arns[spec.key] = created["FunctionArn"]
    sfn_role_arn = _create_role(session, f"{names.prefix}-states")
    sfn = session.client("stepfunctions")
    for machine in STATE_MACHINES:
        definition = render_file(
            STATEMACHINES_DIR / machine.definition_file,
            {
                placeholder: provisioned.function_arns[function_key]
                for placeholder, function_key in machine.function_placeholders.items()
            },
        )
        created_machine = sfn.create_state_machine(
            name=names.state_machine(machine.key),
            definition=definition,
            roleArn=sfn_role_arn,
            type="STANDARD",
        )
        provisioned.state_machine_arns[machine.key] = created_machine["stateMachineArn"]
    _create_user_pool(session, names, provisioned)
    _create_schedules(session, names, provisioned)
    create_connections_table(session, names)
    provisioned.connections_table = names.connections_table
    _create_stream_subscriptions(session, names, provisioned)
    return provisioned


def create_table(session: Session, names: ResourceNames) -> None:
    client = session.client("dynamodb")
    client.create_table(
        TableName=names.table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": name, "AttributeType": "S"}
            for name in (
                TABLE.partition_key,
                TABLE.sort_key,
                TABLE.index_partition_key,
                TABLE.index_sort_key,
            )
        ],
        KeySchema=[
            {"AttributeName": TABLE.partition_key, "KeyType": "HASH"},
            {"AttributeName": TABLE.sort_key, "KeyType": "RANGE"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": TABLE.index_name,
                "KeySchema": [
                    {"AttributeName": TABLE.index_partition_key, "KeyType": "HASH"},
                    {"AttributeName": TABLE.index_sort_key, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    )
    client.update_time_to_live(
        TableName=names.table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": TABLE.ttl_attribute},
    )


def create_connections_table(session: Session, names: ResourceNames) -> None:
    client = session.client("dynamodb")
    client.create_table(
        TableName=names.connections_table,
        BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[
            {"AttributeName": CONNECTIONS_TABLE.partition_key, "AttributeType": "S"}
        ],
        KeySchema=[{"AttributeName": CONNECTIONS_TABLE.partition_key, "KeyType": "HASH"}],
    )
    client.update_time_to_live(
        TableName=names.connections_table,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": CONNECTIONS_TABLE.ttl_attribute},
    )


def _create_stream_subscriptions(
    session: Session, names: ResourceNames, provisioned: Provisioned
) -> None:
    """The event source mappings from the table's stream, as the CDK app declares them; the
    local stream poller plays them."""
    stream_arn = session.client("dynamodb").describe_table(TableName=names.table)["Table"][
        "LatestStreamArn"
    ]
    sqs = session.client("sqs")
    lambda_client = session.client("lambda")
    for subscription in STREAM_SUBSCRIPTIONS:
        queue_url = sqs.create_queue(QueueName=names.stream_failures_queue(subscription.function))[
            "QueueUrl"
        ]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        mapping = lambda_client.create_event_source_mapping(
            EventSourceArn=stream_arn,
            FunctionName=names.function(subscription.function),
            StartingPosition="LATEST",
            BatchSize=subscription.batch_size,
            MaximumRetryAttempts=subscription.retry_attempts,
            MaximumRecordAgeInSeconds=subscription.max_record_age_seconds,
            BisectBatchOnFunctionError=True,
            FunctionResponseTypes=["ReportBatchItemFailures"],
            FilterCriteria={
                "Filters": [
                    {"Pattern": json.dumps(pattern)} for pattern in subscription.filter_patterns()
                ]
            },
            DestinationConfig={"OnFailure": {"Destination": queue_arn}},
        )
        provisioned.stream_mappings[subscription.function] = mapping["EventSourceMappingArn"]


def rate_expression(minutes: int) -> str:
    """EventBridge's spelling, as CDK writes it: ``rate(1 minute)``, ``rate(5 minutes)``."""
    return f"rate({minutes} {'minute' if minutes == 1 else 'minutes'})"


def _create_schedules(session: Session, names: ResourceNames, provisioned: Provisioned) -> None:
    events = session.client("events")
    events.put_rule(
        Name=names.watcher_schedule,
        ScheduleExpression=rate_expression(WATCHER_SCHEDULE_MINUTES),
        State="ENABLED",
        Description="Runs the watcher, which queues what missed webhooks left out",
    )
    events.put_targets(
        Rule=names.watcher_schedule,
        Targets=[{"Id": "watcher", "Arn": provisioned.function_arns["watcher"]}],
    )


def _create_role(session: Session, name: str) -> str:
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = session.client("iam").create_role(
        RoleName=name, AssumeRolePolicyDocument=json.dumps(trust)
    )
    return role["Role"]["Arn"]


def _create_user_pool(session: Session, names: ResourceNames, provisioned: Provisioned) -> None:
    cognito = session.client("cognito-idp")
    pool = cognito.create_user_pool(
        PoolName=names.user_pool,
        Policies={
            "PasswordPolicy": {
                "MinimumLength": 12,
                "RequireUppercase": True,
                "RequireLowercase": True,
                "RequireNumbers": True,
                "RequireSymbols": True,
            }
        },
        AdminCreateUserConfig={"AllowAdminCreateUserOnly": True},
    )["UserPool"]
    pool_id = pool["Id"]
    client = cognito.create_user_pool_client(
        UserPoolId=pool_id,
        ClientName=names.user_pool_client,
        GenerateSecret=False,
        ExplicitAuthFlows=["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
    )["UserPoolClient"]
    provisioned.user_pool_id = pool_id
    provisioned.user_pool_client_id = client["ClientId"]
    region = session.region_name
    provisioned.issuer = f"https://cognito-idp.{region}.amazonaws.com/{pool_id}"
    for group in USER_GROUPS:
        cognito.create_group(GroupName=group, UserPoolId=pool_id)
        user = DemoUser(username=group.replace("_", "-"), password=demo_password(), group=group)
        cognito.admin_create_user(
            UserPoolId=pool_id, Username=user.username, MessageAction="SUPPRESS"
        )
        cognito.admin_set_user_password(
            UserPoolId=pool_id, Username=user.username, Password=user.password, Permanent=True
        )
        cognito.admin_add_user_to_group(UserPoolId=pool_id, Username=user.username, GroupName=group)
        provisioned.demo_users.append(user)

"""State that outlives any deployment: the single DynamoDB table and the GitLab bot token."""

from __future__ import annotations

from aws_cdk import RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from infra.nag import acknowledge
from merge_assist.resources import TABLE, ResourceNames


class Storage(Construct):
    def __init__(self, scope: Construct, construct_id: str, *, names: ResourceNames) -> None:
        super().__init__(scope, construct_id)

        string = dynamodb.AttributeType.STRING
        self.table = dynamodb.Table(
            self,
            "Table",
            table_name=names.table,
            partition_key=dynamodb.Attribute(name=TABLE.partition_key, type=string),
            sort_key=dynamodb.Attribute(name=TABLE.sort_key, type=string),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=TABLE.ttl_attribute,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            # The dashboard's live updates will be fed from the change stream.
            stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
            # The queue, the batches and the audit trail live here; losing them to a stack
            # deletion or a renamed construct is never intended.
            removal_policy=RemovalPolicy.RETAIN,
            deletion_protection=True,
        )
        self.table.add_global_secondary_index(
            index_name=TABLE.index_name,
            partition_key=dynamodb.Attribute(name=TABLE.index_partition_key, type=string),
            sort_key=dynamodb.Attribute(name=TABLE.index_sort_key, type=string),
            projection_type=dynamodb.ProjectionType.ALL,
        )

        # Created with a random placeholder value; the operator stores the bot's GitLab access
        # token in it after the first deployment. Retained because that value is set by hand.
        self.bot_token = secretsmanager.Secret(
            self,
            "BotToken",
            secret_name=names.bot_token_secret,
            description="GitLab access token of the Merge Assist bot user (set after deploy)",
            removal_policy=RemovalPolicy.RETAIN,
        )
        acknowledge(
            self.bot_token,
            "AwsSolutions-SMG4",
            "The value is a GitLab access token: GitLab issues and expires it, so it is "
            "rotated in GitLab and then stored here; Secrets Manager has no rotation "
            "function that could create a GitLab token.",
        )

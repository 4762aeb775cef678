"""State that outlives any deployment: the single DynamoDB table and the GitLab bot token."""

from __future__ import annotations

from aws_cdk import CfnCondition, CfnResource, Fn, RemovalPolicy, Token
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from merge_assist.platform.resources import TABLE, ResourceNames


class Storage(Construct):
    """``bot_token_secret_arn`` (the ``BotTokenSecretArn`` deploy parameter) names a secret the
    admin keeps elsewhere; empty, the stack creates ``<prefix>/gitlab-bot-token`` itself.
    Either way ``bot_token`` is the secret the functions read and ``bot_token_secret_id`` what
    they are told to read (``MERGE_ASSIST_BOT_TOKEN_SECRET``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        bot_token_secret_arn: str = "",
    ) -> None:
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

        # True with the default (empty) parameter: the stack creates the secret. Every choice
        # below is made on this one condition, so linters see a reference to the secret only
        # where it exists.
        self.bot_token_created = CfnCondition(
            self,
            "BotTokenSecretCreated",
            expression=Fn.condition_equals(bot_token_secret_arn, ""),
        )
        # Created with a random placeholder value; the operator stores the bot's GitLab access
        # token in it after the first deployment, and the rotate-bot-token function rotates it
        # on schedule from then on (infra.constructs.functions). Retained because its first
        # value is set by hand.
        self.created_bot_token = secretsmanager.Secret(
            self,
            "BotToken",
            secret_name=names.bot_token_secret,
            description="GitLab access token of the Merge Assist bot user (set after deploy)",
            removal_policy=RemovalPolicy.RETAIN,
        )
        created = self.created_bot_token.node.default_child
        assert isinstance(created, CfnResource)
        created.cfn_options.condition = self.bot_token_created
        # Whichever secret it is, by its complete ARN: grants name that ARN, and Secrets
        # Manager's GetSecretValue takes an ARN as SecretId as well as a name.
        self.bot_token = secretsmanager.Secret.from_secret_complete_arn(
            self,
            "BotTokenInUse",
            self._created_or(self.created_bot_token.secret_arn, bot_token_secret_arn),
        )
        # The created secret keeps being read by name, as before the parameter existed.
        self.bot_token_secret_id = self._created_or(names.bot_token_secret, bot_token_secret_arn)

    def _created_or(self, created: str, given: str) -> str:
        return Token.as_string(Fn.condition_if(self.bot_token_created.logical_id, created, given))

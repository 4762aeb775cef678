"""Live: the dashboard's live updates, and the queue's side of the event log.

The state table's stream feeds the ``updates`` function (an event source mapping filtered to
the items the dashboard shows, see ``merge_assist.platform.resources.STREAM_SUBSCRIPTIONS``), which
writes the event log's entries and posts messages to the open connections of a WebSocket
API through its management API. The ``websocket`` function opens and closes those
connections and keeps them in a table of their own.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from aws_cdk import ArnFormat, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from infra.constructs import LOG_RETENTION, pascal_case
from infra.constructs.api import AccessLogSettings
from infra.constructs.storage import Storage
from infra.nag import acknowledge
from merge_assist.platform.resources import (
    CONNECTIONS_TABLE,
    ENV_PREFIX,
    STREAM_SUBSCRIPTIONS,
    WEBSOCKET_ROUTE_SELECTION,
    WEBSOCKET_STAGE,
    ResourceNames,
)

# Connections and messages per second: a dashboard sends a ping now and then.
THROTTLE_RATE = 20
THROTTLE_BURST = 50
# What the management API is called for: sending a message, and closing a socket whose
# token expired.
MANAGEMENT_METHODS = ("POST", "DELETE")
FAILURE_RETENTION = Duration.days(14)

# WebSocket context variables; the query string (which carries the token) is not among them.
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "requestTime": "$context.requestTime",
        "eventType": "$context.eventType",
        "routeKey": "$context.routeKey",
        "connectionId": "$context.connectionId",
        "status": "$context.status",
        "integrationError": "$context.integrationErrorMessage",
        "userAgent": "$context.identity.userAgent",
    }
)


class Live(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        storage: Storage,
        functions: Mapping[str, lambda_.Function],
        user_pool: cognito.IUserPool,
        user_pool_client: cognito.IUserPoolClient,
    ) -> None:
        super().__init__(scope, construct_id)
        self._names = names
        self.connections = dynamodb.Table(
            self,
            "Connections",
            table_name=names.connections_table,
            partition_key=dynamodb.Attribute(
                name=CONNECTIONS_TABLE.partition_key, type=dynamodb.AttributeType.STRING
            ),
            billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
            time_to_live_attribute=CONNECTIONS_TABLE.ttl_attribute,
            point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
                point_in_time_recovery_enabled=True
            ),
            # Open sockets only: a new deployment's clients reconnect.
            removal_policy=RemovalPolicy.DESTROY,
        )
        self._websocket_api(names, functions["websocket"])
        self._connections_access(functions)
        self._stream_subscriptions(names, storage, functions)

        websocket = functions["websocket"]
        websocket.add_environment(f"{ENV_PREFIX}CONNECTIONS_TABLE", self.connections.table_name)
        websocket.add_environment(f"{ENV_PREFIX}USER_POOL_ID", user_pool.user_pool_id)
        websocket.add_environment(
            f"{ENV_PREFIX}USER_POOL_CLIENT_ID", user_pool_client.user_pool_client_id
        )
        updates = functions["updates"]
        updates.add_environment(f"{ENV_PREFIX}CONNECTIONS_TABLE", self.connections.table_name)
        updates.add_environment(f"{ENV_PREFIX}WEBSOCKET_CALLBACK_URL", self.stage.callback_url)

    def _websocket_api(self, names: ResourceNames, function: lambda_.IFunction) -> None:
        integration = integrations.WebSocketLambdaIntegration("websocket-integration", function)
        self.api = apigwv2.WebSocketApi(
            self,
            "Updates",
            api_name=names.websocket_api,
            description="Merge Assist: the dashboard's live updates",
            route_selection_expression=WEBSOCKET_ROUTE_SELECTION,
            connect_route_options=apigwv2.WebSocketRouteOptions(integration=integration),
            disconnect_route_options=apigwv2.WebSocketRouteOptions(integration=integration),
            # The function's answer (a pong) goes back to the client.
            default_route_options=apigwv2.WebSocketRouteOptions(
                integration=integration, return_response=True
            ),
        )
        for route in self.api.node.children:
            if isinstance(route, apigwv2.WebSocketRoute) and route.node.default_child:
                acknowledge(
                    route.node.default_child,
                    "AwsSolutions-APIG4",
                    "Browsers cannot set headers on a WebSocket, so the Cognito access token "
                    "comes in the query string and the function verifies it on $connect "
                    "(401 without a valid one); API Gateway authorizes only $connect, and "
                    "the other routes belong to connections admitted there.",
                )
        access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            log_group_name=f"/aws/apigateway/{names.websocket_api}/access",
            retention=LOG_RETENTION,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.stage = apigwv2.WebSocketStage(
            self,
            "Stage",
            web_socket_api=self.api,
            stage_name=WEBSOCKET_STAGE,
            auto_deploy=True,
            access_log_settings=AccessLogSettings(
                apigwv2.LogGroupLogDestination(access_logs),
                apigateway.AccessLogFormat.custom(ACCESS_LOG_FORMAT),
            ),
            throttle=apigwv2.ThrottleSettings(rate_limit=THROTTLE_RATE, burst_limit=THROTTLE_BURST),
        )

    def management_arn(self, method: str) -> str:
        """Posting to (or closing) any connection of the stage: connection ids are API
        Gateway's, known only at run time."""
        return Stack.of(self).format_arn(
            service="execute-api",
            resource=self.api.api_id,
            resource_name=f"{WEBSOCKET_STAGE}/{method}/@connections/*",
            arn_format=ArnFormat.SLASH_RESOURCE_NAME,
        )

    def _connections_access(self, functions: Mapping[str, lambda_.Function]) -> None:
        table_arn = self.connections.table_arn
        functions["websocket"].add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:PutItem", "dynamodb:DeleteItem"], resources=[table_arn]
            )
        )
        updates = functions["updates"]
        # A scan per invocation finds the open connections (see merge_assist.adapters.live);
        # gone and expired ones are deleted.
        updates.add_to_role_policy(
            iam.PolicyStatement(
                actions=["dynamodb:Scan", "dynamodb:DeleteItem"], resources=[table_arn]
            )
        )
        updates.add_to_role_policy(
            iam.PolicyStatement(
                actions=["execute-api:ManageConnections"],
                resources=[self.management_arn(method) for method in MANAGEMENT_METHODS],
            )
        )
        api_id = Stack.of(self).get_logical_id(self.api.node.default_child)  # type: ignore[arg-type]
        acknowledge(
            updates.role,  # type: ignore[arg-type]
            "AwsSolutions-IAM5",
            "API Gateway names a WebSocket connection when it opens, so ManageConnections "
            "can name the API, its stage and the method but not the connection id after it.",
            findings=[
                "Resource::arn:<AWS::Partition>:execute-api:<AWS::Region>:<AWS::AccountId>:"
                f"<{api_id}>/{WEBSOCKET_STAGE}/{method}/@connections/*"
                for method in MANAGEMENT_METHODS
            ],
        )

    def _stream_subscriptions(
        self, names: ResourceNames, storage: Storage, functions: Mapping[str, lambda_.Function]
    ) -> None:
        self.failure_queues: dict[str, sqs.Queue] = {}
        for subscription in STREAM_SUBSCRIPTIONS:
            construct_id = pascal_case(subscription.function)
            failures = sqs.Queue(
                self,
                f"{construct_id}StreamFailures",
                queue_name=names.stream_failures_queue(subscription.function),
                encryption=sqs.QueueEncryption.SQS_MANAGED,
                enforce_ssl=True,
                retention_period=FAILURE_RETENTION,
            )
            acknowledge(
                failures,
                "AwsSolutions-SQS3",
                "This queue is itself the on-failure destination of the stream's event source "
                "mapping: Lambda puts where the batches it gave up on were, and nothing "
                "consumes it automatically.",
            )
            self.failure_queues[subscription.function] = failures
            functions[subscription.function].add_event_source(
                event_sources.DynamoEventSource(
                    storage.table,
                    starting_position=lambda_.StartingPosition.LATEST,
                    batch_size=subscription.batch_size,
                    bisect_batch_on_error=True,
                    retry_attempts=subscription.retry_attempts,
                    max_record_age=Duration.seconds(subscription.max_record_age_seconds),
                    report_batch_item_failures=True,
                    on_failure=event_sources.SqsDlq(failures),
                    filters=[
                        lambda_.FilterCriteria.filter(pattern)
                        for pattern in subscription.filter_patterns()
                    ],
                )
            )

"""The live-updates part of the synthesized stack: the WebSocket API, the connections table,
the stream's event source mapping and what the two functions may do."""

from __future__ import annotations

import json
from typing import Any

import pytest

from infra.constructs.live import MANAGEMENT_METHODS
from local.stream_poller import matches
from merge_assist.platform.resources import (
    CONNECTIONS_TABLE,
    ENV_PREFIX,
    STREAM_SUBSCRIPTIONS,
    WEBSOCKET_ROUTE_SELECTION,
    WEBSOCKET_STAGE,
)
from tests.infra.test_synth import (
    NAMES,
    Synthesized,
    _acknowledged,
    _arn,
    _role_grants,
    _role_id,
    _text,
    synthesized,
)

pytestmark = pytest.mark.infra

__all__ = ["synthesized"]  # fixture

[SUBSCRIPTION] = STREAM_SUBSCRIPTIONS


def _websocket_api(synthesized: Synthesized) -> str:
    return synthesized.only("AWS::ApiGatewayV2::Api", {"Name": NAMES.websocket_api})


def _routes(synthesized: Synthesized) -> dict[str, str]:
    """Route key -> logical id of the WebSocket API's routes."""
    api = _websocket_api(synthesized)
    return {
        route["Properties"]["RouteKey"]: logical_id
        for logical_id, route in synthesized.template.find_resources(
            "AWS::ApiGatewayV2::Route"
        ).items()
        if route["Properties"]["ApiId"] == {"Ref": api}
    }


def _connections_table(synthesized: Synthesized) -> str:
    return synthesized.only("AWS::DynamoDB::Table", {"TableName": NAMES.connections_table})


def _state_table(synthesized: Synthesized) -> str:
    return synthesized.only("AWS::DynamoDB::Table", {"TableName": NAMES.table})


def test_websocket_api_routes_reach_the_websocket_function(synthesized: Synthesized) -> None:
    api = synthesized.resources[_websocket_api(synthesized)]["Properties"]
    routes = _routes(synthesized)
    integrations = synthesized.template.find_resources("AWS::ApiGatewayV2::Integration")
    function = synthesized.function_id("websocket")

    assert api["ProtocolType"] == "WEBSOCKET"
    assert api["RouteSelectionExpression"] == WEBSOCKET_ROUTE_SELECTION == "$request.body.action"
    assert sorted(routes) == ["$connect", "$default", "$disconnect"]
    for route_id in routes.values():
        route = synthesized.resources[route_id]
        integration_id = route["Properties"]["Target"]["Fn::Join"][1][1]["Ref"]
        integration = integrations[integration_id]["Properties"]
        assert integration["IntegrationType"] == "AWS_PROXY"
        assert {"Fn::GetAtt": [function, "Arn"]} in integration["IntegrationUri"]["Fn::Join"][1]
        # The token is checked by the function on $connect; nag is told so per route.
        assert "AwsSolutions-APIG4" in _acknowledged(route)
    # The pong goes back to the client: $default has a route response.
    synthesized.template.has_resource_properties(
        "AWS::ApiGatewayV2::RouteResponse",
        {"RouteId": {"Ref": routes["$default"]}, "RouteResponseKey": "$default"},
    )
    synthesized.template.has_resource_properties(
        "AWS::Lambda::Permission",
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Fn::GetAtt": [function, "Arn"]},
            "Principal": "apigateway.amazonaws.com",
        },
    )


def test_websocket_stage_logs_without_the_query_string_and_throttles(
    synthesized: Synthesized,
) -> None:
    stage = synthesized.resources[
        synthesized.only("AWS::ApiGatewayV2::Stage", {"StageName": WEBSOCKET_STAGE})
    ]["Properties"]
    log_format = json.loads(stage["AccessLogSettings"]["Format"])

    assert stage["ApiId"] == {"Ref": _websocket_api(synthesized)}
    assert stage["AutoDeploy"] is True
    assert log_format["connectionId"] == "$context.connectionId"
    # The access token travels in the query string; nothing that could hold it is logged.
    assert not [value for value in log_format.values() if "querystring" in value.lower()]
    assert stage["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0
    assert stage["DefaultRouteSettings"]["ThrottlingBurstLimit"] > 0
    output = synthesized.template.to_json()["Outputs"]["WebSocketUrl"]["Value"]
    assert _text(output).startswith(f"wss://${{{_websocket_api(synthesized)}}}.execute-api.")
    assert _text(output).endswith(f"/{WEBSOCKET_STAGE}")


def test_connections_table_expires_connections_with_their_tokens(
    synthesized: Synthesized,
) -> None:
    table = synthesized.resources[_connections_table(synthesized)]["Properties"]

    assert table["KeySchema"] == [
        {"AttributeName": CONNECTIONS_TABLE.partition_key, "KeyType": "HASH"}
    ]
    assert table["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TimeToLiveSpecification"] == {
        "AttributeName": CONNECTIONS_TABLE.ttl_attribute,
        "Enabled": True,
    }
    assert table["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert "StreamSpecification" not in table


def test_the_state_tables_stream_feeds_the_updates_function_filtered(
    synthesized: Synthesized,
) -> None:
    [mapping] = synthesized.template.find_resources("AWS::Lambda::EventSourceMapping").values()
    properties = mapping["Properties"]
    failures = synthesized.only(
        "AWS::SQS::Queue", {"QueueName": NAMES.stream_failures_queue("updates")}
    )

    assert properties["FunctionName"] == {"Ref": synthesized.function_id("updates")}
    assert properties["EventSourceArn"] == {"Fn::GetAtt": [_state_table(synthesized), "StreamArn"]}
    assert properties["StartingPosition"] == "LATEST"
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["BisectBatchOnFunctionError"] is True
    assert properties["MaximumRetryAttempts"] == SUBSCRIPTION.retry_attempts
    assert properties["BatchSize"] == SUBSCRIPTION.batch_size
    assert properties["DestinationConfig"]["OnFailure"]["Destination"] == {
        "Fn::GetAtt": [failures, "Arn"]
    }
    patterns = [json.loads(f["Pattern"]) for f in properties["FilterCriteria"]["Filters"]]
    assert patterns == SUBSCRIPTION.filter_patterns()
    queue = synthesized.resources[failures]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True


def _record(event_name: str, kind: str, image: str = "NewImage") -> dict[str, Any]:
    return {"eventName": event_name, "dynamodb": {image: {"kind": {"S": kind}, "pk": {"S": "x"}}}}


@pytest.mark.parametrize(
    ("record", "delivered"),
    [
        (_record("INSERT", "merge_request"), True),
        (_record("MODIFY", "batch"), True),
        (_record("MODIFY", "project"), True),
        (_record("INSERT", "audit"), True),
        (_record("REMOVE", "project", "OldImage"), True),
        # TTL removals of finished MRs and batches, and everything else the table holds.
        (_record("REMOVE", "merge_request", "OldImage"), False),
        (_record("REMOVE", "audit", "OldImage"), False),
        (_record("INSERT", "branch_lock"), False),
        (_record("INSERT", "pipeline_wait"), False),
        (_record("MODIFY", "grant"), False),
        ({"eventName": "INSERT", "dynamodb": {"NewImage": {"pk": {"S": "idempotency"}}}}, False),
    ],
)
def test_the_deployed_filter_lets_through_what_the_dashboard_shows(
    synthesized: Synthesized, record: dict[str, Any], delivered: bool
) -> None:
    [mapping] = synthesized.template.find_resources("AWS::Lambda::EventSourceMapping").values()
    filters = mapping["Properties"]["FilterCriteria"]["Filters"]

    # The local stack's stream poller judges records by the same patterns.
    assert any(matches(json.loads(f["Pattern"]), record) for f in filters) is delivered


def test_the_live_functions_are_told_where_things_are(synthesized: Synthesized) -> None:
    def environment(key: str) -> dict[str, Any]:
        function = synthesized.resources[synthesized.function_id(key)]["Properties"]
        variables: dict[str, Any] = function["Environment"]["Variables"]
        return variables

    updates, websocket = environment("updates"), environment("websocket")
    connections = {"Ref": _connections_table(synthesized)}
    api = _websocket_api(synthesized)

    assert updates[f"{ENV_PREFIX}CONNECTIONS_TABLE"] == connections
    assert websocket[f"{ENV_PREFIX}CONNECTIONS_TABLE"] == connections
    assert _text(updates[f"{ENV_PREFIX}WEBSOCKET_CALLBACK_URL"]) == (
        f"https://${{{api}}}.execute-api.${{AWS::Region}}.${{AWS::URLSuffix}}/{WEBSOCKET_STAGE}"
    )
    assert websocket[f"{ENV_PREFIX}USER_POOL_ID"] == {
        "Ref": synthesized.only("AWS::Cognito::UserPool")
    }
    assert websocket[f"{ENV_PREFIX}USER_POOL_CLIENT_ID"] == {
        "Ref": synthesized.only("AWS::Cognito::UserPoolClient")
    }


def test_live_grants_are_least_privilege(synthesized: Synthesized) -> None:
    connections = f"${{{_connections_table(synthesized)}.Arn}}"
    state = f"${{{_state_table(synthesized)}.Arn}}"
    stream = f"${{{_state_table(synthesized)}.StreamArn}}"
    api = _websocket_api(synthesized)
    management = {
        _arn("execute-api", f"${{{api}}}/{WEBSOCKET_STAGE}/{method}/@connections/*")
        for method in MANAGEMENT_METHODS
    }
    updates = _role_grants(synthesized, _role_id(synthesized, "updates"))
    websocket = _role_grants(synthesized, _role_id(synthesized, "websocket"))

    assert {(a, r) for a, r, _ in updates if r == connections} == {
        ("dynamodb:Scan", connections),
        ("dynamodb:DeleteItem", connections),
    }
    assert {a for a, r, _ in updates if r == state} == {"dynamodb:PutItem"}
    assert {a for a, r, _ in updates if r == stream} == {
        "dynamodb:DescribeStream",
        "dynamodb:GetRecords",
        "dynamodb:GetShardIterator",
    }
    assert {r for a, r, _ in updates if a == "execute-api:ManageConnections"} == management
    assert {(a, r) for a, r, _ in websocket if r == connections} == {
        ("dynamodb:PutItem", connections),
        ("dynamodb:DeleteItem", connections),
    }
    assert not [a for a, _, _ in websocket if a.startswith("execute-api:")]
    # Nobody else touches the connections or the sockets.
    live = {synthesized.function_id("updates"), synthesized.function_id("websocket")}
    for function in set(synthesized.template.find_resources("AWS::Lambda::Function")) - live:
        role = synthesized.resources[function]["Properties"]["Role"]["Fn::GetAtt"][0]
        grants = _role_grants(synthesized, role)
        assert not [r for _, r, _ in grants if r == connections], function
        assert not [a for a, _, _ in grants if a.startswith("execute-api:")], function

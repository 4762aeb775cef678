"""The cost model's arithmetic: DynamoDB's request unit rules and list price times usage,
against figures worked out by hand."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from bench.cost import PRICES, cost, cost_report
from bench.usage import (
    ApiCalls,
    FunctionUsage,
    Usage,
    dynamodb_units,
    item_size,
    read_units,
    write_units,
)

NOTHING = Usage(
    started_at=datetime(2026, 1, 1, tzinfo=UTC),
    seconds=60.0,
    functions=(),
    executions=0,
    state_transitions=0,
    sqs_fifo_requests=0,
    sqs_standard_requests=0,
    dynamodb_read_units=0.0,
    dynamodb_write_units=0.0,
    http_api_requests=0,
    websocket_messages=0,
    secrets_manager_calls=0,
    api_calls=(),
)


def _line(usage: Usage, service: str) -> float:
    return next(line.cost for line in cost(usage).lines if line.service == service)


# -- prices ---------------------------------------------------------------------------


def test_a_thousand_state_transitions_cost_two_and_a_half_cents() -> None:
    assert _line(replace(NOTHING, state_transitions=1000), "Step Functions") == pytest.approx(0.025)


def test_lambda_bills_requests_and_gigabyte_seconds() -> None:
    usage = replace(
        NOTHING,
        functions=(
            # 2 GB for 1.5 s in all: 3 GB-s; 512 MB for 2 s: 1 GB-s.
            FunctionUsage("build", 2048, 3, 1500),
            FunctionUsage("dispatcher", 512, 1_000_000 - 3, 2000),
        ),
    )
    assert usage.lambda_gb_seconds == pytest.approx(4.0)
    assert _line(usage, "Lambda: requests") == pytest.approx(0.20)
    assert _line(usage, "Lambda: compute") == pytest.approx(4 * 0.0000166667)


@pytest.mark.parametrize(
    ("field", "quantity", "service", "expected"),
    [
        ("sqs_fifo_requests", 1_000_000, "SQS: FIFO", 0.50),
        ("sqs_standard_requests", 1_000_000, "SQS: standard", 0.40),
        ("dynamodb_read_units", 1_000_000.0, "DynamoDB: reads", 0.125),
        ("dynamodb_write_units", 1_000_000.0, "DynamoDB: writes", 0.625),
        ("http_api_requests", 1_000_000, "API Gateway: HTTP API", 1.00),
        ("websocket_messages", 1_000_000, "API Gateway: WebSocket", 1.00),
        ("secrets_manager_calls", 10_000, "Secrets Manager", 0.05),
    ],
)
def test_each_service_at_its_list_price(
    field: str, quantity: float, service: str, expected: float
) -> None:
    changes: dict[str, Any] = {field: quantity}
    assert _line(replace(NOTHING, **changes), service) == pytest.approx(expected)


def test_the_report_divides_by_merged_mrs_and_names_its_prices() -> None:
    usage = replace(
        NOTHING,
        state_transitions=4000,  # $0.10
        dynamodb_write_units=160_000.0,  # $0.10
        api_calls=(ApiCalls("dynamodb", "Query", "outside", 7, billed=False),),
    )
    assert cost(usage).total == pytest.approx(0.20)
    assert cost(usage).per_service() == pytest.approx(
        {
            "Lambda": 0.0,
            "Step Functions": 0.10,
            "SQS": 0.0,
            "DynamoDB": 0.10,
            "API Gateway": 0.0,
            "Secrets Manager": 0.0,
        }
    )
    report = cost_report(usage, merged_mrs=4)
    assert "| **Total** | | | **$0.2** | **$0.05** |" in report
    assert PRICES.region in report
    assert PRICES.as_of in report
    assert "$0.025 per 1k state transitions" in report
    assert "| dynamodb | outside | 0 | 7 |" in report
    assert "Free tiers" in report
    assert "n/a" in cost_report(usage, merged_mrs=0)


# -- DynamoDB request units -----------------------------------------------------------


def test_item_size_follows_dynamodbs_rules() -> None:
    # Names count, strings by UTF-8 bytes, numbers by significant digits, maps and lists
    # 3 bytes plus 1 per element.
    assert item_size({"pk": {"S": "abc"}}) == 2 + 3
    assert item_size({"n": {"N": "12345"}}) == 1 + 4
    assert item_size({"n": {"N": "-0.0012300"}}) == 1 + 3
    assert item_size({"é": {"S": "é"}}) == 2 + 2
    assert item_size({"f": {"BOOL": True}, "z": {"NULL": True}}) == 2 + 2
    assert item_size({"m": {"M": {"ab": {"S": "x"}}}}) == 1 + 3 + 1 + 2 + 1
    assert item_size({"l": {"L": [{"S": "xy"}, {"N": "7"}]}}) == 1 + 3 + (1 + 2) + (1 + 2)
    assert item_size({"b": {"B": b"\x00\x01\x02"}}) == 1 + 3
    assert item_size({"b": {"B": "AAEC"}}) == 1 + 3  # base64 in a request's JSON
    assert item_size(None) == 0


@pytest.mark.parametrize(
    ("size", "consistent", "units"),
    [
        (0, True, 1.0),
        (4096, True, 1.0),
        (4097, True, 2.0),
        (4096, False, 0.5),
        (12_000, False, 1.5),
    ],
)
def test_reads_are_4_kb_units_halved_when_eventually_consistent(
    size: int, consistent: bool, units: float
) -> None:
    assert read_units(size, consistent=consistent) == units


@pytest.mark.parametrize(("size", "units"), [(0, 1), (1024, 1), (1025, 2), (3000, 3)])
def test_writes_are_1_kb_units(size: int, units: int) -> None:
    assert write_units(size) == units


def _item(size: int) -> dict[str, Any]:
    """An item of exactly ``size`` bytes (``size`` > 4)."""
    return {"pk": {"S": "x" * (size - 2)}}


def test_get_item_by_the_items_size_and_consistency() -> None:
    assert dynamodb_units("GetItem", {"ConsistentRead": True}, {"Item": _item(5000)}) == (2.0, 0)
    assert dynamodb_units("GetItem", {}, {"Item": _item(5000)}) == (1.0, 0)
    assert dynamodb_units("GetItem", {"ConsistentRead": True}, {}) == (1.0, 0)  # no item
    assert dynamodb_units("GetItem", {}, {"Error": {"Code": "ResourceNotFound"}}) == (0, 0)


def test_query_by_the_size_of_what_it_read_at_least_one_unit() -> None:
    page = {"Items": [_item(3000), _item(3000)], "Count": 2, "ScannedCount": 2}
    assert dynamodb_units("Query", {"ConsistentRead": True}, page) == (2.0, 0)
    assert dynamodb_units("Query", {}, {"Items": [], "Count": 0, "ScannedCount": 0}) == (0.5, 0)
    # A filter kept 1 of 4 items: all 4 were read.
    filtered = {"Items": [_item(2048)], "Count": 1, "ScannedCount": 4}
    assert dynamodb_units("Scan", {"ConsistentRead": True}, filtered) == (2.0, 0)


def test_batch_get_counts_each_item_and_each_missing_key() -> None:
    request = {"RequestItems": {"t": {"Keys": [{}, {}, {}, {}], "ConsistentRead": True}}}
    response = {
        "Responses": {"t": [_item(5000), _item(100)]},
        "UnprocessedKeys": {"t": {"Keys": [{}]}},
    }
    # 2 + 1 for the items, 1 for the key with no item, nothing for the unprocessed one.
    assert dynamodb_units("BatchGetItem", request, response) == (4.0, 0)


def test_writes_by_the_larger_item_and_transactions_twice() -> None:
    assert dynamodb_units("PutItem", {"Item": _item(2500)}, {}) == (0, 3.0)
    # A refused conditional write is still billed.
    refused = {"Error": {"Code": "ConditionalCheckFailedException"}}
    assert dynamodb_units("PutItem", {"Item": _item(100)}, refused) == (0, 1.0)
    assert dynamodb_units("DeleteItem", {"Key": _item(10)}, {"Attributes": _item(1500)}) == (
        0,
        2.0,
    )
    assert dynamodb_units("UpdateItem", {"Key": _item(10)}, {}) == (0, 1.0)
    transaction = {
        "TransactItems": [
            {"Put": {"Item": _item(1500)}},
            {"Update": {"Key": _item(10), "ExpressionAttributeValues": {":v": {"N": "1"}}}},
            {"ConditionCheck": {"Key": _item(10)}},
        ]
    }
    assert dynamodb_units("TransactWriteItems", transaction, {}) == (0, 2 * (2 + 1 + 1))
    batch = {
        "RequestItems": {
            "t": [
                {"PutRequest": {"Item": _item(1500)}},
                {"DeleteRequest": {"Key": _item(10)}},
                {"PutRequest": {"Item": _item(10)}},
            ]
        }
    }
    unprocessed = {"UnprocessedItems": {"t": [{"PutRequest": {"Item": _item(10)}}]}}
    assert dynamodb_units("BatchWriteItem", batch, unprocessed) == (0, 3.0)


def test_control_plane_calls_are_free() -> None:
    assert dynamodb_units("DescribeTable", {}, {"Table": {}}) == (0, 0)

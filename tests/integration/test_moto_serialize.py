"""The local stack's remembered aliases leave moto's answers exactly as they were."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.model import StructureShape
from moto import mock_aws
from moto.core.serialize import AttributePicker, AttributePickerContext, XFormedAttributePicker

from local import moto_serialize

ITEM: dict[str, Any] = {
    "pk": {"S": "MR#1"},
    "sk": {"S": "STATE"},
    "version": {"N": "3"},
    "labels": {"L": [{"S": "merge-assist::queued"}, {"S": "team"}]},
    "facts": {"M": {"draft": {"BOOL": False}, "approvals": {"N": "2"}, "note": {"NULL": True}}},
    "shas": {"SS": ["a1", "b2"]},
    "blob": {"B": b"\x00\x01binary"},
}


def _calls() -> dict[str, Any]:
    """What a few services answer to the calls the queue makes, without request ids."""
    session = boto3.Session(
        region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local"
    )
    dynamodb = session.client("dynamodb")
    answers: dict[str, Any] = {}
    answers["create_table"] = dynamodb.create_table(
        TableName="t",
        KeySchema=[
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )["TableDescription"]["KeySchema"]
    dynamodb.put_item(TableName="t", Item=ITEM)
    answers["get_item"] = dynamodb.get_item(TableName="t", Key={"pk": ITEM["pk"], "sk": ITEM["sk"]})
    answers["query"] = dynamodb.query(
        TableName="t",
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": ITEM["pk"]},
    )
    answers["update_item"] = dynamodb.update_item(
        TableName="t",
        Key={"pk": ITEM["pk"], "sk": ITEM["sk"]},
        UpdateExpression="SET version = version + :one",
        ConditionExpression="version = :three",
        ExpressionAttributeValues={":one": {"N": "1"}, ":three": {"N": "3"}},
        ReturnValues="ALL_NEW",
    )
    try:
        dynamodb.put_item(TableName="t", Item=ITEM, ConditionExpression="attribute_not_exists(pk)")
    except dynamodb.exceptions.ConditionalCheckFailedException as refused:
        answers["refused"] = refused.response["Error"]
    sqs = session.client("sqs")
    queue = sqs.create_queue(
        QueueName="q.fifo", Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"}
    )["QueueUrl"]
    sqs.send_message(QueueUrl=queue, MessageBody="hello", MessageGroupId="g")
    received = sqs.receive_message(QueueUrl=queue, AttributeNames=["All"])["Messages"]
    answers["receive_message"] = [(m["Body"], m["Attributes"]["MessageGroupId"]) for m in received]
    secrets = session.client("secretsmanager")
    secrets.create_secret(Name="bot", SecretString="glpat-x")
    answers["get_secret_value"] = secrets.get_secret_value(SecretId="bot")["SecretString"]
    sfn = session.client("stepfunctions")
    machine = sfn.create_state_machine(
        name="m",
        definition='{"StartAt": "Done", "States": {"Done": {"Type": "Succeed"}}}',
        roleArn="arn:aws:iam::123456789012:role/sfn",
    )["stateMachineArn"]
    answers["describe_state_machine"] = {
        key: value
        for key, value in sfn.describe_state_machine(stateMachineArn=machine).items()
        if key != "creationDate"
    }
    events = session.client("events")
    events.put_rule(Name="every-5-minutes", ScheduleExpression="rate(5 minutes)")
    answers["list_rules"] = events.list_rules()["Rules"]
    for answer in answers.values():
        if isinstance(answer, dict):
            answer.pop("ResponseMetadata", None)
    return answers


@pytest.fixture
def restored() -> Iterator[None]:
    yield
    moto_serialize.install()  # as the local stack leaves it


def test_answers_are_the_same_with_remembered_aliases(restored: None) -> None:
    moto_serialize.uninstall()
    with mock_aws():
        plain = _calls()
    moto_serialize.install()
    moto_serialize.install()  # idempotent
    with mock_aws():
        remembered = _calls()
    with mock_aws():
        again = _calls()
    assert plain["get_item"]["Item"] == ITEM
    assert "refused" in plain
    assert remembered == plain
    assert again == plain


class Queue:
    """A moto-style model object: its ``QueueUrl`` may be found as ``Url``."""

    Url = "http://sqs/q"


def test_aliases_are_remembered_per_type_shape_and_key(restored: None) -> None:
    shape = StructureShape("Attributes", {"type": "structure", "members": {}})
    contexts = [
        AttributePickerContext(obj=Queue(), key="QueueUrl", shape=None),  # type: ignore[arg-type]
        AttributePickerContext(obj={}, key="QueueUrl", shape=None),  # type: ignore[arg-type]
        AttributePickerContext(obj={}, key="QueueAttributes", shape=shape),  # type: ignore[arg-type]
        AttributePickerContext(obj={}, key="QueueAttributes", shape=None),  # type: ignore[arg-type]
    ]
    pickers = [AttributePicker(), XFormedAttributePicker()]
    moto_serialize.uninstall()
    expected = [[list(p.get_possible_keys(c)) for c in contexts] for p in pickers]
    assert expected[0][0] != expected[0][1]  # the type matters
    assert expected[0][2] != expected[0][3]  # so does the shape
    moto_serialize.install()
    for _ in range(2):
        assert [[list(p.get_possible_keys(c)) for c in contexts] for p in pickers] == expected

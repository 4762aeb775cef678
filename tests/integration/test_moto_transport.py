"""The local stack's in-process transport answers AWS calls to its moto with the server's
own application, without a connection, and leaves every other endpoint to the network."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto.server import ThreadedMotoServer
from urllib3.connection import HTTPConnection

from local import moto_transport


def _session() -> boto3.Session:
    return boto3.Session(
        region_name="us-east-1", aws_access_key_id="local", aws_secret_access_key="local"
    )


@pytest.fixture
def server() -> Iterator[tuple[ThreadedMotoServer, str]]:
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    try:
        yield moto, f"http://{host}:{port}"
    finally:
        moto.stop()


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The TCP connections urllib3 opens, by host and port."""
    opened: list[str] = []
    original = HTTPConnection._new_conn

    def new_conn(connection: HTTPConnection) -> Any:
        opened.append(f"{connection.host}:{connection.port}")
        return original(connection)

    monkeypatch.setattr(HTTPConnection, "_new_conn", new_conn)
    return opened


def _table(client: Any) -> None:
    client.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def test_calls_to_the_local_moto_are_answered_in_process_by_the_same_backends(
    server: tuple[ThreadedMotoServer, str], connections: list[str]
) -> None:
    moto, endpoint = server
    with moto_transport.in_process(moto_transport.server_app(moto), [endpoint]):
        dynamodb = _session().client("dynamodb", endpoint_url=endpoint)
        _table(dynamodb)
        dynamodb.put_item(TableName="t", Item={"pk": {"S": "a"}, "v": {"S": "in process"}})
        with pytest.raises(ClientError) as missing:
            dynamodb.get_item(TableName="absent", Key={"pk": {"S": "a"}})
        sqs = _session().client("sqs", endpoint_url=endpoint)
        queue = sqs.create_queue(
            QueueName="q.fifo",
            Attributes={"FifoQueue": "true", "ContentBasedDeduplication": "true"},
        )["QueueUrl"]
        sqs.send_message(QueueUrl=queue, MessageBody="hello", MessageGroupId="g")
        assert connections == []

    # Moto's own error, as the server gives it.
    assert missing.value.response["Error"]["Code"] == "ResourceNotFoundException"
    # After the block the same calls go over HTTP to the same server, which has what the
    # in-process calls wrote.
    over_http = _session().client("dynamodb", endpoint_url=endpoint)
    item = over_http.get_item(TableName="t", Key={"pk": {"S": "a"}})["Item"]
    assert item["v"] == {"S": "in process"}
    received = _session().client("sqs", endpoint_url=endpoint)
    messages = received.receive_message(QueueUrl=queue)["Messages"]
    assert [message["Body"] for message in messages] == ["hello"]
    assert connections


def test_other_endpoints_go_over_the_network(
    server: tuple[ThreadedMotoServer, str], connections: list[str]
) -> None:
    moto, endpoint = server
    host_port = endpoint.removeprefix("http://")
    with moto_transport.in_process(moto_transport.server_app(moto), ["http://127.0.0.9:1"]):
        dynamodb = _session().client("dynamodb", endpoint_url=endpoint)
        dynamodb.list_tables()
    assert connections == [host_port]


def test_an_exception_in_moto_is_a_500_as_from_the_server(
    server: tuple[ThreadedMotoServer, str],
) -> None:
    _, endpoint = server

    def broken(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise TypeError("'<=' not supported between instances of 'Decimal' and 'str'")

    with moto_transport.in_process(broken, [endpoint]):
        dynamodb = _session().client(
            "dynamodb",
            endpoint_url=endpoint,
            config=Config(retries={"mode": "standard", "max_attempts": 1}),
        )
        with pytest.raises(ClientError) as failed:
            dynamodb.list_tables()
    assert failed.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500


def test_each_call_reaches_moto_once_across_successive_stacks(
    server: tuple[ThreadedMotoServer, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore runs every ``before-send`` handler of a session: the default session of a
    second stack in the process must not carry the handler twice."""
    moto, endpoint = server
    app = moto_transport.server_app(moto)
    requests: list[str] = []

    def counting(environ: dict[str, Any], start_response: Any) -> Any:
        requests.append(environ["HTTP_X_AMZ_TARGET"])
        return app(environ, start_response)

    for key, value in {
        "AWS_ACCESS_KEY_ID": "local",
        "AWS_SECRET_ACCESS_KEY": "local",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    for _ in range(2):
        with moto_transport.in_process(counting, [endpoint]):
            boto3.client("dynamodb", endpoint_url=endpoint).list_tables()
    assert requests == ["DynamoDB_20120810.ListTables"] * 2

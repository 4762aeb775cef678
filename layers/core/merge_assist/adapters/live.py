"""The live updates' ``Connections`` in their own DynamoDB table, and their ``Broadcaster`` on
API Gateway's WebSocket management API.

Connection items::

    connection_id  username  admin  project_ids  project  connected_at  expires_at (TTL)

Finding the connections that may see a project is a scan, on purpose: the table holds only
open dashboard sockets (a handful to a few dozen), the stream consumer scans once per
invocation rather than once per record, and the question asked is "who may see project N",
which admins (every project) and multi-project users do not answer by key. A GSI keyed by
project would need an item per project per connection and a second lookup for admins.
DynamoDB's TTL deletes lazily (within days), so expired items are filtered when read.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from merge_assist.adapters.aws import dynamodb_table, register_cache
from merge_assist.live.feed import Connection
from merge_assist.platform.errors import Unavailable
from merge_assist.platform.resources import CONNECTIONS_TABLE
from merge_assist.platform.settings import Settings, get_settings

if TYPE_CHECKING:
    from mypy_boto3_apigatewaymanagementapi import ApiGatewayManagementApiClient
    from mypy_boto3_dynamodb.service_resource import Table

# Messages go out one connection after another: a slow endpoint must not eat the
# invocation's time, and a lost message is not worth many retries.
MANAGEMENT_CLIENT_CONFIG = Config(
    connect_timeout=2, read_timeout=5, retries={"max_attempts": 2, "mode": "standard"}
)


class DynamoDBConnections:
    def __init__(self, table: Table) -> None:
        self._table = table

    def add(self, connection: Connection) -> None:
        item: dict[str, Any] = {
            **connection.model_dump(mode="json", exclude={"expires_at", "project"}),
            CONNECTIONS_TABLE.ttl_attribute: int(connection.expires_at.timestamp()),
        }
        if connection.project is not None:
            item["project"] = connection.project
        self._table.put_item(Item=item)

    def remove(self, connection_id: str) -> None:
        self._table.delete_item(Key={CONNECTIONS_TABLE.partition_key: connection_id})

    def get(self, connection_id: str) -> Connection | None:
        item = self._table.get_item(
            Key={CONNECTIONS_TABLE.partition_key: connection_id}, ConsistentRead=True
        ).get("Item")
        return _load(item) if item is not None else None

    def all(self) -> list[Connection]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {"ConsistentRead": True}
        while True:
            response = self._table.scan(**kwargs)
            items.extend(response.get("Items", []))
            last = response.get("LastEvaluatedKey")
            if not last:
                return [_load(item) for item in items]
            kwargs["ExclusiveStartKey"] = last


def _load(item: dict[str, Any]) -> Connection:
    return Connection(
        connection_id=str(item[CONNECTIONS_TABLE.partition_key]),
        username=str(item["username"]),
        admin=bool(item.get("admin", False)),
        project_ids=[int(pid) for pid in item.get("project_ids", [])],
        project=int(item["project"]) if item.get("project") is not None else None,
        connected_at=item["connected_at"],
        expires_at=datetime.fromtimestamp(int(item[CONNECTIONS_TABLE.ttl_attribute]), tz=UTC),
    )


class ApiGatewayBroadcaster:
    def __init__(self, client: ApiGatewayManagementApiClient) -> None:
        self._client = client

    def send(self, connection_id: str, message: bytes) -> bool:
        try:
            self._client.post_to_connection(ConnectionId=connection_id, Data=message)
        except self._client.exceptions.GoneException:
            return False
        except (ClientError, BotoCoreError) as error:
            raise Unavailable(f"could not post to {connection_id}: {error}") from error
        return True

    def close(self, connection_id: str) -> None:
        """Ends the socket (the client is told, and reconnects with a fresh token)."""
        try:
            self._client.delete_connection(ConnectionId=connection_id)
        except self._client.exceptions.GoneException:
            return
        except (ClientError, BotoCoreError) as error:
            raise Unavailable(f"could not close {connection_id}: {error}") from error


@lru_cache(maxsize=4)
def management_client(endpoint_url: str) -> ApiGatewayManagementApiClient:
    return boto3.client(
        "apigatewaymanagementapi", endpoint_url=endpoint_url, config=MANAGEMENT_CLIENT_CONFIG
    )


register_cache(management_client.cache_clear)


def connections_from_settings(settings: Settings | None = None) -> DynamoDBConnections:
    settings = settings or get_settings()
    return DynamoDBConnections(dynamodb_table(settings.resolved_connections_table))


def broadcaster_from_settings(settings: Settings | None = None) -> ApiGatewayBroadcaster:
    settings = settings or get_settings()
    if not settings.websocket_callback_url:
        raise RuntimeError("MERGE_ASSIST_WEBSOCKET_CALLBACK_URL is not set")
    return ApiGatewayBroadcaster(management_client(settings.websocket_callback_url))

"""The ``websocket`` and ``updates`` handlers against moto: connections are opened only with
a valid token, and a change in the table reaches exactly the connections allowed to see it.

Stream events are the records moto's DynamoDB Streams holds for the writes a test makes,
shaped as Lambda delivers them. API Gateway's management API is a small HTTP server that
records what is posted and answers 410 for connections a test has marked gone."""

from __future__ import annotations

import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

import boto3
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from moto.core.models import DEFAULT_ACCOUNT_ID
from moto.dynamodb.models import dynamodb_backends

from local.provision import create_connections_table
from local.runtime import make_context
from local.stream_poller import stream_record
from merge_assist.adapters.aws import clear_caches
from merge_assist.adapters.dynamodb_store import DynamoDBStore
from merge_assist.adapters.live import DynamoDBConnections
from merge_assist.live.feed import Connection
from merge_assist.platform.access import Grant, Role
from merge_assist.platform.config import ProjectConfig
from merge_assist.platform.resources import ResourceNames
from merge_assist.queue.models import MergeRequestState, StatusCategory
from tests.conftest import MakeMR
from tests.integration.api_harness import (
    CLIENT_ID,
    ISSUER,
    POOL_ID,
    TokenFactory,
    jwks_url,
    tokens,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

__all__ = ["jwks_url", "tokens"]  # fixtures

NAMES = ResourceNames("test")
OWN, OTHER = 1, 2


@dataclass
class FakeManagementApi:
    """API Gateway's ``@connections`` API: what was posted to whom, and who was closed."""

    gone: set[str] = field(default_factory=set)
    posted: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    closed: list[str] = field(default_factory=list)
    url: str = ""

    def messages(self, connection_id: str) -> list[dict[str, Any]]:
        return self.posted.get(connection_id, [])


@pytest.fixture
def management() -> Iterator[FakeManagementApi]:
    api = FakeManagementApi()

    class Handler(BaseHTTPRequestHandler):
        def _answer(self, status: int) -> None:
            body = json.dumps({"message": "gone"}).encode() if status == 410 else b""
            self.send_response(status)
            if status == 410:
                self.send_header("x-amzn-ErrorType", "GoneException")
            self.send_header("content-length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _connection_id(self) -> str:
            return unquote(self.path.rsplit("/@connections/", 1)[1])

        def do_POST(self) -> None:
            connection_id = self._connection_id()
            data = self.rfile.read(int(self.headers.get("content-length") or 0))
            if connection_id in api.gone:
                self._answer(410)
                return
            api.posted.setdefault(connection_id, []).append(json.loads(data))
            self._answer(200)

        def do_DELETE(self) -> None:
            api.closed.append(self._connection_id())
            self._answer(204)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    api.url = f"http://127.0.0.1:{server.server_address[1]}/updates"
    yield api
    server.shutdown()
    server.server_close()


@pytest.fixture
def connections(table: Table) -> DynamoDBConnections:
    create_connections_table(boto3.Session(), NAMES)
    return DynamoDBConnections(boto3.resource("dynamodb").Table(NAMES.connections_table))


@pytest.fixture
def environment(
    connections: DynamoDBConnections,
    management: FakeManagementApi,
    jwks_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[None]:
    monkeypatch.setenv("MERGE_ASSIST_RESOURCE_PREFIX", NAMES.prefix)
    monkeypatch.setenv("MERGE_ASSIST_TOKEN_ISSUER", ISSUER)
    monkeypatch.setenv("MERGE_ASSIST_USER_POOL_ID", POOL_ID)
    monkeypatch.setenv("MERGE_ASSIST_USER_POOL_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("MERGE_ASSIST_JWKS_URL", jwks_url)
    monkeypatch.setenv("MERGE_ASSIST_WEBSOCKET_CALLBACK_URL", management.url)
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    clear_caches()
    yield
    clear_caches()


# -- the websocket function -----------------------------------------------------------

Call = Callable[..., dict[str, Any]]


def _websocket_event(route: str, connection_id: str, **fields: Any) -> dict[str, Any]:
    event_type = {"$connect": "CONNECT", "$disconnect": "DISCONNECT"}.get(route, "MESSAGE")
    return {
        "requestContext": {
            "routeKey": route,
            "eventType": event_type,
            "connectionId": connection_id,
            "domainName": "abc123.execute-api.eu-west-1.amazonaws.com",
            "stage": "updates",
            "apiId": "abc123",
            "requestId": "r-1",
            "connectedAt": 1_700_000_000_000,
        },
        "isBase64Encoded": False,
        **fields,
    }


@pytest.fixture
def websocket(environment: None) -> Call:
    from functions.websocket import app  # noqa: PLC0415 - after the environment is set

    def call(route: str, connection_id: str = "conn-1=", **fields: Any) -> dict[str, Any]:
        answer: dict[str, Any] = app.handler(
            _websocket_event(route, connection_id, **fields), make_context("test-websocket")
        )
        return answer

    return call


def _connect(websocket: Call, connection_id: str = "conn-1=", **query: str) -> int:
    answer = websocket("$connect", connection_id, queryStringParameters=query or None)
    return int(answer["statusCode"])


def test_a_connection_without_a_token_is_refused(
    websocket: Call, connections: DynamoDBConnections
) -> None:
    assert _connect(websocket) == 401
    assert _connect(websocket, project=str(OWN)) == 401
    assert connections.all() == []


def test_a_connection_with_a_bad_token_is_refused(
    websocket: Call, connections: DynamoDBConnections, tokens: TokenFactory
) -> None:
    claims = tokens.claims("bob", ["viewer"])
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    bad = [
        "not-a-jwt",
        tokens.sign(claims, key=other_key),
        tokens.token("bob", "viewer", exp=int(time.time()) - 60),
        tokens.token("bob", "viewer", client_id="another-client"),
        tokens.sign(tokens.claims("bob", ["viewer"], token_use="id")),
    ]

    assert [_connect(websocket, token=token) for token in bad] == [401] * len(bad)
    assert connections.all() == []


def test_a_project_the_user_may_not_view_is_forbidden(
    websocket: Call,
    connections: DynamoDBConnections,
    tokens: TokenFactory,
    store: DynamoDBStore,
) -> None:
    store.save_grant(Grant(username="bob", project_id=OWN, roles=[Role.VIEWER], granted_by="a"))
    token = tokens.token("bob", "viewer")

    assert _connect(websocket, token=token, project=str(OTHER)) == 403
    assert _connect(websocket, token=token, project="nope") == 400
    assert connections.all() == []
    assert _connect(websocket, token=token, project=str(OWN)) == 200
    [connection] = connections.all()
    assert (connection.project, connection.project_ids) == (OWN, [OWN])


def test_a_connection_is_stored_until_its_token_expires_and_removed_on_disconnect(
    websocket: Call, connections: DynamoDBConnections, tokens: TokenFactory
) -> None:
    expiry = int(time.time()) + 1800

    assert _connect(websocket, "admin-1=", token=tokens.token("ada", "admin", exp=expiry)) == 200

    [connection] = connections.all()
    assert connection.connection_id == "admin-1="
    assert connection.username == "ada"
    assert connection.admin
    assert connection.expires_at == datetime.fromtimestamp(expiry, tz=UTC)
    assert websocket("$disconnect", "admin-1=")["statusCode"] == 200
    assert connections.all() == []


def test_ping_is_answered_and_anything_else_ignored(websocket: Call) -> None:
    pong = websocket("$default", body=json.dumps({"action": "ping"}))
    other = websocket("$default", body="hello")

    assert (pong["statusCode"], json.loads(pong["body"])) == (200, {"type": "pong"})
    assert other["statusCode"] == 200
    assert "body" not in other


def test_the_token_is_never_logged(
    websocket: Call,
    tokens: TokenFactory,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from functions.websocket import app  # noqa: PLC0415

    written = io.StringIO()
    monkeypatch.setattr(app.logger.registered_handler, "stream", written)
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    good = tokens.token("ada", "admin")
    expired = tokens.token("ada", "admin", exp=int(time.time()) - 60)

    _connect(websocket, token=good)
    _connect(websocket, token=expired)

    logged = written.getvalue() + "".join(str(vars(record)) for record in caplog.records)
    assert '"message":"connected"' in written.getvalue()
    assert good not in logged
    assert expired not in logged


# -- the updates function -------------------------------------------------------------


@dataclass
class Stream:
    """The table's change stream from where the test started reading. Read from moto's
    backend: in-process moto routes the dynamodbstreams client's requests (signed for
    ``dynamodb``) to DynamoDB itself; the local stack, whose moto is a server, uses the
    client."""

    arn: str
    table_name: str
    position: int

    @property
    def _shard(self) -> Any:
        backend = dynamodb_backends[DEFAULT_ACCOUNT_ID][boto3.Session().region_name]
        return backend.get_table(self.table_name).stream_shard

    def records(self) -> list[dict[str, Any]]:
        items = self._shard.items[self.position :]
        self.position += len(items)
        return [stream_record(item.to_json(), self.arn) for item in items]


@pytest.fixture
def stream(table: Table) -> Stream:
    created = Stream(table.latest_stream_arn, table.name, 0)
    created.position = len(created._shard.items)
    return created


@pytest.fixture
def updates(environment: None) -> Callable[[list[dict[str, Any]]], dict[str, Any]]:
    from functions.updates import app  # noqa: PLC0415 - after the environment is set

    def call(records: list[dict[str, Any]]) -> dict[str, Any]:
        answer: dict[str, Any] = app.handler({"Records": records}, make_context("test-updates"))
        return answer

    return call


def _connection(
    connection_id: str, *projects: int, admin: bool = False, **fields: Any
) -> Connection:
    now = datetime.now(UTC)
    values: dict[str, Any] = {
        "connection_id": connection_id,
        "username": connection_id.rstrip("="),
        "admin": admin,
        "project_ids": list(projects),
        "connected_at": now,
        "expires_at": now + timedelta(hours=1),
    }
    return Connection.model_validate(values | fields)


def _queued_then_batching(store: DynamoDBStore, make_mr: MakeMR) -> MergeRequestState:
    queued = store.save_merge_request(make_mr(5, project_id=OWN))
    return store.save_merge_request(
        queued.model_copy(update={"status": StatusCategory.BATCHING, "batch_id": "b-1"})
    )


def test_a_change_is_posted_only_to_connections_allowed_to_see_its_project(
    updates: Callable[[list[dict[str, Any]]], dict[str, Any]],
    connections: DynamoDBConnections,
    management: FakeManagementApi,
    store: DynamoDBStore,
    stream: Stream,
    make_mr: MakeMR,
) -> None:
    for connection in (
        _connection("admin=", admin=True),
        _connection("own=", OWN),
        _connection("other=", OTHER),
        _connection("admin-on-other=", admin=True, project=OTHER),
    ):
        connections.add(connection)
    batching = _queued_then_batching(store, make_mr)

    answer = updates(stream.records())

    assert answer == {"batchItemFailures": []}
    for connection_id in ("admin=", "own="):
        inserted, modified = management.messages(connection_id)
        assert (inserted["type"], inserted["data"]["status"]) == ("merge_request", "queued")
        assert modified == {
            "type": "merge_request",
            "project_id": OWN,
            "data": batching.model_dump(mode="json"),
        }
    assert management.messages("other=") == []
    assert management.messages("admin-on-other=") == []
    entries, _ = store.list_audit(OWN, limit=10)
    assert sorted(entry.id for entry in entries) == ["mr-5-v1", "mr-5-v2"]


def test_the_entries_written_come_back_as_events_and_write_nothing_more(
    updates: Callable[[list[dict[str, Any]]], dict[str, Any]],
    connections: DynamoDBConnections,
    management: FakeManagementApi,
    store: DynamoDBStore,
    stream: Stream,
    make_mr: MakeMR,
) -> None:
    connections.add(_connection("own=", OWN))
    _queued_then_batching(store, make_mr)
    first = stream.records()
    updates(first)

    # The audit items the first invocation wrote are the stream's next records.
    audit_records = stream.records()
    updates(audit_records)
    # A replay (Lambda's retry after a timeout, say) changes nothing.
    updates(first)

    assert len(audit_records) == 2
    events = [m for m in management.messages("own=") if m["type"] == "event"]
    assert sorted(m["data"]["id"] for m in events) == ["mr-5-v1", "mr-5-v2"]
    assert stream.records() == []
    entries, _ = store.list_audit(OWN, limit=10)
    assert len(entries) == 2


def test_gone_and_expired_connections_are_deleted(
    updates: Callable[[list[dict[str, Any]]], dict[str, Any]],
    connections: DynamoDBConnections,
    management: FakeManagementApi,
    store: DynamoDBStore,
    stream: Stream,
) -> None:
    past = datetime.now(UTC) - timedelta(seconds=1)
    connections.add(_connection("live=", OWN))
    connections.add(_connection("gone=", OWN))
    connections.add(_connection("expired=", OWN, expires_at=past))
    management.gone.add("gone=")

    store.save_project(ProjectConfig(project_id=OWN))
    updates(stream.records())

    assert [c.connection_id for c in connections.all()] == ["live="]
    assert [m["type"] for m in management.messages("live=")] == ["project"]
    assert management.messages("expired=") == []
    # An expired token's socket is closed, so the dashboard reconnects with a fresh one.
    assert management.closed == ["expired="]


def test_a_bad_record_is_reported_alone(
    updates: Callable[[list[dict[str, Any]]], dict[str, Any]],
    connections: DynamoDBConnections,
    management: FakeManagementApi,
    store: DynamoDBStore,
    stream: Stream,
    table: Table,
    make_mr: MakeMR,
) -> None:
    connections.add(_connection("own=", OWN))
    store.save_project(ProjectConfig(project_id=OWN))
    # An item its model cannot read (written by a newer or broken version, say).
    table.put_item(
        Item={"pk": f"PROJECT#{OWN}", "sk": "MR#0000000009", "kind": "merge_request", "iid": 9}
    )
    store.save_merge_request(make_mr(6, project_id=OWN))
    records = stream.records()

    answer = updates(records)

    bad = records[1]["dynamodb"]["SequenceNumber"]
    assert answer == {"batchItemFailures": [{"itemIdentifier": bad}]}
    assert [m["type"] for m in management.messages("own=")] == ["project", "merge_request"]
    entries, _ = store.list_audit(OWN, limit=10)
    assert [entry.id for entry in entries] == ["mr-6-v1"]

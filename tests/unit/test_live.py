"""From one change-stream record: the dashboard's messages and the queue's event-log entries;
and who of the open connections gets them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from merge_assist.audit.models import QUEUE_ACTOR, AuditAction, AuditEntry
from merge_assist.live.feed import (
    Connection,
    LiveFeed,
    UpdateType,
    changes,
    open_connection,
)
from merge_assist.platform.access import Grant, Role
from merge_assist.platform.config import ProjectConfig, Strategy
from merge_assist.platform.errors import Forbidden, Unavailable
from merge_assist.queue.models import (
    Batch,
    BatchStep,
    BatchStepKind,
    MergeRequestState,
    Reason,
    ReasonCode,
    StatusCategory,
)

T0 = datetime(2025, 3, 14, 9, 26, 53, 589_793, tzinfo=UTC)


def _decimals(value: Any) -> Any:
    """Numbers as the stream's deserializer gives them."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return Decimal(str(value))
    if isinstance(value, dict):
        return {name: _decimals(item) for name, item in value.items()}
    if isinstance(value, list):
        return [_decimals(item) for item in value]
    return value


def _image(model: BaseModel, kind: str, **keys: Any) -> dict[str, Any]:
    """An item as the store writes it, as it comes out of the stream."""
    item: dict[str, Any] = _decimals(
        {"pk": "PK", "sk": "SK", "expires_at": 1_900_000_000, **keys}
        | model.model_dump(mode="json")
        | {"kind": kind}
    )
    return item


def _mr(**fields: Any) -> MergeRequestState:
    values: dict[str, Any] = {
        "project_id": 7,
        "iid": 12,
        "sha": "a" * 40,
        "source_branch": "feature/12",
        "target_branch": "main",
        "status": StatusCategory.QUEUED,
        "ready_since": T0,
        "version": 2,
        "updated_at": T0,
    }
    return MergeRequestState.model_validate(values | fields)


def _batch(steps: list[BatchStep], **fields: Any) -> Batch:
    values: dict[str, Any] = {
        "id": "b-3",
        "project_id": 7,
        "target_branch": "main",
        "strategy": Strategy.BATCH,
        "merge_requests": [1, 2, 3, 4],
        "steps": steps,
        "version": len(steps),
    }
    return Batch.model_validate(values | fields)


def _step(kind: BatchStepKind, minute: int, **fields: Any) -> BatchStep:
    return BatchStep(kind=kind, at=T0 + timedelta(minutes=minute), **fields)


# -- merge requests -------------------------------------------------------------------


def test_a_status_change_is_one_entry_with_an_id_from_the_version() -> None:
    before = _mr()
    after = _mr(
        status=StatusCategory.TESTING,
        batch_id="b-3",
        version=3,
        updated_at=T0 + timedelta(seconds=5),
    )

    change = changes(_image(before, "merge_request"), _image(after, "merge_request"))

    [entry] = change.entries
    assert entry == AuditEntry(
        project_id=7,
        id="mr-12-v3",
        at=T0 + timedelta(seconds=5),
        action=AuditAction.STATUS_CHANGED,
        actor=QUEUE_ACTOR,
        summary="!12 queued → testing (batch b-3)",
        merge_request=12,
        batch_id="b-3",
        details={"from": "queued", "to": "testing", "reasons": [], "target_branch": "main"},
    )
    [update] = change.updates
    assert update.type is UpdateType.MERGE_REQUEST
    assert update.project_id == 7
    assert update.data == after.model_dump(mode="json")


def test_a_rejection_says_why() -> None:
    reason = Reason(code=ReasonCode.CI_FAILED, message="the batch pipeline failed")
    before = _mr(status=StatusCategory.TESTING, batch_id="b-3")
    after = _mr(status=StatusCategory.REJECTED, batch_id=None, reasons=[reason], version=3)

    [entry] = changes(_image(before, "merge_request"), _image(after, "merge_request")).entries

    # The batch it left is still named.
    assert entry.summary == "!12 testing → rejected (batch b-3): the batch pipeline failed"
    assert entry.details["reasons"] == [
        {"code": "ci_failed", "message": "the batch pipeline failed"}
    ]


def test_a_new_merge_request_is_an_entry_from_nothing() -> None:
    after = _mr(status=StatusCategory.NOT_READY, ready_since=None, version=1)

    [entry] = changes(None, _image(after, "merge_request")).entries

    assert entry.id == "mr-12-v1"
    assert entry.summary == "!12 new → not ready"
    assert entry.details["from"] is None


def test_a_save_that_changes_only_bookkeeping_is_sent_but_not_logged() -> None:
    before = _mr()
    after = _mr(
        version=3,
        updated_at=T0 + timedelta(seconds=1),
        last_event_kind="merge_request",
        last_event_key="k-1",
        last_event_at=T0,
    )

    change = changes(_image(before, "merge_request"), _image(after, "merge_request"))

    assert change.entries == ()
    # The dashboard keeps the version it edits against.
    [update] = change.updates
    assert update.data["version"] == 3


def test_a_change_other_than_status_writes_no_entry() -> None:
    before = _mr()
    after = _mr(priority=5, version=3)

    assert changes(_image(before, "merge_request"), _image(after, "merge_request")).entries == ()


def test_a_replayed_record_derives_the_same_entries() -> None:
    before = _image(_mr(), "merge_request")
    after = _image(_mr(status=StatusCategory.BATCHING, version=3), "merge_request")

    assert changes(before, after) == changes(before, after)


# -- batches --------------------------------------------------------------------------


def test_each_new_batch_step_is_one_entry() -> None:
    selected = _step(BatchStepKind.SELECTED, 0, merge_requests=[1, 2, 3, 4])
    tested = _step(BatchStepKind.TESTED, 5, merge_requests=[1, 2, 3, 4], status="failed")
    bisected = _step(
        BatchStepKind.BISECTED,
        6,
        merge_requests=[1, 2],
        sha="c" * 40,
        note="testing the first 2 of 4",
    )
    before = _batch([selected])
    after = _batch([selected, tested, bisected])

    change = changes(_image(before, "batch"), _image(after, "batch"))

    assert [(e.id, e.at, e.summary) for e in change.entries] == [
        ("batch-b-3-step-1", tested.at, "batch b-3: tested !1 !2 !3 !4, failed"),
        (
            "batch-b-3-step-2",
            bisected.at,
            "batch b-3: bisected !1 !2 (testing the first 2 of 4)",
        ),
    ]
    assert all(e.action is AuditAction.BATCH_STEP and e.batch_id == "b-3" for e in change.entries)
    assert change.entries[1].details == bisected.model_dump(mode="json")
    [update] = change.updates
    assert (update.type, update.project_id) == (UpdateType.BATCH, 7)


def test_a_new_batch_logs_all_its_steps_and_an_unchanged_one_none() -> None:
    steps = [_step(BatchStepKind.SELECTED, 0, merge_requests=[1, 2])]
    batch = _batch(steps)

    [entry] = changes(None, _image(batch, "batch")).entries
    assert entry.id == "batch-b-3-step-0"
    assert entry.summary == "batch b-3: selected !1 !2"
    moved = _batch(steps, testing_sha="d" * 40, version=2)
    assert changes(_image(batch, "batch"), _image(moved, "batch")).entries == ()


# -- other items ----------------------------------------------------------------------


def test_an_audit_item_is_an_event_message_and_no_entry() -> None:
    entry = AuditEntry(
        project_id=7,
        id="config-v4",
        at=T0,
        action=AuditAction.CONFIG_CHANGED,
        actor="alice",
        summary="batch size 5 → 3",
        details={"batch_size": [5, 3]},
    )

    change = changes(None, _image(entry, "audit", pk="AUDIT#7"))

    assert change.entries == ()
    [update] = change.updates
    assert update.type is UpdateType.EVENT
    # Numbers in free-form details come back as numbers, not Decimal or strings.
    assert update.data == entry.model_dump(mode="json")
    assert update.encode().count(b"[5,3]") == 1


def test_a_project_config_is_a_project_message() -> None:
    before = ProjectConfig(project_id=7, version=1)
    after = ProjectConfig(project_id=7, batch_size=3, version=2)

    change = changes(_image(before, "project"), _image(after, "project"))

    assert change.entries == ()
    [update] = change.updates
    assert (update.type, update.project_id, update.data["batch_size"]) == (
        UpdateType.PROJECT,
        7,
        3,
    )


def test_a_removed_project_is_a_removal_message() -> None:
    [update] = changes(_image(ProjectConfig(project_id=7), "project"), None).updates

    assert update.model_dump(mode="json") == {
        "type": "project_removed",
        "project_id": 7,
        "data": {"project_id": 7},
    }


def test_items_that_expire_produce_nothing() -> None:
    assert changes(_image(_mr(status=StatusCategory.MERGED), "merge_request"), {}) == changes(
        None, None
    )
    assert changes(_image(_mr(), "merge_request"), None).updates == ()


@pytest.mark.parametrize(
    "item",
    [
        {"pk": "PROJECT#7", "sk": "LOCK#main", "kind": "branch_lock", "batch_id": "b-3"},
        {"pk": "PROJECT#7", "sk": "WAIT#abc", "kind": "pipeline_wait", "task_token": "t"},
        {"pk": "USER#bob", "sk": "GRANT#000000000007", "kind": "grant", "project_id": 7},
        {"pk": "x", "sk": "y", "status": "IN_PROGRESS"},  # Powertools' idempotency record
    ],
)
def test_locks_waits_grants_and_foreign_items_produce_nothing(item: dict[str, Any]) -> None:
    assert changes(None, item).updates == ()
    assert changes(item, {**item, "extra": 1}).updates == ()
    assert changes(item, None).updates == ()


def test_an_item_that_is_not_its_model_fails_the_record() -> None:
    broken = _image(_mr(), "merge_request") | {"status": "somewhere"}

    with pytest.raises(ValidationError):
        changes(None, broken)


# -- connections ----------------------------------------------------------------------


def _claims(username: str, *groups: str, exp: int = 1_900_000_000) -> dict[str, Any]:
    return {"username": username, "cognito:groups": list(groups), "exp": exp}


def _grant(username: str, project_id: int, *roles: Role) -> Grant:
    return Grant(username=username, project_id=project_id, roles=list(roles), granted_by="root")


def test_a_connection_sees_the_projects_its_user_may_view() -> None:
    grants = [_grant("bob", 7, Role.VIEWER), _grant("bob", 8, Role.PROJECT_OWNER)]

    # Only the roles bob also holds as groups count: project_owner on 8 does not.
    connection = open_connection("c1", _claims("bob", "viewer"), grants, project=None, now=T0)

    assert connection.project_ids == [7]
    assert connection.expires_at == datetime.fromtimestamp(1_900_000_000, tz=UTC)
    assert connection.receives(7)
    assert not connection.receives(8)


def test_an_admin_sees_every_project_unless_narrowed() -> None:
    admin = open_connection("c1", _claims("ada", "admin"), [], project=None, now=T0)
    narrowed = open_connection("c2", _claims("ada", "admin"), [], project=9, now=T0)

    assert admin.admin
    assert admin.receives(1)
    assert admin.receives(12345)
    assert narrowed.receives(9)
    assert not narrowed.receives(1)


def test_asking_for_a_project_one_may_not_view_is_forbidden() -> None:
    grants = [_grant("bob", 7, Role.VIEWER)]

    with pytest.raises(Forbidden):
        open_connection("c1", _claims("bob", "viewer"), grants, project=8, now=T0)
    assert open_connection("c1", _claims("bob", "viewer"), grants, project=7, now=T0).receives(7)


# -- the feed -------------------------------------------------------------------------


class FakeAuditLog:
    def __init__(self) -> None:
        self.entries: dict[tuple[datetime, str], AuditEntry] = {}

    def append_audit(self, entry: AuditEntry) -> bool:
        key = (entry.at, entry.id)
        if key in self.entries:
            return False
        self.entries[key] = entry
        return True


class FakeConnections:
    def __init__(self, *connections: Connection) -> None:
        self.items = {c.connection_id: c for c in connections}
        self.reads = 0

    def add(self, connection: Connection) -> None:
        self.items[connection.connection_id] = connection

    def remove(self, connection_id: str) -> None:
        self.items.pop(connection_id, None)

    def all(self) -> list[Connection]:
        self.reads += 1
        return list(self.items.values())


class FakeBroadcaster:
    def __init__(
        self, gone: frozenset[str] = frozenset(), failing: frozenset[str] = frozenset()
    ) -> None:
        self.gone = gone
        self.failing = failing
        self.sent: list[tuple[str, bytes]] = []
        self.closed: list[str] = []

    def send(self, connection_id: str, message: bytes) -> bool:
        if connection_id in self.failing:
            raise Unavailable("throttled")
        if connection_id in self.gone:
            return False
        self.sent.append((connection_id, message))
        return True

    def close(self, connection_id: str) -> None:
        self.closed.append(connection_id)


class FixedClock:
    def now(self) -> datetime:
        return T0


def _connection(
    connection_id: str, *projects: int, admin: bool = False, **fields: Any
) -> Connection:
    values: dict[str, Any] = {
        "connection_id": connection_id,
        "username": connection_id,
        "admin": admin,
        "project_ids": list(projects),
        "connected_at": T0 - timedelta(minutes=1),
        "expires_at": T0 + timedelta(hours=1),
    }
    return Connection.model_validate(values | fields)


def _feed(
    connections: FakeConnections, broadcaster: FakeBroadcaster, audit: FakeAuditLog | None = None
) -> LiveFeed:
    return LiveFeed(
        audit=audit or FakeAuditLog(),
        connections=connections,
        broadcaster=broadcaster,
        clock=FixedClock(),
    )


def _status_record() -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    return (
        _image(_mr(), "merge_request"),
        _image(_mr(status=StatusCategory.BATCHING, version=3), "merge_request"),
    )


def test_messages_go_only_to_connections_that_may_see_the_project() -> None:
    connections = FakeConnections(
        _connection("viewer-of-7", 7),
        _connection("viewer-of-8", 8),
        _connection("admin", admin=True),
        _connection("admin-on-8", admin=True, project=8),
    )
    broadcaster = FakeBroadcaster()

    delivery = _feed(connections, broadcaster).handle(*_status_record())

    assert sorted(cid for cid, _ in broadcaster.sent) == ["admin", "viewer-of-7"]
    assert delivery.sent == 2
    assert delivery.entries_written == 1


def test_gone_and_expired_connections_are_removed_and_get_nothing() -> None:
    expired = _connection("expired", 7, expires_at=T0)
    connections = FakeConnections(_connection("live", 7), _connection("gone", 7), expired)
    broadcaster = FakeBroadcaster(gone=frozenset({"gone"}))
    feed = _feed(connections, broadcaster)

    delivery = feed.handle(*_status_record())
    feed.handle(*_status_record())

    assert delivery.gone == ["gone"]
    assert delivery.expired == ["expired"]
    assert broadcaster.closed == ["expired"]
    assert set(connections.items) == {"live"}
    assert [cid for cid, _ in broadcaster.sent] == ["live", "live"]
    # Read once for the invocation, not once per record.
    assert connections.reads == 1


def test_a_connection_that_cannot_be_reached_now_does_not_stop_the_others() -> None:
    connections = FakeConnections(_connection("slow", 7), _connection("fine", 7))
    broadcaster = FakeBroadcaster(failing=frozenset({"slow"}))

    delivery = _feed(connections, broadcaster).handle(*_status_record())

    assert delivery.failed == ["slow"]
    assert [cid for cid, _ in broadcaster.sent] == ["fine"]
    assert set(connections.items) == {"slow", "fine"}


def test_a_replayed_record_writes_no_entry_twice() -> None:
    audit = FakeAuditLog()
    feed = _feed(FakeConnections(), FakeBroadcaster(), audit)

    first = feed.handle(*_status_record())
    again = feed.handle(*_status_record())

    assert (first.entries_written, again.entries_written) == (1, 0)
    assert [entry.id for entry in audit.entries.values()] == ["mr-12-v3"]

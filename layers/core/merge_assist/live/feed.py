"""The dashboard's live updates, and the queue's event-log entries written, from the
table's change stream (the entries themselves: ``merge_assist.audit``).

Every change to a project, a merge request, a batch or an audit entry arrives as one stream
record holding the item before and after. From it come the messages for the dashboard's open
WebSocket connections and the event-log entries the queue's own activity adds: a merge
request changing status, a batch taking a step. An entry's id is derived from what caused
it, so a replayed or retried record adds nothing. Audit items only become messages (the
event log's live tail), never entries, or every entry would write another.

Who receives what is decided when a connection opens: the projects its user may view then.
Grants changed later apply from the next connection; an access token lives an hour, and a
connection ends with its token.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from merge_assist.audit import AuditEntry, status_entry, step_entries
from merge_assist.platform.access import Action, Grant, groups_from_claims, principal
from merge_assist.platform.config import ProjectConfig
from merge_assist.platform.errors import Forbidden, Unauthenticated, Unavailable
from merge_assist.platform.ports import Clock
from merge_assist.platform.resources import LIVE_KINDS
from merge_assist.platform.stored import fields, load
from merge_assist.queue import Batch, MergeRequestState

# Written on every save, whatever changed: images equal but for these hold the same state.
_BOOKKEEPING = frozenset(
    {"version", "updated_at", "last_event_kind", "last_event_key", "last_event_at"}
)


class UpdateType(StrEnum):
    MERGE_REQUEST = "merge_request"
    BATCH = "batch"
    PROJECT = "project"
    EVENT = "event"
    PROJECT_REMOVED = "project_removed"


class Update(BaseModel):
    """One message to the dashboard: the new state of one record of a project."""

    model_config = ConfigDict(frozen=True)

    type: UpdateType
    project_id: int = Field(gt=0)
    data: dict[str, Any]

    def encode(self) -> bytes:
        return self.model_dump_json().encode()


@dataclass(frozen=True)
class Change:
    """What one stream record means: messages to send, event-log entries to write."""

    updates: tuple[Update, ...] = ()
    entries: tuple[AuditEntry, ...] = ()


def changes(old_image: Mapping[str, Any] | None, new_image: Mapping[str, Any] | None) -> Change:
    """The messages and entries of one stream record. Images are items as stored (numbers
    may be ``Decimal``); an empty or missing image means the item did not exist. An image
    that does not load as its model raises ``pydantic.ValidationError``."""
    old = dict(old_image) if old_image else None
    new = dict(new_image) if new_image else None
    if new is not None:
        kind = str(new.get("kind", ""))
        return _changed(kind, old, new) if kind in LIVE_KINDS else Change()
    if old is not None and old.get("kind") == "project":
        project_id = int(old["project_id"])
        removed = Update(
            type=UpdateType.PROJECT_REMOVED, project_id=project_id, data={"project_id": project_id}
        )
        return Change(updates=(removed,))
    # Finished MRs and batches and old audit entries leave by TTL: nothing to show.
    return Change()


def _changed(kind: str, old: dict[str, Any] | None, new: dict[str, Any]) -> Change:
    bookkeeping_only = old is not None and _state(old) == _state(new)
    if kind == "project":
        config = load(ProjectConfig, new)
        return Change(updates=(_update(UpdateType.PROJECT, config.project_id, config),))
    if kind == "merge_request":
        mr = load(MergeRequestState, new)
        before = load(MergeRequestState, old) if old is not None else None
        entry = None if bookkeeping_only else status_entry(before, mr)
        return Change(
            updates=(_update(UpdateType.MERGE_REQUEST, mr.project_id, mr),),
            entries=(entry,) if entry is not None else (),
        )
    if kind == "batch":
        batch = load(Batch, new)
        seen = len(old.get("steps") or []) if old is not None else 0
        return Change(
            updates=(_update(UpdateType.BATCH, batch.project_id, batch),),
            entries=() if bookkeeping_only else tuple(step_entries(batch, seen)),
        )
    entry = load(AuditEntry, new)
    return Change(updates=(_update(UpdateType.EVENT, entry.project_id, entry),))


# -- connections ----------------------------------------------------------------------


class Connection(BaseModel):
    """An open dashboard WebSocket, and what its user may see on it."""

    connection_id: str = Field(min_length=1, max_length=256)
    username: str = Field(min_length=1, max_length=128)
    admin: bool = False
    # The projects the user could view when connecting; admins see every project.
    project_ids: list[int] = Field(default_factory=list)
    # Narrowed by the client to one project (``?project=<id>``).
    project: int | None = None
    connected_at: datetime
    # The access token's expiry: the connection is served no longer than the token is valid.
    expires_at: datetime

    def receives(self, project_id: int) -> bool:
        if self.project is not None and project_id != self.project:
            return False
        return self.admin or project_id in self.project_ids

    def expired(self, now: datetime) -> bool:
        return now >= self.expires_at


def open_connection(
    connection_id: str,
    claims: Mapping[str, Any],
    grants: Iterable[Grant],
    *,
    project: int | None,
    now: datetime,
) -> Connection:
    """The connection a verified access token may open; ``Forbidden`` when it asks for a
    project its user may not view."""
    username = claims.get("username")
    expiry = claims.get("exp")
    if not isinstance(username, str) or not username or not isinstance(expiry, int | float):
        raise Unauthenticated("the token names no user or no expiry")
    who = principal(username, groups_from_claims(claims), grants)
    if project is not None and not who.may(Action.VIEW, project):
        raise Forbidden(f"{username} may not view project {project}")
    return Connection(
        connection_id=connection_id,
        username=username,
        admin=who.is_admin,
        project_ids=[] if who.is_admin else sorted(who.visible(who.grants)),
        project=project,
        connected_at=now,
        expires_at=datetime.fromtimestamp(expiry, tz=UTC),
    )


class AuditLog(Protocol):
    def append_audit(self, entry: AuditEntry) -> bool:
        """Adds the entry unless one with its id is there already (then False)."""
        ...


class Connections(Protocol):
    """The open connections; ``merge_assist.adapters.live`` keeps them in DynamoDB."""

    def add(self, connection: Connection) -> None: ...

    def remove(self, connection_id: str) -> None:
        """Nothing happens if it is not there."""
        ...

    def all(self) -> list[Connection]: ...


class Broadcaster(Protocol):
    """Sends to one open connection (API Gateway's management API)."""

    def send(self, connection_id: str, message: bytes) -> bool:
        """False when the connection is gone; ``merge_assist.platform.errors.Unavailable`` when the
        message could not be sent now."""
        ...

    def close(self, connection_id: str) -> None:
        """Ends the connection; ``Unavailable`` when that could not be done now."""
        ...


@dataclass
class Delivery:
    """What handling one record did."""

    entries_written: int = 0
    messages: int = 0
    sent: int = 0
    gone: list[str] = field(default_factory=list)
    expired: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class LiveFeed:
    """Handles the records of one invocation: the connections are read once for all of them
    (a scan of a small table) and those found gone or expired are dropped on the way."""

    def __init__(
        self,
        *,
        audit: AuditLog,
        connections: Connections,
        broadcaster: Broadcaster,
        clock: Clock,
    ) -> None:
        self._audit = audit
        self._connections = connections
        self._broadcaster = broadcaster
        self._clock = clock
        self._open: dict[str, Connection] | None = None

    def handle(
        self, old_image: Mapping[str, Any] | None, new_image: Mapping[str, Any] | None
    ) -> Delivery:
        change = changes(old_image, new_image)
        delivery = Delivery()
        # Entries first: the event log must be complete even if no one is watching.
        for entry in change.entries:
            delivery.entries_written += int(self._audit.append_audit(entry))
        for update in change.updates:
            self._deliver(update, delivery)
        return delivery

    def _audience(self) -> dict[str, Connection]:
        if self._open is None:
            self._open = {c.connection_id: c for c in self._connections.all()}
        return self._open

    def _deliver(self, update: Update, delivery: Delivery) -> None:
        message = update.encode()
        delivery.messages += 1
        audience = self._audience()
        for connection in list(audience.values()):
            if not connection.receives(update.project_id):
                continue
            if connection.expired(self._clock.now()):
                self._expire(connection.connection_id)
                delivery.expired.append(connection.connection_id)
                continue
            try:
                sent = self._broadcaster.send(connection.connection_id, message)
            except Unavailable:
                # A live update is a courtesy: retrying the record for one client would
                # send everyone else the message again. The dashboard refetches on reconnect.
                delivery.failed.append(connection.connection_id)
                continue
            if sent:
                delivery.sent += 1
            else:
                self._drop(connection.connection_id)
                delivery.gone.append(connection.connection_id)

    def _expire(self, connection_id: str) -> None:
        # Closing tells the client to reconnect with a fresh token; were it left open it
        # would only hear silence.
        with contextlib.suppress(Unavailable):
            self._broadcaster.close(connection_id)
        self._drop(connection_id)

    def _drop(self, connection_id: str) -> None:
        self._audience().pop(connection_id, None)
        self._connections.remove(connection_id)


# -- plumbing ---------------------------------------------------------------------------


def _update(kind: UpdateType, project_id: int, model: BaseModel) -> Update:
    return Update(type=kind, project_id=project_id, data=model.model_dump(mode="json"))


def _state(item: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in fields(item).items() if name not in _BOOKKEEPING}

"""The ``Store`` on one DynamoDB table.

Items (``pk`` / ``sk``; index ``gsi1`` on ``gsi1pk`` / ``gsi1sk``)::

    project config   PROJECT#<pid>        CONFIG              PROJECTS              <pid:012>
    merge request    PROJECT#<pid>        MR#<iid:010>        PROJECT#<pid>#MR#<status>
                                                              <branch>#<hotfix>#<1000-priority:04>#<placed>#<iid:010>
    branch lock      PROJECT#<pid>        LOCK#<branch>       -
    pipeline wait    PROJECT#<pid>        WAIT#<sha>          -
    notice (outbox)  PROJECT#<pid>        NOTICE#<key>        -
    batch            BATCH#<id>           BATCH               PROJECT#<pid>#BATCHES  <created>#<id>
    grant            USER#<username>      GRANT#<pid:012>     GRANTS  <pid:012>#<username>
    audit entry      AUDIT#<pid>          <at>#<id>           AUDIT#<pid>#MR#<iid>  <at>#<id>
                                                              (only entries about one MR)

``<branch>`` is URL-quoted so that a ``#`` in a branch name cannot fake a key boundary.
Every write that two Lambdas could race on is conditional on the item's ``version``.
Finished MRs and batches, and locks, carry ``expires_at`` for DynamoDB's TTL.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from boto3.dynamodb.conditions import Attr, ConditionBase, Key
from botocore.exceptions import ClientError
from pydantic import BaseModel

from merge_assist.adapters.project_configs import CONFIG_SK, project_pk, read_project
from merge_assist.audit import AuditEntry
from merge_assist.platform.access import Grant
from merge_assist.platform.clock import SystemClock
from merge_assist.platform.config import ProjectConfig
from merge_assist.platform.errors import (
    AlreadyExistsError,
    ConflictError,
    LockHeldError,
    NotFoundError,
)
from merge_assist.platform.ports import Clock
from merge_assist.platform.resources import TABLE
from merge_assist.platform.stored import fields, item_of, load
from merge_assist.queue import Batch, BranchLock, MergeRequestState, Notice, StatusCategory
from merge_assist.queue.recording import MAX_ATTEMPTS, pause

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table


# A notice older than this tells of a state long gone; DynamoDB's TTL drops it.
NOTICE_TTL = timedelta(days=1)


def mr_sk(iid: int) -> str:
    return f"MR#{iid:010d}"


def branch_key(branch: str) -> str:
    return quote(branch, safe="")


def mr_index_pk(project_id: int, status: StatusCategory) -> str:
    return f"PROJECT#{project_id}#MR#{status.value}"


def mr_index_sk(mr: MergeRequestState) -> str:
    """Sorts like ``merge_assist.queue.queue.queue_order`` within one branch."""
    when = _sortable(mr.placed_at or mr.ready_since or mr.updated_at)
    hotfix = 0 if mr.hotfix else 1
    return f"{branch_key(mr.target_branch)}#{hotfix}#{1000 - mr.priority:04d}#{when}#{mr.iid:010d}"


def _sortable(moment: datetime) -> str:
    """Fixed-width text in UTC: string order in the index is then time order, whatever
    offset the moment came with (``10:30+02:00`` is before ``09:00+00:00``)."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _whole_second_after(moment: datetime) -> datetime:
    whole = moment.replace(microsecond=0)
    return whole if whole == moment else whole + timedelta(seconds=1)


class DynamoDBStore:
    def __init__(self, table: Table, *, clock: Clock | None = None, history: timedelta) -> None:
        self._table = table
        self._clock = clock or SystemClock()
        self._history = history

    # -- projects ---------------------------------------------------------------------

    def get_project(self, project_id: int) -> ProjectConfig:
        return read_project(self._table, project_id)

    def list_projects(self) -> list[ProjectConfig]:
        return [
            load(ProjectConfig, item)
            for item in self._query_index(Key(TABLE.index_partition_key).eq("PROJECTS"))
        ]

    def save_project(self, config: ProjectConfig) -> ProjectConfig:
        stored = config.model_copy(
            update={"version": config.version + 1, "updated_at": self._now()}
        )
        self._put_versioned(
            stored,
            keys={
                TABLE.partition_key: project_pk(config.project_id),
                TABLE.sort_key: CONFIG_SK,
                TABLE.index_partition_key: "PROJECTS",
                TABLE.index_sort_key: f"{config.project_id:012d}",
                "kind": "project",
            },
            expected_version=config.version,
            what=f"project {config.project_id}",
        )
        return stored

    def delete_project(self, project_id: int) -> None:
        self._table.delete_item(
            Key={TABLE.partition_key: project_pk(project_id), TABLE.sort_key: CONFIG_SK}
        )

    # -- merge requests ---------------------------------------------------------------

    def get_merge_request(self, project_id: int, iid: int) -> MergeRequestState:
        item = self._get(project_pk(project_id), mr_sk(iid))
        if item is None:
            raise NotFoundError(f"merge request !{iid} of project {project_id} is not tracked")
        return load(MergeRequestState, item)

    def save_merge_request(self, mr: MergeRequestState) -> MergeRequestState:
        now = self._now()
        stored = mr.model_copy(update={"version": mr.version + 1, "updated_at": now})
        keys: dict[str, Any] = {
            TABLE.partition_key: project_pk(mr.project_id),
            TABLE.sort_key: mr_sk(mr.iid),
            TABLE.index_partition_key: mr_index_pk(mr.project_id, mr.status),
            TABLE.index_sort_key: mr_index_sk(stored),
            "kind": "merge_request",
        }
        if mr.status.is_final:
            keys[TABLE.ttl_attribute] = _epoch(now + self._history)
        self._put_versioned(
            stored, keys=keys, expected_version=mr.version, what=f"merge request !{mr.iid}"
        )
        return stored

    def list_merge_requests(
        self,
        project_id: int,
        status: StatusCategory,
        target_branch: str | None = None,
    ) -> list[MergeRequestState]:
        condition: ConditionBase = Key(TABLE.index_partition_key).eq(
            mr_index_pk(project_id, status)
        )
        if target_branch is not None:
            condition = condition & Key(TABLE.index_sort_key).begins_with(
                f"{branch_key(target_branch)}#"
            )
        return [load(MergeRequestState, item) for item in self._query_index(condition)]

    # -- batches ----------------------------------------------------------------------

    def get_batch(self, batch_id: str) -> Batch:
        item = self._get(f"BATCH#{batch_id}", "BATCH")
        if item is None:
            raise NotFoundError(f"batch {batch_id} does not exist")
        return load(Batch, item)

    def save_batch(self, batch: Batch) -> Batch:
        now = self._now()
        stored = batch.model_copy(update={"version": batch.version + 1, "updated_at": now})
        keys: dict[str, Any] = {
            TABLE.partition_key: f"BATCH#{batch.id}",
            TABLE.sort_key: "BATCH",
            TABLE.index_partition_key: f"PROJECT#{batch.project_id}#BATCHES",
            TABLE.index_sort_key: f"{_sortable(batch.created_at)}#{batch.id}",
            "kind": "batch",
        }
        if batch.state.is_final:
            keys[TABLE.ttl_attribute] = _epoch(now + self._history)
        self._put_versioned(
            stored, keys=keys, expected_version=batch.version, what=f"batch {batch.id}"
        )
        return stored

    def list_batches(self, project_id: int, limit: int = 50) -> list[Batch]:
        response = self._table.query(
            IndexName=TABLE.index_name,
            KeyConditionExpression=Key(TABLE.index_partition_key).eq(
                f"PROJECT#{project_id}#BATCHES"
            ),
            ScanIndexForward=False,
            Limit=limit,
        )
        return [load(Batch, item) for item in response.get("Items", [])]

    # -- branch locks -----------------------------------------------------------------

    def acquire_branch_lock(
        self,
        project_id: int,
        target_branch: str,
        batch_id: str,
        ttl: timedelta,
        *,
        cars: int = 1,
    ) -> BranchLock:
        def join(held: BranchLock | None) -> list[str]:
            if held is None or held.holds(batch_id):
                return held.cars if held else [batch_id]
            if len(held.cars) < cars:
                return [*held.cars, batch_id]
            raise LockHeldError(
                f"{target_branch} of project {project_id} is locked by {held.batch_id}"
            )

        return self._change_lock(project_id, target_branch, ttl, join)

    def renew_branch_lock(
        self, project_id: int, target_branch: str, batch_id: str, ttl: timedelta
    ) -> BranchLock:
        def renew(held: BranchLock | None) -> list[str]:
            if held is None:
                return [batch_id]
            if held.holds(batch_id):
                return held.cars
            raise LockHeldError(
                f"{target_branch} of project {project_id} is locked by {', '.join(held.cars)}"
            )

        return self._change_lock(project_id, target_branch, ttl, renew)

    def _change_lock(
        self,
        project_id: int,
        target_branch: str,
        ttl: timedelta,
        cars_after: Callable[[BranchLock | None], list[str]],
    ) -> BranchLock:
        """Read, change and write the lock on the version read: a lock that expired counts
        as free. The TTL attribute holds whole epoch seconds; rounding the expiry up keeps
        the lock returned, the item stored and the expiry checks in agreement, and never
        shorter than ``ttl``."""
        for attempt in range(MAX_ATTEMPTS):
            now = self._now()
            item = self._get(project_pk(project_id), _lock_sk(target_branch))
            live = item is not None and int(item[TABLE.ttl_attribute]) > _epoch(now)
            held = self._lock_of(item) if item is not None and live else None
            version = int(item.get("version", 0)) if item is not None else None
            lock = BranchLock(
                project_id=project_id,
                target_branch=target_branch,
                cars=cars_after(held),
                acquired_at=held.acquired_at if held else now,
                expires_at=_whole_second_after(now + ttl),
                version=(version or 0) + 1,
            )
            try:
                self._put_lock(lock, version)
            except ConflictError:
                pause(attempt)
                continue
            return lock
        raise ConflictError(f"the lock of {target_branch} of project {project_id} kept changing")

    def release_branch_lock(self, project_id: int, target_branch: str, batch_id: str) -> None:
        for attempt in range(MAX_ATTEMPTS):
            item = self._get(project_pk(project_id), _lock_sk(target_branch))
            if item is None:
                return
            held = self._lock_of(item)
            if not held.holds(batch_id):
                return
            version = int(item.get("version", 0))
            left = [car for car in held.cars if car != batch_id]
            try:
                if left:
                    self._put_lock(
                        held.model_copy(update={"cars": left, "version": version + 1}), version
                    )
                else:
                    self._table.delete_item(
                        Key={
                            TABLE.partition_key: project_pk(project_id),
                            TABLE.sort_key: _lock_sk(target_branch),
                        },
                        ConditionExpression=_at_version(version),
                    )
            except ClientError as error:
                if not _is_condition_failure(error):
                    raise
            except ConflictError:
                pass
            else:
                return
            pause(attempt)
        raise ConflictError(f"the lock of {target_branch} of project {project_id} kept changing")

    def _put_lock(self, lock: BranchLock, read_version: int | None) -> None:
        item = {
            **lock.model_dump(mode="json", exclude={"expires_at"}),
            "batch_id": lock.batch_id,
            TABLE.partition_key: project_pk(lock.project_id),
            TABLE.sort_key: _lock_sk(lock.target_branch),
            TABLE.ttl_attribute: _epoch(lock.expires_at),
            "kind": "branch_lock",
        }
        condition = (
            Attr(TABLE.partition_key).not_exists()
            if read_version is None
            else _at_version(read_version)
        )
        try:
            self._table.put_item(Item=item, ConditionExpression=condition)
        except ClientError as error:
            if _is_condition_failure(error):
                raise ConflictError("the branch lock changed since it was read") from error
            raise

    def _lock_of(self, item: Mapping[str, Any]) -> BranchLock:
        expires_at = datetime.fromtimestamp(int(item[TABLE.ttl_attribute]), tz=self._now().tzinfo)
        return BranchLock.model_validate({**fields(item), "expires_at": expires_at})

    def get_branch_lock(self, project_id: int, target_branch: str) -> BranchLock | None:
        item = self._get(project_pk(project_id), _lock_sk(target_branch))
        if item is None or int(item[TABLE.ttl_attribute]) <= _epoch(self._now()):
            return None
        return self._lock_of(item)

    # -- pipeline waits ---------------------------------------------------------------

    def put_task_token(self, project_id: int, sha: str, token: str, ttl: timedelta) -> None:
        self._table.put_item(
            Item={
                TABLE.partition_key: project_pk(project_id),
                TABLE.sort_key: f"WAIT#{sha}",
                "task_token": token,
                TABLE.ttl_attribute: _epoch(self._now() + ttl),
                "kind": "pipeline_wait",
            }
        )

    def get_task_token(self, project_id: int, sha: str) -> str | None:
        item = self._get(project_pk(project_id), f"WAIT#{sha}")
        if item is None or int(item[TABLE.ttl_attribute]) <= _epoch(self._now()):
            return None
        return str(item["task_token"])

    def delete_task_token(self, project_id: int, sha: str, token: str) -> None:
        try:
            self._table.delete_item(
                Key={TABLE.partition_key: project_pk(project_id), TABLE.sort_key: f"WAIT#{sha}"},
                ConditionExpression=Attr("task_token").eq(token),
            )
        except ClientError as error:
            if not _is_condition_failure(error):
                raise

    # -- notices (the outbox of comments GitLab could not take) -------------------------

    def put_notice(self, notice: Notice) -> None:
        try:
            self._table.put_item(
                Item={
                    **item_of(notice),
                    TABLE.partition_key: project_pk(notice.project_id),
                    TABLE.sort_key: f"NOTICE#{notice.key}",
                    TABLE.ttl_attribute: _epoch(self._now() + NOTICE_TTL),
                    "kind": "notice",
                },
                ConditionExpression=Attr(TABLE.partition_key).not_exists(),
            )
        except ClientError as error:
            if not _is_condition_failure(error):
                raise

    def hand_over_notice(self, project_id: int, key: str) -> None:
        try:
            self._table.update_item(
                Key={
                    TABLE.partition_key: project_pk(project_id),
                    TABLE.sort_key: f"NOTICE#{key}",
                },
                UpdateExpression="REMOVE in_flight_until",
                ConditionExpression=Attr(TABLE.partition_key).exists(),
            )
        except ClientError as error:
            if not _is_condition_failure(error):
                raise

    def list_notices(self, project_id: int, limit: int = 100) -> list[Notice]:
        response = self._table.query(
            KeyConditionExpression=Key(TABLE.partition_key).eq(project_pk(project_id))
            & Key(TABLE.sort_key).begins_with("NOTICE#"),
            ConsistentRead=True,
        )
        now = _epoch(self._now())
        notices = [
            load(Notice, item)
            for item in response.get("Items", [])
            if int(str(item[TABLE.ttl_attribute])) > now
        ]
        return sorted(notices, key=lambda notice: notice.created_at)[:limit]

    def delete_notice(self, project_id: int, key: str) -> None:
        self._table.delete_item(
            Key={TABLE.partition_key: project_pk(project_id), TABLE.sort_key: f"NOTICE#{key}"}
        )

    # -- grants -----------------------------------------------------------------------

    def save_grant(self, grant: Grant) -> Grant:
        self._table.put_item(
            Item={
                **item_of(grant),
                TABLE.partition_key: f"USER#{grant.username}",
                TABLE.sort_key: f"GRANT#{grant.project_id:012d}",
                TABLE.index_partition_key: "GRANTS",
                TABLE.index_sort_key: f"{grant.project_id:012d}#{grant.username}",
                "kind": "grant",
            }
        )
        return grant

    def delete_grant(self, username: str, project_id: int) -> bool:
        response = self._table.delete_item(
            Key={
                TABLE.partition_key: f"USER#{username}",
                TABLE.sort_key: f"GRANT#{project_id:012d}",
            },
            ReturnValues="ALL_OLD",
        )
        return bool(response.get("Attributes"))

    def grants_of_user(self, username: str) -> list[Grant]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key(TABLE.partition_key).eq(f"USER#{username}")
            & Key(TABLE.sort_key).begins_with("GRANT#"),
            "ConsistentRead": True,
        }
        while True:
            response = self._table.query(**kwargs)
            items.extend(response.get("Items", []))
            if not response.get("LastEvaluatedKey"):
                break
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
        return [load(Grant, item) for item in items]

    def list_grants(self, project_id: int | None = None) -> list[Grant]:
        condition: ConditionBase = Key(TABLE.index_partition_key).eq("GRANTS")
        if project_id is not None:
            condition = condition & Key(TABLE.index_sort_key).begins_with(f"{project_id:012d}#")
        return [load(Grant, item) for item in self._query_index(condition)]

    # -- audit log --------------------------------------------------------------------

    def append_audit(self, entry: AuditEntry) -> bool:
        sort_key = f"{_sortable(entry.at)}#{entry.id}"
        item: dict[str, Any] = {
            **item_of(entry),
            TABLE.partition_key: f"AUDIT#{entry.project_id}",
            TABLE.sort_key: sort_key,
            TABLE.ttl_attribute: _epoch(self._now() + self._history),
            "kind": "audit",
        }
        if entry.merge_request is not None:
            # One merge request's timeline is a query of the index, not a filtered scan of
            # the project's whole log.
            item[TABLE.index_partition_key] = _mr_audit_pk(entry.project_id, entry.merge_request)
            item[TABLE.index_sort_key] = sort_key
        try:
            self._table.put_item(
                Item=item, ConditionExpression=Attr(TABLE.partition_key).not_exists()
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    def list_audit(
        self,
        project_id: int,
        *,
        limit: int,
        cursor: str | None = None,
        merge_request: int | None = None,
    ) -> tuple[list[AuditEntry], str | None]:
        pk = f"AUDIT#{project_id}"
        kwargs: dict[str, Any] = {
            "KeyConditionExpression": Key(TABLE.partition_key).eq(pk),
            "ScanIndexForward": False,
            "Limit": limit,
        }
        if merge_request is not None:
            kwargs["IndexName"] = TABLE.index_name
            kwargs["KeyConditionExpression"] = Key(TABLE.index_partition_key).eq(
                _mr_audit_pk(project_id, merge_request)
            )
        if cursor is not None:
            sort_key = _decode_cursor(cursor)
            kwargs["ExclusiveStartKey"] = {TABLE.partition_key: pk, TABLE.sort_key: sort_key}
            if merge_request is not None:
                kwargs["ExclusiveStartKey"] |= {
                    TABLE.index_partition_key: _mr_audit_pk(project_id, merge_request),
                    TABLE.index_sort_key: sort_key,
                }
        response = self._table.query(**kwargs)
        entries = [load(AuditEntry, item) for item in response.get("Items", [])]
        last = response.get("LastEvaluatedKey")
        return entries, _encode_cursor(str(last[TABLE.sort_key])) if last else None

    # -- plumbing ---------------------------------------------------------------------

    def _now(self) -> datetime:
        return self._clock.now()

    def _get(self, pk: str, sk: str) -> dict[str, Any] | None:
        response = self._table.get_item(
            Key={TABLE.partition_key: pk, TABLE.sort_key: sk}, ConsistentRead=True
        )
        return response.get("Item")

    def _query_index(self, condition: ConditionBase) -> Iterator[dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "IndexName": TABLE.index_name,
            "KeyConditionExpression": condition,
        }
        while True:
            response = self._table.query(**kwargs)
            yield from response.get("Items", [])
            last = response.get("LastEvaluatedKey")
            if not last:
                return
            kwargs["ExclusiveStartKey"] = last

    def _put_versioned(
        self, model: BaseModel, *, keys: Mapping[str, Any], expected_version: int, what: str
    ) -> None:
        condition = (
            Attr(TABLE.partition_key).not_exists()
            if expected_version == 0
            else Attr("version").eq(expected_version)
        )
        try:
            self._table.put_item(Item={**item_of(model), **keys}, ConditionExpression=condition)
        except ClientError as error:
            if not _is_condition_failure(error):
                raise
            if expected_version == 0:
                raise AlreadyExistsError(f"{what} already exists") from error
            raise ConflictError(
                f"{what} changed since version {expected_version} was read"
            ) from error


def _mr_audit_pk(project_id: int, iid: int) -> str:
    return f"AUDIT#{project_id}#MR#{iid}"


def _encode_cursor(sort_key: str) -> str:
    return base64.urlsafe_b64encode(sort_key.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        decoded = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ValueError("not a cursor this API handed out") from None
    # An audit sort key starts with a fixed-width UTC timestamp.
    if len(decoded) < 33 or decoded[4] != "-" or "#" not in decoded:
        raise ValueError("not a cursor this API handed out")
    return decoded


def _lock_sk(branch: str) -> str:
    return f"LOCK#{branch_key(branch)}"


def _at_version(version: int) -> ConditionBase:
    # A lock written before locks had versions has none: it is version 0.
    if version == 0:
        return Attr("version").not_exists() | Attr("version").eq(0)
    return Attr("version").eq(version)


def _is_condition_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"

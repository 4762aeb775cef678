"""A moto DynamoDB table shaped like the real one, and a clock the tests move by hand."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import boto3
import pytest
from moto import mock_aws

from local.provision import create_table
from merge_assist.adapters.dynamodb_store import DynamoDBStore
from merge_assist.platform.ports import Clock
from merge_assist.platform.resources import ResourceNames

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table

HISTORY = timedelta(days=90)
# A fractional second on purpose: anything that truncates timestamps shows up in tests.
START = datetime(2025, 3, 14, 9, 26, 53, 589_793, tzinfo=UTC)

Advance = Callable[[timedelta], None]


class FakeClock:
    def __init__(self, start: datetime) -> None:
        self.current = start

    def now(self) -> datetime:
        return self.current


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def clock(fake_clock: FakeClock) -> Clock:
    return fake_clock


@pytest.fixture
def advance(fake_clock: FakeClock) -> Advance:
    def move(delta: timedelta) -> None:
        fake_clock.current += delta

    return move


@pytest.fixture
def table(aws_env: None) -> Iterator[Table]:
    with mock_aws():
        # The same table the local stack creates (and the CDK app declares).
        names = ResourceNames("test")
        create_table(boto3.Session(), names)
        created = boto3.resource("dynamodb").Table(names.table)
        yield created


@pytest.fixture
def history() -> timedelta:
    return HISTORY


@pytest.fixture
def store(table: Table, clock: Clock, history: timedelta) -> DynamoDBStore:
    return DynamoDBStore(table, clock=clock, history=history)

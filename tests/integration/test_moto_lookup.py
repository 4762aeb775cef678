"""The local stack's backend lookup skips moto's lock once a backend exists, and a reset
still empties every backend in use."""

from __future__ import annotations

import threading
from typing import Any

import boto3
from moto import mock_aws
from moto.core.base_backend import BackendDict, backend_lock
from moto.dynamodb.models import dynamodb_backends

from local import moto_lookup

ACCOUNT = "123456789012"


def _dynamodb() -> Any:
    return boto3.client(
        "dynamodb",
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )


def _tables() -> list[str]:
    return list(_dynamodb().list_tables()["TableNames"])


def _create_table(name: str) -> None:
    _dynamodb().create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )


def test_a_reset_still_empties_the_backends_the_fast_lookup_served() -> None:
    moto_lookup.install()
    moto_lookup.install()  # idempotent
    with mock_aws():
        _create_table("first")
        assert _tables() == ["first"]
        assert dynamodb_backends in BackendDict._instances  # type: ignore[misc]
    with mock_aws():
        assert _tables() == []
        _create_table("second")
        assert _tables() == ["second"]


def test_an_existing_backend_is_found_while_another_thread_holds_motos_lock() -> None:
    moto_lookup.install()
    with mock_aws():
        _create_table("t")
        found: list[object] = []
        with backend_lock:
            reader = threading.Thread(target=lambda: found.append(dynamodb_backends[ACCOUNT]))
            reader.start()
            reader.join(timeout=5)
        assert found, "the lookup waited for moto's lock"

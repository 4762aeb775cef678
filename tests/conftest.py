"""Shared test setup: a fake AWS environment and builders for domain records."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from local import moto_atomic
from merge_assist.queue.models import MergeRequestState, StatusCategory

# A fractional second on purpose: stores that truncate timestamps must show it in tests.
T0 = datetime(2025, 3, 14, 9, 26, 53, 589_793, tzinfo=UTC)

MakeMR = Callable[..., MergeRequestState]


@pytest.fixture(autouse=True, scope="session")
def atomic_moto_writes() -> None:
    """Conditional writes are atomic in DynamoDB; moto needs telling (``local.moto_atomic``)."""
    moto_atomic.install()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Fake credentials and a region, and nothing from the developer's own AWS setup, so no
    test can reach a real account."""
    for name in (
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
        "AWS_ROLE_ARN",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SECURITY_TOKEN", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")


@pytest.fixture
def make_mr() -> MakeMR:
    """Builds a merge request; queued by default, ready at ``T0`` unless told otherwise."""

    def make(
        iid: int,
        *,
        project_id: int = 1,
        target_branch: str = "main",
        status: StatusCategory = StatusCategory.QUEUED,
        priority: int = 0,
        ready_since: datetime | None = T0,
        **fields: Any,
    ) -> MergeRequestState:
        return MergeRequestState(
            project_id=project_id,
            iid=iid,
            sha=f"{iid:040x}",
            source_branch=f"feature/{iid}",
            target_branch=target_branch,
            title=f"Change {iid}",
            status=status,
            priority=priority,
            ready_since=ready_since,
            **fields,
        )

    return make

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from local.stack import LocalStack, LocalStackConfig


@pytest.fixture(scope="module")
def stack(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    """One local stack per test module: moto and the process environment are global, so a
    module's tests share it and the next module starts clean. A module may set
    ``STACK_SETTINGS`` (``LocalStackConfig`` fields) for its stack."""
    data_dir: Path = tmp_path_factory.mktemp("local-stack")
    settings: dict[str, Any] = getattr(request.module, "STACK_SETTINGS", {})
    with LocalStack(LocalStackConfig(data_dir=data_dir, http_port=0, **settings)) as running:
        yield running


@pytest.fixture
def scenario_name(request: pytest.FixtureRequest) -> str:
    """A simulator project name from the test's name: each scenario gets its own project."""
    name: str = request.node.name
    return name.removeprefix("test_").replace("_", "-")[:40]

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from local.stack import LocalStack, LocalStackConfig


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One local stack per test module: moto and the process environment are global, so a
    module's tests share it and the next module starts clean."""
    data_dir: Path = tmp_path_factory.mktemp("local-stack")
    with LocalStack(LocalStackConfig(data_dir=data_dir, http_port=0)) as running:
        yield running

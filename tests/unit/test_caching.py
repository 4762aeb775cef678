"""``built_once`` builds each value once, however many threads ask for it at the same time."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from merge_assist.platform.caching import built_once


def test_callers_arriving_during_the_first_build_wait_for_it_instead_of_building() -> None:
    building = threading.Event()
    release = threading.Event()
    builds: list[str] = []

    @built_once
    def client(name: str) -> object:
        builds.append(name)
        building.set()
        release.wait(timeout=10)
        return object()

    with ThreadPoolExecutor(max_workers=8) as pool:
        first = pool.submit(client, "dynamodb")
        assert building.wait(timeout=10)
        others = [pool.submit(client, "dynamodb") for _ in range(7)]
        release.set()
        values = {id(future.result(timeout=10)) for future in [first, *others]}

    assert builds == ["dynamodb"]
    assert len(values) == 1


def test_each_argument_has_its_own_value_and_cache_clear_forgets_them() -> None:
    builds: list[str] = []

    @built_once
    def table(name: str) -> str:
        builds.append(name)
        return f"table {name}"

    assert table("a") == "table a"
    assert table("b") == "table b"
    assert table("a") == "table a"
    assert builds == ["a", "b"]
    table.cache_clear()
    assert table("a") == "table a"
    assert builds == ["a", "b", "a"]


def test_a_failed_build_is_not_kept() -> None:
    attempts: list[int] = []

    @built_once
    def flaky() -> int:
        attempts.append(1)
        if len(attempts) == 1:
            raise ConnectionError("secrets manager unreachable")
        return len(attempts)

    with pytest.raises(ConnectionError):
        flaky()
    assert flaky() == 2
    assert flaky() == 2

"""The local Lambda's concurrency: invocations of one function overlap up to its limit,
past which a synchronous call is throttled and an asynchronous one waits its turn."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from local.runtime import DEFAULT_CONCURRENCY, LambdaRuntime, TooManyRequests
from merge_assist.platform.resources import FunctionSpec

WAIT_S = 10.0


def _spec(name: str) -> FunctionSpec:
    return FunctionSpec(key=name, handler=f"tests.{name}.handler", description="test function")


class Gate:
    """A handler that holds every invocation until ``open`` is set; ``inside`` counts
    those holding."""

    def __init__(self) -> None:
        self.open = threading.Event()
        self.entered = threading.Semaphore(0)
        self.lock = threading.Lock()
        self.inside = 0
        self.most_inside = 0

    def __call__(self, event: Any, context: Any) -> str:
        with self.lock:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        self.entered.release()
        try:
            self.open.wait(WAIT_S)
            return "done"
        finally:
            with self.lock:
                self.inside -= 1

    def wait_entered(self, count: int) -> bool:
        return all(self.entered.acquire(timeout=WAIT_S) for _ in range(count))


@pytest.fixture
def runtime() -> Iterator[LambdaRuntime]:
    runtime = LambdaRuntime("123456789012", "us-east-1")
    yield runtime
    runtime.shutdown()


def test_invocations_overlap_up_to_the_limit_and_beyond_it_are_throttled(
    runtime: LambdaRuntime,
) -> None:
    gate = Gate()
    runtime.register("limited", _spec("limited"), handler=gate, reserved_concurrency=2)
    results: list[Any] = []
    callers = [
        threading.Thread(target=lambda: results.append(runtime.invoke("limited", {})))
        for _ in range(2)
    ]
    for caller in callers:
        caller.start()
    assert gate.wait_entered(2)  # both inside at once

    with pytest.raises(TooManyRequests) as throttled:
        runtime.invoke("limited", {})
    assert throttled.value.limit == 2
    assert runtime.throttles == {"limited": 1}
    assert not runtime.reserve("limited")

    gate.open.set()
    for caller in callers:
        caller.join(WAIT_S)
    assert [r.json() for r in results] == ["done", "done"]
    assert runtime.invocations == {"limited": 2}
    assert runtime.running("limited") == 0
    assert runtime.invoke("limited", {}).json() == "done"


def test_a_reserved_environment_is_used_by_the_invocation_and_given_back(
    runtime: LambdaRuntime,
) -> None:
    runtime.register(
        "one", _spec("one"), handler=lambda event, context: event, reserved_concurrency=1
    )
    assert runtime.reserve("one")
    with pytest.raises(TooManyRequests):
        runtime.invoke("one", {"x": 1})
    assert runtime.invoke("one", {"x": 2}, reserved=True).json() == {"x": 2}
    assert runtime.running("one") == 0
    assert runtime.reserve("one")
    runtime.release("one")
    assert runtime.running("one") == 0


def test_the_default_limit_applies_to_a_function_without_reserved_concurrency(
    runtime: LambdaRuntime,
) -> None:
    runtime.register("plain", _spec("plain"), handler=lambda event, context: None)
    assert runtime.concurrency("plain") == DEFAULT_CONCURRENCY
    held = [runtime.reserve("plain") for _ in range(DEFAULT_CONCURRENCY)]
    assert all(held)
    assert not runtime.reserve("plain")
    with pytest.raises(TooManyRequests):
        runtime.invoke("plain", {})


def test_asynchronous_invocations_run_up_to_the_limit_and_the_rest_wait(
    runtime: LambdaRuntime,
) -> None:
    gate = Gate()
    limit = 6  # above the four workers asynchronous invocations once had
    runtime.register("async", _spec("async"), handler=gate, reserved_concurrency=limit)
    for _ in range(limit + 2):
        runtime.invoke_async("async", {})

    assert gate.wait_entered(limit)
    # The two beyond the limit wait for an environment instead of failing.
    assert gate.most_inside == limit
    assert not gate.entered.acquire(timeout=0)
    assert runtime.throttles == {}
    gate.open.set()
    assert gate.wait_entered(2)
    runtime.shutdown()
    assert runtime.invocations == {"async": limit + 2}
    assert gate.most_inside == limit


def test_one_functions_cold_start_holds_up_no_other_function(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime = LambdaRuntime("123456789012", "us-east-1")
    runtime.register("cold", _spec("cold"))
    runtime.register("warm", _spec("warm"), handler=lambda event, context: "warm")
    importing = threading.Event()
    imported = threading.Event()

    def slow_import(name: str) -> Any:
        importing.set()
        assert imported.wait(WAIT_S)
        return type("Module", (), {"handler": staticmethod(lambda event, context: "cold")})

    monkeypatch.setattr("local.runtime.importlib.import_module", slow_import)
    results: list[Any] = []
    cold = threading.Thread(target=lambda: results.append(runtime.invoke("cold", {}).json()))
    cold.start()
    assert importing.wait(WAIT_S)

    # While "cold" is still importing its module, "warm" is invoked and answers.
    assert runtime.invoke("warm", {}).json() == "warm"
    imported.set()
    cold.join(WAIT_S)
    assert results == ["cold"]


def test_warming_imports_every_handler_before_the_first_invocation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime = LambdaRuntime("123456789012", "us-east-1")
    runtime.register("one", _spec("one"))
    runtime.register("two", _spec("two"))
    imported: list[str] = []

    def fake_import(name: str) -> Any:
        imported.append(name)
        return type("Module", (), {"handler": staticmethod(lambda event, context: name)})

    monkeypatch.setattr("local.runtime.importlib.import_module", fake_import)
    runtime.warm()
    assert sorted(imported) == ["tests.one", "tests.two"]
    assert runtime.invoke("two", {}).json() == "tests.two"
    assert sorted(imported) == ["tests.one", "tests.two"]  # not imported again


def test_a_handler_that_keeps_its_request_in_module_state_serves_one_at_a_time(
    runtime: LambdaRuntime,
) -> None:
    # The API's handler: Powertools' resolver holds the request on its module's app.
    gate = Gate()
    api = FunctionSpec(key="api", handler="functions.api.app.handler", description="the API")
    runtime.register("api", api, handler=gate, reserved_concurrency=3)
    results: list[Any] = []
    callers = [
        threading.Thread(target=lambda: results.append(runtime.invoke("api", {}))) for _ in range(3)
    ]
    for caller in callers:
        caller.start()
    assert gate.wait_entered(1)
    # Three environments are taken (none throttled), but only one request is inside.
    assert not gate.entered.acquire(timeout=0.3)
    assert runtime.running("api") == 3
    gate.open.set()
    for caller in callers:
        caller.join(WAIT_S)
    assert [r.json() for r in results] == ["done"] * 3
    assert gate.most_inside == 1

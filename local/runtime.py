"""In-process Lambda: invokes the real handler functions by function name.

moto's non-Docker Lambda backend (``LambdaSimpleBackend``) answers ``Invoke`` with a canned
payload; ``LambdaRuntime.install`` routes it here instead, so a Step Functions task, an
``Invoke`` API call and the local poller all run the same handler code the cloud runs.
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

from aws_lambda_powertools.utilities.typing import LambdaContext as PowertoolsLambdaContext
from moto.awslambda_simple.models import LambdaSimpleBackend

from local.observers import Observers
from merge_assist.resources import FunctionSpec

log = logging.getLogger(__name__)

Handler = Callable[[Any, Any], Any]
# Told of every finished invocation, sync or async: (function name, wall seconds, memory MB).
InvokeObserver = Callable[[str, float, int], None]

_running = threading.local()


def current_function() -> str | None:
    """The function whose handler this thread is running, if any: lets a caller of an AWS
    API tell a function's own calls from those of the stack's stand-ins or of a test."""
    stack: list[str] = getattr(_running, "functions", [])
    return stack[-1] if stack else None


@dataclass
class LambdaContext:
    """The attributes of the Lambda runtime's context object that handlers and Powertools use."""

    function_name: str
    memory_limit_in_mb: int
    invoked_function_arn: str
    timeout_seconds: int
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    _deadline: float = 0.0

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_seconds
        self.log_group_name = f"/aws/lambda/{self.function_name}"
        self.log_stream_name = f"local/{self.aws_request_id}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def make_context(
    function_name: str, memory_mb: int = 512, timeout_seconds: int = 30
) -> PowertoolsLambdaContext:
    """A context object for calling a handler directly (tests, benchmarks)."""
    arn = f"arn:aws:lambda:us-east-1:123456789012:function:{function_name}"
    return cast(
        PowertoolsLambdaContext,
        LambdaContext(function_name, memory_mb, arn, timeout_seconds),
    )


@dataclass(frozen=True)
class InvocationResult:
    payload: bytes
    function_error: str | None = None

    def json(self) -> Any:
        return json.loads(self.payload) if self.payload else None


def function_name_from(identifier: str) -> str:
    """A function name from a name, a partial ARN or a full ARN (with or without qualifier)."""
    parts = identifier.split(":")
    if len(parts) >= 7 and parts[0] == "arn":
        return parts[6]
    if len(parts) >= 3 and parts[1] == "function":
        return parts[2]
    return parts[0]


class LambdaRuntime:
    def __init__(self, account_id: str, region: str) -> None:
        self._account_id = account_id
        self._region = region
        self._functions: dict[str, FunctionSpec] = {}
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()
        self._async = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lambda-async")
        self.invocations: dict[str, int] = {}
        self.observers: Observers[InvokeObserver] = Observers()

    def register(
        self, function_name: str, spec: FunctionSpec, handler: Handler | None = None
    ) -> None:
        """Route invocations of ``function_name`` to ``spec.handler`` (or to ``handler``,
        for a function the deployment does not define, such as a test's)."""
        with self._lock:
            self._functions[function_name] = spec
            if handler is not None:
                self._handlers[function_name] = handler

    def arn(self, function_name: str) -> str:
        return f"arn:aws:lambda:{self._region}:{self._account_id}:function:{function_name}"

    def handler(self, function_name: str) -> Handler:
        with self._lock:
            if function_name not in self._handlers:
                module_name, _, attribute = self._functions[function_name].handler.rpartition(".")
                self._handlers[function_name] = getattr(
                    importlib.import_module(module_name), attribute
                )
            return self._handlers[function_name]

    def knows(self, function_name: str) -> bool:
        return function_name in self._functions

    def invoke(self, function_name: str, event: Any) -> InvocationResult:
        """Run the handler as Lambda would: an exception becomes an ``Unhandled`` function
        error with Lambda's error payload, never an exception in the caller."""
        spec = self._functions[function_name]
        context = LambdaContext(
            function_name=function_name,
            memory_limit_in_mb=spec.memory_mb,
            invoked_function_arn=self.arn(function_name),
            timeout_seconds=spec.timeout_seconds,
        )
        with self._lock:
            self.invocations[function_name] = self.invocations.get(function_name, 0) + 1
        running: list[str] = _running.__dict__.setdefault("functions", [])
        running.append(function_name)
        # Timed with the module's import on a function's first call: Lambda bills a cold
        # start's init phase too (since August 2025).
        started = time.perf_counter()
        try:
            return self._run(function_name, event, context)
        finally:
            elapsed = time.perf_counter() - started
            running.pop()
            for observer in self.observers:
                observer(function_name, elapsed, spec.memory_mb)

    def _run(self, function_name: str, event: Any, context: LambdaContext) -> InvocationResult:
        try:
            result = self.handler(function_name)(event, context)
        except Exception as error:
            log.warning("%s failed: %s", function_name, error, exc_info=True)
            payload = {
                "errorMessage": str(error),
                "errorType": type(error).__name__,
                "requestId": context.aws_request_id,
                "stackTrace": traceback.format_tb(error.__traceback__),
            }
            return InvocationResult(json.dumps(payload).encode(), function_error="Unhandled")
        return InvocationResult(json.dumps(result).encode() if result is not None else b"null")

    def invoke_async(self, function_name: str, event: Any) -> None:
        self._async.submit(self.invoke, function_name, event)

    def shutdown(self) -> None:
        self._async.shutdown(wait=True, cancel_futures=False)

    @contextmanager
    def installed(self) -> Iterator[None]:
        """Route moto's ``LambdaSimpleBackend.invoke`` to this runtime while the block runs."""
        original = LambdaSimpleBackend.invoke
        runtime = self

        def invoke(  # noqa: PLR0917 - moto's signature
            backend: LambdaSimpleBackend,
            function_name: str,
            qualifier: str | None,
            body: Any,
            headers: Any,
            response_headers: Any,
        ) -> str | bytes | None:
            name = function_name_from(function_name)
            backend.get_function(name, qualifier)  # 404 exactly as Lambda for a missing one
            if not runtime.knows(name):
                # Created through the API but without code here: moto's canned answer.
                return original(backend, function_name, qualifier, body, headers, response_headers)
            event = json.loads(body) if body else {}
            if headers.get("X-Amz-Invocation-Type") == "Event":
                runtime.invoke_async(name, event)
                return b""
            result = runtime.invoke(name, event)
            if result.function_error:
                response_headers["x-amz-function-error"] = result.function_error
            return result.payload

        LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign, assignment]
        try:
            yield
        finally:
            LambdaSimpleBackend.invoke = original  # type: ignore[method-assign]


__all__ = [
    "InvocationResult",
    "InvokeObserver",
    "LambdaContext",
    "LambdaRuntime",
    "current_function",
    "function_name_from",
]

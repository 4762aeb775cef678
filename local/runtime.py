"""In-process Lambda: invokes the real handler functions by function name.

moto's non-Docker Lambda backend (``LambdaSimpleBackend``) answers ``Invoke`` with a canned
payload; ``LambdaRuntime.install`` routes it here instead, so a Step Functions task, an
``Invoke`` API call and the local poller all run the same handler code the cloud runs.

Invocations of one function overlap, each in its caller's thread, up to the function's
concurrency: its reserved concurrency when it has one, else ``DEFAULT_CONCURRENCY``. Past
that Lambda throttles: a synchronous ``Invoke`` fails with ``TooManyRequestsException``
(429), an asynchronous one waits for a free execution environment, and the SQS poller
reserves one before it receives a batch, as an event source mapping does not invoke above
the limit.

``LambdaRuntime.crashing_after_side_effects`` plays a function whose sandbox dies right
after a call changed something (the process is killed, the invocation times out): the
invocation ends at that point with Lambda's ``Runtime.ExitError`` and nothing after the
call runs, though the service (GitLab) did what it was asked.
"""

from __future__ import annotations

import hashlib
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
from urllib.parse import urlsplit

from aws_lambda_powertools.utilities.typing import LambdaContext as PowertoolsLambdaContext
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.exceptions import JsonRESTError
from urllib3.connectionpool import HTTPConnectionPool

from local.observers import Observers
from merge_assist.platform.resources import FunctionSpec

log = logging.getLogger(__name__)

Handler = Callable[[Any, Any], Any]
# Told of every finished invocation, sync or async: (function name, wall seconds, memory MB).
InvokeObserver = Callable[[str, float, int], None]

# Lambda's per-function default here; the account's default quota on a new AWS account.
DEFAULT_CONCURRENCY = 10
# Threads for asynchronous invocations: enough that they never cap the concurrency of the
# functions invoked that way.
ASYNC_WORKERS = 64
# Handlers that keep the request they serve in module state: Powertools' REST resolver
# holds it on its ``app`` (``current_event``, ``context["_route"]``, which the response
# validation reads). On Lambda each execution environment serves one request at a time;
# here every environment shares the one module, so their invocations take turns: two at
# once would validate one route's answer against the other's model.
ONE_REQUEST_AT_A_TIME = frozenset({"functions.api.app.handler"})

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


class TooManyRequests(Exception):
    """Lambda throttled the invocation: every execution environment the function's
    concurrency allows is busy."""

    def __init__(self, function_name: str, limit: int) -> None:
        super().__init__(f"Rate Exceeded: {function_name} runs {limit} invocations already")
        self.function_name = function_name
        self.limit = limit


class ThrottledInvoke(JsonRESTError):
    """What Lambda's ``Invoke`` API answers a throttled call."""

    code = 429

    def __init__(self) -> None:
        super().__init__("TooManyRequestsException", "Rate Exceeded.")


class SandboxCrash(BaseException):
    """The function's process died. A BaseException, so that no ``except Exception`` in the
    handler's code handles it: only the runtime sees it, as Lambda only sees a dead
    process."""


MUTATING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True)
class Crash:
    function: str
    method: str
    path: str
    status: int


@dataclass
class SideEffectCrashes:
    """Crashes the invocation that made a mutating request to ``origin`` (scheme, host and
    port) with probability ``rate``, once the answer says it succeeded. A fetch posted to
    ``git-upload-pack`` changes nothing and never crashes. Whether a call crashes is fixed
    by ``seed``, the function, the request and how often that function made it before, so
    a scenario replays the same crashes. ``functions`` limits it to those functions."""

    origin: str
    rate: float
    seed: int = 0
    functions: frozenset[str] | None = None
    crashes: list[Crash] = field(default_factory=list)
    _seen: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate must be between 0 and 1, not {self.rate}")
        parts = urlsplit(self.origin)
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if parts.scheme == "https" else 80)

    def concerns(self, host: str | None, port: int | None) -> bool:
        return host == self._host and port == self._port

    def after(self, function: str, method: str, path: str, status: int) -> None:
        """Raises ``SandboxCrash`` when this successful call is one to crash after."""
        method = method.upper()
        path = path.split("?", 1)[0]
        if method not in MUTATING_METHODS or path.endswith("/git-upload-pack") or status >= 400:
            return
        if self.functions is not None and function not in self.functions:
            return
        key = f"{function} {method} {path}"
        with self._lock:
            occurrence = self._seen.get(key, 0)
            self._seen[key] = occurrence + 1
            digest = hashlib.sha256(f"{self.seed}\0{key}\0{occurrence}".encode()).digest()
            if int.from_bytes(digest[:8], "big") / 2**64 >= self.rate:
                return
            self.crashes.append(Crash(function, method, path, status))
        raise SandboxCrash(f"{function} crashed after {method} {path} ({status})")


_in_urlopen = threading.local()


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
    def __init__(
        self, account_id: str, region: str, *, default_concurrency: int = DEFAULT_CONCURRENCY
    ) -> None:
        if default_concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, not {default_concurrency}")
        self._account_id = account_id
        self._region = region
        self._default_concurrency = default_concurrency
        self._functions: dict[str, FunctionSpec] = {}
        self._handlers: dict[str, Handler] = {}
        self._lock = threading.Lock()
        self._turns: dict[str, threading.Lock] = {}
        # Guards the concurrency figures below; notified whenever an invocation ends.
        self._slots = threading.Condition(threading.Lock())
        self._limits: dict[str, int] = {}
        self._busy: dict[str, int] = {}
        self._waiting: dict[str, int] = {}
        self._closing = False
        self._async = ThreadPoolExecutor(
            max_workers=ASYNC_WORKERS, thread_name_prefix="lambda-async"
        )
        self.invocations: dict[str, int] = {}
        self.throttles: dict[str, int] = {}
        self.observers: Observers[InvokeObserver] = Observers()

    def register(
        self,
        function_name: str,
        spec: FunctionSpec,
        handler: Handler | None = None,
        *,
        reserved_concurrency: int | None = None,
    ) -> None:
        """Route invocations of ``function_name`` to ``spec.handler`` (or to ``handler``,
        for a function the deployment does not define, such as a test's), at most
        ``reserved_concurrency`` of them at once (else the spec's, else the default)."""
        # A FunctionSpec that declares reserved concurrency is honoured as Lambda would;
        # 0 throttles every invocation, as it does there.
        limit = reserved_concurrency
        if limit is None:
            limit = getattr(spec, "reserved_concurrency", None)
        if limit is None:
            limit = self._default_concurrency
        if limit < 0:
            raise ValueError(f"reserved concurrency must not be negative, not {limit}")
        with self._lock:
            self._functions[function_name] = spec
            if handler is not None:
                self._handlers[function_name] = handler
            if spec.handler in ONE_REQUEST_AT_A_TIME:
                self._turns.setdefault(function_name, threading.Lock())
        with self._slots:
            self._limits[function_name] = limit
            self._slots.notify_all()

    # --- concurrency ------------------------------------------------------------------------

    def concurrency(self, function_name: str) -> int:
        """How many invocations of the function may run at once."""
        with self._slots:
            return self._limits.get(function_name, self._default_concurrency)

    def running(self, function_name: str) -> int:
        with self._slots:
            return self._busy.get(function_name, 0)

    def waiting(self, function_name: str) -> int:
        """How many callers wait in ``reserve`` for one of the function's environments."""
        with self._slots:
            return self._waiting.get(function_name, 0)

    def reserve(self, function_name: str, timeout: float | None = 0.0) -> bool:
        """Takes one of the function's execution environments for an invocation to come
        (``invoke(..., reserved=True)`` gives it back), waiting up to ``timeout`` seconds
        (None: until one is free); False when none could be had."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._slots:
            while True:
                limit = self._limits.get(function_name, self._default_concurrency)
                busy = self._busy.get(function_name, 0)
                if busy < limit:
                    self._busy[function_name] = busy + 1
                    return True
                remaining = None if deadline is None else deadline - time.monotonic()
                if self._closing or (remaining is not None and remaining <= 0):
                    return False
                self._waiting[function_name] = self._waiting.get(function_name, 0) + 1
                try:
                    self._slots.wait(remaining)
                finally:
                    self._waiting[function_name] -= 1

    def release(self, function_name: str) -> None:
        """Gives back an environment that ``reserve`` took and no invocation used."""
        with self._slots:
            busy = self._busy.get(function_name, 0)
            if busy <= 0:
                raise RuntimeError(f"{function_name} has no reserved environment to release")
            self._busy[function_name] = busy - 1
            self._slots.notify_all()

    def arn(self, function_name: str) -> str:
        return f"arn:aws:lambda:{self._region}:{self._account_id}:function:{function_name}"

    def handler(self, function_name: str) -> Handler:
        """The function's handler, its module imported on first use. The import runs
        outside the runtime's lock: one function's cold start (seconds, for the workflow's
        git and GitLab libraries) must not hold up every other function's invocations, as
        it never would on Lambda (importlib serializes imports of one module itself)."""
        with self._lock:
            known = self._handlers.get(function_name)
            spec = self._functions[function_name]
        if known is not None:
            return known
        module_name, _, attribute = spec.handler.rpartition(".")
        loaded: Handler = getattr(importlib.import_module(module_name), attribute)
        with self._lock:
            return self._handlers.setdefault(function_name, loaded)

    def warm(self) -> None:
        """Import every registered function's handler now, as provisioned concurrency
        initializes environments before the first request: for a measurement of the
        steady state, not of the first cold start."""
        with self._lock:
            names = list(self._functions)
        for name in names:
            self.handler(name)

    def knows(self, function_name: str) -> bool:
        return function_name in self._functions

    def invoke(self, function_name: str, event: Any, *, reserved: bool = False) -> InvocationResult:
        """Run the handler as Lambda would: an exception becomes an ``Unhandled`` function
        error with Lambda's error payload, never an exception in the caller. Raises
        ``TooManyRequests`` when the function is at its concurrency, unless the caller
        ``reserved`` an environment first (which this invocation then gives back)."""
        spec = self._functions[function_name]
        if not reserved and not self.reserve(function_name):
            with self._slots:
                self.throttles[function_name] = self.throttles.get(function_name, 0) + 1
            raise TooManyRequests(function_name, self.concurrency(function_name))
        try:
            return self._invoke(function_name, spec, event)
        finally:
            self.release(function_name)

    def _invoke(self, function_name: str, spec: FunctionSpec, event: Any) -> InvocationResult:
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
            result = self._call(function_name, event, context)
        except SandboxCrash as crash:
            log.warning("%s: %s", function_name, crash)
            died: dict[str, str] = {
                "errorMessage": (
                    f"RequestId: {context.aws_request_id} Error: Runtime exited with error: "
                    "signal: killed"
                ),
                "errorType": "Runtime.ExitError",
            }
            return InvocationResult(json.dumps(died).encode(), function_error="Unhandled")
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

    def _call(self, function_name: str, event: Any, context: LambdaContext) -> Any:
        handler = self.handler(function_name)
        turn = self._turns.get(function_name)
        if turn is None:
            return handler(event, context)
        with turn:
            return handler(event, context)

    def invoke_async(self, function_name: str, event: Any) -> None:
        """Lambda queues an asynchronous event and runs it once an environment is free."""
        self._async.submit(self._invoke_queued, function_name, event)

    def _invoke_queued(self, function_name: str, event: Any) -> None:
        if not self.reserve(function_name, timeout=None):
            log.warning("%s: an asynchronous event dropped at shutdown", function_name)
            return
        self.invoke(function_name, event, reserved=True)

    def shutdown(self) -> None:
        with self._slots:
            self._closing = True
            self._slots.notify_all()
        self._async.shutdown(wait=True, cancel_futures=False)

    @contextmanager
    def crashing_after_side_effects(
        self,
        origin: str,
        rate: float,
        *,
        seed: int = 0,
        functions: frozenset[str] | None = None,
    ) -> Iterator[SideEffectCrashes]:
        """While the block runs, invocations crash after mutating calls to ``origin`` (see
        ``SideEffectCrashes``). Every HTTP client in the process sends through urllib3's
        connection pools (python-gitlab through requests, dulwich directly), so the crash
        comes after the answer arrived, whichever client made the call."""
        crashes = SideEffectCrashes(origin, rate, seed=seed, functions=functions)
        original = HTTPConnectionPool.urlopen

        def urlopen(
            pool: HTTPConnectionPool, method: str, url: str, *args: Any, **kwargs: Any
        ) -> Any:
            function = current_function()
            # urllib3 calls itself again for its own retries and redirects: only the
            # outermost call is the client's.
            nested = getattr(_in_urlopen, "depth", 0)
            if function is None or nested or not crashes.concerns(pool.host, pool.port):
                return original(pool, method, url, *args, **kwargs)
            _in_urlopen.depth = nested + 1
            try:
                response = original(pool, method, url, *args, **kwargs)
            finally:
                _in_urlopen.depth = nested
            crashes.after(function, method, url, response.status)
            return response

        HTTPConnectionPool.urlopen = urlopen  # type: ignore[method-assign, assignment]
        try:
            yield crashes
        finally:
            HTTPConnectionPool.urlopen = original  # type: ignore[method-assign]

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
            try:
                result = runtime.invoke(name, event)
            except TooManyRequests as throttled:
                log.info("%s", throttled)
                raise ThrottledInvoke() from throttled
            if result.function_error:
                response_headers["x-amz-function-error"] = result.function_error
            return result.payload

        LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign, assignment]
        try:
            yield
        finally:
            LambdaSimpleBackend.invoke = original  # type: ignore[method-assign]


__all__ = [
    "Crash",
    "InvocationResult",
    "InvokeObserver",
    "LambdaContext",
    "LambdaRuntime",
    "SandboxCrash",
    "SideEffectCrashes",
    "TooManyRequests",
    "current_function",
    "function_name_from",
]

"""What a run of Merge Assist on the local stack would be billed for in AWS.

``metered(stack)`` counts, while its block runs and across every thread of the process:

- **Lambda**: each invocation of a handler (sync or async, from any caller) that ends in
  the block, and its wall time rounded up to the millisecond, with the memory its
  ``FunctionSpec`` configures, through the runtime's observers
  (``LambdaRuntime.observers``).
- **Step Functions**: the ``*StateEntered`` events of the provisioned state machines'
  executions whose time falls within the block, read from their histories, as AWS bills a
  Standard workflow per state transition.
- **SQS, DynamoDB, Secrets Manager, API Gateway's management API**: every AWS SDK call of
  the process, taken where botocore sends it (``Endpoint.make_request``: once per API call,
  whatever the client and whenever it was created; retries of one call are not counted
  apart). A call is billed when a function's handler made it, or one of the stack's
  stand-ins for AWS's own pollers (the SQS event source mapping's receives and deletes);
  the rest (a test or a benchmark watching the store, onboarding from the CLI) is kept
  apart as unbilled. Counting on the moto server's side would see each call once too, but
  in a request thread of its own, no longer knowing who made it. SQS requests count one per
  64 KB of the larger of request and response; WebSocket messages are the functions'
  ``PostToConnection`` calls (what clients send, and connection minutes, are not counted).
- **API Gateway (HTTP API)**: the requests the HTTP front routes to a function, through its
  observers (``HttpFront.observers``), in 512 KB increments of the request body; those
  the JWT authorizer refuses are not billed, as in AWS.

DynamoDB request units come from the payloads: an item's size is computed by DynamoDB's
rules from the item as the request or the response carries it (see ``item_size``). Where
neither carries the whole item (an ``UpdateItem`` or ``DeleteItem`` without
``ReturnValues``) the key and the written values are what is known, so such a write counts
at least 1 unit, possibly fewer than AWS would bill for an item over 1 KB. Reads of a
projection count the projected size, where AWS bills the whole item. DynamoDB Streams reads
by the stream poller are free for Lambda triggers and are not billed.
"""

from __future__ import annotations

import base64
import json
import math
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from botocore.endpoint import Endpoint

from local.runtime import current_function

if TYPE_CHECKING:
    from local.stack import LocalStack

# The threads of the stack's stand-ins for work AWS does itself (``local.background``).
STAND_IN_THREADS = frozenset({"sqs-poller", "stream-poller", "scheduler"})
OUTSIDE = "outside"

READ_UNIT_BYTES = 4 * 1024
WRITE_UNIT_BYTES = 1024
SQS_CHUNK_BYTES = 64 * 1024
HTTP_API_CHUNK_BYTES = 512 * 1024

# Billed per call; the control plane (creating queues, tables, mappings) and the free data
# plane calls are not.
DYNAMODB_DATA_PLANE = frozenset(
    {
        "GetItem",
        "BatchGetItem",
        "Query",
        "Scan",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
    }
)


# -- DynamoDB request units -----------------------------------------------------------


def _binary_size(value: Any) -> int:
    if isinstance(value, bytes | bytearray):
        return len(value)
    # In a request's JSON, binary values are base64.
    try:
        return len(base64.b64decode(str(value), validate=False))
    except ValueError:
        return len(str(value))


def _number_size(value: Any) -> int:
    digits = str(value).lstrip("-").replace(".", "").lower().split("e")[0].strip("0")
    return math.ceil(len(digits) / 2) + 1


def value_size(value: Mapping[str, Any]) -> int:
    """The size DynamoDB gives one attribute value in its typed form (``{"S": "..."}``)."""
    size = 0
    for kind, content in value.items():
        if kind == "S":
            size += len(str(content).encode())
        elif kind == "N":
            size += _number_size(content)
        elif kind == "B":
            size += _binary_size(content)
        elif kind in ("BOOL", "NULL"):
            size += 1
        elif kind == "SS":
            size += sum(len(str(s).encode()) for s in content)
        elif kind == "NS":
            size += sum(_number_size(n) for n in content)
        elif kind == "BS":
            size += sum(_binary_size(b) for b in content)
        elif kind == "L":
            size += 3 + sum(1 + value_size(element) for element in content)
        elif kind == "M":
            size += 3 + sum(
                1 + len(name.encode()) + value_size(element) for name, element in content.items()
            )
    return size


def item_size(item: Mapping[str, Any] | None) -> int:
    """An item's size by DynamoDB's rules: its attribute names' UTF-8 bytes plus its
    values' sizes."""
    if not item:
        return 0
    return sum(len(name.encode()) + value_size(value) for name, value in item.items())


def read_units(size_bytes: int, *, consistent: bool) -> float:
    """Read request units for one item read or one Query/Scan page: 4 KB units, rounded
    up, at least one; an eventually consistent read costs half."""
    units = max(1, math.ceil(size_bytes / READ_UNIT_BYTES))
    return float(units) if consistent else units / 2


def write_units(size_bytes: int) -> int:
    """Write request units for one item written: 1 KB units, rounded up, at least one."""
    return max(1, math.ceil(size_bytes / WRITE_UNIT_BYTES))


def _written_size(
    operation: str, request: Mapping[str, Any], returned: Mapping[str, Any] | None
) -> int:
    """The larger of the item before and after, as far as the call shows it."""
    sizes = [item_size(returned)]
    if operation == "Put":
        sizes.append(item_size(request.get("Item")))
    else:
        sizes.append(item_size(request.get("Key")))
        sizes.append(
            item_size(request.get("Key"))
            + sum(value_size(v) for v in (request.get("ExpressionAttributeValues") or {}).values())
        )
    return max(sizes)


def _get_units(request: Mapping[str, Any], response: Mapping[str, Any]) -> float:
    consistent = bool(request.get("ConsistentRead"))
    return read_units(item_size(response.get("Item")), consistent=consistent)


def _query_units(request: Mapping[str, Any], response: Mapping[str, Any]) -> float:
    size = sum(item_size(item) for item in response.get("Items", []))
    count, scanned = response.get("Count", 0), response.get("ScannedCount", 0)
    if count and scanned > count:
        # A filter drops items after they are read and billed.
        size = math.ceil(size * scanned / count)
    return read_units(size, consistent=bool(request.get("ConsistentRead")))


def _transact_get_units(request: Mapping[str, Any], response: Mapping[str, Any]) -> float:
    return sum(
        2 * read_units(item_size(r.get("Item")), consistent=True)
        for r in response.get("Responses", [])
    )


def _single_write_units(kind: str) -> Callable[[Mapping[str, Any], Mapping[str, Any]], float]:
    def units(request: Mapping[str, Any], response: Mapping[str, Any]) -> float:
        returned = None if "Error" in response else response.get("Attributes")
        return float(write_units(_written_size(kind, request, returned)))

    return units


def _transact_write_units(request: Mapping[str, Any], response: Mapping[str, Any]) -> float:
    return float(
        sum(
            2 * write_units(_written_size(kind, body, None))
            for action in request.get("TransactItems", [])
            for kind, body in action.items()
        )
    )


def _batch_get_units(request: Mapping[str, Any], response: Mapping[str, Any]) -> float:
    units = 0.0
    unprocessed = response.get("UnprocessedKeys") or {}
    for table, asked in (request.get("RequestItems") or {}).items():
        consistent = bool(asked.get("ConsistentRead"))
        items = (response.get("Responses") or {}).get(table, [])
        units += sum(read_units(item_size(item), consistent=consistent) for item in items)
        # A key with no item still costs the minimum.
        left = len(unprocessed.get(table, {}).get("Keys", []))
        missing = max(0, len(asked.get("Keys", [])) - len(items) - left)
        units += missing * read_units(0, consistent=consistent)
    return units


def _batch_write_units(request: Mapping[str, Any], response: Mapping[str, Any]) -> int:
    unprocessed = response.get("UnprocessedItems") or {}
    units = 0
    for table, writes in (request.get("RequestItems") or {}).items():
        left = len(unprocessed.get(table, []))
        sizes = [
            item_size(w["PutRequest"].get("Item"))
            if "PutRequest" in w
            else item_size(w.get("DeleteRequest", {}).get("Key"))
            for w in writes
        ]
        units += sum(write_units(size) for size in sizes[: len(sizes) - left])
    return units


Units = Callable[[Mapping[str, Any], Mapping[str, Any]], float]
_READS: dict[str, Units] = {
    "GetItem": _get_units,
    "Query": _query_units,
    "Scan": _query_units,
    "BatchGetItem": _batch_get_units,
    "TransactGetItems": _transact_get_units,
}
_WRITES: dict[str, Units] = {
    "PutItem": _single_write_units("Put"),
    "UpdateItem": _single_write_units("Update"),
    "DeleteItem": _single_write_units("Delete"),
    "BatchWriteItem": lambda request, response: float(_batch_write_units(request, response)),
    "TransactWriteItems": _transact_write_units,
}


def dynamodb_units(
    operation: str, request: Mapping[str, Any], response: Mapping[str, Any]
) -> tuple[float, float]:
    """(read request units, write request units) one DynamoDB API call consumes on an
    on-demand table. A refused read consumes nothing; a refused conditional write still
    consumes its write units."""
    if operation in _READS:
        return (0.0 if "Error" in response else _READS[operation](request, response)), 0.0
    if operation in _WRITES:
        return 0.0, _WRITES[operation](request, response)
    return 0.0, 0.0


# -- what was counted -----------------------------------------------------------------


@dataclass(frozen=True)
class FunctionUsage:
    function: str
    memory_mb: int
    invocations: int
    billed_ms: int

    @property
    def gb_seconds(self) -> float:
        return self.billed_ms / 1000 * self.memory_mb / 1024


@dataclass(frozen=True)
class ApiCalls:
    """Calls of one operation by one caller: a function's name, a stand-in's thread name,
    or ``outside``."""

    service: str
    operation: str
    caller: str
    calls: int
    billed: bool


@dataclass(frozen=True)
class Usage:
    started_at: datetime
    seconds: float
    functions: tuple[FunctionUsage, ...]
    executions: int
    state_transitions: int
    sqs_fifo_requests: int
    sqs_standard_requests: int
    dynamodb_read_units: float
    dynamodb_write_units: float
    http_api_requests: int
    websocket_messages: int
    secrets_manager_calls: int
    api_calls: tuple[ApiCalls, ...]
    # At the end of the block: what the fixed monthly costs scale with.
    secrets: int = 0

    @property
    def lambda_invocations(self) -> int:
        return sum(f.invocations for f in self.functions)

    @property
    def lambda_billed_ms(self) -> int:
        return sum(f.billed_ms for f in self.functions)

    @property
    def lambda_gb_seconds(self) -> float:
        return sum(f.gb_seconds for f in self.functions)

    @property
    def sqs_requests(self) -> int:
        return self.sqs_fifo_requests + self.sqs_standard_requests

    def calls(self, service: str, *, billed: bool | None = None) -> int:
        return sum(
            c.calls
            for c in self.api_calls
            if c.service == service and (billed is None or c.billed == billed)
        )


# -- counting -------------------------------------------------------------------------


@dataclass(frozen=True)
class SdkCall:
    service: str
    operation: str
    caller: str
    request: Mapping[str, Any]
    response: Mapping[str, Any]
    request_bytes: int
    response_bytes: int


_quiet = threading.local()


@contextmanager
def _not_counted() -> Iterator[None]:
    """The meter's own reads (execution histories, secrets) are no part of the run."""
    _quiet.active = True
    try:
        yield
    finally:
        _quiet.active = False


def _caller() -> str:
    function = current_function()
    if function is not None:
        return function
    thread = threading.current_thread().name
    return thread if thread in STAND_IN_THREADS else OUTSIDE


def _json(body: Any) -> dict[str, Any]:
    if isinstance(body, bytes | bytearray):
        body = body.decode(errors="replace")
    if not isinstance(body, str) or not body.startswith("{"):
        return {}
    try:
        parsed = json.loads(body)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


class _SdkTap:
    """Patches botocore's ``Endpoint.make_request`` while any meter is attached."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listeners: tuple[Callable[[SdkCall], None], ...] = ()
        self._original: Any = None

    def attach(self, listener: Callable[[SdkCall], None]) -> None:
        with self._lock:
            if self._original is None:
                self._original = Endpoint.make_request
                Endpoint.make_request = self._make_request(self._original)  # type: ignore[method-assign]
            self._listeners = (*self._listeners, listener)

    def detach(self, listener: Callable[[SdkCall], None]) -> None:
        with self._lock:
            self._listeners = tuple(x for x in self._listeners if x != listener)
            if not self._listeners and self._original is not None:
                Endpoint.make_request = self._original  # type: ignore[method-assign]
                self._original = None

    def _make_request(self, original: Any) -> Any:
        tap = self

        def make_request(endpoint: Endpoint, operation_model: Any, request_dict: Any) -> Any:
            result = original(endpoint, operation_model, request_dict)
            listeners = tap._listeners
            if not listeners or getattr(_quiet, "active", False):
                return result
            http_response, parsed = result
            service = operation_model.service_model.service_name
            body = request_dict.get("body") or b""
            call = SdkCall(
                service=service,
                operation=operation_model.name,
                caller=_caller(),
                request=_json(body) if service in ("dynamodb", "sqs") else {},
                response=parsed if isinstance(parsed, dict) else {},
                request_bytes=len(body),
                # Streaming bodies are left alone: reading one here would consume it.
                response_bytes=len(http_response.content) if service == "sqs" else 0,
            )
            for listener in listeners:
                listener(call)
            return result

        return make_request


_TAP = _SdkTap()


def _billed(call: SdkCall) -> bool:
    if call.caller == OUTSIDE:
        return False
    if call.service == "dynamodbstreams":
        return False  # free when read by a Lambda trigger
    if call.service == "dynamodb":
        return call.operation in DYNAMODB_DATA_PLANE
    if call.service == "apigatewaymanagementapi":
        return call.operation == "PostToConnection"
    return call.service in ("sqs", "secretsmanager")


def _is_fifo(request: Mapping[str, Any]) -> bool:
    queue = str(request.get("QueueUrl") or request.get("QueueName") or "")
    return queue.endswith(".fifo")


class UsageMeter:
    def __init__(self, stack: LocalStack) -> None:
        self._stack = stack
        self._lock = threading.Lock()
        self._started_at = datetime.now(UTC)
        self._ended_at: datetime | None = None
        self._functions: dict[str, tuple[int, int, int]] = {}
        self._calls: Counter[tuple[str, str, str]] = Counter()
        self._sqs_fifo = 0
        self._sqs_standard = 0
        self._read_units = 0.0
        self._write_units = 0.0
        self._http_requests = 0
        # Read from the stack when the block ends, which may be stopped by the next look.
        self._at_end: tuple[int, int, int] | None = None

    # -- observers ------------------------------------------------------------------

    def _on_invoke(self, function_name: str, duration_s: float, memory_mb: int) -> None:
        billed_ms = max(1, math.ceil(duration_s * 1000))
        with self._lock:
            invocations, total_ms, _ = self._functions.get(function_name, (0, 0, memory_mb))
            self._functions[function_name] = (invocations + 1, total_ms + billed_ms, memory_mb)

    def _on_http_request(self, route_key: str, body_bytes: int) -> None:
        with self._lock:
            self._http_requests += max(1, math.ceil(body_bytes / HTTP_API_CHUNK_BYTES))
            self._calls["apigateway", route_key, "http-front"] += 1

    def _on_sdk_call(self, call: SdkCall) -> None:
        billed = _billed(call)
        read = write = 0.0
        if billed and call.service == "dynamodb":
            read, write = dynamodb_units(call.operation, call.request, call.response)
        with self._lock:
            self._calls[call.service, call.operation, call.caller] += 1
            if not billed:
                return
            if call.service == "sqs":
                chunks = max(
                    1, math.ceil(max(call.request_bytes, call.response_bytes) / SQS_CHUNK_BYTES)
                )
                if _is_fifo(call.request):
                    self._sqs_fifo += chunks
                else:
                    self._sqs_standard += chunks
            self._read_units += read
            self._write_units += write

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self._started_at = datetime.now(UTC)
        self._stack.runtime.observers.add(self._on_invoke)
        if self._stack.front is not None:
            self._stack.front.observers.add(self._on_http_request)
        _TAP.attach(self._on_sdk_call)

    def stop(self) -> None:
        _TAP.detach(self._on_sdk_call)
        if self._stack.front is not None:
            self._stack.front.observers.remove(self._on_http_request)
        self._stack.runtime.observers.remove(self._on_invoke)
        self._ended_at = datetime.now(UTC)
        self._at_end = self._read_stack(self._ended_at)

    # -- reading --------------------------------------------------------------------

    def snapshot(self) -> Usage:
        """What was counted so far (all of it, once the block has ended)."""
        ended = self._ended_at or datetime.now(UTC)
        executions, transitions, secrets = self._at_end or self._read_stack(ended)
        with self._lock:
            calls = tuple(
                ApiCalls(
                    service=service,
                    operation=operation,
                    caller=caller,
                    calls=count,
                    billed=self._is_billed_key(service, operation, caller),
                )
                for (service, operation, caller), count in sorted(self._calls.items())
            )
            return Usage(
                started_at=self._started_at,
                seconds=(ended - self._started_at).total_seconds(),
                functions=tuple(
                    FunctionUsage(name, memory, invocations, billed_ms)
                    for name, (invocations, billed_ms, memory) in sorted(self._functions.items())
                ),
                executions=executions,
                state_transitions=transitions,
                sqs_fifo_requests=self._sqs_fifo,
                sqs_standard_requests=self._sqs_standard,
                dynamodb_read_units=self._read_units,
                dynamodb_write_units=self._write_units,
                http_api_requests=self._http_requests,
                websocket_messages=sum(
                    count
                    for (service, operation, caller), count in self._calls.items()
                    if service == "apigatewaymanagementapi"
                    and operation == "PostToConnection"
                    and caller != OUTSIDE
                ),
                secrets_manager_calls=sum(
                    count
                    for (service, _, caller), count in self._calls.items()
                    if service == "secretsmanager" and caller != OUTSIDE
                ),
                api_calls=calls,
                secrets=secrets,
            )

    @staticmethod
    def _is_billed_key(service: str, operation: str, caller: str) -> bool:
        if service == "apigateway":
            return True
        return _billed(SdkCall(service, operation, caller, {}, {}, 0, 0))

    def _read_stack(self, ended: datetime) -> tuple[int, int, int]:
        """(executions, state transitions, secrets), from the stack's AWS."""
        with _not_counted():
            return (*self._state_transitions(ended), self._secrets())

    def _state_transitions(self, ended: datetime) -> tuple[int, int]:
        """Executions with a state entered in the block, and the states entered."""
        provisioned = self._stack.provisioned
        if provisioned is None:
            return 0, 0
        sfn = self._stack.client("stepfunctions")
        executions = transitions = 0
        for machine_arn in provisioned.state_machine_arns.values():
            pages = sfn.get_paginator("list_executions").paginate(stateMachineArn=machine_arn)
            for page in pages:
                for execution in page["executions"]:
                    stopped = execution.get("stopDate")
                    if stopped is not None and stopped < self._started_at:
                        continue
                    if execution["startDate"] > ended:
                        continue
                    entered = self._states_entered(sfn, execution["executionArn"], ended)
                    executions += 1 if entered else 0
                    transitions += entered
        return executions, transitions

    def _states_entered(self, sfn: Any, execution_arn: str, ended: datetime) -> int:
        entered = 0
        pages = sfn.get_paginator("get_execution_history").paginate(executionArn=execution_arn)
        for page in pages:
            for event in page["events"]:
                if (
                    event["type"].endswith("StateEntered")
                    and self._started_at <= event["timestamp"] <= ended
                ):
                    entered += 1
        return entered

    def _secrets(self) -> int:
        if self._stack.session is None:
            return 0
        client = self._stack.client("secretsmanager")
        return sum(
            len(page["SecretList"]) for page in client.get_paginator("list_secrets").paginate()
        )


@contextmanager
def metered(stack: LocalStack) -> Iterator[UsageMeter]:
    """Count what the block's run of Merge Assist would be billed for (module docstring)."""
    meter = UsageMeter(stack)
    meter.start()
    try:
        yield meter
    finally:
        meter.stop()

"""Injected faults: error statuses, 429s with Retry-After, latency on matching API requests,
and dropped webhooks. A rule fires ``times`` times (None: until cleared)."""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field


@dataclass
class FaultRule:
    id: int
    path_pattern: str = ".*"
    method: str | None = None
    status: int | None = None
    retry_after: int | None = None
    latency_s: float = 0.0
    drop_webhook_event: str | None = None
    times: int | None = None

    def matches(self, method: str, path: str) -> bool:
        if self.drop_webhook_event is not None:
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return re.search(self.path_pattern, path) is not None


@dataclass(frozen=True)
class Fault:
    status: int | None
    retry_after: int | None
    latency_s: float


@dataclass
class Faults:
    _rules: list[FaultRule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next_id: int = 1

    def add(self, **spec: object) -> FaultRule:
        with self._lock:
            rule = FaultRule(id=self._next_id, **spec)  # type: ignore[arg-type]
            self._next_id += 1
            if rule.status == 429 and rule.retry_after is None:
                rule.retry_after = 1
            self._rules.append(rule)
            return rule

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def for_request(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path) and self._consume(rule):
                    return Fault(rule.status, rule.retry_after, rule.latency_s)
            return None

    def should_drop(self, event_name: str) -> bool:
        with self._lock:
            for rule in self._rules:
                if rule.drop_webhook_event in (event_name, "*") and self._consume(rule):
                    return True
            return False

    def _consume(self, rule: FaultRule) -> bool:
        if rule.times is None:
            return True
        if rule.times <= 0:
            return False
        rule.times -= 1
        return True

"""Injected faults: what a GitLab under strain does to its callers.

Request rules match REST API requests (path after ``/api/v4``), git smart-HTTP requests
(``/group/project.git/...``) or both (``scope``), by path regex and method. A matching rule
fires with probability ``rate`` and at most ``times`` times (None: until cleared), and then:

- answers ``status`` (429 carries ``Retry-After``, 1 s unless told) and/or sleeps
  ``latency_s`` first;
- with ``drop_connection``, closes the connection without any answer;
- with ``after_effect``, only after the request was carried out: GitLab acted, its answer
  never arrived, as when the caller's Lambda crashed or timed out right after the call.
  Such a rule matches mutating requests only (POST, PUT, PATCH, DELETE; a fetch is a POST
  to ``git-upload-pack`` but changes nothing) that succeeded.

Webhook rules name an event (``"Pipeline Hook"``, ``"*"``: any) and ``drop`` a delivery,
``duplicate`` it (sent twice with the same ``Idempotency-Key``, as a retried Sidekiq job
sends it) or ``delay`` it (held back and sent after the next delivery: reordered).

An outage answers every REST and git request ``503`` (or, with ``refuse``, lets no
connection through) until it is ended or its ``seconds`` have passed; webhooks wait for it
to end. The simulator's own ``/-/sim`` controls are never faulted.

Whether a probabilistic rule fires is a function of its ``seed``, the request (method and
path, or event name) and how many times the rule has seen that request before, not of the
order in which threads happen to call: a scenario replays the same faults run after run.
"""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Literal

Scope = Literal["api", "git", "all"]
WebhookAction = Literal["drop", "duplicate", "delay"]
SCOPES: tuple[str, ...] = ("api", "git", "all")
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
DEFAULT_RETRY_AFTER_S = 1
OUTAGE_STATUS = 503


def is_mutating(method: str, path: str) -> bool:
    return method.upper() in MUTATING and not path.endswith("/git-upload-pack")


@dataclass
class FaultRule:
    id: int
    path_pattern: str = ".*"
    method: str | None = None
    status: int | None = None
    retry_after: int | None = None
    latency_s: float = 0.0
    drop_webhook_event: str | None = None
    duplicate_webhook_event: str | None = None
    delay_webhook_event: str | None = None
    times: int | None = None
    rate: float = 1.0
    seed: int = 0
    scope: Scope = "api"
    after_effect: bool = False
    drop_connection: bool = False
    fired: int = 0

    def __post_init__(self) -> None:
        if not 0.0 <= self.rate <= 1.0:
            raise ValueError(f"rate must be between 0 and 1, not {self.rate}")
        if self.scope not in SCOPES:
            raise ValueError(f"scope must be one of {', '.join(SCOPES)}, not {self.scope!r}")
        if self.times is not None and self.times < 0:
            raise ValueError("times must not be negative")
        if self.latency_s < 0:
            raise ValueError("latency_s must not be negative")
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP error status, not {self.status}")
        events = (self.drop_webhook_event, self.duplicate_webhook_event, self.delay_webhook_event)
        if sum(e is not None for e in events) > 1:
            raise ValueError("a rule drops, duplicates or delays webhooks, one of them")
        if self.after_effect and self.status is None and not self.drop_connection:
            raise ValueError("an after_effect rule needs a status or drop_connection")
        re.compile(self.path_pattern)
        if self.status == 429 and self.retry_after is None:
            self.retry_after = DEFAULT_RETRY_AFTER_S

    @property
    def webhook_action(self) -> tuple[WebhookAction, str] | None:
        if self.drop_webhook_event is not None:
            return "drop", self.drop_webhook_event
        if self.duplicate_webhook_event is not None:
            return "duplicate", self.duplicate_webhook_event
        if self.delay_webhook_event is not None:
            return "delay", self.delay_webhook_event
        return None

    def fault(self) -> Fault:
        return Fault(self.status, self.retry_after, self.latency_s, self.drop_connection)

    def matches(self, method: str, path: str, *, git: bool = False, after: bool = False) -> bool:
        if self.webhook_action is not None or self.after_effect != after:
            return False
        if self.scope != "all" and (self.scope == "git") != git:
            return False
        if after and not is_mutating(method, path):
            return False
        if self.method is not None and self.method.upper() != method.upper():
            return False
        return re.search(self.path_pattern, path) is not None


@dataclass(frozen=True)
class Fault:
    status: int | None
    retry_after: int | None
    latency_s: float
    drop_connection: bool = False


@dataclass
class Outage:
    status: int = OUTAGE_STATUS
    retry_after: int | None = None
    refuse: bool = False
    # time.monotonic() at which it ends by itself; None: when ended.
    until: float | None = None

    def over(self, now: float) -> bool:
        return self.until is not None and now >= self.until

    def fault(self) -> Fault:
        return Fault(self.status, self.retry_after, 0.0, drop_connection=self.refuse)


def draw(seed: int, key: str, occurrence: int) -> float:
    """A number in [0, 1) fixed by its arguments."""
    digest = hashlib.sha256(f"{seed}\0{key}\0{occurrence}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


@dataclass
class Faults:
    _rules: list[FaultRule] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _next_id: int = 1
    _seen: dict[tuple[int, str], int] = field(default_factory=dict)
    _outage: Outage | None = None

    def add(self, **spec: object) -> FaultRule:
        with self._lock:
            rule = FaultRule(id=self._next_id, **spec)  # type: ignore[arg-type]
            self._next_id += 1
            self._rules.append(rule)
            return rule

    def clear(self) -> None:
        """Every rule goes, and any outage ends."""
        with self._lock:
            self._rules.clear()
            self._seen.clear()
            self._outage = None

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    # --- outages ---------------------------------------------------------------------------

    def start_outage(
        self,
        seconds: float | None = None,
        *,
        status: int = OUTAGE_STATUS,
        retry_after: int | None = None,
        refuse: bool = False,
    ) -> Outage:
        if seconds is not None and seconds <= 0:
            raise ValueError("an outage lasts a positive number of seconds")
        if not 500 <= status <= 599:
            raise ValueError(f"an outage answers a 5xx status, not {status}")
        until = None if seconds is None else time.monotonic() + seconds
        with self._lock:
            self._outage = Outage(status, retry_after, refuse, until)
            return self._outage

    def end_outage(self) -> None:
        with self._lock:
            self._outage = None

    def outage(self) -> Outage | None:
        """The outage under way, if any (one whose time is up ends here)."""
        with self._lock:
            return self._current_outage()

    def _current_outage(self) -> Outage | None:
        if self._outage is not None and self._outage.over(time.monotonic()):
            self._outage = None
        return self._outage

    # --- requests ----------------------------------------------------------------------------

    def for_request(self, method: str, path: str, *, git: bool = False) -> Fault | None:
        """The fault answering this request instead of GitLab, if any."""
        with self._lock:
            outage = self._current_outage()
            if outage is not None:
                return outage.fault()
            for rule in self._rules:
                if rule.matches(method, path, git=git) and self._fires(rule, f"{method} {path}"):
                    return rule.fault()
            return None

    def after_effect(self, method: str, path: str, *, git: bool = False) -> Fault | None:
        """The fault replacing GitLab's answer to a request it carried out, if any."""
        with self._lock:
            for rule in self._rules:
                if rule.matches(method, path, git=git, after=True) and self._fires(
                    rule, f"after {method} {path}"
                ):
                    return rule.fault()
            return None

    # --- webhooks ----------------------------------------------------------------------------

    def for_delivery(self, event_name: str) -> WebhookAction | None:
        with self._lock:
            for rule in self._rules:
                action = rule.webhook_action
                if action is None or action[1] not in (event_name, "*"):
                    continue
                if self._fires(rule, event_name):
                    return action[0]
            return None

    def deliveries_held(self) -> bool:
        """GitLab is down: its webhooks wait."""
        return self.outage() is not None

    def _fires(self, rule: FaultRule, key: str) -> bool:
        occurrence = self._seen.get((rule.id, key), 0)
        self._seen[(rule.id, key)] = occurrence + 1
        if rule.times is not None and rule.times <= 0:
            return False
        if rule.rate < 1.0 and draw(rule.seed, key, occurrence) >= rule.rate:
            return False
        if rule.times is not None:
            rule.times -= 1
        rule.fired += 1
        return True

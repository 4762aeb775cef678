"""moto looks a service's backend up on every request under one process-wide lock, and
inside it scans the list of every backend in use with Python-level equality. With the
local stack's many threads (functions, pollers, the simulator's webhook workers) that lock
becomes a convoy: a holder preempted mid-scan stalls every other AWS call. Once an account's
backend exists the lookup needs neither the lock nor the scan (both only create it), so the
local stack answers that case straight from the dictionary."""

from __future__ import annotations

import threading

from moto.core.base_backend import BackendDict

_lock = threading.Lock()
_installed = False


def install() -> None:
    """Idempotent. A reset empties every backend dictionary, so the first lookup after it
    takes moto's own path again and registers the backend for the next reset."""
    global _installed  # noqa: PLW0603 - one patch per process
    with _lock:
        if _installed:
            return
        create = BackendDict._create_account_specific_backend

        def create_once(self: BackendDict, account_id: str) -> None:  # type: ignore[type-arg]
            if dict.__contains__(self, account_id):
                return
            create(self, account_id)

        BackendDict._create_account_specific_backend = create_once  # type: ignore[method-assign]
        _installed = True

"""moto's server finds the backend for every request under one process-wide lock, and for a
host name it lists moto's package directory and stats each of its ~150 entries, then tries
hundreds of URL patterns. With the whole stack's AWS calls going through that one lock,
the local stack measured moto's routing rather than the product. The answer for a host
never changes while the process runs, so it is remembered; everything else moto does per
request is left as it is."""

from __future__ import annotations

import threading
from typing import Any

from moto.moto_server.werkzeug_app import DomainDispatcherApplication

_lock = threading.Lock()
_installed = False


def install() -> None:
    """Idempotent: the first call memoizes backend lookup by host, later calls do nothing."""
    global _installed  # noqa: PLW0603 - one patch per process
    with _lock:
        if _installed:
            return
        original = DomainDispatcherApplication.get_backend_for_host
        found: dict[str | None, Any] = {}

        def get_backend_for_host(app: DomainDispatcherApplication, host: str | None) -> Any:
            # Called under the app's own lock, so the dictionary needs none of its own.
            if host not in found:
                found[host] = original(app, host)
            return found[host]

        DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign, assignment]
        _installed = True

"""A daemon thread that repeats one step until stopped: the shape of the local stack's
stand-ins for AWS's own pollers and schedulers."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class BackgroundLoop:
    """Runs ``step`` every ``interval_seconds``, or again at once when it reports it found
    work. A failing step is logged and the loop goes on: a stand-in for an AWS service must
    outlive any one bad resource."""

    def __init__(self, name: str, step: Callable[[], bool], interval_seconds: float) -> None:
        self._name = name
        self._step = step
        self._interval = interval_seconds
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self._step()
            except Exception:
                log.exception("%s failed", self._name)
                busy = False
            if not busy:
                self._stop.wait(self._interval)

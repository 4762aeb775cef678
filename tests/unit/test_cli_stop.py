"""Ctrl-C and SIGTERM end ``merge-assist local`` and ``gitlab-sim``, whichever thread the
kernel hands the signal to."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator

import pytest

from cli.main import _stop_on_signals

# Not a speed bound: only what turns a wait that never ends into a failing test.
HANG_GUARD_SECONDS = 10.0
SETTLE_SECONDS = 0.2


@pytest.fixture
def restored_handlers() -> Iterator[None]:
    saved = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    yield
    for signum, handler in saved.items():
        signal.signal(signum, handler)


def _deliver_then_guard(
    signum: int, to_thread: threading.Thread, woken: threading.Event, guard: threading.Event
) -> None:
    """Sends ``signum`` to another thread than the waiting main thread, as the kernel may;
    if the wait has not ended by the guard, sends it to the main thread itself, so the test
    fails instead of hanging."""
    # Only for the test to catch a regression: the main thread is blocked in its wait by
    # then (a signal sent earlier is seen between two bytecodes, whatever the wait does).
    time.sleep(SETTLE_SECONDS)
    signal.pthread_kill(to_thread.ident or 0, signum)
    if not woken.wait(HANG_GUARD_SECONDS):
        guard.set()
        signal.pthread_kill(threading.main_thread().ident or 0, signum)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.usefixtures("restored_handlers")
def test_a_stop_signal_caught_by_another_thread_ends_the_wait(signum: int) -> None:
    stopping = _stop_on_signals()
    woken = threading.Event()
    guard = threading.Event()
    bystander_may_end = threading.Event()
    # A thread that blocks on a lock, as the stack's threads do, and catches the signal: the
    # main thread's wait sees no interrupted system call.
    bystander = threading.Thread(target=bystander_may_end.wait, daemon=True)
    bystander.start()
    sender = threading.Thread(
        target=_deliver_then_guard, args=(signum, bystander, woken, guard), daemon=True
    )
    sender.start()
    stopping.wait()
    woken.set()
    bystander_may_end.set()
    sender.join()
    bystander.join()
    assert not guard.is_set(), "the wait ended only when the signal reached the main thread"


@pytest.mark.usefixtures("restored_handlers")
def test_a_stop_requested_before_the_wait_ends_it_at_once() -> None:
    stopping = _stop_on_signals()
    signal.raise_signal(signal.SIGINT)
    stopping.wait()

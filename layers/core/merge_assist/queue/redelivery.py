"""What becomes of a queued event the dispatcher could not handle.

A FIFO group waits for its failed message, so a failure must cost seconds, not the queue's
visibility timeout (six times the function's, for Lambda's throttling): transient errors
are first retried inside the invocation, then the message comes back after a short,
growing delay, and one that still fails after ``PARK_AFTER_RECEIVES`` receives is parked
in the project's dead-letter queue (alarmed; ``merge-assist dlq redrive`` brings it back)
so its group moves on. Parking comes before SQS's own redrive (``maxReceiveCount``), which
would also take the group's innocent messages that were skipped behind it."""

from __future__ import annotations

from dataclasses import dataclass

from merge_assist.platform.errors import ConflictError, transient

# Inside one invocation: about ten seconds of trying before the message is handed back.
ATTEMPTS_IN_INVOCATION = 4
ATTEMPT_BASE_SECONDS = 1.0
ATTEMPT_CAP_SECONDS = 5.0

PARK_AFTER_RECEIVES = 3
FIRST_REDELIVERY_SECONDS = 10
MAX_REDELIVERY_SECONDS = 120


def worth_retrying(error: Exception) -> bool:
    """GitLab or AWS not answering, or a write race that kept being lost."""
    return transient(error) or isinstance(error, ConflictError)


@dataclass(frozen=True)
class Redeliver:
    after_seconds: int


@dataclass(frozen=True)
class Park:
    pass


def after_failure(receive_count: int) -> Redeliver | Park:
    """For a message whose handling raised, received ``receive_count`` times."""
    if receive_count >= PARK_AFTER_RECEIVES:
        return Park()
    seconds = FIRST_REDELIVERY_SECONDS * 2 ** max(receive_count - 1, 0)
    return Redeliver(after_seconds=min(seconds, MAX_REDELIVERY_SECONDS))


def behind(ahead: Redeliver | Park) -> Redeliver:
    """For a message skipped behind one of its group that raised: it comes back with that
    one (at once when that one was parked), whatever its own receive count. A skipped
    message kept out longer would hold its whole group back after the failed one is done."""
    return ahead if isinstance(ahead, Redeliver) else Redeliver(after_seconds=0)

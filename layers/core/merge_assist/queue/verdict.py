"""What a batch's pipeline result means: land, test a smaller prefix, or give up.

The workflow's decisions, apart from its I/O: after each pipeline the state machine asks
``decide`` and does what the verdict says. A red batch is bisected by prefixes
(``batch_plan.Bisection``), so every commit that lands is exactly one that passed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from merge_assist.queue import comments
from merge_assist.queue.batch_plan import Bisection, InconsistentResult
from merge_assist.queue.models import Reason
from merge_assist.queue.pipeline_wait import TIMED_OUT

PASSED = "success"
FAILED = "failed"
# Canceled: someone stopped the pipeline; nobody is to blame, everyone goes back in line.
CANCELED = "canceled"
# Skipped: CI declined to test the batch, so it can never land; nobody is to blame either,
# but queueing the same MRs again would skip again.
SKIPPED = "skipped"


class Action(StrEnum):
    TEST = "test"  # wait for the pipeline of the prefix of ``test_length``
    LAND = "land"  # fast-forward the target to the prefix of ``land_length``
    RELEASE = "release"  # nothing (more) lands; end the batch


@dataclass(frozen=True)
class Verdict:
    action: Action
    test_length: int | None = None
    land_length: int = 0
    rejected: dict[int, Reason] = field(default_factory=dict)
    requeued: tuple[int, ...] = ()
    bisection: Bisection | None = None
    # The next test runs the same prefix again: a flaky retry of the isolated culprit.
    retry: bool = False
    # A new bisection round: the prefixes whose pipelines start now, all at once
    # (``test_length`` is the shortest, awaited first). Empty while a round goes on.
    round: tuple[int, ...] = ()
    # Prefixes of the round whose answers no longer matter: their pipelines may stop.
    moot: tuple[int, ...] = ()


def decide(
    members: Sequence[int],
    tested_length: int,
    status: str,
    *,
    bisection: Bisection | None,
    retries_left: int,
    retrying: bool = False,
    pipeline_url: str | None = None,
    ways: int = 2,
) -> Verdict:
    """``members``: the batch's MRs in merge order; ``tested_length``: the prefix the
    pipeline tested (the whole batch at first); ``retries_left``: flaky retries the project
    still allows before the isolated culprit is rejected; ``retrying``: the pipeline was
    such a retry; ``ways``: how many parts a bisection round cuts the suspects into."""
    verdict = _decide(
        tuple(members),
        tested_length,
        status,
        bisection=bisection,
        retries_left=retries_left,
        retrying=retrying,
        pipeline_url=pipeline_url,
        ways=ways,
    )
    waiting = set(bisection.pending) if bisection is not None else set()
    still = (
        set(verdict.bisection.pending)
        if verdict.action is Action.TEST and verdict.bisection
        else set()
    )
    moot = tuple(sorted(waiting - still - {tested_length}))
    return replace(verdict, moot=moot) if moot else verdict


def _decide(
    everyone: tuple[int, ...],
    tested_length: int,
    status: str,
    *,
    bisection: Bisection | None,
    retries_left: int,
    retrying: bool,
    pipeline_url: str | None,
    ways: int,
) -> Verdict:
    if status == PASSED and bisection is None:
        return Verdict(Action.LAND, land_length=tested_length)
    if status == CANCELED:
        return Verdict(Action.RELEASE, requeued=everyone)
    if status == SKIPPED:
        reason = comments.pipeline_skipped(pipeline_url)
        return Verdict(Action.RELEASE, rejected=dict.fromkeys(everyone, reason))
    passed = status == PASSED
    if retrying and passed and bisection is not None and tested_length == bisection.bad:
        # The culprit's prefix passed on its second run: the first failure was a flake and
        # this exact commit is green. The rest was never tested on top of it.
        return Verdict(
            Action.LAND,
            land_length=tested_length,
            requeued=everyone[tested_length:],
            bisection=bisection,
        )
    bisection = bisection or Bisection.start(everyone)
    try:
        bisection = bisection.record(tested_length, passed)
    except InconsistentResult:
        # A prefix passed after a longer one failed, or the reverse: a flaky pipeline.
        # Nothing can be trusted, nobody is rejected.
        return Verdict(Action.RELEASE, requeued=everyone)
    culprit = bisection.culprit
    if culprit is None:
        if pending := bisection.pending:
            # The round goes on: the next answer is from a pipeline already running.
            return Verdict(Action.TEST, test_length=pending[0], bisection=bisection)
        bisection = bisection.next_round(ways)
        return Verdict(
            Action.TEST,
            test_length=bisection.round[0],
            bisection=bisection,
            round=bisection.round,
        )
    if retries_left > 0:
        return Verdict(Action.TEST, test_length=bisection.bad, bisection=bisection, retry=True)
    landable = len(bisection.landable)
    return Verdict(
        Action.LAND if landable else Action.RELEASE,
        land_length=landable,
        rejected={
            culprit: comments.culprit(
                pipeline_url, timed_out=status == TIMED_OUT, alone=len(everyone) == 1
            )
        },
        requeued=bisection.untested,
        bisection=bisection,
    )

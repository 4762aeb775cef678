"""What a batch's pipeline result means: land, test a smaller prefix, or give up.

The workflow's decisions, apart from its I/O: after each pipeline the state machine asks
``judge`` and does what the verdict says. A red batch is bisected by prefixes
(``batch_plan.Bisection``), so every commit that lands is exactly one that passed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

from merge_assist.batch_plan import Bisection, InconsistentResult
from merge_assist.models import Reason, ReasonCode

PASSED = "success"
FAILED = "failed"
# A pipeline that did not judge the code: nobody is to blame, everyone goes back in line.
NO_VERDICT = frozenset({"canceled", "skipped"})


class Action(StrEnum):
    TEST = "test"  # run the pipeline of the prefix of ``test_length``
    LAND = "land"  # fast-forward the target to the prefix of ``land_length``
    RELEASE = "release"  # nothing lands; end the batch


@dataclass(frozen=True)
class Verdict:
    action: Action
    test_length: int | None = None
    land_length: int = 0
    rejected: dict[int, Reason] = field(default_factory=dict)
    requeued: tuple[int, ...] = ()
    bisection: Bisection | None = None


def judge(
    members: Sequence[int],
    tested_length: int,
    status: str,
    *,
    bisection: Bisection | None,
    retries_left: int,
    pipeline_url: str | None = None,
) -> Verdict:
    """``members``: the batch's MRs in merge order; ``tested_length``: the prefix the
    pipeline tested (the whole batch at first); ``retries_left``: flaky retries the project
    still allows for a single-MR failure."""
    everyone = tuple(members)
    if status == PASSED and bisection is None:
        return Verdict(Action.LAND, land_length=tested_length)
    if status in NO_VERDICT:
        return Verdict(Action.RELEASE, requeued=everyone)
    passed = status == PASSED
    if bisection is None:
        if len(everyone) == 1 and retries_left > 0:
            return Verdict(Action.TEST, test_length=1)
        bisection = Bisection.start(everyone)
    try:
        bisection = bisection.record(tested_length, passed)
    except InconsistentResult:
        # A prefix passed after a longer one failed, or the reverse: a flaky pipeline.
        # Nothing can be trusted, nobody is rejected.
        return Verdict(Action.RELEASE, requeued=everyone)
    culprit = bisection.culprit
    if culprit is None:
        return Verdict(Action.TEST, test_length=bisection.next_length, bisection=bisection)
    where = f" ({pipeline_url})" if pipeline_url else ""
    reason = Reason(
        code=ReasonCode.CI_FAILED,
        message=f"the pipeline failed with this merge request on top of its batch{where}",
    )
    landable = len(bisection.landable)
    return Verdict(
        Action.LAND if landable else Action.RELEASE,
        land_length=landable,
        rejected={culprit: reason},
        requeued=bisection.untested,
        bisection=bisection,
    )

"""What a batch is made of and how a red batch is searched for its culprit.

Bisection tests prefixes of the batch, never arbitrary subsets: the first half is tested on
the target, the second half on top of the first. Each tested commit is then exactly what
would land (invariant 1), an MR that only breaks in combination with an earlier one is still
found, and the per-MR commits of the batch that was already built are the prefixes, so no
rebuild is needed to test one.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator


class MergeMethod(StrEnum):
    """GitLab's project merge methods, as the batch commit follows them."""

    MERGE = "merge"
    REBASE_MERGE = "rebase_merge"
    FF = "ff"


def branch_ref(branch: str) -> str:
    return branch if branch.startswith("refs/") else f"refs/heads/{branch}"


def merge_request_ref(iid: int) -> str:
    """Where GitLab publishes an MR's head, fetchable without access to its source project."""
    return f"refs/merge-requests/{iid}/head"


class GitIdentity(BaseModel):
    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1)
    email: str = Field(min_length=1)


class BatchMember(BaseModel):
    """An MR as the batch builder needs it: the head it was approved at, and what the merge
    commit message names."""

    model_config = ConfigDict(frozen=True)

    iid: int = Field(gt=0)
    head_sha: str = Field(min_length=40, max_length=64)
    source_branch: str = Field(min_length=1)
    title: str = ""


class IncludedMergeRequest(BaseModel):
    """An MR that went into the batch; ``tip_sha`` is the batch commit after its part, so
    the batch up to and including this MR is ``tip_sha``."""

    model_config = ConfigDict(frozen=True)

    iid: int
    head_sha: str
    tip_sha: str


class RejectedMergeRequest(BaseModel):
    model_config = ConfigDict(frozen=True)

    iid: int
    conflicts: tuple[str, ...]


class BatchBuild(BaseModel):
    model_config = ConfigDict(frozen=True)

    target_sha: str
    sha: str
    included: tuple[IncludedMergeRequest, ...] = ()
    rejected: tuple[RejectedMergeRequest, ...] = ()

    @property
    def included_iids(self) -> tuple[int, ...]:
        return tuple(mr.iid for mr in self.included)

    def prefix_sha(self, length: int) -> str:
        """The batch commit holding the first ``length`` included MRs (0: the target)."""
        if not 0 <= length <= len(self.included):
            raise ValueError(f"prefix length {length} outside 0..{len(self.included)}")
        return self.target_sha if length == 0 else self.included[length - 1].tip_sha


def merge_commit_message(member: BatchMember, target_branch: str, project_path: str) -> str:
    """GitLab's default merge commit message, so history looks as if GitLab had merged."""
    subject = f"Merge branch '{member.source_branch}' into '{target_branch}'"
    body = [subject, ""]
    if member.title:
        body += [member.title, ""]
    body.append(f"See merge request {project_path}!{member.iid}")
    return "\n".join(body) + "\n"


class InconsistentResult(ValueError):
    """A pipeline result contradicts earlier ones (a flaky pipeline, usually): the search
    cannot trust any of them."""


class Bisection(BaseModel):
    """Search for the first red prefix of a red batch, several prefixes a round.

    Known: the prefix of length ``good`` is green (0 is the target itself) and the prefix of
    length ``bad`` is red (the whole batch at the start). The culprit is the MR that ends
    the shortest red prefix; the green prefix before it can land as tested, and the MRs
    after it were never tested without it, so they go back to the queue.

    A round cuts the suspects into up to ``ways`` parts and tests the prefix ending at each
    cut at once (``round``). Their answers are taken shortest first: a red one ends the
    round (every longer prefix holds it too), a green one moves ``good`` up to it. With two
    ways this is binary search; with more, fewer rounds of CI for more pipelines.
    """

    model_config = ConfigDict(frozen=True)

    members: tuple[int, ...] = Field(min_length=1)
    good: int = Field(default=0, ge=0)
    bad: int = Field(default=0, ge=0)
    # The prefix lengths the current round tests at once, ascending.
    round: tuple[int, ...] = ()

    @model_validator(mode="after")
    def _bounds(self) -> Bisection:
        if any(not 0 < length <= len(self.members) for length in self.round):
            raise ValueError(f"a round tests prefixes of 1..{len(self.members)}")
        if not self.good < self.bad <= len(self.members):
            raise ValueError(
                f"need 0 <= good < bad <= {len(self.members)}, got {self.good}, {self.bad}"
            )
        if len(set(self.members)) != len(self.members):
            raise ValueError("an MR appears twice in the batch")
        return self

    @classmethod
    def start(cls, members: Sequence[int]) -> Bisection:
        return cls(members=tuple(members), good=0, bad=len(members))

    @property
    def done(self) -> bool:
        return self.bad - self.good == 1

    @property
    def culprit(self) -> int | None:
        return self.members[self.bad - 1] if self.done else None

    @property
    def next_length(self) -> int | None:
        """Length of the prefix binary search tests next, None when the culprit is known.
        Rounds up so a batch of 2 tests its first MR alone and odd batches test the larger
        half first."""
        cuts = self.cuts(2)
        return cuts[0] if cuts else None

    def cuts(self, ways: int) -> tuple[int, ...]:
        """The prefix lengths a round of ``ways`` tests: the suspects cut into ``ways``
        parts as even as can be, larger parts first (as binary search does), ascending.
        Fewer when there are fewer suspects than ways; none when the culprit is known."""
        if ways < 2:
            raise ValueError(f"a round needs at least 2 ways, got {ways}")
        suspects = self.bad - self.good
        ends = {self.good + -(-part * suspects // ways) for part in range(1, ways)}
        return tuple(sorted(end for end in ends if end < self.bad))

    @property
    def pending(self) -> tuple[int, ...]:
        """The current round's prefixes whose answers still matter, shortest first: the
        others are implied by the answers had (a longer one than a red, a shorter one than
        a green)."""
        return tuple(length for length in self.round if self.good < length < self.bad)

    def next_round(self, ways: int) -> Bisection:
        return self.model_copy(update={"round": self.cuts(ways)})

    @property
    def next_prefix(self) -> tuple[int, ...] | None:
        length = self.next_length
        return None if length is None else self.members[:length]

    @property
    def halves(self) -> tuple[tuple[int, ...], tuple[int, ...]] | None:
        """The MRs under suspicion, split where the next test splits them: the first half
        is tested on the last green prefix, the second on top of the first."""
        length = self.next_length
        if length is None:
            return None
        return self.members[self.good : length], self.members[length : self.bad]

    @property
    def landable(self) -> tuple[int, ...]:
        """MRs whose prefix passed: they can land exactly as tested."""
        return self.members[: self.good]

    @property
    def untested(self) -> tuple[int, ...]:
        """MRs after the culprit (or still beyond the red prefix): back to the queue."""
        return self.members[self.bad :]

    def record(self, length: int, passed: bool) -> Bisection:
        """The result of testing the prefix of ``length``. Replaying a known result changes
        nothing, so a retried step is harmless."""
        if not 0 <= length <= len(self.members):
            raise ValueError(f"prefix length {length} outside 0..{len(self.members)}")
        if passed:
            if length >= self.bad:
                raise InconsistentResult(
                    f"prefix of {length} passed but the prefix of {self.bad} failed"
                )
            return self.model_copy(update={"good": max(self.good, length)})
        if length <= self.good:
            raise InconsistentResult(
                f"prefix of {length} failed but the prefix of {self.good} passed"
            )
        return self.model_copy(update={"bad": min(self.bad, length)})

"""The merge queue's invariants (DESIGN.md), checked against the GitLab simulator.

1. Every commit Merge Assist put on a target branch passed CI as that exact tree.
2. No MR that entered the queue is lost or merged twice: each ends merged, rejected with a
   reason, or still queued.
(3, replays change nothing, is checked by a scenario replaying its events and calling these
again.) End-to-end scenarios and the queue benchmark assert them after every run."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field

from dulwich.objects import Commit, ObjectID

from local.gitlab_sim import GitLabSimulator
from local.gitlab_sim.store import Event, now_iso
from merge_assist.queue.models import MergeRequestState, StatusCategory

ZERO_SHA = "0" * 40


@dataclass(frozen=True)
class TargetUpdate:
    before: str
    after: str
    user_id: int
    at: str  # the simulator's clock, comparable with its pipelines' finished_at


@dataclass
class LandingLog:
    """Every move of one branch of one simulator project, by whom, from the moment it is
    attached: the simulator announces each ref update (push, merge, rebase) as a push."""

    simulator: GitLabSimulator
    project_id: int
    branch: str
    updates: list[TargetUpdate] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.simulator.store.listeners.append(self._on_event)

    def close(self) -> None:
        self.simulator.store.listeners.remove(self._on_event)

    def _on_event(self, event: Event) -> None:
        payload = event.payload
        if (
            event.project_id == self.project_id
            and event.kind == "push_events"
            and payload.get("ref") == f"refs/heads/{self.branch}"
        ):
            with self._lock:
                self.updates.append(
                    TargetUpdate(
                        payload["before"], payload["after"], int(payload["user_id"]), now_iso()
                    )
                )

    def by(self, user_id: int) -> list[TargetUpdate]:
        with self._lock:
            return [update for update in self.updates if update.user_id == user_id]


def untested_landings(
    simulator: GitLabSimulator, project_id: int, updates: Iterable[TargetUpdate]
) -> list[str]:
    """The commits put on the branch whose exact tree no pipeline of the project had passed
    by then (invariant 1; empty when it holds). A pipeline that passes only after the
    landing does not count: the queue must test first."""
    store = simulator.store
    with store.lock:
        repo = store.repo(project_id)

        def tree(sha: str) -> bytes:
            commit = repo[sha.encode()]
            if not isinstance(commit, Commit):
                raise TypeError(f"{sha} is not a commit")
            return bytes(commit.tree)

        passed = [
            (pipeline.finished_at, tree(pipeline.sha))
            for pipeline in store.pipelines.values()
            if pipeline.project_id == project_id
            and pipeline.status == "success"
            and pipeline.finished_at
        ]
        return [
            update.after
            for update in updates
            if update.after != ZERO_SHA
            and tree(update.after)
            not in {tested for finished, tested in passed if finished <= update.at}
        ]


def landed_merges(
    simulator: GitLabSimulator,
    project_id: int,
    updates: Iterable[TargetUpdate],
    heads: dict[int, str],
) -> list[int]:
    """The iid of every MR each move of the branch brought in, once per move that brought
    it: an MR whose changes landed twice appears twice (for ``unaccounted``). A move brings
    in an MR when one of its new commits is the MR's head (``heads``: iid → head sha as
    GitLab now reports it) or names the MR as merge commits do (``See merge request
    group/project!iid``, GitLab's and the batch's)."""
    store = simulator.store
    with store.lock:
        repo = store.repo(project_id)
        path = store.projects[project_id].path_with_namespace
        by_head = {sha: iid for iid, sha in heads.items()}
        mention = re.compile(rf"See merge request {re.escape(path)}!(\d+)\b")
        landed: list[int] = []
        for update in updates:
            if update.after == ZERO_SHA:
                continue
            exclude = [ObjectID(update.before.encode())] if update.before != ZERO_SHA else []
            brought: set[int] = set()
            walker = repo.get_walker(include=[ObjectID(update.after.encode())], exclude=exclude)
            for entry in walker:
                commit = entry.commit
                sha = commit.id.decode()
                if sha in by_head:
                    brought.add(by_head[sha])
                message = commit.message.decode(errors="replace")
                brought.update(int(iid) for iid in mention.findall(message))
            landed.extend(sorted(brought))
        return landed


def unaccounted(
    entered: Iterable[int], states: Iterable[MergeRequestState], merged_in_gitlab: Iterable[int]
) -> dict[int, str]:
    """Invariant 2: why each MR that entered the queue is not accounted for (empty when it
    holds). ``merged_in_gitlab`` lists the iid of every merge GitLab recorded, so an MR
    merged twice appears twice."""
    by_iid = {state.iid: state for state in states}
    merges: dict[int, int] = {}
    for iid in merged_in_gitlab:
        merges[iid] = merges.get(iid, 0) + 1
    problems: dict[int, str] = {}
    for iid in entered:
        state = by_iid.get(iid)
        if state is None:
            problems[iid] = "lost: the store no longer knows it"
        elif merges.get(iid, 0) > 1:
            problems[iid] = f"merged {merges[iid]} times"
        elif state.status is StatusCategory.MERGED and not merges.get(iid):
            problems[iid] = "marked merged but GitLab never merged it"
        elif state.status is StatusCategory.REJECTED and not state.reasons:
            problems[iid] = "rejected without a reason"
        elif state.status in (StatusCategory.BATCHING, StatusCategory.TESTING):
            problems[iid] = f"still {state.status.value} after the run"
        elif state.status is StatusCategory.NOT_READY and not state.reasons:
            problems[iid] = "dropped from the queue without a reason"
    return problems

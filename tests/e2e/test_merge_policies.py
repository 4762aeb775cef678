"""The queue's policies end to end: the serial strategy, flaky retries, a batch size and
priorities changed at run time, a paused project and merge-each landing. Each scenario runs
on its own simulator project against the real state machine and handlers."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from dulwich.objects import Commit

from local.invariants import untested_landings
from local.stack import LocalStack
from merge_assist.platform.config import Landing, ProjectConfig, Strategy
from merge_assist.platform.errors import ConflictError
from merge_assist.queue.models import (
    Batch,
    BatchState,
    BatchStepKind,
    MergeRequestState,
    ReasonCode,
    StatusCategory,
)
from merge_assist.queue.queue import queue_order
from tests.e2e.merge_queue import Scenario

pytestmark = pytest.mark.e2e

# Simulated seconds a pipeline runs (x0.05 on the wall clock): quick, since every wait
# in these scenarios is for a pipeline.
PIPELINE_S = 10
REJECTED_NOTE = "took this merge request out of the queue"
MERGED_NOTE = "merged this merge request into `main`"


# Pipeline waits fall back to polling GitLab after the default 30 s: in these scenarios
# every pipeline's outcome arrives by webhook (or is found when the wait starts).
STACK_SETTINGS = {"web_dir": None}


# -- helpers ----------------------------------------------------------------------------------


def _pipelines(scenario: Scenario) -> list[dict[str, Any]]:
    """The project's pipelines, oldest first."""
    gitlab = scenario.stack.gitlab
    assert gitlab is not None
    with gitlab.store.lock:
        return [
            {
                "id": p.id,
                "sha": p.sha,
                "ref": p.ref,
                "status": p.status,
                "finished_at": p.finished_at,
            }
            for p in sorted(gitlab.store.pipelines.values(), key=lambda p: p.id)
            if p.project_id == scenario.project.id
        ]


def _commit(scenario: Scenario, sha: str) -> Commit:
    gitlab = scenario.stack.gitlab
    assert gitlab is not None
    with gitlab.store.lock:
        commit = gitlab.store.repo(scenario.project.id)[sha.encode()]
    assert isinstance(commit, Commit)
    return commit


def _tree(scenario: Scenario, sha: str) -> bytes:
    return bytes(_commit(scenario, sha).tree)


def _main(scenario: Scenario) -> str | None:
    gitlab = scenario.stack.gitlab
    assert gitlab is not None
    return gitlab.branch_sha(scenario.project, "main")


def _sim_mr(scenario: Scenario, iid: int) -> Any:
    gitlab = scenario.stack.gitlab
    assert gitlab is not None
    with gitlab.store.lock:
        return gitlab.store.merge_request(scenario.project.id, iid)


def _steps(scenario: Scenario) -> list[list[tuple[Any, ...]]]:
    """Every batch's steps, oldest batch first: what a failure message shows."""
    return [
        [
            (s.kind.value, s.merge_requests, s.status, s.sha and s.sha[:8], s.note)
            for s in batch.steps
        ]
        for batch in scenario.batches()
    ]


def _kinds(batch: Batch) -> list[str]:
    return [step.kind.value for step in batch.steps]


def _configure(scenario: Scenario, **update: Any) -> ProjectConfig:
    """A run-time config change, as the API makes it: compare-and-set on a fresh read."""
    store = scenario.store
    for _ in range(10):
        config: ProjectConfig = store.get_project(scenario.project.id)
        try:
            saved: ProjectConfig = store.save_project(config.model_copy(update=update))
        except ConflictError:
            continue
        return saved
    raise AssertionError(f"the config of project {scenario.project.id} kept changing")


def _prioritise(scenario: Scenario, iid: int, priority: int) -> MergeRequestState:
    store = scenario.store
    for _ in range(10):
        state: MergeRequestState = store.get_merge_request(scenario.project.id, iid)
        try:
            saved: MergeRequestState = store.save_merge_request(
                state.model_copy(update={"priority": priority})
            )
        except ConflictError:
            continue
        return saved
    raise AssertionError(f"!{iid} kept changing")


def _first_batch(scenario: Scenario, condition: Callable[[Batch], bool]) -> Callable[[], bool]:
    def check() -> bool:
        batches = scenario.batches()
        return bool(batches) and condition(batches[0])

    return check


def _in_line(scenario: Scenario, iids: list[int]) -> list[int]:
    """The queued MRs in the order the queue takes them (priority, then the time each
    became ready: webhooks decide that, not the order they were opened in)."""
    states = [scenario.state(iid) for iid in iids]
    assert all(s is not None and s.status is StatusCategory.QUEUED for s in states), states
    return [s.iid for s in sorted((s for s in states if s is not None), key=queue_order)]


def _open_mrs(scenario: Scenario, count: int) -> list[int]:
    """``count`` MRs branched from the same main, each adding its own file."""
    return [scenario.open_mr(f"feature/{n}", {f"src/f{n}.py": f"N = {n}\n"}) for n in range(count)]


# -- 1. serial ---------------------------------------------------------------------------------


def _assert_serial_run(scenario: Scenario, iids: list[int], base: str) -> None:
    """One batch per MR, in queue order (``iids``): rebased by GitLab, tested by its own pipeline,
    merged through the merge API; never a batch branch or batch MR."""
    gitlab = scenario.stack.gitlab
    assert gitlab is not None
    batches = scenario.batches()
    assert [b.merge_requests for b in batches] == [[iid] for iid in iids], _steps(scenario)
    assert gitlab.branch_sha(scenario.project, "merge-assist/batch/main") is None
    assert not [p for p in _pipelines(scenario) if p["ref"].startswith("merge-assist/")]
    for iid, batch in zip(iids, batches, strict=True):
        assert batch.strategy is Strategy.SERIAL
        assert batch.state is BatchState.LANDED, _steps(scenario)
        assert batch.batch_branch is None
        assert batch.batch_merge_request is None
        assert batch.landed == [iid]
        assert BatchStepKind.REBASED.value in _kinds(batch), _steps(scenario)
        assert BatchStepKind.LANDED.value in _kinds(batch), _steps(scenario)

        mr = scenario.gitlab_mr(iid)
        assert mr["state"] == "merged"
        assert mr["merged_by"]["id"] == scenario.bot_id
        sim = _sim_mr(scenario, iid)
        assert sim.rebase_user_id == scenario.bot_id  # GitLab's rebase API, by the bot
        # What was tested is the MR's head after the rebase, by its own pipeline.
        assert batch.sha == mr["sha"]
        refs = (mr["source_branch"], f"refs/merge-requests/{iid}/head")
        own = [
            p
            for p in _pipelines(scenario)
            if p["ref"] in refs and p["sha"] == batch.sha and p["status"] == "success"
        ]
        assert own, (iid, _pipelines(scenario))
        notes = scenario.notes(iid)
        # One note per state change: queued, then merged; the rebase and the wait for its
        # pipeline show only in the label and on the dashboard.
        assert len(notes) == 2, notes
        assert "has queued this merge request" in notes[0], notes
        assert MERGED_NOTE in notes[1], notes
        assert "/pipelines/" in notes[1], notes

    heads = [_sim_mr(scenario, iid).sha_history for iid in iids]
    # All were branched from the same main: the first needed no rebase, each next one was
    # rebased on a main that had moved.
    assert len(heads[0]) == 1
    for history in heads[1:]:
        assert len(history) == 2, heads
        assert _commit(scenario, history[0]).parents == [base.encode()]
        assert _commit(scenario, history[1]).parents != [base.encode()]


def test_serial_strategy_rebases_tests_and_merges_one_mr_at_a_time(
    stack: LocalStack, scenario_name: str
) -> None:
    # The same queue on two projects side by side: merge commits (the default merge
    # method) with three MRs, and fast-forward only with two.
    merging = Scenario.open(
        stack, scenario_name, settings={"strategy": "serial"}, duration_s=PIPELINE_S
    )
    forwarding = Scenario.open(
        stack,
        f"{scenario_name[:36]}-ff",
        settings={"strategy": "serial"},
        duration_s=PIPELINE_S,
        merge_method="ff",
    )
    scenarios = (merging, forwarding)
    try:
        bases = [_main(scenario) for scenario in scenarios]
        lines = [_open_mrs(merging, 3), _open_mrs(forwarding, 2)]
        for scenario, iids in zip(scenarios, lines, strict=True):
            scenario.wait_status(iids, StatusCategory.QUEUED)
        lines = [_in_line(scenario, iids) for scenario, iids in zip(scenarios, lines, strict=True)]
        for scenario in scenarios:
            scenario.start()
        for scenario in scenarios:
            scenario.settle(timeout=120)

        for scenario, iids, base in zip(scenarios, lines, bases, strict=True):
            assert base is not None
            assert all(scenario.status(iid) is StatusCategory.MERGED for iid in iids), (
                scenario.describe(),
                _steps(scenario),
            )
            _assert_serial_run(scenario, iids, base)

        # Merge commits by the merge API: main's first-parent chain is one merge per MR,
        # each merging the rebased head that was tested, with its tree.
        iids, head = lines[0], _main(merging)
        assert head is not None
        for iid in reversed(iids):
            mr = merging.gitlab_mr(iid)
            assert mr["merge_commit_sha"] == head
            merge = _commit(merging, head)
            assert merge.parents[1] == mr["sha"].encode()
            assert merge.tree == _commit(merging, mr["sha"]).tree
            head = merge.parents[0].decode()
        assert head == bases[0]

        # Fast-forward merges: main went through exactly the tested heads, in order.
        iids = lines[1]
        moves = [update.after for update in forwarding.log.by(forwarding.bot_id)]
        assert moves == [forwarding.gitlab_mr(iid)["sha"] for iid in iids]
        assert _main(forwarding) == moves[-1]

        for scenario in scenarios:
            scenario.assert_invariants()
    finally:
        for scenario in scenarios:
            scenario.close()


# -- 2. flaky pipelines ------------------------------------------------------------------------


def _retry_is_waiting(scenario: Scenario) -> bool:
    """The first batch retried its pipeline and its wait for the retry is registered."""
    batches = scenario.batches()
    if not batches or BatchStepKind.RETRIED.value not in _kinds(batches[0]):
        return False
    sha = batches[0].testing_sha
    return sha is not None and scenario.store.get_task_token(scenario.project.id, sha) is not None


def _pipeline_delivery(scenario: Scenario, pipeline_id: int | None, status: str) -> Any:
    """The Pipeline Hook delivery that told Merge Assist ``pipeline_id`` reached ``status``."""
    gitlab = scenario.stack.gitlab
    assert gitlab is not None
    with gitlab.store.lock:
        hooks = {h.id for h in gitlab.store.hooks.values() if h.project_id == scenario.project.id}
        found = [
            d
            for d in gitlab.store.deliveries.values()
            if d.hook_id in hooks
            and d.event_name == "Pipeline Hook"
            and d.body["object_attributes"]["id"] == pipeline_id
            and d.body["object_attributes"]["status"] == status
        ]
    assert found, f"no delivery of pipeline {pipeline_id} {status}"
    return found[0]


def _assert_retried_and_merged(scenario: Scenario, iid: int) -> None:
    """One red run, one retry of the same commit that passed and landed; no strike, no
    rejection, no comment saying otherwise."""
    state = scenario.state(iid)
    assert state is not None
    assert state.status is StatusCategory.MERGED, (scenario.describe(), _steps(scenario))
    assert state.strikes == 0
    assert state.reasons == []
    [batch] = scenario.batches()
    assert batch.state is BatchState.LANDED, _steps(scenario)
    assert batch.landed == [iid]
    assert batch.rejected == []
    assert _kinds(batch).count(BatchStepKind.RETRIED.value) == 1, _steps(scenario)
    tested = [s for s in batch.steps if s.kind is BatchStepKind.TESTED]
    assert [s.status for s in tested] == ["failed", "success"], _steps(scenario)
    assert tested[0].sha == tested[1].sha == batch.sha == _main(scenario)
    assert tested[0].pipeline_id != tested[1].pipeline_id
    notes = scenario.notes(iid)
    assert not any(REJECTED_NOTE in n for n in notes), notes
    assert any(MERGED_NOTE in n for n in notes), notes
    assert "Merge Assist: Rejected" not in scenario.gitlab_mr(iid)["labels"]


def _first_batch_pipeline_started(scenario: Scenario) -> bool:
    batches = scenario.batches()
    if not batches or batches[0].testing_sha is None:
        return False
    sha = batches[0].testing_sha
    return any(p["sha"] == sha for p in _pipelines(scenario))


def test_a_flaky_batch_pipeline_is_retried_and_merges_only_where_flaky_retries_are_allowed(
    stack: LocalStack, scenario_name: str
) -> None:
    gitlab = stack.gitlab
    assert gitlab is not None
    # Two projects side by side: one allows a flaky retry, the other (the default) does not.
    # In the second, one MR per batch, so the flake is pinned on that MR alone.
    retrying = Scenario.open(
        stack, scenario_name, settings={"flaky_retries": 1}, duration_s=PIPELINE_S
    )
    strict = Scenario.open(
        stack,
        f"{scenario_name[:32]}-strict",
        settings={"batch_size": 1},
        duration_s=PIPELINE_S,
    )
    try:
        assert strict.store.get_project(strict.project.id).flaky_retries == 0
        [flaky] = _open_mrs(retrying, 1)
        strict_iids = _open_mrs(strict, 2)
        retrying.wait_status([flaky], StatusCategory.QUEUED)
        strict.wait_status(strict_iids, StatusCategory.QUEUED)
        unlucky, later = _in_line(strict, strict_iids)
        # The MRs' own pipelines passed; from now on every new pipeline fails...
        for scenario in (retrying, strict):
            gitlab.set_pipeline_rules(scenario.project, flaky_rate=1.0)
            scenario.start()
        # ...until each project's first batch pipeline exists (its outcome is decided). The
        # retry takes 5 s, a window for the duplicate below.
        for scenario, duration_s in ((retrying, 100), (strict, None)):
            scenario.wait_for(
                partial(_first_batch_pipeline_started, scenario), "the first batch pipeline"
            )
            gitlab.set_pipeline_rules(scenario.project, flaky_rate=0.0, duration_s=duration_s)
        # GitLab delivers webhooks at least once (DESIGN.md, invariant 3): while the retry
        # runs on the same commit, the first run's failure comes in again. It must not be
        # taken for the retry's answer.
        retrying.wait_for(partial(_retry_is_waiting, retrying), "the retry's pipeline wait")
        [first_run] = [s for s in retrying.batches()[0].steps if s.kind is BatchStepKind.TESTED]
        assert first_run.status == "failed"
        retrying.deliver_anew(_pipeline_delivery(retrying, first_run.pipeline_id, "failed"))
        retrying.settle()
        strict.settle()

        # With a retry: the same commit runs again, passes, and lands; no strike, no
        # rejection, the duplicate changed nothing.
        _assert_retried_and_merged(retrying, flaky)

        # Without: the one red pipeline rejects its MR, and the queue goes on.
        rejected = strict.state(unlucky)
        assert rejected is not None
        assert rejected.status is StatusCategory.REJECTED, (strict.describe(), _steps(strict))
        assert [r.code for r in rejected.reasons] == [ReasonCode.CI_FAILED]
        assert "/pipelines/" in rejected.reasons[0].message
        assert rejected.strikes == 1
        first, second = strict.batches()
        assert BatchStepKind.RETRIED.value not in _kinds(first), _steps(strict)
        assert first.merge_requests == first.rejected == [unlucky]
        assert [s.status for s in first.steps if s.kind is BatchStepKind.TESTED] == ["failed"]
        assert strict.gitlab_mr(unlucky)["state"] == "opened"
        assert "Merge Assist: Rejected" in strict.gitlab_mr(unlucky)["labels"]
        assert any(REJECTED_NOTE in n for n in strict.notes(unlucky))
        assert second.landed == [later]
        assert strict.status(later) is StatusCategory.MERGED

        retrying.assert_invariants()
        strict.assert_invariants()
    finally:
        retrying.close()
        strict.close()


# -- 3. batch size at run time -----------------------------------------------------------------


def test_a_batch_size_change_applies_to_the_next_batch_not_the_running_one(
    stack: LocalStack, scenario_name: str
) -> None:
    scenario = Scenario.open(stack, scenario_name, settings={"batch_size": 2}, duration_s=30)
    try:
        iids = _open_mrs(scenario, 5)
        scenario.wait_status(iids, StatusCategory.QUEUED)
        iids = _in_line(scenario, iids)
        scenario.start()
        scenario.wait_for(
            _first_batch(scenario, lambda b: b.state is BatchState.TESTING),
            "the first batch to be testing",
        )
        _configure(scenario, batch_size=3)
        scenario.settle(timeout=120)

        batches = scenario.batches()
        assert [len(b.merge_requests) for b in batches] == [2, 3], _steps(scenario)
        assert [b.merge_requests for b in batches] == [iids[:2], iids[2:]]
        assert all(b.state is BatchState.LANDED for b in batches), _steps(scenario)
        assert all(scenario.status(iid) is StatusCategory.MERGED for iid in iids)
        assert _main(scenario) == batches[-1].sha
        scenario.assert_invariants()
    finally:
        scenario.close()


# -- 4. priorities -----------------------------------------------------------------------------


def test_a_prioritised_mr_jumps_the_queue_into_the_first_batch(
    stack: LocalStack, scenario_name: str
) -> None:
    scenario = Scenario.open(
        stack, scenario_name, settings={"batch_size": 2}, duration_s=PIPELINE_S
    )
    try:
        iids = _open_mrs(scenario, 4)
        scenario.wait_status(iids, StatusCategory.QUEUED)
        # The last in line (the order MRs became ready, which webhooks decide) moves first.
        *iids, urgent = _in_line(scenario, iids)
        assert _prioritise(scenario, urgent, 10).priority == 10
        assert _in_line(scenario, [urgent, *iids]) == [urgent, *iids]
        scenario.start()
        scenario.settle(timeout=120)

        batches = scenario.batches()
        assert batches[0].merge_requests[0] == urgent, _steps(scenario)
        assert [b.merge_requests for b in batches] == [[urgent, iids[0]], iids[1:]]
        assert all(b.state is BatchState.LANDED for b in batches), _steps(scenario)
        assert all(scenario.status(iid) is StatusCategory.MERGED for iid in iids)
        state = scenario.state(urgent)
        assert state is not None
        assert state.priority == 10  # the webhooks that followed kept it
        scenario.assert_invariants()
    finally:
        scenario.close()


# -- 5. paused ---------------------------------------------------------------------------------


def test_a_paused_project_queues_mrs_but_starts_nothing_until_resumed(
    stack: LocalStack, scenario_name: str
) -> None:
    scenario = Scenario.open(stack, scenario_name, duration_s=PIPELINE_S)
    try:
        base = _main(scenario)
        iids = _open_mrs(scenario, 2)
        scenario.wait_status(iids, StatusCategory.QUEUED)
        iids = _in_line(scenario, iids)
        assert scenario.store.get_project(scenario.project.id).paused
        scenario.kick()  # what the watcher does: nothing while paused
        time.sleep(2)

        assert scenario.batches() == []
        assert scenario.store.get_branch_lock(scenario.project.id, "main") is None
        assert _main(scenario) == base
        assert scenario.log.by(scenario.bot_id) == []
        for iid in iids:
            assert scenario.status(iid) is StatusCategory.QUEUED
            assert scenario.gitlab_mr(iid)["state"] == "opened"

        scenario.start()
        scenario.settle()
        assert all(scenario.status(iid) is StatusCategory.MERGED for iid in iids)
        [batch] = scenario.batches()
        assert batch.landed == iids
        scenario.assert_invariants()
    finally:
        scenario.close()


# -- 6. merge-each landing ---------------------------------------------------------------------


def test_merge_each_landing_merges_every_mr_through_the_api_and_ends_on_the_tested_tree(
    stack: LocalStack, scenario_name: str
) -> None:
    gitlab = stack.gitlab
    assert gitlab is not None
    scenario = Scenario.open(
        stack,
        scenario_name,
        settings={"landing": "merge-each", "batch_size": 5},
        duration_s=PIPELINE_S,
    )
    try:
        base = _main(scenario)
        assert base is not None
        iids = _open_mrs(scenario, 3)
        scenario.wait_status(iids, StatusCategory.QUEUED)
        iids = _in_line(scenario, iids)
        scenario.start()
        scenario.settle()

        assert all(scenario.status(iid) is StatusCategory.MERGED for iid in iids), (
            scenario.describe()
        )
        [batch] = scenario.batches()
        assert batch.landing is Landing.MERGE_EACH
        assert batch.state is BatchState.LANDED, _steps(scenario)
        assert batch.landed == iids
        [landed] = [s for s in batch.steps if s.kind is BatchStepKind.LANDED]
        assert landed.note == "the target's tree is the tested tree", _steps(scenario)

        # One merge commit per MR, by the bot through the merge API, in batch order.
        moves = [update.after for update in scenario.log.by(scenario.bot_id)]
        assert moves == [scenario.gitlab_mr(iid)["merge_commit_sha"] for iid in iids]
        parent = base
        for iid, move in zip(iids, moves, strict=True):
            mr = scenario.gitlab_mr(iid)
            assert mr["merged_by"]["id"] == scenario.bot_id
            assert _commit(scenario, move).parents == [parent.encode(), mr["sha"].encode()]
            parent = move
        assert batch.sha is not None
        assert _tree(scenario, moves[-1]) == _tree(scenario, batch.sha)

        # Invariant 1 as merge-each states it (DESIGN.md): the final tree of the batch was
        # tested, the intermediate merge commits were not. The first one's tree happens to be
        # the first MR's own tested head (it was branched from main); main plus the first two
        # MRs is the one tree no pipeline ever ran on, and the only landing reported. So
        # invariants 2 and 3 are checked as usual, invariant 1 as merge-each words it.
        untested = untested_landings(gitlab, scenario.project.id, scenario.log.by(scenario.bot_id))
        assert untested == moves[1:-1]
        assert scenario._unaccounted() == {}
        scenario._assert_replays_change_nothing()
    finally:
        scenario.close()

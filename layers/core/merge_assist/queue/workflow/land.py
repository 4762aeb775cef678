"""Step ``LandBatch``: the tested commit reaches the target branch (DESIGN.md, "Landing a
green batch"), and each landed MR is marked merged and told so.

Before anything moves, every MR to land is checked against GitLab: if one got new commits,
was closed or made draft since it was tested, the batch is rebuilt instead."""

from __future__ import annotations

from merge_assist.platform.config import Landing, Strategy
from merge_assist.platform.errors import ConflictError, NotMergeableError, RemoteMoved
from merge_assist.platform.events import MergeRequestSnapshot
from merge_assist.queue.batch_plan import IncludedMergeRequest, MergeMethod, branch_ref
from merge_assist.queue.models import Batch, BatchState, BatchStep, BatchStepKind
from merge_assist.queue.ports import Repository
from merge_assist.queue.workflow import members
from merge_assist.queue.workflow import train as train_moves
from merge_assist.queue.workflow.batch_record import open_batch, record_end, save
from merge_assist.queue.workflow.context import BatchRef, Next, StepResult, WorkflowContext
from merge_assist.queue.workflow.serial import land_serial


def land(ctx: WorkflowContext, ref: BatchRef) -> StepResult:
    batch, config = open_batch(ctx, ref.batch_id)
    if batch.strategy is Strategy.SERIAL:
        return land_serial(ctx, ref)
    # Landed already (a retried step), or nothing to land.
    if batch.state is not BatchState.LANDING or batch.build is None:
        return StepResult(next=Next.RELEASE)
    landing = list(batch.build.included[: batch.land_length])
    held = _behind_a_car(ctx, batch, landing) if batch.strategy is Strategy.TRAIN else None
    if held is not None:
        return held
    # One call for all of them: a round trip to GitLab each would grow with the batch.
    snapshots = ctx.gitlab.merge_requests(batch.project_id, [mr.iid for mr in landing])
    changed = [
        mr.iid
        for mr in landing
        if members.current(ctx, batch, mr.iid) is None or not _as_tested(snapshots[mr.iid], mr)
    ]
    if changed:
        return _rebuild(ctx, batch, changed, "a merge request changed before landing")

    repository = ctx.repository(config)
    try:
        _publish_rebased_heads(ctx, batch, repository, landing, snapshots)
        if batch.landing is Landing.PUSH:
            repository.push(
                batch.target_branch,
                batch.build.prefix_sha(batch.land_length),
                expected_old_sha=batch.build.target_sha,
                force=False,
                skip_pipeline=batch.skip_target_pipeline,
            )
        else:
            _merge_each(ctx, batch, landing, snapshots)
    except RemoteMoved as moved:
        return _rebuild(ctx, batch, [], f"the target branch moved ({moved.reason})")
    except (ConflictError, NotMergeableError) as refused:
        # merge-each: GitLab refused one MR (its head moved, or a merge check failed).
        return _rebuild(ctx, batch, [], f"GitLab refused a merge: {refused}")

    note = ""
    if batch.landing is Landing.MERGE_EACH:
        landed_head = repository.fetch([branch_ref(batch.target_branch)])[
            branch_ref(batch.target_branch)
        ]
        tested = batch.build.prefix_sha(batch.land_length)
        note = (
            "the target's tree is the tested tree"
            if repository.same_tree(landed_head, tested)
            else "the target's tree differs from the tested tree (the target moved while "
            "merging one by one)"
        )
    landed = [mr.iid for mr in landing]
    for iid in landed:
        members.merged(ctx, config, batch, iid, batch.green_pipeline_url)
    ended = save(
        ctx,
        batch,
        lambda b: b.model_copy(update={"landed": landed, "state": BatchState.LANDED}),
        BatchStep(
            kind=BatchStepKind.LANDED,
            sha=batch.build.prefix_sha(batch.land_length),
            merge_requests=landed,
            pipeline_url=batch.green_pipeline_url,
            note=note,
        ),
    )
    # A landed batch is final here; ReleaseBatch, which ends every other batch, skips it.
    record_end(ctx, ended)
    if batch.strategy is Strategy.TRAIN:
        # The car behind, if green, lands now on exactly this commit.
        train_moves.resume_behind(ctx, batch.project_id, batch.id)
    return StepResult(next=Next.RELEASE)


def _behind_a_car(
    ctx: WorkflowContext, batch: Batch, landing: list[IncludedMergeRequest]
) -> StepResult | None:
    """A green train car lands once the car ahead has: until then it waits, unless one of
    its MRs changed meanwhile (it is rebuilt then, as on any landing)."""
    gone = [mr.iid for mr in landing if members.current(ctx, batch, mr.iid) is None]
    if gone:
        return _rebuild(ctx, batch, gone, "a merge request changed before landing")
    if train_moves.car_ahead(ctx, batch) is not None:
        return StepResult(next=Next.WAIT_AHEAD)
    return None


def _as_tested(snapshot: MergeRequestSnapshot, mr: IncludedMergeRequest) -> bool:
    """Still open (or merged by this very landing, on a retry) at the commit tested, or at
    its rebased commit that an earlier try of this step published."""
    if snapshot.draft or snapshot.state not in ("opened", "merged"):
        return False
    return snapshot.sha in (mr.head_sha, mr.tip_sha)


def _publish_rebased_heads(
    ctx: WorkflowContext,
    batch: Batch,
    repository: Repository,
    landing: list[IncludedMergeRequest],
    snapshots: dict[int, MergeRequestSnapshot],
) -> None:
    """With rebased batches (``rebase_merge`` and ``ff`` projects) each MR's source branch is
    moved to its rebased commit first, as GitLab's own rebase would, so GitLab recognises
    the MRs as merged once the target holds those commits. The MR's state learns the new
    head before the push, so the dispatcher does not take it for the author's push."""
    if batch.merge_method in (None, MergeMethod.MERGE):
        return
    for mr in landing:
        snapshot = snapshots[mr.iid]
        if mr.tip_sha in (mr.head_sha, snapshot.sha) or snapshot.state == "merged":
            continue
        assert snapshot.source_branch is not None
        members.set_fields(ctx, batch, mr.iid, sha=mr.tip_sha, judged_sha=mr.tip_sha)
        repository.push(
            snapshot.source_branch, mr.tip_sha, expected_old_sha=mr.head_sha, force=True
        )


def _merge_each(
    ctx: WorkflowContext,
    batch: Batch,
    landing: list[IncludedMergeRequest],
    snapshots: dict[int, MergeRequestSnapshot],
) -> None:
    """Through GitLab's merge API in batch order, each guarded by its tested head."""
    assert batch.build is not None
    pending = [mr for mr in landing if snapshots[mr.iid].state != "merged"]
    if len(pending) == len(landing):
        head = ctx.gitlab.branch_sha(batch.project_id, batch.target_branch)
        if head != batch.build.target_sha:
            raise RemoteMoved(
                batch.target_branch, f"expected {batch.build.target_sha}, found {head}"
            )
    rebased = batch.merge_method not in (None, MergeMethod.MERGE)
    for mr in pending:
        ctx.gitlab.merge(batch.project_id, mr.iid, mr.tip_sha if rebased else mr.head_sha)


def _rebuild(ctx: WorkflowContext, batch: Batch, changed: list[int], why: str) -> StepResult:
    if batch.strategy is Strategy.TRAIN:
        train_moves.cancel_behind(ctx, batch)
    save(
        ctx,
        batch,
        lambda b: b.model_copy(
            update={
                "rebuilds": b.rebuilds + 1,
                "state": BatchState.BUILDING,
                "land_length": 0,
            }
        ),
        BatchStep(kind=BatchStepKind.REBUILT, merge_requests=changed, note=why),
    )
    return StepResult(next=Next.REBUILD)

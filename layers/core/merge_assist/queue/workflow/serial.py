"""Serial strategy steps: ``RebaseMergeRequest``, ``CheckRebase`` and the serial landing.

One MR at a time: GitLab rebases it on its target (the state machine polls until
``rebase_in_progress`` is false), its own pipeline tests it, and it is merged through the
API with the ``sha`` guard. If the target moved in between, it is rebased again."""

from __future__ import annotations

from merge_assist.platform.errors import ConflictError, GitLabRefused, NotMergeableError, transient
from merge_assist.queue import comments
from merge_assist.queue.batch_plan import branch_ref, merge_request_ref
from merge_assist.queue.models import Batch, BatchState, BatchStep, BatchStepKind
from merge_assist.queue.pipeline_wait import pipeline_deadline
from merge_assist.queue.workflow import members
from merge_assist.queue.workflow.batch_record import open_batch, record_end, save
from merge_assist.queue.workflow.build import MAX_BUILDS
from merge_assist.queue.workflow.context import BatchRef, Next, StepResult, WorkflowContext


def start_rebase(ctx: WorkflowContext, ref: BatchRef) -> StepResult:
    batch, config = open_batch(ctx, ref.batch_id)
    iid = _member(ctx, batch)
    if iid is None or batch.rebuilds >= MAX_BUILDS:
        return StepResult(next=Next.RELEASE)
    members.set_fields(ctx, batch, iid, rebasing=True)
    try:
        ctx.gitlab.rebase(batch.project_id, iid, skip_ci=False)
    except ConflictError:
        pass  # a rebase is already running (a retried step): wait for it
    except GitLabRefused as refused:
        if transient(refused):
            raise  # GitLab is struggling, not refusing: the step is retried
        members.reject(
            ctx,
            config,
            batch,
            iid,
            comments.rebase_refused(batch.target_branch, str(refused)),
        )
        _record_rejected(ctx, batch, iid, str(refused))
        return StepResult(next=Next.RELEASE)
    return StepResult(next=Next.WAIT_REBASE)


def check_rebase(ctx: WorkflowContext, ref: BatchRef) -> StepResult:
    batch, config = open_batch(ctx, ref.batch_id)
    iid = _member(ctx, batch)
    if iid is None:
        return StepResult(next=Next.RELEASE)
    in_progress, error = ctx.gitlab.rebase_status(batch.project_id, iid)
    if in_progress:
        return StepResult(next=Next.WAIT_REBASE)
    if error:
        members.reject(
            ctx,
            config,
            batch,
            iid,
            comments.rebase_failed(batch.target_branch, error),
        )
        _record_rejected(ctx, batch, iid, error)
        return StepResult(next=Next.RELEASE)
    snapshot = ctx.gitlab.merge_request(batch.project_id, iid)
    assert snapshot.sha is not None
    assert snapshot.source_branch is not None
    sha, branch = snapshot.sha, snapshot.source_branch
    members.set_fields(ctx, batch, iid, sha=sha, judged_sha=sha, rebasing=False)
    if members.mark_testing(ctx, batch, iid):
        members.tell(ctx, members.current(ctx, batch, iid), comments.testing_alone(config))
    save(
        ctx,
        batch,
        lambda b: b.model_copy(
            update={
                "sha": sha,
                "testing_sha": sha,
                "test_ref": branch,
                "tested_length": 1,
                "bisection": None,
                "retrying": False,
                "pipeline_floor": None,
                "state": BatchState.TESTING,
            }
        ),
        BatchStep(kind=BatchStepKind.REBASED, sha=sha, merge_requests=[iid]),
    )
    return StepResult(
        next=Next.TEST, sha=sha, ref=branch, deadline=pipeline_deadline(ctx.clock.now(), config)
    )


def land_serial(ctx: WorkflowContext, ref: BatchRef) -> StepResult:
    batch, config = open_batch(ctx, ref.batch_id)
    if batch.state is not BatchState.LANDING or batch.sha is None:
        return StepResult(next=Next.RELEASE)
    iid = _member(ctx, batch)
    if iid is None:
        return StepResult(next=Next.RELEASE)
    snapshot = ctx.gitlab.merge_request(batch.project_id, iid)
    if snapshot.state != "merged":
        repository = ctx.repository(config)
        target = branch_ref(batch.target_branch)
        refs = repository.fetch([target, merge_request_ref(iid)])
        if refs[merge_request_ref(iid)] != batch.sha:
            return StepResult(next=Next.RELEASE)  # its author pushed; the dispatcher saw it
        if not repository.is_ancestor(refs[target], batch.sha):
            return _rebase_again(ctx, batch, "the target branch moved")
        try:
            ctx.gitlab.merge(batch.project_id, iid, batch.sha)
        except ConflictError:
            return StepResult(next=Next.RELEASE)  # the head moved at the last moment
        except NotMergeableError as refused:
            if "rebase" in str(refused).lower():
                return _rebase_again(ctx, batch, str(refused))
            members.reject(
                ctx,
                config,
                batch,
                iid,
                comments.merge_refused(str(refused)),
            )
            _record_rejected(ctx, batch, iid, str(refused))
            return StepResult(next=Next.RELEASE)
    members.merged(ctx, config, batch, iid, batch.green_pipeline_url)
    ended = save(
        ctx,
        batch,
        lambda b: b.model_copy(update={"landed": [iid], "state": BatchState.LANDED}),
        BatchStep(
            kind=BatchStepKind.LANDED,
            sha=batch.sha,
            merge_requests=[iid],
            pipeline_url=batch.green_pipeline_url,
        ),
    )
    record_end(ctx, ended)
    return StepResult(next=Next.RELEASE)


def _member(ctx: WorkflowContext, batch: Batch) -> int | None:
    for iid in batch.members:
        if members.current(ctx, batch, iid) is not None:
            return iid
    return None


def _rebase_again(ctx: WorkflowContext, batch: Batch, why: str) -> StepResult:
    save(
        ctx,
        batch,
        lambda b: b.model_copy(update={"rebuilds": b.rebuilds + 1, "state": BatchState.BUILDING}),
        BatchStep(kind=BatchStepKind.REBUILT, sha=batch.sha, note=why),
    )
    return StepResult(next=Next.REBASE)


def _record_rejected(ctx: WorkflowContext, batch: Batch, iid: int, note: str) -> None:
    save(
        ctx,
        batch,
        lambda b: b.model_copy(update={"rejected": [*b.rejected, iid]}),
        BatchStep(kind=BatchStepKind.REJECTED, merge_requests=[iid], note=note[:2000]),
    )

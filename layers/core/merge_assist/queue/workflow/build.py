"""Step ``BuildBatch`` (batch strategy): the batch commit on the target's head, pushed to
the batch branch, with the batch MR whose pipeline tests it."""

from __future__ import annotations

from merge_assist.queue import comments
from merge_assist.queue.batch_plan import BatchMember, MergeMethod, branch_ref, merge_request_ref
from merge_assist.queue.models import (
    Batch,
    BatchState,
    BatchStep,
    BatchStepKind,
    MergeRequestState,
)
from merge_assist.queue.pipeline_wait import pipeline_deadline
from merge_assist.queue.workflow import members
from merge_assist.queue.workflow.batch_record import open_batch, save
from merge_assist.queue.workflow.context import (
    BatchRef,
    Next,
    StepResult,
    WorkflowContext,
    batch_branch,
)

# A batch whose target keeps moving (or whose MRs keep changing) gives up after this many
# builds; its MRs keep their place for the next batch.
MAX_BUILDS = 8


def build(ctx: WorkflowContext, ref: BatchRef) -> StepResult:
    batch, config = open_batch(ctx, ref.batch_id)
    if batch.state.is_final:
        return StepResult(next=Next.RELEASE)
    if batch.rebuilds >= MAX_BUILDS:
        for iid in batch.members:
            members.requeue(ctx, batch, iid)
        return StepResult(next=Next.RELEASE)
    states = {iid: members.current(ctx, batch, iid) for iid in batch.members}
    left = [iid for iid, state in states.items() if state is None]
    staying = [state for state in states.values() if state is not None]
    if not staying:
        save(ctx, batch, lambda b: b.model_copy(update={"dropped": [*b.dropped, *left]}))
        return StepResult(next=Next.RELEASE)

    repository = ctx.repository(config)
    refs = repository.fetch(
        [branch_ref(batch.target_branch), *(merge_request_ref(mr.iid) for mr in staying)]
    )
    moved = [mr for mr in staying if refs[merge_request_ref(mr.iid)] != mr.sha]
    for mr in moved:
        # New commits GitLab has not told us about yet: the dispatcher judges them when it
        # does; until then the MR waits outside the queue.
        members.hold_back(ctx, batch, mr.iid, comments.UNSEEN_COMMITS)
    staying = [mr for mr in staying if mr not in moved]
    left += [mr.iid for mr in moved]
    if not staying:
        save(ctx, batch, lambda b: b.model_copy(update={"dropped": [*b.dropped, *left]}))
        return StepResult(next=Next.RELEASE)

    target_sha = refs[branch_ref(batch.target_branch)]
    method = MergeMethod(ctx.gitlab.project_merge_method(batch.project_id))
    built = repository.build_batch(
        target_sha,
        [_member(mr) for mr in staying],
        method=method,
        identity=ctx.identity,
        target_branch=batch.target_branch,
        when=ctx.clock.now(),
    )
    conflicting = [rejected.iid for rejected in built.rejected]
    for rejected in built.rejected:
        members.reject(
            ctx,
            config,
            batch,
            rejected.iid,
            comments.conflicts(batch.target_branch, rejected.conflicts),
        )
    included = list(built.included_iids)
    if not included:
        save(
            ctx,
            batch,
            lambda b: b.model_copy(
                update={"dropped": [*b.dropped, *left], "rejected": [*b.rejected, *conflicting]}
            ),
            BatchStep(kind=BatchStepKind.REJECTED, merge_requests=conflicting, note="conflicts"),
        )
        return StepResult(next=Next.RELEASE)

    branch = batch.batch_branch or batch_branch(batch.target_branch)
    repository.push(branch, built.sha, expected_old_sha=None, force=True)
    batch_mr = ctx.gitlab.ensure_merge_request(
        batch.project_id,
        branch,
        batch.target_branch,
        title=comments.batch_title(batch.target_branch, included),
        description=comments.batch_description(batch.id, batch.target_branch, included),
        labels=[config.labels.batch_merge_request],
    )
    for iid in included:
        if members.mark_testing(ctx, batch, iid):
            members.tell(ctx, members.current(ctx, batch, iid), comments.batched(config))

    steps = [BatchStep(kind=BatchStepKind.BUILT, sha=built.sha, merge_requests=included)]
    if conflicting:
        steps.append(
            BatchStep(kind=BatchStepKind.REJECTED, merge_requests=conflicting, note="conflicts")
        )
    if left:
        steps.append(BatchStep(kind=BatchStepKind.DROPPED, merge_requests=left))

    def built_batch(b: Batch) -> Batch:
        return b.model_copy(
            update={
                "dropped": [*b.dropped, *left],
                "rejected": [*b.rejected, *conflicting],
                "batch_branch": branch,
                "test_ref": branch,
                "batch_merge_request": batch_mr,
                "target_sha": target_sha,
                "sha": built.sha,
                "build": built,
                "merge_method": method,
                "testing_sha": built.sha,
                "tested_length": len(included),
                "bisection": None,
                "red_pipeline_url": None,
                "green_pipeline_url": None,
                "retrying": False,
                "pipeline_floor": None,
                "land_length": 0,
                "state": BatchState.TESTING,
            }
        )

    save(ctx, batch, built_batch, *steps)
    return StepResult(
        next=Next.TEST,
        sha=built.sha,
        ref=branch,
        deadline=pipeline_deadline(ctx.clock.now(), config),
    )


def _member(state: MergeRequestState) -> BatchMember:
    return BatchMember(
        iid=state.iid, head_sha=state.sha, source_branch=state.source_branch, title=state.title
    )

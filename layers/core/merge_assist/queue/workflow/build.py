"""Step ``BuildBatch`` (batch strategy): the batch commit on the target's head, pushed to
the batch branch, with the batch MR whose pipeline tests it."""

from __future__ import annotations

from merge_assist.platform.config import ProjectConfig, Strategy
from merge_assist.platform.settings import PollIntervals
from merge_assist.queue import comments, train
from merge_assist.queue.batch_plan import (
    BatchBuild,
    BatchMember,
    MergeMethod,
    branch_ref,
    merge_request_ref,
)
from merge_assist.queue.models import (
    Batch,
    BatchState,
    BatchStep,
    BatchStepKind,
    MergeRequestState,
)
from merge_assist.queue.pipeline_wait import pipeline_deadline
from merge_assist.queue.ports import Repository
from merge_assist.queue.workflow import members
from merge_assist.queue.workflow import train as train_moves
from merge_assist.queue.workflow.batch_record import leave_train, open_batch, save
from merge_assist.queue.workflow.context import (
    BatchRef,
    Next,
    StepResult,
    WorkflowContext,
    batch_branch,
)
from merge_assist.queue.workflow.start import next_car_id, start_batch

# A batch whose target keeps moving (or whose MRs keep changing) gives up after this many
# builds; its MRs keep their place for the next batch.
MAX_BUILDS = 8


class BuildInput(BatchRef, PollIntervals):
    """The batch to build, and the poll intervals a train's next car is started with."""


def build(ctx: WorkflowContext, ref: BuildInput) -> StepResult:
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

    ahead = train_moves.car_ahead(ctx, batch)
    repository = ctx.repository(config)
    refs = _fetch(repository, batch, ahead, staying)
    if refs is None:
        leave_train(ctx, batch, "the car ahead can no longer land whole")
        return StepResult(next=Next.RELEASE)
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

    # A train car is built on the car ahead's tested commit, the head car on the target's.
    target_sha = train.tip(ahead) if ahead is not None else refs[branch_ref(batch.target_branch)]
    method = MergeMethod(ctx.gitlab.project_merge_method(batch.project_id))
    built = repository.build_batch(
        target_sha,
        [_member(mr) for mr in staying],
        method=method,
        identity=ctx.identity,
        target_branch=batch.target_branch,
        when=ctx.clock.now(),
    )
    conflicting, deferred = _set_aside(ctx, config, batch, built, behind_a_car=ahead is not None)
    included = list(built.included_iids)
    if not included:
        save(
            ctx,
            batch,
            lambda b: b.model_copy(
                update={
                    "dropped": [*b.dropped, *left],
                    "rejected": [*b.rejected, *conflicting],
                    "requeued": [*b.requeued, *deferred],
                }
            ),
            BatchStep(
                kind=BatchStepKind.REJECTED if conflicting else BatchStepKind.DROPPED,
                merge_requests=conflicting or deferred,
                note="conflicts",
            ),
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

    steps = [
        BatchStep(kind=BatchStepKind.BUILT, sha=built.sha, merge_requests=included),
        *_set_aside_steps(conflicting, left, deferred),
    ]

    def built_batch(b: Batch) -> Batch:
        return b.model_copy(
            update={
                "dropped": [*b.dropped, *left],
                "rejected": [*b.rejected, *conflicting],
                "requeued": [*b.requeued, *deferred],
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
                "ahead_id": ahead.id if ahead is not None else None,
                "state": BatchState.TESTING,
            }
        )

    saved = save(ctx, batch, built_batch, *steps)
    if saved.strategy is Strategy.TRAIN:
        # The next car may be built on this one now.
        start_batch(
            ctx.store,
            ctx.executions,
            saved.project_id,
            saved.target_branch,
            next_car_id(saved),
            polls=PollIntervals.model_validate(ref.model_dump()),
        )
    return StepResult(
        next=Next.TEST,
        sha=built.sha,
        ref=branch,
        deadline=pipeline_deadline(ctx.clock.now(), config),
    )


def _set_aside(
    ctx: WorkflowContext,
    config: ProjectConfig,
    batch: Batch,
    built: BatchBuild,
    *,
    behind_a_car: bool,
) -> tuple[list[int], list[int]]:
    """The MRs that did not merge into the batch: rejected for their conflicts, or behind a
    car (whose MRs may not land) put back in line, to meet the target at the head of the
    train, where a conflict rejects them. ``(rejected, deferred)``."""
    if behind_a_car:
        deferred = [rejected.iid for rejected in built.rejected]
        members.requeue_all(ctx, config, batch, deferred, None)
        return [], deferred
    for rejected in built.rejected:
        members.reject(
            ctx,
            config,
            batch,
            rejected.iid,
            comments.conflicts(batch.target_branch, rejected.conflicts),
        )
    return [rejected.iid for rejected in built.rejected], []


def _set_aside_steps(
    conflicting: list[int], left: list[int], deferred: list[int]
) -> list[BatchStep]:
    steps = []
    if conflicting:
        steps.append(
            BatchStep(kind=BatchStepKind.REJECTED, merge_requests=conflicting, note="conflicts")
        )
    if left:
        steps.append(BatchStep(kind=BatchStepKind.DROPPED, merge_requests=left))
    if deferred:
        steps.append(
            BatchStep(
                kind=BatchStepKind.DROPPED,
                merge_requests=deferred,
                note="conflicts with the cars ahead; back in line",
            )
        )
    return steps


def _fetch(
    repository: Repository, batch: Batch, ahead: Batch | None, staying: list[MergeRequestState]
) -> dict[str, str] | None:
    """The target's head and the MRs' heads, and a train car's base: the car ahead's tested
    commit, from its branch. None if the car ahead can no longer land whole (bisected,
    retried or rebuilt since): nothing may be built on it."""
    wanted = [branch_ref(batch.target_branch), *(merge_request_ref(mr.iid) for mr in staying)]
    if ahead is None:
        return repository.fetch(wanted)
    if not train.extendable(ahead) or ahead.batch_branch is None:
        return None
    refs = repository.fetch([*wanted, branch_ref(ahead.batch_branch)])
    return refs if refs[branch_ref(ahead.batch_branch)] == train.tip(ahead) else None


def _member(state: MergeRequestState) -> BatchMember:
    return BatchMember(
        iid=state.iid, head_sha=state.sha, source_branch=state.source_branch, title=state.title
    )

"""Step ``ReachVerdict``: what the awaited pipeline means for the batch (``verdict.decide``),
done: MRs rejected or put back in line, a bisection round's prefixes pushed (each starts its
pipeline; the round's answers are awaited shortest first), or landing."""

from __future__ import annotations

from pydantic import BaseModel, Field

from merge_assist.platform.config import ProjectConfig, Strategy
from merge_assist.queue import comments
from merge_assist.queue import verdict as verdicts
from merge_assist.queue.models import Batch, BatchState, BatchStep, BatchStepKind
from merge_assist.queue.pipeline_wait import (
    CHANGED,
    PipelineOutcome,
    pipeline_deadline,
    stop_pipelines,
)
from merge_assist.queue.verdict import Action
from merge_assist.queue.workflow import members
from merge_assist.queue.workflow import train as train_moves
from merge_assist.queue.workflow.batch_record import open_batch, save
from merge_assist.queue.workflow.context import Next, StepResult, WorkflowContext


class VerdictInput(BaseModel):
    project_id: int = Field(gt=0)
    batch_id: str = Field(min_length=1, max_length=80)
    pipeline: PipelineOutcome


def reach_verdict(ctx: WorkflowContext, request: VerdictInput) -> StepResult:
    batch, config = open_batch(ctx, request.batch_id)
    result = request.pipeline
    if batch.state is not BatchState.TESTING:
        # A retried step whose first run already acted: carry on from where the batch is.
        return _resume_from(ctx, batch, config)
    tested = batch.tested
    gone = [iid for iid in tested if members.current(ctx, batch, iid) is None]
    if result.status == CHANGED or gone:
        # An MR under test changed: what was tested is not what would land.
        return _rebuild(ctx, batch, gone)
    if result.sha != batch.testing_sha or _older(result, batch.pipeline_floor):
        # The answer to an earlier wait, or the first run's answer (again) while its flaky
        # retry runs: the current wait goes on.
        return _resume_from(ctx, batch, config)

    tested_step = BatchStep(
        kind=BatchStepKind.TESTED,
        sha=result.sha,
        merge_requests=tested,
        pipeline_id=result.pipeline_id,
        pipeline_url=result.web_url,
        status=result.status,
    )
    assert batch.tested_length is not None
    # Bisection narrows down to the shortest red prefix; its pipeline shows the failure.
    passed = result.status == verdicts.PASSED
    red_url = batch.red_pipeline_url if passed else result.web_url
    green_url = result.web_url if passed else batch.green_pipeline_url
    decided = verdicts.decide(
        batch.order,
        batch.tested_length,
        result.status,
        bisection=batch.bisection,
        retries_left=batch.retries_left,
        retrying=batch.retrying,
        pipeline_url=red_url,
        ways=config.bisect_ways,
    )
    whole = decided.action is Action.LAND and decided.land_length == len(batch.order)
    if batch.strategy is Strategy.TRAIN and not whole:
        # The cars behind were built on this whole commit, which will not land.
        train_moves.cancel_behind(ctx, batch)
    stop_pipelines(ctx, batch.project_id, [_prefix_sha(batch, n) for n in decided.moot])
    for iid, reason in decided.rejected.items():
        members.reject(ctx, config, batch, iid, reason)
    why = None
    if result.status == verdicts.CANCELED:
        why = comments.PIPELINE_CANCELED
    members.requeue_all(ctx, config, batch, list(decided.requeued), why)
    gone_now = {
        "rejected": [*batch.rejected, *decided.rejected],
        "requeued": [*batch.requeued, *decided.requeued],
        "bisection": decided.bisection,
        "pipeline_id": result.pipeline_id,
        "pipeline_url": result.web_url,
        "red_pipeline_url": red_url,
        "green_pipeline_url": green_url,
    }
    steps = [tested_step]
    if decided.rejected:
        steps.append(
            BatchStep(
                kind=BatchStepKind.REJECTED,
                merge_requests=list(decided.rejected),
                pipeline_url=red_url,
                note="; ".join(reason.message for reason in decided.rejected.values()),
            )
        )

    if decided.action is Action.LAND:
        save(
            ctx,
            batch,
            lambda b: b.model_copy(
                update={
                    **gone_now,
                    "land_length": decided.land_length,
                    "state": BatchState.LANDING,
                }
            ),
            *steps,
        )
        return StepResult(next=Next.LAND)
    if decided.action is Action.RELEASE:
        save(ctx, batch, lambda b: b.model_copy(update=gone_now), *steps)
        return StepResult(next=Next.RELEASE)

    assert decided.test_length is not None
    length = decided.test_length
    sha = _prefix_sha(batch, length)
    # Each prefix of the round is tested on its own branch; where, the round decides.
    planned = batch.model_copy(update={"bisection": decided.bisection})
    ref = planned.prefix_ref(length)
    floor = None
    if decided.retry:
        floor = _rerun(ctx, config, batch, ref=ref, sha=sha, result=result)
        steps.append(BatchStep(kind=BatchStepKind.RETRIED, sha=sha, note=comments.FLAKY_RETRY))
    elif decided.round:
        repository = ctx.repository(config)
        for cut in decided.round:
            repository.push(
                planned.prefix_ref(cut), _prefix_sha(batch, cut), expected_old_sha=None, force=True
            )
        steps.append(
            BatchStep(
                kind=BatchStepKind.BISECTED,
                sha=sha if len(decided.round) == 1 else None,
                merge_requests=batch.order[: decided.round[-1]],
                note=comments.bisecting(decided.round, len(batch.order)),
            )
        )
    save(
        ctx,
        batch,
        lambda b: b.model_copy(
            update={
                **gone_now,
                "tested_length": length,
                "testing_sha": sha,
                "retrying": decided.retry,
                "pipeline_floor": floor,
                "retries_left": b.retries_left - (1 if decided.retry else 0),
            }
        ),
        *steps,
    )
    return StepResult(
        next=Next.TEST, sha=sha, ref=ref, deadline=pipeline_deadline(ctx.clock.now(), config)
    )


def _rerun(
    ctx: WorkflowContext,
    config: ProjectConfig,
    batch: Batch,
    *,
    ref: str,
    sha: str,
    result: PipelineOutcome,
) -> int:
    """A new pipeline for ``sha`` (a flaky retry) on ``ref``; the lowest id its answer may
    have. The branch may hold another prefix by now (the last one bisection tried passed):
    then ``sha`` is pushed back, which starts the pipeline, else one is asked for. Pipeline
    ids only grow, so any answer older than the one just judged is stale."""
    if ctx.gitlab.branch_sha(batch.project_id, ref) == sha:
        return ctx.gitlab.create_pipeline(batch.project_id, ref).id
    ctx.repository(config).push(ref, sha, expected_old_sha=None, force=True)
    return (result.pipeline_id or 0) + 1


def _older(result: PipelineOutcome, floor: int | None) -> bool:
    return floor is not None and result.pipeline_id is not None and result.pipeline_id < floor


def _prefix_sha(batch: Batch, length: int) -> str:
    if batch.build is None:
        assert batch.sha is not None
        return batch.sha
    return batch.build.prefix_sha(length)


def _rebuild(ctx: WorkflowContext, batch: Batch, gone: list[int]) -> StepResult:
    if batch.strategy is Strategy.TRAIN:
        train_moves.cancel_behind(ctx, batch)
    # The rest of a bisection round tests commits that will not be built again.
    stop_pipelines(
        ctx, batch.project_id, [sha for sha in batch.under_test if sha != batch.testing_sha]
    )
    save(
        ctx,
        batch,
        lambda b: b.model_copy(
            update={
                "dropped": [*b.dropped, *gone],
                "rebuilds": b.rebuilds + 1,
                "state": BatchState.BUILDING,
            }
        ),
        BatchStep(kind=BatchStepKind.REBUILT, merge_requests=gone, note="a merge request changed"),
    )
    if batch.strategy is Strategy.SERIAL:
        return StepResult(next=Next.RELEASE)
    return StepResult(next=Next.REBUILD)


def _resume_from(ctx: WorkflowContext, batch: Batch, config: ProjectConfig) -> StepResult:
    if batch.state is BatchState.LANDING:
        return StepResult(next=Next.LAND)
    if batch.state is BatchState.BUILDING:
        return StepResult(next=Next.REBASE if batch.strategy is Strategy.SERIAL else Next.REBUILD)
    if batch.state is BatchState.TESTING and batch.testing_sha:
        return StepResult(
            next=Next.TEST,
            sha=batch.testing_sha,
            ref=batch.prefix_ref(batch.tested_length or 0),
            deadline=pipeline_deadline(ctx.clock.now(), config),
        )
    return StepResult(next=Next.RELEASE)

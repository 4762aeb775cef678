"""``merge_assist.admin.recovery`` against moto: dead letters moved back to their FIFO queue, and
batches retried and cancelled by hand, each safe to run twice."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from merge_assist.adapters.dynamodb_store import DynamoDBStore
from merge_assist.adapters.project_infra import AwsProjectInfrastructure
from merge_assist.adapters.recovery import SqsMessageQueues, StepFunctionsBatchExecutions
from merge_assist.admin.recovery import RUNNING, Refused, cancel_batch, redrive, retry_batch
from merge_assist.platform.config import ProjectConfig, Strategy
from merge_assist.platform.ports import Clock
from merge_assist.platform.resources import ResourceNames
from merge_assist.platform.settings import PollIntervals
from merge_assist.queue.models import Batch, BatchState, BatchStepKind, StatusCategory
from merge_assist.queue.workflow.start import batch_id_for
from tests.conftest import T0, MakeMR
from tests.integration.conftest import Advance

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.service_resource import Table
    from mypy_boto3_sqs import SQSClient


NAMES = ResourceNames("test")
PROJECT = 7
BATCH = "7-main-0123456789abcdef"
POLLS = PollIntervals(pipeline_poll_seconds=5, rebase_poll_seconds=1)


class FakeExecutions:
    """Step Functions as far as the batch commands see it: names are unique forever."""

    def __init__(self) -> None:
        self.statuses: dict[str, str] = {}
        self.started: list[str] = []
        self.stopped: list[str] = []

    def start(self, name: str, execution_input: dict[str, Any]) -> bool:
        if name in self.statuses:
            return self.statuses[name] == RUNNING
        self.statuses[name] = RUNNING
        self.started.append(name)
        return True

    def resume(self, task_token: str, output: dict[str, Any]) -> bool:
        return False

    def status(self, name: str) -> str | None:
        return self.statuses.get(name)

    def stop(self, name: str, cause: str) -> bool:
        if self.statuses.get(name) != RUNNING:
            return False
        self.statuses[name] = "ABORTED"
        self.stopped.append(name)
        return True


# -- dead letters -----------------------------------------------------------------------


@pytest.fixture
def sqs(table: Table) -> SQSClient:  # the table fixture keeps moto running
    AwsProjectInfrastructure(NAMES).ensure_queues(PROJECT)
    return boto3.client("sqs")


def _url(sqs: SQSClient, name: str) -> str:
    return sqs.get_queue_url(QueueName=name)["QueueUrl"]


def _drain(sqs: SQSClient, url: str) -> list[dict[str, Any]]:
    received: list[Any] = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            MessageSystemAttributeNames=["MessageGroupId", "MessageDeduplicationId"],
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return received
        for message in messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        received += messages


def test_redrive_moves_every_dead_letter_back_with_its_group_and_dedup_ids(
    sqs: SQSClient,
) -> None:
    dlq = _url(sqs, NAMES.project_dead_letter_queue(PROJECT))
    sent = [(f"mr-{n % 3}", f"event-{n}", json.dumps({"n": n})) for n in range(23)]
    for group, dedup, body in sent:
        sqs.send_message(
            QueueUrl=dlq,
            MessageBody=body,
            MessageGroupId=group,
            MessageDeduplicationId=dedup,
            MessageAttributes={"kind": {"DataType": "String", "StringValue": "merge_request"}},
        )

    first = redrive(SqsMessageQueues(), NAMES, PROJECT)
    second = redrive(SqsMessageQueues(), NAMES, PROJECT)

    assert (first.moved, first.left) == (23, 0)
    assert (second.moved, second.left) == (0, 0)
    moved = _drain(sqs, _url(sqs, NAMES.project_queue(PROJECT)))
    assert sorted(
        (m["Attributes"]["MessageGroupId"], m["Attributes"]["MessageDeduplicationId"], m["Body"])
        for m in moved
    ) == sorted(sent)
    assert all(m["MessageAttributes"]["kind"]["StringValue"] == "merge_request" for m in moved)
    # Within a group, in the order they were dead-lettered.
    for group in ("mr-0", "mr-1", "mr-2"):
        bodies = [m["Body"] for m in moved if m["Attributes"]["MessageGroupId"] == group]
        assert bodies == [body for g, _, body in sent if g == group]
    assert _drain(sqs, dlq) == []


def test_an_interrupted_redrive_run_again_neither_loses_nor_doubles(sqs: SQSClient) -> None:
    dlq = _url(sqs, NAMES.project_dead_letter_queue(PROJECT))
    sqs.send_message(
        QueueUrl=dlq, MessageBody="{}", MessageGroupId="g", MessageDeduplicationId="event-1"
    )

    class CrashingAfterSend(SqsMessageQueues):
        def delete(self, url: str, receipt: str) -> None:
            raise RuntimeError("the operator's laptop went to sleep")

    with pytest.raises(RuntimeError):
        redrive(CrashingAfterSend(visibility_seconds=1), NAMES, PROJECT)
    # Sent but not deleted: visible again once its visibility timeout is over.
    time.sleep(1.5)
    again = redrive(SqsMessageQueues(), NAMES, PROJECT)

    assert again.moved == 1
    # The second send carried the same deduplication id within five minutes: one copy.
    assert len(_drain(sqs, _url(sqs, NAMES.project_queue(PROJECT)))) == 1


# -- batches ----------------------------------------------------------------------------


@pytest.fixture
def project(store: DynamoDBStore) -> ProjectConfig:
    return store.save_project(ProjectConfig(project_id=PROJECT, path="g/app"))


def _batch(store: DynamoDBStore, state: BatchState, iids: list[int]) -> Batch:
    return store.save_batch(
        Batch(
            id=BATCH,
            project_id=PROJECT,
            target_branch="main",
            strategy=Strategy.BATCH,
            merge_requests=iids,
            state=state,
            execution_name=BATCH,
        )
    )


def _held(store: DynamoDBStore, make_mr: MakeMR, iids: list[int], **fields: Any) -> None:
    for offset, iid in enumerate(iids):
        store.save_merge_request(
            make_mr(
                iid,
                project_id=PROJECT,
                status=StatusCategory.TESTING,
                batch_id=BATCH,
                ready_since=T0 + timedelta(minutes=offset),
                **fields,
            )
        )


def _running(store: DynamoDBStore, executions: FakeExecutions, iids: list[int]) -> Batch:
    """A batch mid-run: it holds the MRs and the lock, its execution runs."""
    batch = _batch(store, BatchState.TESTING, iids)
    store.acquire_branch_lock(PROJECT, "main", BATCH, timedelta(minutes=90))
    executions.statuses[BATCH] = RUNNING
    return batch


def _snapshot(store: DynamoDBStore, iids: list[int]) -> tuple[Any, ...]:
    return (
        store.get_batch(BATCH).model_dump(exclude={"updated_at"}),
        [store.get_merge_request(PROJECT, iid).model_dump(exclude={"updated_at"}) for iid in iids],
        store.get_branch_lock(PROJECT, "main"),
    )


def test_cancel_stops_requeues_and_releases_and_a_second_cancel_changes_nothing(
    store: DynamoDBStore, clock: Clock, project: ProjectConfig, make_mr: MakeMR
) -> None:
    executions = FakeExecutions()
    _held(store, make_mr, [1, 2])
    _running(store, executions, [1, 2])

    first = cancel_batch(store, executions, clock, BATCH)
    after_first = _snapshot(store, [1, 2])
    second = cancel_batch(store, executions, clock, BATCH)

    assert (first.stopped, first.cancelled, first.requeued, first.released_lock) == (
        True,
        True,
        [1, 2],
        True,
    )
    assert executions.stopped == [BATCH]
    batch = store.get_batch(BATCH)
    assert batch.state is BatchState.CANCELLED
    assert batch.steps[-1].kind is BatchStepKind.RELEASED
    assert batch.steps[-1].status == "cancelled"
    for offset, iid in enumerate([1, 2]):
        state = store.get_merge_request(PROJECT, iid)
        assert (state.status, state.batch_id) == (StatusCategory.QUEUED, None)
        assert state.ready_since == T0 + timedelta(minutes=offset)  # keeps its place
    assert store.get_branch_lock(PROJECT, "main") is None
    assert executions.started == []  # cancelling never starts the next batch
    assert (second.stopped, second.cancelled, second.requeued, second.released_lock) == (
        False,
        False,
        [],
        False,
    )
    assert second.found is BatchState.CANCELLED
    assert _snapshot(store, [1, 2]) == after_first


def test_cancel_leaves_mrs_that_left_the_batch_and_a_lock_another_batch_took(
    store: DynamoDBStore, clock: Clock, project: ProjectConfig, make_mr: MakeMR
) -> None:
    executions = FakeExecutions()
    _held(store, make_mr, [1])
    store.save_merge_request(make_mr(2, project_id=PROJECT, status=StatusCategory.MERGED))
    _batch(store, BatchState.TESTING, [1, 2])
    store.acquire_branch_lock(PROJECT, "main", "another", timedelta(minutes=5))

    cancelled = cancel_batch(store, executions, clock, BATCH)

    assert (cancelled.requeued, cancelled.released_lock) == ([1], False)
    assert store.get_merge_request(PROJECT, 2).status is StatusCategory.MERGED
    lock = store.get_branch_lock(PROJECT, "main")
    assert lock is not None
    assert lock.batch_id == "another"


def test_cancel_refuses_a_landed_batch(
    store: DynamoDBStore, clock: Clock, project: ProjectConfig
) -> None:
    _batch(store, BatchState.LANDED, [1])
    with pytest.raises(Refused, match="landed"):
        cancel_batch(store, FakeExecutions(), clock, BATCH)


def test_cancel_refuses_a_batch_landing_while_its_execution_runs(
    store: DynamoDBStore, clock: Clock, project: ProjectConfig
) -> None:
    executions = FakeExecutions()
    _batch(store, BatchState.LANDING, [1])
    executions.statuses[BATCH] = RUNNING
    with pytest.raises(Refused, match="landing"):
        cancel_batch(store, executions, clock, BATCH)
    assert executions.stopped == []


def test_commands_refuse_an_unknown_batch(store: DynamoDBStore, clock: Clock) -> None:
    with pytest.raises(Refused, match="no batch"):
        cancel_batch(store, FakeExecutions(), clock, "nope")
    with pytest.raises(Refused, match="no batch"):
        retry_batch(store, FakeExecutions(), clock, "nope", polls=POLLS)


def test_retry_refuses_a_running_batch(
    store: DynamoDBStore, clock: Clock, project: ProjectConfig, make_mr: MakeMR
) -> None:
    executions = FakeExecutions()
    _held(store, make_mr, [1])
    _running(store, executions, [1])
    before = _snapshot(store, [1])

    with pytest.raises(Refused, match="is running"):
        retry_batch(store, executions, clock, BATCH, polls=POLLS)
    assert _snapshot(store, [1]) == before


def test_retry_refuses_a_landed_batch(
    store: DynamoDBStore, clock: Clock, project: ProjectConfig
) -> None:
    _batch(store, BatchState.LANDED, [1])
    with pytest.raises(Refused, match="landed"):
        retry_batch(store, FakeExecutions(), clock, BATCH, polls=POLLS)


def test_retry_after_cancel_starts_the_queue_once(
    store: DynamoDBStore, clock: Clock, project: ProjectConfig, make_mr: MakeMR
) -> None:
    executions = FakeExecutions()
    _held(store, make_mr, [1, 2])
    _running(store, executions, [1, 2])
    cancel_batch(store, executions, clock, BATCH)

    first = retry_batch(store, executions, clock, BATCH, polls=POLLS)
    lock_after_first = store.get_branch_lock(PROJECT, "main")
    second = retry_batch(store, executions, clock, BATCH, polls=POLLS)

    expected = batch_id_for(PROJECT, "main", f"retry:{BATCH}")
    assert (first.next_batch, first.started, first.found) == (
        expected,
        True,
        BatchState.CANCELLED,
    )
    assert executions.started == [expected]
    assert lock_after_first is not None
    assert lock_after_first.batch_id == expected
    # Again: the same execution name, found running; nothing else started or moved.
    assert (second.next_batch, second.started, second.requeued) == (expected, True, [])
    assert executions.started == [expected]
    lock = store.get_branch_lock(PROJECT, "main")
    assert lock is not None
    assert lock.batch_id == expected
    # Once the retry batch has run, a third retry says why nothing starts.
    executions.statuses[expected] = "SUCCEEDED"
    store.release_branch_lock(PROJECT, "main", expected)
    third = retry_batch(store, executions, clock, BATCH, polls=POLLS)
    assert not third.started
    assert third.why_not_started == f"batch {expected} already ran"
    assert store.get_branch_lock(PROJECT, "main") is None


def test_retry_of_a_failed_batch_requeues_what_it_still_holds(
    store: DynamoDBStore, clock: Clock, project: ProjectConfig, make_mr: MakeMR
) -> None:
    executions = FakeExecutions()
    _held(store, make_mr, [3])
    _batch(store, BatchState.FAILED, [3])
    store.acquire_branch_lock(PROJECT, "main", BATCH, timedelta(minutes=90))
    executions.statuses[BATCH] = "FAILED"

    retried = retry_batch(store, executions, clock, BATCH, polls=POLLS)

    assert (retried.requeued, retried.released_lock, retried.closed) == ([3], True, False)
    assert retried.started
    state = store.get_merge_request(PROJECT, 3)
    # Queued again; the retry batch's execution (a fake here) is what takes it.
    assert (state.status, state.batch_id) == (StatusCategory.QUEUED, None)


def test_retry_of_a_dead_batch_waits_for_its_lock_to_expire(
    store: DynamoDBStore, clock: Clock, advance: Advance, project: ProjectConfig, make_mr: MakeMR
) -> None:
    executions = FakeExecutions()
    _held(store, make_mr, [1])
    _running(store, executions, [1])
    executions.statuses[BATCH] = "FAILED"  # died without running its release step

    with pytest.raises(Refused, match="still holds the lock"):
        retry_batch(store, executions, clock, BATCH, polls=POLLS)
    assert store.get_batch(BATCH).state is BatchState.TESTING

    advance(timedelta(minutes=91))
    retried = retry_batch(store, executions, clock, BATCH, polls=POLLS)

    assert retried.closed
    assert retried.started
    assert retried.requeued == [1]
    assert store.get_batch(BATCH).state is BatchState.FAILED
    again = retry_batch(store, executions, clock, BATCH, polls=POLLS)
    assert (again.closed, again.requeued, again.started) == (False, [], True)
    assert executions.started == [retried.next_batch]


def test_retry_says_why_nothing_started_when_paused(
    store: DynamoDBStore, clock: Clock, project: ProjectConfig, make_mr: MakeMR
) -> None:
    store.save_project(project.model_copy(update={"paused": True}))
    executions = FakeExecutions()
    _held(store, make_mr, [1])
    _batch(store, BatchState.CANCELLED, [1])

    retried = retry_batch(store, executions, clock, BATCH, polls=POLLS)

    assert retried.requeued == [1]
    assert not retried.started
    assert retried.why_not_started == "the project is paused"
    assert executions.started == []


# -- the Step Functions adapter ---------------------------------------------------------


def test_step_functions_adapter_reads_and_stops_executions_by_name(table: Table) -> None:
    sfn = boto3.client("stepfunctions")
    iam = boto3.client("iam")
    role = iam.create_role(
        RoleName="sfn",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    arn = sfn.create_state_machine(
        name=NAMES.state_machine("merge-batch"),
        definition=json.dumps(
            {"StartAt": "Wait", "States": {"Wait": {"Type": "Wait", "Seconds": 600, "End": True}}}
        ),
        roleArn=role,
    )["stateMachineArn"]
    executions = StepFunctionsBatchExecutions(client=sfn, state_machine_arn=arn)

    assert executions.status(BATCH) is None
    assert executions.start(BATCH, {"batch_id": BATCH})
    assert executions.status(BATCH) == RUNNING
    assert executions.stop(BATCH, "test")
    assert executions.status(BATCH) == "ABORTED"
    assert not executions.stop(BATCH, "test")

"""The merge queue under GitLab's faults, end to end: the real handlers and state machine on
the local stack, GitLab played by the simulator with injected faults (seeded, so every run
meets the same ones).

Scenarios: 20% of REST and git requests answered 5xx or 429; 20% of webhooks dropped; the
functions' sandboxes crashing after GitLab acted; webhooks delivered twice and out of
order; GitLab down for ``OUTAGE_S`` mid-batch; the bot's token rotated mid-batch; the
target force-pushed mid-batch; two dispatchers handling the same events at once.

Each scenario opens a few MRs that could all merge, lets the faults act until the queue
settles or ``FAULT_WINDOW_S`` passed, stops them, and then demands liveness: within
``RECOVERY_S`` (T = 60 s) after the faults stop, every MR is merged (none has a reason not
to be, so "rejected with a reason" would be a wrong answer and "still queued" a stalled
queue), no batch runs, and the comments GitLab could not take meanwhile have been posted,
so that what each author reads ends with the merge and no queue label is left. Then the
three invariants (``Scenario.assert_invariants``); the third, "replaying every webhook
changes nothing", is what the duplicated-deliveries and two-dispatchers scenarios do
throughout the run, so they check its outcome (one comment per transition, one landing per
MR) instead of replaying everything once more at the end.

Why T = 60 s: a batch that failed because of a fault leaves its MRs queued for the watcher,
which runs every ``WATCHER_S`` (12 s: the 5-minute schedule at ``SCHEDULE_SCALE``), and
whose run also posts the comments kept in the outbox; a lost pipeline webhook costs one
``POLL_S`` (5 s); a batch takes its build, one CI run (``CI_S``, about 1 s on the wall
clock), its landing and its release; a crashed dispatcher's messages come back after the
queue's visibility timeout (``CRASH_VISIBILITY_S`` in the crash scenario). Two batches, one
watcher interval and one poll, with the retries' back-off, fit in 60 s several times over:
T bounds a stall, not a speed.

Why ``OUTAGE_S`` = 30 s: it must outlast the retries so that the batch's execution really
fails. A GitLab call is retried by python-gitlab five times (about 3 s); a step by Step
Functions twice more, 2 s and 4 s later; so a step gives up about 15 s after its first
failed call, which comes at most one ``POLL_S`` after the outage starts while the batch
waits for CI. The scenario checks that an execution failed before the outage ended.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Callable, Iterator
from functools import partial
from typing import Any

import pytest
import requests
from dulwich.objects import ObjectID

from local.gitlab_sim import GitLabSimulator
from local.runtime import make_context
from local.stack import LocalStack
from merge_assist.platform.resources import WATCHER_SCHEDULE_MINUTES, function_spec
from merge_assist.queue.models import BatchState, StatusCategory
from tests.e2e.merge_queue import Scenario

pytestmark = pytest.mark.e2e

POLL_S = 5
# The watcher's 5-minute schedule runs every 12 s.
SCHEDULE_SCALE = 0.04
WATCHER_S = WATCHER_SCHEDULE_MINUTES * 60 * SCHEDULE_SCALE
# Simulated CI seconds: x0.05 on the wall clock.
CI_S = 20
# ~15 s on the stack's clock: long enough for a loaded machine to see the batch testing
# before its pipeline ends, short enough to end inside an outage (OUTAGE_S).
LONG_CI_S = 300
FAULT_WINDOW_S = 30.0
RECOVERY_S = 60.0
OUTAGE_S = 30.0
FAULT_RATE = 0.2
CRASH_RATE = 0.2
# The project queue's visibility timeout in the crash scenario: 360 s deployed (six times
# the dispatcher's timeout, as Lambda advises), which alone would outlast T.
CRASH_VISIBILITY_S = 10
# Between the token's rotation in GitLab and the new one reaching Secrets Manager.
STALE_SECRET_S = 2.0
MRS = 4
SEED = 20251

MERGED_NOTE = "merged this merge request into `main`"
QUEUED_NOTE = "has queued this merge request"
LABEL_PREFIX = "Merge Assist: "

STACK_SETTINGS = {
    "web_dir": None,
    "pipeline_poll_seconds": POLL_S,
    "schedule_scale": SCHEDULE_SCALE,
}


# -- helpers ----------------------------------------------------------------------------


def _sim(stack: LocalStack) -> GitLabSimulator:
    assert stack.gitlab is not None
    return stack.gitlab


def _open(stack: LocalStack, name: str, *, duration_s: float = CI_S) -> Scenario:
    return Scenario.open(stack, name, settings={"batch_size": 5}, duration_s=duration_s)


def _open_mrs(scenario: Scenario, count: int = MRS) -> list[int]:
    return [
        scenario.open_mr(f"feature/f{n}", {f"src/f{n}.py": f"F{n} = {n}\n"}) for n in range(count)
    ]


def _steps(scenario: Scenario) -> list[tuple[Any, ...]]:
    return [
        (b.id[-6:], b.state.value, s.kind.value, s.merge_requests, s.status, s.note)
        for b in scenario.batches()
        for s in b.steps
    ]


def _settled(scenario: Scenario) -> bool:
    return all(scenario.status(iid) is StatusCategory.MERGED for iid in scenario.entered) and (
        scenario.idle()
    )


def _until_settled_or(scenario: Scenario, seconds: float) -> None:
    """Lets the faults act until the queue settled or ``seconds`` passed."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not _settled(scenario):
        time.sleep(0.5)


def _outbox_empty(scenario: Scenario) -> bool:
    return not scenario.store.list_notices(scenario.project.id)


def _assert_recovers(scenario: Scenario, faults_stopped: float) -> None:
    """Liveness: within T of the faults' end every MR is merged, nothing runs, and every
    notice GitLab could not take meanwhile has been told. What the authors read then ends
    with the merge: one merged comment, the last one, and no queue label left."""
    remaining = RECOVERY_S - (time.monotonic() - faults_stopped)
    deadline = time.monotonic() + max(remaining, 0.0)
    while not (_settled(scenario) and _outbox_empty(scenario)):
        if time.monotonic() > deadline:
            raise AssertionError(
                f"not every MR merged {RECOVERY_S:.0f} s after the faults stopped: "
                f"{scenario.describe()} outbox={scenario.store.list_notices(scenario.project.id)}"
                f" steps={_steps(scenario)}"
            )
        time.sleep(0.5)
    for iid in scenario.entered:
        mr = scenario.gitlab_mr(iid)
        assert mr["state"] == "merged", scenario.describe()
        notes = scenario.notes(iid)
        assert sum(MERGED_NOTE in n for n in notes) == 1, notes
        assert MERGED_NOTE in notes[-1], f"!{iid} was told something after its merge: {notes}"
        left = [label for label in mr["labels"] if label.startswith(LABEL_PREFIX)]
        assert not left, f"!{iid} merged with {left}: {notes} steps={_steps(scenario)}"


def _wait_testing(scenario: Scenario, timeout: float = 60) -> None:
    """Until a batch waits for its pipeline and that pipeline runs."""
    gitlab = _sim(scenario.stack)

    def testing() -> bool:
        for batch in scenario.batches():
            if batch.state is BatchState.TESTING and batch.testing_sha is not None:
                with gitlab.store.lock:
                    if any(
                        p.sha == batch.testing_sha and p.status == "running"
                        for p in gitlab.store.pipelines.values()
                    ):
                        return True
        return False

    scenario.wait_for(testing, "a batch testing with its pipeline running", timeout)


def _executions(scenario: Scenario) -> list[dict[str, Any]]:
    sfn = scenario.stack.client("stepfunctions")
    prefix = f"{scenario.project.id}-main-"
    found: list[dict[str, Any]] = []
    for arn in scenario.stack.endpoints()["state_machines"].values():
        for page in sfn.get_paginator("list_executions").paginate(stateMachineArn=arn):
            found += [e for e in page["executions"] if e["name"].startswith(prefix)]
    return found


def _task_failures(scenario: Scenario) -> list[str]:
    """The failure events (a step's attempt, or a whole execution) in the project's
    workflow executions' histories."""
    sfn = scenario.stack.client("stepfunctions")
    failures: list[str] = []
    for execution in _executions(scenario):
        pages = sfn.get_paginator("get_execution_history").paginate(
            executionArn=execution["executionArn"]
        )
        for page in pages:
            failures += [e["type"] for e in page["events"] if e["type"].endswith("Failed")]
    return failures


@contextlib.contextmanager
def _faults_cleared(stack: LocalStack) -> Iterator[None]:
    """A failing scenario leaves no fault behind for the next one."""
    try:
        yield
    finally:
        _sim(stack).clear_faults()


def _run_with_faults(
    scenario: Scenario, start_faults: Callable[[], object], stop_faults: Callable[[], object]
) -> None:
    """The queue started, the faults on, the MRs opened; then the faults stop and the queue
    must recover within T."""
    scenario.start()
    start_faults()
    try:
        _open_mrs(scenario)
        _until_settled_or(scenario, FAULT_WINDOW_S)
    finally:
        stop_faults()
    _assert_recovers(scenario, time.monotonic())


# -- scenarios --------------------------------------------------------------------------


def test_a_fifth_of_rest_and_git_requests_answered_5xx_or_429(
    stack: LocalStack, scenario_name: str
) -> None:
    gitlab = _sim(stack)
    scenario = _open(stack, scenario_name)

    fired: dict[str, int] = {}

    def start() -> None:
        half = FAULT_RATE / 2
        gitlab.inject_fault(".*", status=503, rate=half, seed=SEED)
        gitlab.inject_fault(".*", status=429, retry_after=1, rate=half, seed=SEED + 1)
        gitlab.inject_fault(".*", status=502, scope="git", rate=FAULT_RATE, seed=SEED + 2)

    def stop() -> None:
        fired.update({f"{r.status} {r.scope}": r.fired for r in gitlab.faults.rules()})
        gitlab.clear_faults()

    try:
        with _faults_cleared(stack):
            _run_with_faults(scenario, start, stop)
        assert all(fired.values()), fired
        scenario.assert_invariants()
    finally:
        scenario.close()


def test_a_fifth_of_webhooks_dropped(stack: LocalStack, scenario_name: str) -> None:
    gitlab = _sim(stack)
    scenario = _open(stack, scenario_name)
    try:
        with _faults_cleared(stack):
            _run_with_faults(
                scenario,
                lambda: gitlab.drop_webhooks("*", rate=FAULT_RATE, seed=SEED),
                gitlab.clear_faults,
            )
        assert any(d.dropped for d in scenario.deliveries()), "no webhook was dropped"
        scenario.assert_invariants()
    finally:
        scenario.close()


def test_functions_crashing_after_gitlab_acted(stack: LocalStack, scenario_name: str) -> None:
    gitlab = _sim(stack)
    scenario = _open(stack, scenario_name)
    sqs = stack.client("sqs")
    queue_url = sqs.get_queue_url(QueueName=stack.names.project_queue(scenario.project.id))[
        "QueueUrl"
    ]
    sqs.set_queue_attributes(
        QueueUrl=queue_url, Attributes={"VisibilityTimeout": str(CRASH_VISIBILITY_S)}
    )
    crashing = stack.runtime.crashing_after_side_effects(gitlab.url, CRASH_RATE, seed=SEED)
    try:
        with crashing as crashes:
            scenario.start()
            _open_mrs(scenario)
            _until_settled_or(scenario, FAULT_WINDOW_S)
        stopped = time.monotonic()
        assert crashes.crashes, "no function crashed"
        _assert_recovers(scenario, stopped)
        scenario.assert_invariants()
    finally:
        scenario.close()


def test_webhooks_delivered_twice_and_out_of_order(stack: LocalStack, scenario_name: str) -> None:
    gitlab = _sim(stack)
    scenario = _open(stack, scenario_name)

    def start() -> None:
        gitlab.duplicate_webhooks("*", rate=0.3, seed=SEED)
        gitlab.delay_webhooks("*", rate=0.3, seed=SEED + 1)

    try:
        with _faults_cleared(stack):
            _run_with_faults(scenario, start, gitlab.clear_faults)
        deliveries = scenario.deliveries()
        assert any(d.duplicate_of is not None for d in deliveries)
        assert any(d.held_back for d in deliveries)
        for iid in scenario.entered:
            notes = scenario.notes(iid)
            assert sum(QUEUED_NOTE in n for n in notes) == 1, notes
        scenario.assert_invariants(replay=False)
    finally:
        scenario.close()


def test_gitlab_down_mid_batch(stack: LocalStack, scenario_name: str) -> None:
    gitlab = _sim(stack)
    scenario = _open(stack, scenario_name, duration_s=LONG_CI_S)
    try:
        with _faults_cleared(stack):
            _open_mrs(scenario)
            scenario.wait_status(sorted(scenario.entered), StatusCategory.QUEUED)
            scenario.start()
            _wait_testing(scenario)
            gitlab.outage(OUTAGE_S)
            # The batch's pipeline ends during the outage; its webhook waits for GitLab.
            gitlab.set_pipeline_rules(scenario.project, duration_s=CI_S)
            scenario.wait_for(
                lambda: gitlab.faults.outage() is None, "the outage to end", OUTAGE_S + 10
            )
            stopped = time.monotonic()
            # Whether a step's retries outlast the outage (the execution fails and the
            # recovery starts a new one) or not depends on the machine's speed; that the
            # outage reached the workflow does not.
            failures = _task_failures(scenario)
            assert failures, f"no workflow step failed during the outage: {_executions(scenario)}"
        _assert_recovers(scenario, stopped)
        scenario.assert_invariants()
    finally:
        scenario.close()


def test_the_bot_token_rotated_mid_batch(stack: LocalStack, scenario_name: str) -> None:
    gitlab = _sim(stack)
    scenario = _open(stack, scenario_name, duration_s=LONG_CI_S)
    secrets = stack.client("secretsmanager")
    old = secrets.get_secret_value(SecretId=stack.names.bot_token_secret)["SecretString"]
    try:
        _open_mrs(scenario)
        scenario.wait_status(sorted(scenario.entered), StatusCategory.QUEUED)
        scenario.start()
        _wait_testing(scenario)
        rotated = requests.post(
            f"{gitlab.url}/api/v4/personal_access_tokens/self/rotate",
            headers={"PRIVATE-TOKEN": old},
            timeout=10,
        )
        assert rotated.status_code == 200, rotated.text
        gitlab.set_pipeline_rules(scenario.project, duration_s=CI_S)
        refused = requests.get(
            f"{gitlab.url}/api/v4/user", headers={"PRIVATE-TOKEN": old}, timeout=10
        )
        assert refused.status_code == 401
        time.sleep(STALE_SECRET_S)
        secrets.put_secret_value(
            SecretId=stack.names.bot_token_secret, SecretString=rotated.json()["token"]
        )
        _assert_recovers(scenario, time.monotonic())
        scenario.assert_invariants()
    finally:
        scenario.close()


def test_the_target_force_pushed_mid_batch(stack: LocalStack, scenario_name: str) -> None:
    gitlab = _sim(stack)
    scenario = _open(stack, scenario_name, duration_s=LONG_CI_S)
    try:
        base = gitlab.branch_sha(scenario.project, "main")
        assert base is not None
        # The MRs branch off before the hotfix, so the amended one does not clash with them.
        _open_mrs(scenario)
        scenario.wait_status(sorted(scenario.entered), StatusCategory.QUEUED)
        gitlab.commit_files(scenario.project, "main", {"HOTFIX.md": "first try\n"}, author="dev")
        scenario.start()
        _wait_testing(scenario)
        # The hotfix amended and force-pushed: main's head is no longer in the batch.
        forced = gitlab.force_push(
            scenario.project, "main", {"HOTFIX.md": "amended\n"}, onto=base, author="dev"
        )
        gitlab.set_pipeline_rules(scenario.project, duration_s=CI_S)
        _assert_recovers(scenario, time.monotonic())

        main = gitlab.branch_sha(scenario.project, "main")
        assert main is not None
        with gitlab.store.lock:
            repo = gitlab.store.repo(scenario.project.id)
            walker = repo.get_walker(include=[ObjectID(main.encode())])
            history = {entry.commit.id.decode() for entry in walker}
        assert forced in history, "the queue landed over the force-push"
        assert gitlab.read_file(scenario.project, "main", "HOTFIX.md") == b"amended\n"
        scenario.assert_invariants()
    finally:
        scenario.close()


def test_two_dispatchers_handle_the_same_events_at_once(
    stack: LocalStack, scenario_name: str
) -> None:
    """Every dispatcher invocation for the project runs twice, at the same moment: SQS
    delivers at least once, and a message whose invocation seems lost comes again while
    the first still runs."""
    scenario = _open(stack, scenario_name)
    name = stack.names.function("dispatcher")
    original = stack.runtime.handler(name)
    spec = function_spec("dispatcher")
    twins: list[int] = []

    def concerns(event: dict[str, Any]) -> bool:
        for record in event.get("Records", []):
            with contextlib.suppress(ValueError, TypeError):
                if json.loads(record["body"]).get("project_id") == scenario.project.id:
                    return True
        return False

    def twice(event: dict[str, Any], context: Any) -> Any:
        if not concerns(event):
            return original(event, context)
        both = threading.Barrier(2)
        answers: list[Any] = []

        def twin() -> None:
            both.wait()
            answers.append(original(event, make_context(name, timeout_seconds=60)))

        thread = threading.Thread(target=twin, name="second-dispatcher")
        thread.start()
        both.wait()
        try:
            return original(event, context)
        finally:
            thread.join(timeout=60)
            twins.append(len(answers))

    stack.runtime.register(name, spec, twice)
    try:
        _run_with_faults(
            scenario, lambda: None, partial(stack.runtime.register, name, spec, original)
        )
        assert twins, "no event was handled twice"
        for iid in scenario.entered:
            notes = scenario.notes(iid)
            assert sum(QUEUED_NOTE in n for n in notes) == 1, notes
        scenario.assert_invariants(replay=False)
    finally:
        stack.runtime.register(name, spec, original)
        scenario.close()

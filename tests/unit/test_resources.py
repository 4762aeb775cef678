"""The resource catalogue that infra/ and local/ both build from: names, handlers, ASL."""

from __future__ import annotations

import importlib
import json
import re
from pathlib import Path
from typing import Any

import pytest

from merge_assist.platform.resources import (
    FUNCTIONS,
    ROUTES,
    STATE_MACHINES,
    STREAM_SUBSCRIPTIONS,
    FunctionSpec,
    ResourceNames,
    StateMachineSpec,
    function_spec,
)

REPO = Path(__file__).resolve().parents[2]
STATEMACHINES = REPO / "statemachines"
PLACEHOLDER = re.compile(r"\$\{([^}]*)\}")
PROJECT_ID = 123_456_789_012  # GitLab ids grow; names must still fit the services' limits
LONGEST_PREFIX = "p" * 40  # ``Settings.resource_prefix`` allows up to 40 characters


def deployment_names(names: ResourceNames) -> list[str]:
    return [
        names.table,
        names.bot_token_secret,
        names.user_pool,
        names.user_pool_client,
        names.http_api,
        names.connections_table,
        names.websocket_api,
        *(names.stream_failures_queue(s.function) for s in STREAM_SUBSCRIPTIONS),
        *(names.function(spec.key) for spec in FUNCTIONS),
        *(names.state_machine(spec.key) for spec in STATE_MACHINES),
    ]


def project_names(names: ResourceNames, project_id: int) -> list[str]:
    return [
        names.webhook_secret(project_id),
        names.project_queue(project_id),
        names.project_dead_letter_queue(project_id),
    ]


def all_names(names: ResourceNames, project_id: int = PROJECT_ID) -> list[str]:
    return deployment_names(names) + project_names(names, project_id)


# -- names ----------------------------------------------------------------------------


def test_default_names_do_not_change() -> None:
    # A renamed table, secret or queue orphans what a deployment already holds.
    names = ResourceNames()

    assert names.prefix == "merge-assist"
    assert names.table == "merge-assist-state"
    assert names.bot_token_secret == "merge-assist/gitlab-bot-token"
    assert names.webhook_secret(7) == "merge-assist/projects/7/webhook-secret"
    assert names.project_queue(7) == "merge-assist-project-7.fifo"
    assert names.project_dead_letter_queue(7) == "merge-assist-project-7-dlq.fifo"
    assert names.function("api") == "merge-assist-api"
    assert names.connections_table == "merge-assist-connections"
    assert names.state_machine("merge-batch") == "merge-assist-merge-batch"


def test_names_are_derived_only_from_the_prefix() -> None:
    assert all_names(ResourceNames("acme")) == all_names(ResourceNames("acme"))
    for name in all_names(ResourceNames("acme")):
        assert name.startswith("acme-") or name.startswith("acme/"), name


def test_names_within_a_deployment_are_distinct() -> None:
    names = ResourceNames()
    every = deployment_names(names) + [
        name for project_id in (1, 11, 111, PROJECT_ID) for name in project_names(names, project_id)
    ]
    assert len(set(every)) == len(every)


def test_two_deployments_share_no_name() -> None:
    assert not set(all_names(ResourceNames("blue"))) & set(all_names(ResourceNames("green")))


def test_project_queues_are_fifo_and_under_the_onboarding_prefix() -> None:
    names = ResourceNames("acme")
    for queue in (names.project_queue(PROJECT_ID), names.project_dead_letter_queue(PROJECT_ID)):
        assert queue.endswith(".fifo")  # SQS requires it of FIFO queues
        assert queue.startswith(names.project_queue_prefix)
    assert names.project_queue(1) != names.project_queue(11)


def test_names_fit_the_aws_limits_with_the_longest_prefix() -> None:
    names = ResourceNames(LONGEST_PREFIX)

    for spec in FUNCTIONS:
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,64}", names.function(spec.key)), spec.key
    for machine in STATE_MACHINES:
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,80}", names.state_machine(machine.key))
    for queue in (names.project_queue(PROJECT_ID), names.project_dead_letter_queue(PROJECT_ID)):
        assert re.fullmatch(r"[A-Za-z0-9_-]{1,75}\.fifo", queue), queue
    assert re.fullmatch(r"[A-Za-z0-9_.-]{3,255}", names.table)


def test_function_name_of_an_unknown_key_is_an_error() -> None:
    with pytest.raises(KeyError, match="nope"):
        ResourceNames().function("nope")


# -- functions ------------------------------------------------------------------------


def test_function_keys_are_unique() -> None:
    keys = [spec.key for spec in FUNCTIONS]
    assert len(set(keys)) == len(keys)


def test_function_spec_finds_each_function() -> None:
    for spec in FUNCTIONS:
        assert function_spec(spec.key) is spec


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.key)
def test_every_handler_is_an_importable_callable(spec: FunctionSpec) -> None:
    assert re.fullmatch(r"functions(\.[a-z_][a-z0-9_]*)+\.handler", spec.handler), spec.handler
    module_name, _, attribute = spec.handler.rpartition(".")
    module = importlib.import_module(module_name)
    assert callable(getattr(module, attribute))


@pytest.mark.parametrize("spec", FUNCTIONS, ids=lambda spec: spec.key)
def test_function_sizes_are_allowed_by_lambda(spec: FunctionSpec) -> None:
    assert 128 <= spec.memory_mb <= 10_240
    assert 1 <= spec.timeout_seconds <= 900
    assert spec.description


def test_routes_reach_existing_functions_that_answer_within_the_api_gateway_limit() -> None:
    keys = {spec.key for spec in FUNCTIONS}
    for route in ROUTES:
        assert route.function in keys, route
        assert route.path.startswith("/"), route
        assert route.method in {"ANY", "GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
        # An HTTP API gives up on an integration after 30 s; the function must stop first.
        assert function_spec(route.function).timeout_seconds < 30, route


def test_routes_are_unique() -> None:
    keys = [(route.method, route.path) for route in ROUTES]
    assert len(set(keys)) == len(keys)


# -- state machines -------------------------------------------------------------------


def load_definition(spec: StateMachineSpec) -> tuple[str, dict[str, Any]]:
    text = (STATEMACHINES / spec.definition_file).read_text(encoding="utf-8")
    return text, json.loads(text)


def test_state_machine_keys_are_unique() -> None:
    keys = [spec.key for spec in STATE_MACHINES]
    assert len(set(keys)) == len(keys)


@pytest.mark.parametrize("spec", STATE_MACHINES, ids=lambda spec: spec.key)
def test_state_machine_definition_exists_and_is_json(spec: StateMachineSpec) -> None:
    assert (STATEMACHINES / spec.definition_file).is_file()
    _, definition = load_definition(spec)
    assert definition["StartAt"] in definition["States"]


@pytest.mark.parametrize("spec", STATE_MACHINES, ids=lambda spec: spec.key)
def test_state_machine_placeholders_match_the_spec(spec: StateMachineSpec) -> None:
    text, _ = load_definition(spec)

    assert set(PLACEHOLDER.findall(text)) == set(spec.function_placeholders)


@pytest.mark.parametrize("spec", STATE_MACHINES, ids=lambda spec: spec.key)
def test_state_machine_placeholders_name_existing_functions(spec: StateMachineSpec) -> None:
    keys = {function.key for function in FUNCTIONS}
    for placeholder, function in spec.function_placeholders.items():
        assert function in keys, (placeholder, function)


@pytest.mark.parametrize("spec", STATE_MACHINES, ids=lambda spec: spec.key)
def test_every_state_transition_reaches_a_state(spec: StateMachineSpec) -> None:
    _, definition = load_definition(spec)
    states: dict[str, dict[str, Any]] = definition["States"]
    targets = {state["Next"] for state in states.values() if "Next" in state}
    targets |= {state["Default"] for state in states.values() if "Default" in state}
    targets |= {choice["Next"] for state in states.values() for choice in state.get("Choices", [])}
    assert targets <= set(states)


# -- stream subscriptions -------------------------------------------------------------


def test_stream_subscriptions_feed_existing_functions_within_lambdas_limits() -> None:
    keys = {spec.key for spec in FUNCTIONS}
    for subscription in STREAM_SUBSCRIPTIONS:
        assert subscription.function in keys
        assert 1 <= subscription.batch_size <= 10_000
        assert 0 <= subscription.retry_attempts <= 10_000
        assert 60 <= subscription.max_record_age_seconds <= 604_800
        # Lambda accepts at most five filters per event source mapping.
        assert 1 <= len(subscription.filter_patterns()) <= 5
        failures = ResourceNames().stream_failures_queue(subscription.function)
        assert not failures.startswith(ResourceNames().project_queue_prefix)

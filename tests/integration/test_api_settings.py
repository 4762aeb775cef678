"""The config route enforces each setting's bounds as ProjectConfig declares them (the CLI's
flags enforce the same ones: tests/unit/test_settings_surface.py)."""

from __future__ import annotations

from typing import Any

import pytest

from merge_assist.adapters.dynamodb_store import DynamoDBStore
from merge_assist.platform.config import ProjectConfig
from tests.fixtures.settings import AT_THE_EDGE, OUT_OF_BOUNDS
from tests.integration.api_harness import ApiCaller, TokenFactory, api, jwks_url, tokens

__all__ = ["api", "jwks_url", "tokens"]  # fixtures


@pytest.fixture
def project(store: DynamoDBStore) -> ProjectConfig:
    # Paused, so an accepted change starts no queue.
    return store.save_project(ProjectConfig(project_id=1, path="group/one", paused=True))


@pytest.mark.parametrize(("name", "value"), OUT_OF_BOUNDS)
def test_a_setting_out_of_bounds_is_refused_and_changes_nothing(
    api: ApiCaller,
    tokens: TokenFactory,
    store: DynamoDBStore,
    project: ProjectConfig,
    name: str,
    value: Any,
) -> None:
    answer = api.call(
        "PUT", "/projects/1/config", token=tokens.token("ada", "admin"), body={name: value}
    )

    assert answer.status == 400
    assert store.get_project(1) == project


@pytest.mark.parametrize(("name", "value"), AT_THE_EDGE)
def test_a_setting_at_the_edge_of_its_bounds_is_accepted(
    api: ApiCaller,
    tokens: TokenFactory,
    store: DynamoDBStore,
    project: ProjectConfig,
    name: str,
    value: Any,
) -> None:
    body = {name: value, "paused": True} if name != "paused" else {name: value}

    answer = api.call("PUT", "/projects/1/config", token=tokens.token("ada", "admin"), body=body)

    expected = ProjectConfig(project_id=1, **{name: value}).model_dump(mode="json")[name]
    assert answer.status == 200
    assert answer.body[name] == expected
    assert store.get_project(1).model_dump(mode="json")[name] == expected

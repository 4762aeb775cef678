"""Process settings: read from ``MERGE_ASSIST_*`` environment variables."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from pydantic import ValidationError

from merge_assist.platform.resources import ENV_PREFIX, ResourceNames, function_environment
from merge_assist.platform.settings import Settings, get_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.upper().startswith("MERGE_ASSIST_"):
            monkeypatch.delenv(name)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_env_prefix() -> None:
    assert ENV_PREFIX == "MERGE_ASSIST_"


def test_defaults() -> None:
    settings = Settings()

    assert settings.resource_prefix == "merge-assist"
    assert settings.table_name is None
    assert settings.resolved_table_name == "merge-assist-state"
    assert settings.bot_token_secret is None
    assert settings.gitlab_url == "https://gitlab.com"
    assert settings.state_machine_arn is None
    assert settings.history_days == 90
    assert settings.names == ResourceNames()


def test_values_come_from_prefixed_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERGE_ASSIST_TABLE_NAME", "custom-table")
    monkeypatch.setenv("MERGE_ASSIST_GITLAB_URL", "https://gitlab.example.com")
    monkeypatch.setenv("MERGE_ASSIST_HISTORY_DAYS", "30")

    settings = Settings()

    assert settings.resolved_table_name == "custom-table"
    assert settings.gitlab_url == "https://gitlab.example.com"
    assert settings.history_days == 30


def test_unprefixed_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TABLE_NAME", "someone-elses-table")
    monkeypatch.setenv("GITLAB_URL", "https://elsewhere.example.com")

    settings = Settings()

    assert settings.resolved_table_name == "merge-assist-state"
    assert settings.gitlab_url == "https://gitlab.com"


def test_the_prefix_names_the_table_unless_a_table_is_given(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MERGE_ASSIST_RESOURCE_PREFIX", "acme")
    assert Settings().resolved_table_name == ResourceNames("acme").table

    monkeypatch.setenv("MERGE_ASSIST_TABLE_NAME", "pinned")
    assert Settings().resolved_table_name == "pinned"


def test_unknown_prefixed_variables_are_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MERGE_ASSIST_SOMETHING_NEW", "1")
    assert Settings().resource_prefix == "merge-assist"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MERGE_ASSIST_HISTORY_DAYS", "0"),
        ("MERGE_ASSIST_HISTORY_DAYS", "forever"),
        ("MERGE_ASSIST_RESOURCE_PREFIX", ""),
        ("MERGE_ASSIST_RESOURCE_PREFIX", "p" * 41),
    ],
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings()


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.history_days = 1  # type: ignore[misc]


def test_settings_read_what_a_function_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    # infra/ and local/ hand each function ``function_environment``; the handler's settings
    # must resolve to the very resources that environment names.
    names = ResourceNames("acme")
    for name, value in function_environment(names, gitlab_url="https://git.acme.test").items():
        monkeypatch.setenv(name, value)

    settings = Settings()

    assert settings.names == names
    assert settings.resolved_table_name == names.table
    assert settings.bot_token_secret == names.bot_token_secret
    assert settings.gitlab_url == "https://git.acme.test"


def test_get_settings_is_cached_until_cleared(monkeypatch: pytest.MonkeyPatch) -> None:
    first = get_settings()
    monkeypatch.setenv("MERGE_ASSIST_RESOURCE_PREFIX", "other")

    assert get_settings() is first
    get_settings.cache_clear()
    assert get_settings().resource_prefix == "other"

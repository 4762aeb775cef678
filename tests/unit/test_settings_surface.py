"""One settings surface: each project setting is declared once, on ProjectConfig, with its
bounds and help text; the API's ConfigChange, its OpenAPI schema and the CLI's flags are
derived from that declaration, so a setting added there appears everywhere and every bound
is enforced alike."""

from __future__ import annotations

import argparse
import json
from typing import Any

import pytest
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from pydantic import Field, ValidationError

from cli.main import build_parser
from cli.project import add_setting_flags, settings_given
from functions.api.app import openapi_document
from functions.api.schemas import ConfigChange, ConfigChangeBase, change_model
from merge_assist.platform.config import FIXED_FIELDS, ProjectConfig
from tests.fixtures.settings import AT_THE_EDGE, OUT_OF_BOUNDS, cli_arguments, flag

WINDOW_HELP = "Hours after a pipeline's start in which a batch may still land."


class WiderConfig(ProjectConfig):
    """ProjectConfig with one more setting, declared only here."""

    landing_window_hours: int = Field(default=24, ge=1, le=72, description=WINDOW_HELP)


def _parser(config: type[ProjectConfig] = ProjectConfig) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="config", exit_on_error=True)
    add_setting_flags(parser, config)
    return parser


def _subcommand(parser: argparse.ArgumentParser, *names: str) -> argparse.ArgumentParser:
    for name in names:
        [commands] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        parser = commands.choices[name]
    return parser


def _help_of(parser: argparse.ArgumentParser, option: str) -> str | None:
    return next(
        (action.help for action in parser._actions if option in action.option_strings), None
    )


# -- a new setting appears everywhere --------------------------------------------------


def test_a_setting_added_to_the_config_is_a_field_of_the_change() -> None:
    change = change_model(WiderConfig)

    field = change.model_fields["landing_window_hours"]
    assert field.description == WINDOW_HELP
    assert field.default is None
    assert issubclass(change, ConfigChangeBase)
    accepted = change.model_validate({"landing_window_hours": 48})
    assert accepted.model_dump(exclude_unset=True) == {"landing_window_hours": 48}
    for refused in ({"landing_window_hours": 0}, {"landing_window_hours": 73}, {}, {"x": 1}):
        with pytest.raises(ValidationError):
            change.model_validate(refused)


def test_a_setting_added_to_the_config_is_in_the_config_routes_openapi_schema() -> None:
    change = change_model(WiderConfig)
    app = APIGatewayHttpResolver(enable_validation=True)

    def change_config(change: Any) -> dict[str, Any]:
        return change.model_dump(exclude_unset=True)  # type: ignore[no-any-return]

    # The route as the API declares it, with the wider config's change as its body.
    change_config.__annotations__ = {"change": change, "return": dict[str, Any]}
    app.put("/projects/config")(change_config)
    document = app.get_openapi_schema().model_dump(mode="json", by_alias=True, exclude_none=True)

    body = document["paths"]["/projects/config"]["put"]["requestBody"]["content"]
    assert body["application/json"]["schema"]["$ref"] == "#/components/schemas/ConfigChange"
    schema = document["components"]["schemas"]["ConfigChange"]
    window = schema["properties"]["landing_window_hours"]
    assert window["description"] == WINDOW_HELP
    assert {"type": "integer", "minimum": 1, "maximum": 72} in window["anyOf"]
    assert schema["additionalProperties"] is False


def test_a_setting_added_to_the_config_is_a_flag_of_the_cli_with_its_help() -> None:
    parser = _parser(WiderConfig)

    help_text = _help_of(parser, "--landing-window-hours")
    assert help_text is not None
    assert help_text.startswith(WINDOW_HELP.rstrip("."))
    assert "from 1 to 72" in help_text
    args = parser.parse_args(["--landing-window-hours", "48", "--batch-size", "3"])
    assert settings_given(args, WiderConfig) == {"landing_window_hours": 48, "batch_size": 3}
    with pytest.raises(SystemExit):
        parser.parse_args(["--landing-window-hours", "0"])


# -- today's settings, derived ---------------------------------------------------------


def test_the_settings_are_the_config_fields_but_identity_and_bookkeeping() -> None:
    settings = set(ProjectConfig.changeable_fields())

    assert settings == set(ProjectConfig.model_fields) - FIXED_FIELDS
    assert {"project_id", "path", "version", "updated_at"} == FIXED_FIELDS
    for name, field in ProjectConfig.changeable_fields().items():
        assert field.description, f"{name} has no description (its help text)"


def test_the_apis_change_and_its_openapi_schema_hold_every_setting_with_its_help() -> None:
    schema = openapi_document()["components"]["schemas"]["ConfigChange"]

    fields = ProjectConfig.changeable_fields()
    assert set(ConfigChange.model_fields) == set(fields)
    assert set(schema["properties"]) == set(fields)
    for name, field in fields.items():
        assert schema["properties"][name]["description"] == field.description


def test_the_cli_has_a_flag_for_every_setting_with_its_help() -> None:
    for action in ("add", "config"):
        parser = _subcommand(build_parser(), "project", action)
        for name, field in ProjectConfig.changeable_fields().items():
            help_text = _help_of(parser, flag(name))
            assert help_text is not None, f"project {action} has no {flag(name)}"
            assert help_text.startswith(str(field.description).rstrip("."))


@pytest.mark.parametrize(
    ("arguments", "settings"),
    [
        (["--target-branch", "main", "--target-branch", "v2"], {"target_branches": ["main", "v2"]}),
        (["--ci-timeout", "90"], {"ci_timeout_minutes": 90}),
        (["--pause"], {"paused": True}),
        (["--resume"], {"paused": False}),
        (["--strategy", "serial", "--batch-size", "7"], {"strategy": "serial", "batch_size": 7}),
        (["--landing", "merge-each"], {"landing": "merge-each"}),
        (["--trigger-label", "ship"], {"trigger_label": "ship"}),
        ([], {}),
    ],
)
def test_the_flags_names_from_before_still_work(
    arguments: list[str], settings: dict[str, Any]
) -> None:
    args = build_parser().parse_args(["project", "config", "acme/shop", *arguments])

    assert settings_given(args) == settings


def test_a_pause_and_a_resume_together_are_refused() -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["--pause", "--resume"])


def test_labels_are_given_as_a_json_object() -> None:
    args = _parser().parse_args(["--labels", json.dumps({"rejected": "Rejected"})])

    [(name, labels)] = settings_given(args).items()
    assert name == "labels"
    assert labels.rejected == "Rejected"
    assert labels.recognised == ProjectConfig(project_id=1).labels.recognised
    with pytest.raises(SystemExit):
        _parser().parse_args(["--labels", "{not json"])


# -- every bound, enforced by the API and the CLI alike ----------------------------------


def test_the_bound_cases_cover_every_setting() -> None:
    covered = {name for name, _ in OUT_OF_BOUNDS + AT_THE_EDGE}

    assert covered == set(ProjectConfig.changeable_fields())


@pytest.mark.parametrize(("name", "value"), OUT_OF_BOUNDS)
def test_a_value_out_of_bounds_is_refused_by_the_api_and_the_cli(
    name: str, value: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValidationError):
        ProjectConfig(project_id=1, **{name: value})
    with pytest.raises(ValidationError):
        ConfigChange.model_validate({name: value})

    arguments = cli_arguments(name, value)
    if arguments is None:
        return  # an empty list has no spelling on the command line: no flag leaves it be
    with pytest.raises(SystemExit) as refused:
        build_parser().parse_args(["project", "config", "acme/shop", *arguments])
    assert refused.value.code == 2
    assert flag(name) in capsys.readouterr().err


@pytest.mark.parametrize(("name", "value"), AT_THE_EDGE)
def test_a_value_at_the_edge_of_its_bounds_is_accepted_by_the_api_and_the_cli(
    name: str, value: Any
) -> None:
    expected = ProjectConfig(project_id=1, **{name: value}).model_dump(mode="json")[name]

    # Applied as the route and the CLI apply a change (administration.change_config).
    change = ConfigChange.model_validate({name: value}).model_dump(exclude_unset=True)
    from_api = ProjectConfig(project_id=1, **change)
    arguments = cli_arguments(name, value)
    assert arguments is not None
    args = build_parser().parse_args(["project", "config", "acme/shop", *arguments])
    from_cli = ProjectConfig(project_id=1, **settings_given(args))

    assert list(change) == [name]
    assert from_api.model_dump(mode="json")[name] == expected
    assert from_cli.model_dump(mode="json")[name] == expected

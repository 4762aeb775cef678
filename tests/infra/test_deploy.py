"""Deploying: the optional deploy parameters, the project's own pipeline (.gitlab-ci.yml) and
docs/deploy.md, against one synthesized template (bundling off, as in test_synth)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML, through cfn-lint; no stubs
from aws_cdk.assertions import Template

from infra import REPO_ROOT
from infra.app import cdk_json_context, create_app
from merge_assist.adapters import gitlab_gateway
from merge_assist.platform.resources import DEFAULT_PREFIX, ENV_PREFIX, ResourceNames
from merge_assist.platform.settings import Settings
from tests.infra.test_synth import app_functions

pytestmark = pytest.mark.infra

NAMES = ResourceNames(DEFAULT_PREFIX)
CI_FILE = REPO_ROOT / ".gitlab-ci.yml"
DEPLOY_DOC = REPO_ROOT / "docs" / "deploy.md"
BOT_TOKEN_ENV = f"{ENV_PREFIX}BOT_TOKEN_SECRET"
SECRET_ARN = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:gitlab/merge-bot-AbC123"
CERTIFICATE_ARN = (
    "arn:aws:acm:eu-west-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
)
# CDK's own parameter, filled in from SSM by CloudFormation.
CDK_PARAMETERS = frozenset({"BootstrapVersion"})


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    context = cdk_json_context() | {
        "aws:cdk:bundling-stacks": [],
        "@aws-cdk/core:failSynthOnValidationErrors": False,
    }
    app, stack = create_app(context, outdir=str(tmp_path_factory.mktemp("cdk.out")))
    app.synth()
    return dict(Template.from_stack(stack).to_json())


@pytest.fixture(scope="module")
def ci() -> dict[str, Any]:
    pipeline: dict[str, Any] = yaml.safe_load(CI_FILE.read_text(encoding="utf-8"))
    return pipeline


def _deploy_parameters(template: Mapping[str, Any]) -> set[str]:
    return set(template["Parameters"]) - CDK_PARAMETERS


def _defaults(template: Mapping[str, Any]) -> dict[str, str]:
    return {name: p.get("Default", "") for name, p in template["Parameters"].items()}


def _evaluate(expression: Any, template: Mapping[str, Any], parameters: Mapping[str, str]) -> Any:
    """A condition (or a rule assertion) of the template as CloudFormation evaluates it."""
    if isinstance(expression, str):
        return expression
    (function, argument), *_ = expression.items()
    if function == "Ref":
        return parameters[argument]
    if function == "Condition":
        return _evaluate(template["Conditions"][argument], template, parameters)
    values = [_evaluate(item, template, parameters) for item in argument]
    if function == "Fn::Equals":
        return values[0] == values[1]
    if function == "Fn::Not":
        return not values[0]
    if function == "Fn::And":
        return all(values)
    if function == "Fn::Or":
        return any(values)
    raise AssertionError(f"no evaluation for {function}")


def _walk(value: Any) -> Iterator[Any]:
    yield value
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)


def _only(template: Mapping[str, Any], resource_type: str) -> tuple[str, dict[str, Any]]:
    found = [(k, r) for k, r in template["Resources"].items() if r["Type"] == resource_type]
    assert len(found) == 1, found
    return found[0]


def _job_text(job: Mapping[str, Any], *keys: str) -> str:
    return "\n".join(str(line) for key in keys for line in _walk(job.get(key, [])))


# The pipeline


def test_pipeline_stages(ci: dict[str, Any]) -> None:
    assert ci["stages"] == ["lint", "test", "synth", "deploy"]
    assert {name: ci[name]["stage"] for name in ci["stages"]} == {
        stage: stage for stage in ci["stages"]
    }
    assert ci["default"]["image"] == "python:3.11"


def test_lint_job_runs_make_lint(ci: dict[str, Any]) -> None:
    assert ci["lint"]["script"] == ["make lint"]


def test_test_job_runs_the_readme_test_command(ci: dict[str, Any]) -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    documented = re.search(r"^(make test)\b", readme, re.MULTILINE)
    assert documented is not None, "the README no longer names its test command"
    ci_run = (REPO_ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    commands = [line for line in ci_run if line.strip() and not line.startswith("#")]

    assert ci["test"]["script"] == [".ci/run"]
    assert commands[-1] == documented.group(1)


def test_jobs_that_build_or_check_the_dashboard_have_node(ci: dict[str, Any]) -> None:
    for job in ("lint", "test", "synth"):
        steps = ci[job].get("before_script", [])
        assert any("nodejs" in str(step) for step in steps), job


def test_the_test_job_keeps_the_dashboards_screenshots(ci: dict[str, Any]) -> None:
    harness = (REPO_ROOT / "web" / "e2e" / "harness.ts").read_text(encoding="utf-8")

    assert 'new URL("./artifacts", import.meta.url)' in harness
    assert "web/e2e/artifacts/" in ci["test"]["artifacts"]["paths"]
    assert ci["test"]["artifacts"]["when"] == "always"


def test_synth_job_runs_cdk_synth_and_keeps_the_assembly(ci: dict[str, Any]) -> None:
    makefile = (REPO_ROOT / "Makefile").read_text(encoding="utf-8")

    assert ci["synth"]["script"] == ["make synth"]
    assert re.search(r"^synth:.*\n\t\$\(BIN\)/python -m infra\.app$", makefile, re.MULTILINE)
    assert ci["synth"]["artifacts"]["paths"] == ["cdk.out/"]


def test_jobs_cache_pip_downloads(ci: dict[str, Any]) -> None:
    assert ci["variables"]["PIP_CACHE_DIR"] == "$CI_PROJECT_DIR/.cache/pip"
    for name in ci["stages"]:
        assert ci[name]["cache"]["paths"] == [".cache/pip"], name


def test_deploy_is_manual_and_only_on_the_default_branch(ci: dict[str, Any]) -> None:
    deploy = ci["deploy"]

    assert deploy["rules"] == [{"if": "$CI_COMMIT_BRANCH == $CI_DEFAULT_BRANCH", "when": "manual"}]
    assert not {"only", "except", "when"} & deploy.keys()


def test_deploy_takes_aws_credentials_from_gitlab_oidc(ci: dict[str, Any]) -> None:
    deploy = ci["deploy"]
    before = _job_text(deploy, "before_script")

    assert set(deploy["id_tokens"]) == {"AWS_ID_TOKEN"}
    assert "aws sts assume-role-with-web-identity" in before
    assert '--role-arn "$AWS_ROLE_ARN"' in before
    assert '--web-identity-token "$AWS_ID_TOKEN"' in before
    # No long-lived keys: nothing in the file sets them but the exchange above.
    assert not {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} & ci["variables"].keys()


def test_deploy_ships_the_synthesized_assembly(ci: dict[str, Any]) -> None:
    deploy = ci["deploy"]
    script = _job_text(deploy, "script")

    assert deploy["needs"] == [{"job": "synth", "artifacts": True}]
    assert "npx --yes aws-cdk@2 deploy --app cdk.out --require-approval never" in script


def test_every_parameter_the_deploy_passes_exists(
    ci: dict[str, Any], template: dict[str, Any]
) -> None:
    passed = set(re.findall(r'--parameters "?(\w+)=', _job_text(ci["deploy"], "script")))

    assert "GitLabUrl" in passed
    assert passed <= _deploy_parameters(template)


# The deploy guide


def test_deploy_guide_documents_every_parameter(template: dict[str, Any]) -> None:
    guide = DEPLOY_DOC.read_text(encoding="utf-8")
    documented = set(re.findall(r"^\| `(\w+)` \|", guide, re.MULTILINE))

    assert _deploy_parameters(template) <= documented


def test_readme_points_to_the_deploy_guide() -> None:
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    deploying = readme.split("## Deploying", 1)[1].split("\n## ", 1)[0]

    assert "docs/deploy.md" in deploying


# The parameters


def _allows(template: Mapping[str, Any], parameter: str, value: str) -> bool:
    return re.fullmatch(template["Parameters"][parameter]["AllowedPattern"], value) is not None


def test_optional_parameters_default_to_empty(template: dict[str, Any]) -> None:
    for name in ("BotTokenSecretArn", "DomainName", "CertificateArn"):
        parameter = template["Parameters"][name]
        assert parameter["Type"] == "String"
        assert parameter["Default"] == ""
        assert parameter["Description"].startswith("Optional"), name
        assert _allows(template, name, ""), name


@pytest.mark.parametrize(
    ("parameter", "value", "allowed"),
    [
        ("BotTokenSecretArn", SECRET_ARN, True),
        # Without the six characters Secrets Manager appends, the grants would miss it.
        ("BotTokenSecretArn", SECRET_ARN.removesuffix("-AbC123"), False),
        ("BotTokenSecretArn", "gitlab/merge-bot", False),
        ("DomainName", "merge.example.com", True),
        ("DomainName", "https://merge.example.com", False),
        ("DomainName", "Merge.Example.com", False),
        ("CertificateArn", CERTIFICATE_ARN, True),
        ("CertificateArn", "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", False),
    ],
)
def test_parameter_constraints(
    template: dict[str, Any], parameter: str, value: str, allowed: bool
) -> None:
    assert _allows(template, parameter, value) is allowed


def test_every_choice_defaults_to_the_stack_without_the_parameters(
    template: dict[str, Any],
) -> None:
    """test_synth renders an ``Fn::If`` by its first branch; this is why that is right."""
    defaults = _defaults(template)
    conditions = [
        value["Fn::If"][0]
        for value in _walk(template)
        if isinstance(value, Mapping) and "Fn::If" in value
    ]

    assert conditions
    assert all(_evaluate({"Condition": name}, template, defaults) for name in conditions)


def _bot_token_secret(template: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    found = [
        (logical_id, resource)
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::SecretsManager::Secret"
        and resource["Properties"].get("Name") == NAMES.bot_token_secret
    ]
    assert len(found) == 1, found
    return found[0]


def _bot_token_condition(template: Mapping[str, Any]) -> str:
    _, secret = _bot_token_secret(template)
    condition: str = secret["Condition"]
    assert template["Conditions"][condition] == {"Fn::Equals": [{"Ref": "BotTokenSecretArn"}, ""]}
    return condition


def test_bot_token_secret_is_created_only_when_none_is_given(template: dict[str, Any]) -> None:
    _, secret = _bot_token_secret(template)
    condition = _bot_token_condition(template)
    parameters = _defaults(template)

    assert secret["Properties"]["Name"] == NAMES.bot_token_secret
    assert secret["DeletionPolicy"] == "Retain"
    assert _evaluate({"Condition": condition}, template, parameters)
    assert not _evaluate(
        {"Condition": condition}, template, parameters | {"BotTokenSecretArn": SECRET_ARN}
    )


def test_functions_read_and_may_read_the_given_secret(template: dict[str, Any]) -> None:
    secret_id, _ = _bot_token_secret(template)
    condition = _bot_token_condition(template)
    given = {"Ref": "BotTokenSecretArn"}
    functions = list(app_functions(template["Resources"]).values())
    grants = [
        statement
        for value in _walk(template["Resources"])
        if isinstance(value, Mapping) and "PolicyDocument" in value
        for statement in value["PolicyDocument"]["Statement"]
        if "secretsmanager:GetSecretValue" in statement["Action"]
        and "Fn::If" in statement["Resource"]
    ]

    assert functions
    for function in functions:
        assert function["Properties"]["Environment"]["Variables"][BOT_TOKEN_ENV] == {
            "Fn::If": [condition, NAMES.bot_token_secret, given]
        }
    # Every function with the bot token, and the onboarding policy the CLI runs with.
    assert len(grants) > 1
    for statement in grants:
        assert statement["Resource"] == {"Fn::If": [condition, {"Ref": secret_id}, given]}
    # The created secret is named nowhere else, bar resources that exist only with it (its
    # rotation schedule): with a given one it does not exist.
    unguarded = {
        key: resource
        for key, resource in template["Resources"].items()
        if resource.get("Condition") != condition
    }
    references = [
        v for v in _walk([unguarded, template.get("Outputs", {})]) if v == {"Ref": secret_id}
    ]
    choices = [v for v in _walk(template) if isinstance(v, Mapping) and "Fn::If" in v]
    chosen = [c for c in choices if c["Fn::If"][1] == {"Ref": secret_id}]
    assert len(references) == len(chosen)
    assert all(c["Fn::If"][0] == condition for c in chosen)


def test_bot_token_output_names_the_secret_to_fill_in(template: dict[str, Any]) -> None:
    condition = _bot_token_condition(template)

    output = template["Outputs"]["BotTokenSecret"]

    assert output["Condition"] == condition
    assert output["Value"] == NAMES.bot_token_secret


class _RecordingSecrets:
    def __init__(self) -> None:
        self.asked: list[str] = []

    def get(self, name: str, **_: Any) -> str:
        self.asked.append(name)
        return "glpat-token"


@pytest.mark.parametrize(
    ("configured", "expected"),
    [(None, NAMES.bot_token_secret), (SECRET_ARN, SECRET_ARN)],
)
def test_functions_ask_for_the_secret_their_environment_names(
    monkeypatch: pytest.MonkeyPatch, configured: str | None, expected: str
) -> None:
    secrets = _RecordingSecrets()
    monkeypatch.delenv(BOT_TOKEN_ENV, raising=False)
    monkeypatch.setattr(gitlab_gateway, "_secrets", lambda: secrets)

    assert gitlab_gateway.bot_token(Settings(bot_token_secret=configured)) == "glpat-token"
    assert secrets.asked == [expected]


def test_custom_domain_exists_only_with_a_domain_name(template: dict[str, Any]) -> None:
    domain_id, domain = _only(template, "AWS::ApiGatewayV2::DomainName")
    condition = domain["Condition"]
    parameters = _defaults(template)

    assert domain["Properties"] == {
        "DomainName": {"Ref": "DomainName"},
        "DomainNameConfigurations": [
            {
                "CertificateArn": {"Ref": "CertificateArn"},
                "EndpointType": "REGIONAL",
                "SecurityPolicy": "TLS_1_2",
            }
        ],
    }
    assert not _evaluate({"Condition": condition}, template, parameters)
    given = {"DomainName": "merge.example.com", "CertificateArn": CERTIFICATE_ARN}
    assert _evaluate({"Condition": condition}, template, parameters | given)
    # The DomainNeedsCertificate rule refuses one without the other before that matters.
    assert not _evaluate(
        {"Condition": condition}, template, parameters | {"DomainName": "merge.example.com"}
    )
    for output in ("CustomDomainTarget", "CustomDomainApiUrl"):
        assert template["Outputs"][output]["Condition"] == condition
    assert template["Outputs"]["CustomDomainTarget"]["Value"] == {
        "Fn::GetAtt": [domain_id, "RegionalDomainName"]
    }


def test_custom_domain_maps_the_http_api_only(template: dict[str, Any]) -> None:
    domain_id, domain = _only(template, "AWS::ApiGatewayV2::DomainName")
    _, mapping = _only(template, "AWS::ApiGatewayV2::ApiMapping")
    apis = {
        logical_id: resource["Properties"]["ProtocolType"]
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::ApiGatewayV2::Api"
    }
    stage_id, _ = next(
        (logical_id, resource)
        for logical_id, resource in template["Resources"].items()
        if resource["Type"] == "AWS::ApiGatewayV2::Stage"
        and resource["Properties"]["StageName"] == "$default"
    )

    # API Gateway refuses a WebSocket API on a domain that serves an HTTP API.
    assert sorted(apis.values()) == ["HTTP", "WEBSOCKET"]
    assert mapping["Condition"] == domain["Condition"]
    assert apis[mapping["Properties"]["ApiId"]["Ref"]] == "HTTP"
    assert mapping["Properties"]["DomainName"] == {"Ref": domain_id}
    assert mapping["Properties"]["Stage"] == "$default"
    assert "ApiMappingKey" not in mapping["Properties"]
    assert stage_id in mapping["DependsOn"]


@pytest.mark.parametrize(
    ("domain", "certificate", "accepted"),
    [
        ("", "", True),
        ("merge.example.com", CERTIFICATE_ARN, True),
        ("merge.example.com", "", False),
        ("", CERTIFICATE_ARN, False),
    ],
)
def test_domain_name_and_certificate_go_together(
    template: dict[str, Any], domain: str, certificate: str, accepted: bool
) -> None:
    parameters = _defaults(template) | {"DomainName": domain, "CertificateArn": certificate}
    (assertion,) = template["Rules"]["DomainNeedsCertificate"]["Assertions"]

    assert _evaluate(assertion["Assert"], template, parameters) is accepted


def test_deploy_guide_covers_the_first_deployment() -> None:
    guide = DEPLOY_DOC.read_text(encoding="utf-8")

    for needed in (
        "npx aws-cdk@2 bootstrap",
        "aws secretsmanager put-secret-value",
        "aws cognito-idp admin-create-user",
        "aws cognito-idp admin-add-user-to-group",
        "merge-assist project add",
        "docs/runbook.md",
    ):
        assert needed in guide, needed

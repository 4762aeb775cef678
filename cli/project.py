"""``merge-assist project add|list|remove|config|rotate-secret``: connecting GitLab projects.

Against the cloud the commands use the caller's AWS credentials, the deployment prefix and
the stack's outputs; with ``--local DATA`` they talk to the local stack described in
``DATA/endpoints.json``. Either way the GitLab calls are made with the bot's token from the
bot secret, as the functions make them."""

from __future__ import annotations

import argparse
import json
import os
from enum import Enum
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, TypeAdapter, ValidationError
from pydantic.fields import FieldInfo

from cli.deployment import AdminContext, cloud_context, local_context
from merge_assist.platform.config import ProjectConfig, constrained_type
from merge_assist.platform.intake import ROTATION_GRACE
from merge_assist.platform.resources import DEFAULT_PREFIX

MIN_GRACE_MINUTES = 10


def _services(context: AdminContext) -> tuple[Any, Any, Any]:
    import boto3

    from merge_assist.adapters.aws import clear_caches, store_from_settings
    from merge_assist.adapters.gitlab_gateway import PythonGitLabGateway
    from merge_assist.adapters.project_infra import AwsProjectInfrastructure

    clear_caches()
    # A deployment given BotTokenSecretArn reads the token from that secret; so does this,
    # told by MERGE_ASSIST_BOT_TOKEN_SECRET.
    secret_id = os.environ.get("MERGE_ASSIST_BOT_TOKEN_SECRET") or context.names.bot_token_secret
    secret = boto3.client("secretsmanager").get_secret_value(SecretId=secret_id)
    gitlab = PythonGitLabGateway(context.gitlab_url, secret["SecretString"])
    return store_from_settings(), AwsProjectInfrastructure(context.names), gitlab


def _project_ref(value: str) -> int | str:
    return int(value) if value.isdigit() else value


def _emit(args: argparse.Namespace, document: Any, text: str) -> None:
    print(json.dumps(document, indent=2, default=str) if args.json else text)


def _config_text(config: ProjectConfig) -> str:
    state = "paused" if config.paused else "active"
    return (
        f"{config.project_id:>8}  {config.path or '-':<40} {config.strategy.value:<6} "
        f"batch {config.batch_size:<3} {config.landing.value:<10} "
        f"{','.join(config.target_branches)}  {state}"
    )


def run(args: argparse.Namespace) -> int:
    from merge_assist.admin import administration
    from merge_assist.admin.onboarding import disconnect_project
    from merge_assist.platform.errors import NotFoundError

    context = local_context(Path(args.local)) if args.local else cloud_context(args)
    store, infrastructure, gitlab = _services(context)
    # What the CLI changes is written to the project's event log as the API's changes are.
    actor = _actor()
    if args.action == "add":
        connected = administration.connect(
            store,
            infrastructure,
            gitlab,
            actor,
            _project_ref(args.project),
            webhook_url=context.webhook_url,
            settings=settings_given(args),
        )
        _emit(
            args,
            {
                "project_id": connected.project.id,
                "path": connected.project.path_with_namespace,
                "webhook_url": connected.webhook_url,
                "secret_token": connected.secret_token,
                "hook_id": connected.hook_id,
                "created": connected.created,
                "config": connected.config.model_dump(mode="json"),
            },
            f"{'Connected' if connected.created else 'Already connected'}: "
            f"{connected.project.path_with_namespace} (id {connected.project.id}); "
            f"GitLab hook {connected.hook_id} posts to {connected.webhook_url}",
        )
    elif args.action == "list":
        projects = store.list_projects()
        _emit(
            args,
            [config.model_dump(mode="json") for config in projects],
            "\n".join(_config_text(config) for config in projects) or "No projects connected.",
        )
    elif args.action == "rotate-secret":
        _rotate_secret(args, context, infrastructure, gitlab)
    elif args.action == "remove":
        project = gitlab.find_project(_project_ref(args.project))
        try:
            administration.disconnect(
                store, infrastructure, gitlab, actor, project.id, webhook_url=context.webhook_url
            )
        except NotFoundError:
            # Not connected, or half: what a connection left behind goes all the same.
            disconnect_project(
                store, infrastructure, gitlab, project.id, webhook_url=context.webhook_url
            )
        _emit(args, {"removed": project.id}, f"Disconnected {project.path_with_namespace}.")
    else:
        project = gitlab.find_project(_project_ref(args.project))
        changes = settings_given(args)
        config = (
            administration.change_config(
                store,
                actor,
                project.id,
                changes,
                lambda project_id, cause: _start_queues(context, store, project_id, cause),
            )
            if changes
            else store.get_project(project.id)
        )
        _emit(args, config.model_dump(mode="json"), _config_text(config))
    return 0


def _rotate_secret(
    args: argparse.Namespace, context: AdminContext, infrastructure: Any, gitlab: Any
) -> None:
    from datetime import timedelta

    from merge_assist.admin.onboarding import rotate_webhook_secret
    from merge_assist.platform.clock import utc_now

    project = gitlab.find_project(_project_ref(args.project))
    rotated = rotate_webhook_secret(
        infrastructure,
        gitlab,
        project.id,
        webhook_url=context.webhook_url,
        now=utc_now(),
        grace=timedelta(minutes=args.grace_minutes),
        restart=args.restart,
    )
    until = rotated.previous_valid_until.isoformat(timespec="seconds")
    done = (
        "Finished the rotation begun earlier" if rotated.resumed else "Rotated the webhook secret"
    )
    _emit(
        args,
        {
            "project_id": project.id,
            "path": project.path_with_namespace,
            "hook_id": rotated.hook_id,
            "secret_token": rotated.secret_token,
            "previous_valid_until": until,
            "resumed": rotated.resumed,
        },
        f"{done} of {project.path_with_namespace} (id {project.id}): GitLab hook "
        f"{rotated.hook_id} sends the new token; the previous one is accepted until {until}.",
    )


def _grace_minutes(value: str) -> int:
    minutes = int(value)
    # The receivers cache a secret for five minutes; a shorter grace would refuse GitLab.
    if minutes < MIN_GRACE_MINUTES:
        raise argparse.ArgumentTypeError(f"at least {MIN_GRACE_MINUTES} minutes")
    return minutes


def _actor() -> Any:
    import getpass
    import uuid

    from merge_assist.admin.administration import Actor
    from merge_assist.platform.clock import utc_now

    return Actor(username=f"cli:{getpass.getuser()}", request_id=str(uuid.uuid4()), at=utc_now())


def _start_queues(context: AdminContext, store: Any, project_id: int, cause: str) -> list[str]:
    import boto3

    from merge_assist.adapters.executions import StepFunctionsExecutions
    from merge_assist.platform.resources import MERGE_WORKFLOW, state_machine_arn
    from merge_assist.platform.settings import get_settings
    from merge_assist.queue.workflow.start import start_project

    session = boto3.session.Session()
    arn = state_machine_arn(
        context.names,
        MERGE_WORKFLOW,
        region=session.region_name or "us-east-1",
        account=session.client("sts").get_caller_identity()["Account"],
    )
    settings = get_settings()
    return start_project(
        store,
        StepFunctionsExecutions(state_machine_arn=arn),
        project_id,
        cause,
        polls=settings.polls,
    )


def add_parser(commands: Any) -> None:
    project = commands.add_parser("project", help="connect, list, configure or remove projects")
    actions = project.add_subparsers(dest="action", required=True)
    for action, help_text in (
        ("add", "connect a GitLab project (repeating it changes nothing)"),
        ("list", "the connected projects"),
        ("remove", "disconnect a project and remove what connecting it created"),
        ("config", "show or change a project's queue settings"),
        ("rotate-secret", "give the project's hook a new secret token, without downtime"),
    ):
        parser = actions.add_parser(action, help=help_text)
        if action != "list":
            parser.add_argument("project", help="GitLab project id or group/path")
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.add_argument("--local", metavar="DATA", help="use the local stack in DATA")
        parser.add_argument("--prefix", default=DEFAULT_PREFIX, help="deployment prefix")
        parser.add_argument("--gitlab-url", help="GitLab base URL (cloud)")
        parser.add_argument("--webhook-url", help="webhook URL (default: the stack's ApiUrl)")
        if action in ("add", "config"):
            add_setting_flags(parser)
        if action == "rotate-secret":
            parser.add_argument(
                "--grace-minutes",
                type=_grace_minutes,
                default=int(ROTATION_GRACE.total_seconds() // 60),
                help="how long the previous token is still accepted (default %(default)s)",
            )
            parser.add_argument(
                "--restart",
                action="store_true",
                help="begin a new rotation even while the last one's grace period runs "
                "(the token before the current one is no longer accepted)",
            )
        parser.set_defaults(run=run)


# The flags' names before they were derived from the settings; scripts and docs use them.
FORMER_FLAGS: dict[str, tuple[str, ...]] = {
    "target_branches": ("--target-branch",),
    "ci_timeout_minutes": ("--ci-timeout",),
    "paused": ("--pause",),
}
FORMER_NEGATIVE_FLAGS: dict[str, tuple[str, ...]] = {"paused": ("--resume",)}


class _SettingAction(argparse.Action):
    """Checks a flag's value by its setting's type, bounds and validators as it is parsed,
    so what the API would refuse is refused before anything is called. A repeatable flag
    adds one item each time; the list so far is checked as a whole."""

    def __init__(
        self,
        option_strings: list[str],
        dest: str,
        *,
        adapter: TypeAdapter[Any],
        repeatable: bool,
        json_value: bool,
        **kwargs: Any,
    ) -> None:
        super().__init__(option_strings, dest, **kwargs)
        self.adapter = adapter
        self.repeatable = repeatable
        self.json_value = json_value

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        try:
            given = json.loads(values) if self.json_value else values
        except json.JSONDecodeError as error:
            raise argparse.ArgumentError(self, f"not JSON: {error}") from None
        candidate = [*(getattr(namespace, self.dest) or []), given] if self.repeatable else given
        try:
            value = self.adapter.validate_python(candidate)
        except ValidationError as error:
            reasons = "; ".join(str(problem["msg"]) for problem in error.errors())
            raise argparse.ArgumentError(self, reasons) from None
        setattr(namespace, self.dest, value)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _bare(annotation: Any) -> Any:
    """The type under ``Annotated[...]`` and ``| None``."""
    if get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    if get_origin(annotation) in (Union, UnionType):
        rest = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(rest) == 1:
            return _bare(rest[0])
    return annotation


def _bounds(field: FieldInfo) -> str | None:
    low = next((m.ge for m in field.metadata if getattr(m, "ge", None) is not None), None)
    high = next((m.le for m in field.metadata if getattr(m, "le", None) is not None), None)
    if low is not None and high is not None:
        return f"from {low} to {high}"
    if low is not None:
        return f"at least {low}"
    if high is not None:
        return f"at most {high}"
    return None


def _help(field: FieldInfo, name: str, *notes: str | None) -> str:
    text = (field.description or name.replace("_", " ")).rstrip(".")
    text = "; ".join([text, *(note for note in notes if note)])
    return text.replace("%", "%%")  # argparse formats help with %


def add_setting_flags(
    parser: argparse.ArgumentParser, config: type[ProjectConfig] = ProjectConfig
) -> None:
    """A flag for each of ``config``'s settings, named after it (``batch_size`` is
    ``--batch-size``) with its description as help: enums take one of their values, a
    boolean is a pair (``--paused``/``--no-paused``), a list's flag is repeatable, a nested
    model takes a JSON object. A flag not given leaves its setting unset."""
    for name, field in config.changeable_fields().items():
        kind = _bare(field.annotation)
        if kind is bool:
            pair = parser.add_mutually_exclusive_group()
            pair.add_argument(
                _flag(name),
                *FORMER_FLAGS.get(name, ()),
                dest=name,
                action="store_const",
                const=True,
                default=None,
                help=_help(field, name),
            )
            pair.add_argument(
                "--no-" + _flag(name)[2:],
                *FORMER_NEGATIVE_FLAGS.get(name, ()),
                dest=name,
                action="store_const",
                const=False,
                help=f"not {_flag(name)[2:]}",
            )
            continue
        repeatable = get_origin(kind) is list
        item = _bare(get_args(kind)[0]) if repeatable else kind
        item = get_origin(item) or item
        json_value = isinstance(item, type) and issubclass(item, BaseModel | dict)
        options: dict[str, Any] = {"metavar": "JSON"} if json_value else {}
        if isinstance(item, type) and issubclass(item, Enum):
            options["choices"] = [member.value for member in item]
        parser.add_argument(
            _flag(name),
            *FORMER_FLAGS.get(name, ()),
            dest=name,
            action=_SettingAction,
            adapter=TypeAdapter(constrained_type(field)),
            repeatable=repeatable,
            json_value=json_value,
            default=None,
            help=_help(
                field,
                name,
                "a JSON object" if json_value else None,
                "repeatable" if repeatable else None,
                _bounds(field),
            ),
            **options,
        )


def settings_given(
    args: argparse.Namespace, config: type[ProjectConfig] = ProjectConfig
) -> dict[str, Any]:
    """The settings whose flags ``add_setting_flags`` was given, by their field names."""
    chosen = {name: getattr(args, name, None) for name in config.changeable_fields()}
    return {name: value for name, value in chosen.items() if value is not None}

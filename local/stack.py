"""``LocalStack``: the whole deployment on one machine, no AWS account needed.

A threaded moto server on 127.0.0.1 plays every AWS service; handlers run in-process
(``local.runtime``); moto's Step Functions interpreter runs the real ASL files; the HTTP
front plays API Gateway; the poller plays the SQS event source mapping. Every client in the
process talks to the same moto in-process (``local.moto_transport``), and any other process
that reads ``DATA/endpoints.json`` over HTTP.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import time
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import boto3
import requests
from moto.core.config import default_user_config
from moto.server import ThreadedMotoServer

from local import moto_atomic, moto_lookup, moto_routing, moto_serialize, moto_transport
from local.authorizer import JwtAuthorizer
from local.gitlab_sim import GitLabSimulator
from local.http_front import HttpFront, compile_route
from local.poller import SqsPoller, detached_event_sources, serialized_queues
from local.provision import REPO_ROOT, Provisioned, provision
from local.runtime import LambdaRuntime
from local.scheduler import Scheduler
from local.stream_poller import StreamPoller
from local.websocket_front import WebSocketFront
from merge_assist.adapters.aws import clear_caches
from merge_assist.platform.dashboard import dashboard_config, password_sign_in
from merge_assist.platform.resources import (
    DEFAULT_PREFIX,
    ENV_PREFIX,
    FUNCTIONS,
    MERGE_WORKFLOW,
    ROUTES,
    ResourceNames,
    function_environment,
    state_machine_arn,
)

log = logging.getLogger(__name__)

ACCOUNT_ID = "123456789012"  # moto's default account
BOT_USERNAME = "merge-assist"
FAKE_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "local", "AWS_SECRET_ACCESS_KEY": "local"}


@dataclass
class LocalStackConfig:
    data_dir: Path
    http_port: int = 8080
    aws_port: int = 0
    host: str = "127.0.0.1"
    prefix: str = DEFAULT_PREFIX
    region: str = "us-east-1"
    # None embeds the GitLab simulator, with a bot user whose token goes into the bot secret.
    gitlab_url: str | None = None
    gitlab_token: str | None = None
    gitlab_port: int = 0
    gitlab_time_scale: float = 0.05
    web_dir: Path | None = field(default_factory=lambda: REPO_ROOT / "web" / "dist")
    poll_interval_seconds: float = 0.1
    # Scheduled rules run at their rate times this (0.01: the 5-minute watcher every 3 s).
    schedule_scale: float = 1.0
    # How long the merge workflow waits for a pipeline webhook before asking GitLab, and how
    # often it asks whether a rebase is done.
    pipeline_poll_seconds: int = 30
    rebase_poll_seconds: int = 1
    # The dashboard's live-update WebSocket; None: the port after ``http_port`` (any free
    # port when that is 0). Its management API (``@connections``) takes any free port.
    websocket_port: int | None = None


@dataclass(frozen=True)
class ExecutionResult:
    status: str
    output: Any
    error: str | None
    cause: str | None


class LocalStack:
    def __init__(self, config: LocalStackConfig) -> None:
        self.config = config
        self.names = ResourceNames(config.prefix)
        self.runtime = LambdaRuntime(ACCOUNT_ID, config.region)
        self._exit = ExitStack()
        self._moto: ThreadedMotoServer | None = None
        self.aws_endpoint = ""
        self.front: HttpFront | None = None
        self.poller: SqsPoller | None = None
        self.scheduler: Scheduler | None = None
        self.stream_poller: StreamPoller | None = None
        self.websocket: WebSocketFront | None = None
        self.provisioned: Provisioned | None = None
        self.session: boto3.Session | None = None
        self.gitlab: GitLabSimulator | None = None
        self.gitlab_url = config.gitlab_url or ""
        self.bot_username = BOT_USERNAME

    # -- lifecycle --------------------------------------------------------------------

    def start(self) -> Self:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        config = self.config
        config.data_dir.mkdir(parents=True, exist_ok=True)
        # The simulator's repositories are new at every start; so is the workflow's copy.
        shutil.rmtree(config.data_dir / "workflow-git", ignore_errors=True)
        # moto's server logs every request at INFO; the stack's own log says what matters.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._exit.enter_context(_moto_config())
        moto_atomic.install()
        moto_lookup.install()
        moto_routing.install()
        moto_serialize.install()
        self._moto = ThreadedMotoServer(ip_address=config.host, port=config.aws_port, verbose=False)
        self._moto.start()
        self._exit.callback(self._moto.stop)
        host, port = self._moto.get_host_and_port()
        self.aws_endpoint = f"http://{host}:{port}"
        self._exit.enter_context(
            moto_transport.in_process(
                moto_transport.server_app(self._moto),
                [self.aws_endpoint, f"http://localhost:{port}"],
            )
        )
        # moto's backends are process-wide: a second stack in one process starts clean.
        requests.post(f"{self.aws_endpoint}/moto-api/reset", timeout=10).raise_for_status()

        bot_token = config.gitlab_token
        if config.gitlab_url is None:
            self.gitlab = GitLabSimulator(
                config.data_dir / "gitlab",
                port=config.gitlab_port,
                time_scale=config.gitlab_time_scale,
            )
            self.gitlab.start()
            self._exit.callback(self.gitlab.stop)
            self.gitlab_url = self.gitlab.url
            _, bot_token = self.gitlab.create_user(BOT_USERNAME, name="Merge Assist")
        environment = function_environment(
            self.names,
            gitlab_url=self.gitlab_url,
            state_machine_arn=state_machine_arn(
                self.names, MERGE_WORKFLOW, region=config.region, account=ACCOUNT_ID
            ),
            extra={
                f"{ENV_PREFIX}PIPELINE_POLL_SECONDS": str(config.pipeline_poll_seconds),
                f"{ENV_PREFIX}REBASE_POLL_SECONDS": str(config.rebase_poll_seconds),
                f"{ENV_PREFIX}GIT_WORK_DIR": str(config.data_dir / "workflow-git"),
            },
        )
        self._exit.enter_context(
            _environment(
                {
                    **FAKE_CREDENTIALS,
                    **environment,
                    "AWS_ENDPOINT_URL": self.aws_endpoint,
                    "AWS_DEFAULT_REGION": config.region,
                    "AWS_REGION": config.region,
                    # moto's Step Functions interpreter calls Lambda at localhost:$MOTO_PORT.
                    "MOTO_PORT": str(port),
                    "POWERTOOLS_TRACE_DISABLED": "true",
                    "POWERTOOLS_METRICS_DISABLED": "false",
                    # What CloudWatch would receive, kept apart from the console.
                    "MERGE_ASSIST_METRICS_FILE": str(self.metrics_file),
                }
            )
        )
        clear_caches()
        self._exit.callback(clear_caches)
        self.session = boto3.Session(region_name=config.region)

        for spec in FUNCTIONS:
            self.runtime.register(self.names.function(spec.key), spec)
        self._exit.enter_context(self.runtime.installed())
        self._exit.callback(self.runtime.shutdown)
        self._exit.enter_context(detached_event_sources())
        self._exit.enter_context(serialized_queues())

        self.provisioned = provision(
            self.session, self.names, environment=environment, bot_token=bot_token
        )
        self.poller = SqsPoller(
            self.runtime,
            self.session.client("lambda"),
            self.session.client("sqs"),
            endpoint=self.aws_endpoint,
            region=config.region,
            interval_seconds=config.poll_interval_seconds,
        )
        self.poller.start()
        self._exit.callback(self.poller.stop)
        self.scheduler = Scheduler(
            self.runtime,
            self.session.client("events"),
            account=ACCOUNT_ID,
            region=config.region,
            scale=config.schedule_scale,
        )
        self.scheduler.start()
        self._exit.callback(self.scheduler.stop)

        authorizer = JwtAuthorizer(
            issuer=self.provisioned.issuer,
            audiences=[self.provisioned.user_pool_client_id],
            jwks_url=self.jwks_url,
        )
        self.front = HttpFront(
            [compile_route(route, self.names.function(route.function)) for route in ROUTES],
            self.runtime.invoke,
            authorizer=authorizer,
            web_dir=config.web_dir,
            account_id=ACCOUNT_ID,
            host=config.host,
            port=config.http_port,
        )
        self.front.start()
        self._exit.callback(self.front.stop)
        # Known only now: the user pool's ids and the URL GitLab's hooks post to.
        self._exit.enter_context(
            _environment(
                {
                    f"{ENV_PREFIX}USER_POOL_ID": self.provisioned.user_pool_id,
                    f"{ENV_PREFIX}USER_POOL_CLIENT_ID": self.provisioned.user_pool_client_id,
                    f"{ENV_PREFIX}TOKEN_ISSUER": self.provisioned.issuer,
                    f"{ENV_PREFIX}JWKS_URL": self.jwks_url,
                    f"{ENV_PREFIX}WEBHOOK_URL": f"{self.front.url}/webhook/gitlab",
                }
            )
        )
        clear_caches()
        self._start_live_updates()
        self.endpoints_file.write_text(json.dumps(self.endpoints(), indent=2) + "\n")

    def _start_live_updates(self) -> None:
        """The WebSocket API's stand-in, and the stream poller feeding the ``updates``
        function, which posts to the sockets through the stand-in's management API."""
        assert self.session is not None
        config = self.config
        websocket_port = config.websocket_port
        if websocket_port is None:
            websocket_port = config.http_port + 1 if config.http_port else 0
        self.websocket = WebSocketFront(
            self.runtime.invoke,
            self.names.function("websocket"),
            host=config.host,
            port=websocket_port,
        )
        self._exit.enter_context(
            _environment(
                {
                    f"{ENV_PREFIX}CONNECTIONS_TABLE": self.names.connections_table,
                    f"{ENV_PREFIX}WEBSOCKET_CALLBACK_URL": self.websocket.callback_url,
                }
            )
        )
        clear_caches()
        # Stopped before the environment goes: closing the sockets runs their $disconnect.
        self.websocket.start()
        self._exit.callback(self.websocket.stop)
        self.stream_poller = StreamPoller(
            self.runtime,
            self.session.client("lambda"),
            self.session.client("dynamodbstreams"),
            self.session.client("sqs"),
            endpoint=self.aws_endpoint,
            interval_seconds=config.poll_interval_seconds,
        )
        self.stream_poller.start()
        self._exit.callback(self.stream_poller.stop)
        assert self.front is not None
        assert self.provisioned is not None
        self.front.site_config = dashboard_config(
            websocket_url=self.websocket.url,
            region=config.region,
            user_pool_id=self.provisioned.user_pool_id,
            client_id=self.provisioned.user_pool_client_id,
            sign_in=password_sign_in(self.aws_endpoint),
            gitlab_url=self.gitlab_url,
        )

    def stop(self) -> None:
        self._exit.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what the stack offers --------------------------------------------------------

    @property
    def jwks_url(self) -> str:
        """moto serves the pool's keys; Cognito would at ``<issuer>/.well-known/jwks.json``."""
        assert self.provisioned is not None, "the stack is not started"
        return f"{self.aws_endpoint}/{self.provisioned.user_pool_id}/.well-known/jwks.json"

    @property
    def metrics_file(self) -> Path:
        """The functions' CloudWatch metrics (EMF, one JSON document per line)."""
        return self.config.data_dir / "metrics.jsonl"

    @property
    def endpoints_file(self) -> Path:
        return self.config.data_dir / "endpoints.json"

    @property
    def url(self) -> str:
        assert self.front is not None, "the stack is not started"
        return self.front.url

    def endpoints(self) -> dict[str, Any]:
        assert self.provisioned is not None, "the stack is not started"
        provisioned = self.provisioned
        return {
            "api": f"{self.url}/api/v1",
            "webhook": f"{self.url}/webhook/gitlab",
            "dashboard": f"{self.url}/",
            "websocket": self.websocket.url if self.websocket else None,
            "aws_endpoint": self.aws_endpoint,
            "region": self.config.region,
            "resource_prefix": self.names.prefix,
            "gitlab": self.gitlab_url,
            "gitlab_admin_token": self.gitlab.admin_token if self.gitlab else None,
            "gitlab_bot_username": self.bot_username if self.gitlab else None,
            "table": provisioned.table_name,
            "bot_token_secret": provisioned.bot_token_secret,
            "state_machines": provisioned.state_machine_arns,
            "functions": provisioned.function_arns,
            "user_pool_id": provisioned.user_pool_id,
            "user_pool_client_id": provisioned.user_pool_client_id,
            "issuer": provisioned.issuer,
            "demo_users": [
                {"username": u.username, "password": u.password, "group": u.group}
                for u in provisioned.demo_users
            ],
            "data_dir": str(self.config.data_dir),
            "metrics_file": str(self.metrics_file),
        }

    def client(self, service: str) -> Any:
        assert self.session is not None, "the stack is not started"
        return self.session.client(service)  # type: ignore[call-overload]

    def sign_in(self, username: str, password: str) -> dict[str, str]:
        """Cognito tokens for a user, as the dashboard's sign-in form gets them."""
        assert self.provisioned is not None, "the stack is not started"
        result = self.client("cognito-idp").initiate_auth(
            ClientId=self.provisioned.user_pool_client_id,
            AuthFlow="USER_PASSWORD_AUTH",
            AuthParameters={"USERNAME": username, "PASSWORD": password},
        )["AuthenticationResult"]
        return {
            "access_token": result["AccessToken"],
            "id_token": result["IdToken"],
            "refresh_token": result["RefreshToken"],
        }

    def execute(
        self,
        state_machine: str,
        execution_input: dict[str, Any],
        *,
        name: str | None = None,
        timeout_seconds: float = 60,
    ) -> ExecutionResult:
        """Start an execution of the real ASL and wait for it to end."""
        assert self.provisioned is not None, "the stack is not started"
        sfn = self.client("stepfunctions")
        execution_arn = sfn.start_execution(
            stateMachineArn=self.provisioned.state_machine_arns[state_machine],
            name=name or str(uuid.uuid4()),
            input=json.dumps(execution_input),
        )["executionArn"]
        deadline = time.monotonic() + timeout_seconds
        while True:
            described = sfn.describe_execution(executionArn=execution_arn)
            if described["status"] != "RUNNING":
                output = described.get("output")
                return ExecutionResult(
                    status=described["status"],
                    output=json.loads(output) if output else None,
                    error=described.get("error"),
                    cause=described.get("cause"),
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"{execution_arn} still running after {timeout_seconds} s")
            time.sleep(0.05)


@contextlib.contextmanager
def _moto_config() -> Any:
    """moto's non-Docker Lambda backend and its ASL interpreter, for as long as the stack runs."""
    saved = {
        "lambda": dict(default_user_config.get("lambda", {})),
        "stepfunctions": dict(default_user_config.get("stepfunctions", {})),
    }
    default_user_config["lambda"] = {"use_docker": False}
    default_user_config["stepfunctions"] = {"execute_state_machine": True}
    try:
        yield
    finally:
        default_user_config["lambda"] = saved["lambda"]  # type: ignore[typeddict-item]
        default_user_config["stepfunctions"] = saved["stepfunctions"]  # type: ignore[typeddict-item]


@contextlib.contextmanager
def _environment(values: dict[str, str]) -> Any:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value

"""Calling the API handler as API Gateway would, with tokens from a user pool of our own.

The pool's keys are a fresh RSA pair whose public half is served as a JWKS file, so tests
can mint every token a forger could: wrong key, wrong algorithm, expired, for another
client or issuer, an id token, forged groups.

What the API reaches beyond its table is faked in memory, honestly enough for the routes
that use it: GitLab (onboarding and the health probe), each project's AWS resources
(onboarding) and the health page's view of queues and executions."""

from __future__ import annotations

import json
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from local.http_front import http_api_event
from local.runtime import make_context
from merge_assist.adapters.aws import clear_caches
from merge_assist.adapters.dynamodb_store import DynamoDBStore
from merge_assist.adapters.operations import Depth
from merge_assist.audit.models import AuditAction, AuditEntry
from merge_assist.platform.config import ProjectConfig, ProjectRef, Strategy, WebhookSecret
from merge_assist.platform.errors import NotFoundError
from merge_assist.queue.models import Batch, BatchState, BatchStep, BatchStepKind, StatusCategory
from tests.conftest import T0, MakeMR

REGION = "eu-west-1"
POOL_ID = f"{REGION}_Harness1"
ISSUER = f"https://cognito-idp.{REGION}.amazonaws.com/{POOL_ID}"
CLIENT_ID = "dashboard-client"
KID = "harness-key"
ACCOUNT_ID = "123456789012"
# What onboarding registers as the projects' hook (the API's MERGE_ASSIST_WEBHOOK_URL).
WEBHOOK_URL = "https://merge-assist.example.test/webhook/gitlab"


def _private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@dataclass
class TokenFactory:
    key: rsa.RSAPrivateKey = field(default_factory=_private_key)

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": KID, "alg": "RS256", "use": "sig"}]}

    def claims(self, username: str, groups: list[str], token_use: str = "access") -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {
            "sub": str(uuid.uuid5(uuid.NAMESPACE_DNS, username)),
            "iss": ISSUER,
            "token_use": token_use,
            "iat": now,
            "auth_time": now,
            "exp": now + 3600,
            "jti": str(uuid.uuid4()),
        }
        if token_use == "access":
            claims.update(client_id=CLIENT_ID, username=username, scope="openid email")
        else:
            claims.update(aud=CLIENT_ID, **{"cognito:username": username})
        if groups:
            claims["cognito:groups"] = groups
        return claims

    def sign(
        self,
        claims: dict[str, Any],
        *,
        key: rsa.RSAPrivateKey | None = None,
        kid: str = KID,
        algorithm: str = "RS256",
    ) -> str:
        signing_key: Any = key or self.key
        return jwt.encode(claims, signing_key, algorithm=algorithm, headers={"kid": kid})

    def token(self, username: str, *groups: str, **overrides: Any) -> str:
        claims = self.claims(username, list(groups))
        claims.update(overrides)
        return self.sign(claims)


@dataclass
class RecordedExecutions:
    """Stands in for Step Functions: which batches the API started."""

    started: list[str] = field(default_factory=list)

    def start(self, name: str, execution_input: dict[str, Any]) -> bool:
        if name not in self.started:
            self.started.append(name)
        return True

    def resume(self, task_token: str, output: dict[str, Any]) -> bool:
        return False


class GitLabUnreachable(ConnectionError):
    pass


@dataclass
class FakeGitLab:
    """The GitLab calls the API makes: the health probe's and onboarding's. Like GitLab, it
    knows only the projects it was told about; their hooks are kept by project and URL."""

    bot_user_id: int = 4242
    reachable: bool = True
    projects: dict[int, ProjectRef] = field(default_factory=dict)
    # project id → hook URL → (hook id, secret token)
    hooks: dict[int, dict[str, tuple[int, str]]] = field(default_factory=dict)
    _next_hook_id: int = 100

    def add_project(self, project_id: int, path: str) -> ProjectRef:
        ref = ProjectRef(
            id=project_id,
            path_with_namespace=path,
            web_url=f"https://gitlab.example.test/{path}",
        )
        self.projects[project_id] = ref
        return ref

    def _check_reachable(self) -> None:
        if not self.reachable:
            raise GitLabUnreachable("gitlab.example.test: connection refused")

    def _project(self, project_id: int) -> ProjectRef:
        self._check_reachable()
        try:
            return self.projects[project_id]
        except KeyError:
            raise NotFoundError(f"GitLab project {project_id} not found or not visible") from None

    def current_user_id(self) -> int:
        self._check_reachable()
        return self.bot_user_id

    def find_project(self, ref: int | str) -> ProjectRef:
        self._check_reachable()
        for project in self.projects.values():
            if ref in (project.id, project.path_with_namespace):
                return project
        raise NotFoundError(f"GitLab project {ref} not found or not visible")

    def ensure_hook(self, project_id: int, url: str, token: str) -> int:
        self._project(project_id)
        hooks = self.hooks.setdefault(project_id, {})
        if url in hooks:
            hook_id = hooks[url][0]
        else:
            hook_id = self._next_hook_id
            self._next_hook_id += 1
        hooks[url] = (hook_id, token)
        return hook_id

    def remove_hook(self, project_id: int, url: str) -> bool:
        self._project(project_id)
        hooks = self.hooks.get(project_id, {})
        removed = hooks.pop(url, None) is not None
        if not hooks:
            self.hooks.pop(project_id, None)
        return removed

    def state(self) -> dict[str, Any]:
        """Everything a request could have changed, to compare before and after."""
        return {"projects": dict(self.projects), "hooks": json.loads(json.dumps(self.hooks))}


@dataclass
class FakeProjectInfrastructure:
    """Each connected project's webhook secret, queues, event source mapping and alarms."""

    secrets: dict[int, WebhookSecret] = field(default_factory=dict)
    queues: dict[int, str] = field(default_factory=dict)
    event_sources: set[str] = field(default_factory=set)
    alarms: set[int] = field(default_factory=set)

    def ensure_webhook_secret(self, project_id: int) -> WebhookSecret:
        if project_id not in self.secrets:
            self.secrets[project_id] = WebhookSecret(secret_token=secrets.token_urlsafe(24))
        return self.secrets[project_id]

    def ensure_queues(self, project_id: int) -> str:
        arn = f"arn:aws:sqs:{REGION}:{ACCOUNT_ID}:test-project-{project_id}.fifo"
        return self.queues.setdefault(project_id, arn)

    def ensure_event_source(self, queue_arn: str) -> None:
        self.event_sources.add(queue_arn)

    def ensure_alarms(self, project_id: int) -> None:
        self.alarms.add(project_id)

    def remove(self, project_id: int) -> None:
        self.alarms.discard(project_id)
        self.secrets.pop(project_id, None)
        arn = self.queues.pop(project_id, None)
        if arn is not None:
            self.event_sources.discard(arn)

    def connect(self, project_id: int) -> None:
        """What onboarding creates, for projects a test seeds straight into the store."""
        self.ensure_webhook_secret(project_id)
        self.ensure_event_source(self.ensure_queues(project_id))
        self.ensure_alarms(project_id)

    def state(self) -> dict[str, Any]:
        return {
            "secrets": {k: v.secret_token for k, v in self.secrets.items()},
            "queues": dict(self.queues),
            "event_sources": sorted(self.event_sources),
            "alarms": sorted(self.alarms),
        }


@dataclass
class FakeOperations:
    """The health page's view of the AWS side: a project's queues exist once its
    infrastructure does (else ``NotFoundError``, as the port says)."""

    infrastructure: FakeProjectInfrastructure
    depths: dict[int, Depth] = field(default_factory=dict)
    execution_counts: dict[int, dict[str, int]] = field(default_factory=dict)

    def queue_depth(self, project_id: int) -> Depth:
        if project_id not in self.infrastructure.queues:
            raise NotFoundError(f"project {project_id} has no queues")
        return self.depths.get(project_id, Depth(messages=0, in_flight=0, dead_letters=0))

    def executions(self, project_id: int, since: datetime) -> dict[str, int]:
        counts = dict.fromkeys(("RUNNING", "FAILED", "TIMED_OUT", "ABORTED"), 0)
        counts.update(self.execution_counts.get(project_id, {}))
        return counts


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any
    headers: dict[str, str]


class ApiCaller:
    # The fakes the wiring hands out; a test may swap any of them (see ``__setattr__``).
    FAKES = frozenset({"executions", "gitlab", "infrastructure", "operations"})

    def __init__(
        self,
        executions: RecordedExecutions,
        gitlab: FakeGitLab | None = None,
        infrastructure: FakeProjectInfrastructure | None = None,
        operations: FakeOperations | None = None,
    ) -> None:
        # Imported once the fixture has set the environment Powertools reads at import.
        from functions.api import app, wiring  # noqa: PLC0415

        self._app = app
        self._wiring = wiring
        self.executions = executions
        self.gitlab = gitlab or FakeGitLab()
        self.infrastructure = infrastructure or FakeProjectInfrastructure()
        self.operations = operations or FakeOperations(self.infrastructure)

    def __setattr__(self, name: str, value: Any) -> None:
        super().__setattr__(name, value)
        if name in self.FAKES:
            # The wiring builds its services once: those built with the fake swapped out
            # must be built again with the new one.
            self._wiring.clear()

    def outside_state(self) -> dict[str, Any]:
        """What the API changed outside its table: workflow starts, GitLab hooks and
        projects' AWS resources."""
        return {
            "started": list(self.executions.started),
            "gitlab": self.gitlab.state(),
            "infrastructure": self.infrastructure.state(),
        }

    def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        body: Any = None,
        raw_body: bytes | None = None,
        query: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        sent = {"content-type": "application/json", "host": "api.example.test"}
        if token is not None:
            sent["authorization"] = f"Bearer {token}"
        sent.update(headers or {})
        payload = raw_body if raw_body is not None else b""
        if body is not None:
            payload = json.dumps(body).encode()
        event = http_api_event(
            method=method,
            raw_path=f"/api/v1{path}",
            raw_query=urlencode(query or {}),
            headers=sent,
            body=payload,
            route_key="ANY /api/v1/{proxy+}",
            path_parameters={"proxy": path.lstrip("/")},
            source_ip="192.0.2.10",
            claims=None,
            account_id="123456789012",
        )
        answer = self._app.handler(event, make_context("test-api", 512, 29))
        text = answer.get("body") or ""
        try:
            document = json.loads(text) if text else None
        except ValueError:
            document = text
        headers_out = {str(k).lower(): str(v) for k, v in (answer.get("headers") or {}).items()}
        return Answer(int(answer["statusCode"]), document, headers_out)


@pytest.fixture(scope="session")
def tokens() -> TokenFactory:
    return TokenFactory()


@pytest.fixture(scope="session")
def jwks_url(tokens: TokenFactory) -> Iterator[str]:
    """The pool's keys over HTTP, as Cognito publishes them (pyjwt fetches only http(s))."""
    document = json.dumps(tokens.jwks()).encode()

    class Keys(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Keys)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    host, port = server.server_address[:2]
    yield f"http://{host!s}:{port}/{POOL_ID}/.well-known/jwks.json"
    server.shutdown()
    server.server_close()


@pytest.fixture
def api(
    store: DynamoDBStore,
    jwks_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[ApiCaller]:
    monkeypatch.setenv("MERGE_ASSIST_RESOURCE_PREFIX", "test")
    monkeypatch.setenv("MERGE_ASSIST_TOKEN_ISSUER", ISSUER)
    monkeypatch.setenv("MERGE_ASSIST_USER_POOL_ID", POOL_ID)
    monkeypatch.setenv("MERGE_ASSIST_USER_POOL_CLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("MERGE_ASSIST_JWKS_URL", jwks_url)
    monkeypatch.setenv("MERGE_ASSIST_WEBHOOK_URL", WEBHOOK_URL)
    monkeypatch.setenv("MERGE_ASSIST_GITLAB_URL", "https://gitlab.example.test")
    monkeypatch.setenv("POWERTOOLS_TRACE_DISABLED", "true")
    clear_caches()
    # The handler's store must be the test's (same moto table, same fake clock).
    from functions.api import wiring  # noqa: PLC0415

    monkeypatch.setattr(wiring, "store", lambda: store)
    caller = ApiCaller(RecordedExecutions())
    # Read from the caller at each use, so a test may swap any of them.
    monkeypatch.setattr(wiring, "executions", lambda: caller.executions)
    # Nothing reaches GitLab or the projects' AWS resources: in-memory fakes stand in.
    monkeypatch.setattr(wiring, "gitlab", lambda: caller.gitlab)
    monkeypatch.setattr(wiring, "infrastructure", lambda: caller.infrastructure)
    monkeypatch.setattr(wiring, "operations", lambda: caller.operations)
    yield caller
    clear_caches()


def seed_project(
    api: ApiCaller, store: DynamoDBStore, make_mr: MakeMR, project_id: int, path: str
) -> None:
    """A connected project as it looks while it works: in the table, in GitLab with its
    hook, with its AWS resources; on ``main`` a batch tests !16 and holds the branch lock
    while !11-!14 wait (!14 as a hotfix), a batch landed !10 before, !17 is not ready;
    on ``release`` !15 waits and nothing runs, so whatever starts the queues starts it.
    Its event log has one entry."""
    store.save_project(
        ProjectConfig(project_id=project_id, path=path, target_branches=["main", "release"])
    )
    for offset, iid in enumerate((11, 12, 13)):
        store.save_merge_request(
            make_mr(iid, project_id=project_id, ready_since=T0 + timedelta(minutes=offset))
        )
    store.save_merge_request(make_mr(14, project_id=project_id, hotfix=True))
    store.save_merge_request(make_mr(15, project_id=project_id, target_branch="release"))
    store.save_merge_request(
        make_mr(17, project_id=project_id, status=StatusCategory.NOT_READY, ready_since=None)
    )
    store.save_merge_request(
        make_mr(10, project_id=project_id, status=StatusCategory.MERGED, ready_since=None)
    )
    store.save_batch(
        Batch(
            id=f"{project_id}-main-landed",
            project_id=project_id,
            target_branch="main",
            strategy=Strategy.BATCH,
            merge_requests=[10],
            landed=[10],
            state=BatchState.LANDED,
            created_at=T0 - timedelta(hours=1),
            steps=[BatchStep(kind=BatchStepKind.LANDED, at=T0 - timedelta(minutes=30))],
        )
    )
    running = store.save_batch(
        Batch(
            id=f"{project_id}-main-seed",
            project_id=project_id,
            target_branch="main",
            strategy=Strategy.BATCH,
            merge_requests=[16],
            batch_branch="merge-assist/batch/main",
            testing_sha=f"{16:040x}",
            tested_length=1,
            state=BatchState.TESTING,
            execution_name=f"{project_id}-main-seed",
            created_at=T0,
            steps=[BatchStep(kind=BatchStepKind.SELECTED, at=T0, merge_requests=[16])],
        )
    )
    store.save_merge_request(
        make_mr(16, project_id=project_id, status=StatusCategory.TESTING, batch_id=running.id)
    )
    store.acquire_branch_lock(project_id, "main", running.id, timedelta(hours=2))
    store.append_audit(
        AuditEntry(
            project_id=project_id,
            id=f"config_changed-seed-{project_id}",
            at=T0,
            action=AuditAction.CONFIG_CHANGED,
            actor="ada",
            summary="changed batch_size",
            details={"changes": {"batch_size": {"from": 4, "to": 5}}},
        )
    )
    api.gitlab.add_project(project_id, path)
    api.infrastructure.connect(project_id)
    api.gitlab.ensure_hook(
        project_id, WEBHOOK_URL, api.infrastructure.secrets[project_id].secret_token
    )

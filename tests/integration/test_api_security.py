"""Who may call what: every operation of the API for every role, on the caller's own
project, on another one and on one that does not exist; forged and misdirected tokens;
and no token in the logs.

A refused request must answer 403 (401 for a bad token) and change nothing: not the
table, not GitLab's hooks, not a project's AWS resources, and start no workflow.

Each test seeds its world once; its cells run as subtests against it, and a cell that
changed the world (an allowed change) puts it back before the next, checked by a full
scan. So every cell starts from the same seeded world, at a fraction of the cost of
seeding a table per cell."""

from __future__ import annotations

import base64
import copy
import hashlib
import hmac
import importlib
import json
import logging
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import boto3
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from functions.api import app as app_module
from functions.api.app import openapi_document
from merge_assist.adapters.dynamodb_store import DynamoDBStore
from merge_assist.platform.access import Grant, Role
from merge_assist.platform.resources import TABLE
from tests.conftest import MakeMR
from tests.integration.api_harness import (
    CLIENT_ID,
    ISSUER,
    KID,
    POOL_ID,
    Answer,
    ApiCaller,
    TokenFactory,
    api,
    jwks_url,
    seed_project,
    tokens,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb.client import DynamoDBClient
    from mypy_boto3_dynamodb.service_resource import Table

__all__ = ["api", "jwks_url", "tokens"]  # fixtures

API_PREFIX = "/api/v1"
OWN, OTHER, UNKNOWN = 1, 2, 99
SCOPES = {"own": OWN, "other": OTHER, "unknown": UNKNOWN}

# role → (username, Cognito groups, the roles of their grant on their own project).
USERS: dict[str, tuple[str, list[str], list[Role]]] = {
    "admin": ("ada", ["admin"], []),  # global: needs no grant
    "project_owner": ("owen", ["project_owner"], [Role.PROJECT_OWNER]),
    "priority_manager": ("pia", ["priority_manager"], [Role.PRIORITY_MANAGER]),
    "viewer": ("vera", ["viewer"], [Role.VIEWER]),
    # Signed in, granted viewer by an admin, but in no Merge Assist group yet.
    "no_group": ("nora", [], [Role.VIEWER]),
}
# Holds a grant on both projects: whose grant the grant operations change.
GRACE = "grace"


# -- the world every test starts from ------------------------------------------------------


@dataclass
class World:
    api: ApiCaller
    tokens: TokenFactory
    client: DynamoDBClient
    table_name: str
    # What it was once seeded; every cell starts from it and leaves it so.
    pristine: dict[str, Any] = field(default_factory=dict)
    _pristine_items: list[dict[str, Any]] = field(default_factory=list)
    _pristine_fakes: tuple[Any, ...] = ()
    # The items the last snapshot saw.
    _scanned: list[dict[str, Any]] = field(default_factory=list)

    def token_of(self, role: str) -> str:
        username, groups, _roles = USERS[role]
        return self.tokens.token(username, *groups)

    def _items(self) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        page = self.client.scan(TableName=self.table_name, ConsistentRead=True)
        items.extend(page["Items"])
        while "LastEvaluatedKey" in page:
            page = self.client.scan(
                TableName=self.table_name,
                ConsistentRead=True,
                ExclusiveStartKey=page["LastEvaluatedKey"],
            )
            items.extend(page["Items"])
        return items

    def snapshot(self) -> dict[str, Any]:
        """Every item of the table (a full scan, in a stable order) and every change the
        API can make outside it."""
        self._scanned = self._items()
        rows = sorted(json.dumps(item, sort_keys=True) for item in self._scanned)
        return {"table": rows, **self.api.outside_state()}

    def seeded(self) -> None:
        self.pristine = self.snapshot()
        self._pristine_items = self._scanned
        self._pristine_fakes = copy.deepcopy(
            (self.api.gitlab, self.api.infrastructure, self.api.operations)
        )

    def restore(self) -> None:
        """Back to the seeded world from the last snapshot taken: the table item by item,
        the fakes, the workflow starts; then checked with a full scan."""
        key = (TABLE.partition_key, TABLE.sort_key)

        def identity(item: dict[str, Any]) -> str:
            return json.dumps([item[name] for name in key], sort_keys=True)

        wanted = {identity(item): item for item in self._pristine_items}
        current = {identity(item): item for item in self._scanned}
        for name, item in current.items():
            if name not in wanted:
                self.client.delete_item(
                    TableName=self.table_name, Key={part: item[part] for part in key}
                )
        for name, item in wanted.items():
            if current.get(name) != item:
                self.client.put_item(TableName=self.table_name, Item=item)
        fakes = copy.deepcopy(self._pristine_fakes)
        self.api.gitlab, self.api.infrastructure, self.api.operations = fakes
        self.api.executions.started.clear()
        assert self.snapshot() == self.pristine, "the world could not be restored"

    def changes(self) -> list[str]:
        """What differs from the seeded world now (nothing: an empty list); the world is
        put back before this returns."""
        now = self.snapshot()
        if now == self.pristine:
            return []
        before, after = set(self.pristine["table"]), set(now["table"])
        found = [f"item gone: {row}" for row in sorted(before - after)]
        found += [f"item new or changed: {row}" for row in sorted(after - before)]
        found += [
            f"{name}: {self.pristine[name]!r} → {now[name]!r}"
            for name in now
            if name != "table" and now[name] != self.pristine[name]
        ]
        self.restore()
        return found


@pytest.fixture
def world(
    api: ApiCaller, tokens: TokenFactory, store: DynamoDBStore, table: Table, make_mr: MakeMR
) -> World:
    """Projects 1 and 2 connected (in the table, in GitLab with their hook, with their
    AWS resources), each with a queue, a running and a landed batch and an event; every
    user but the admin holds a grant on project 1; project 3 is in GitLab only."""
    for project_id, path in ((OWN, "group/one"), (OTHER, "group/two")):
        seed_project(api, store, make_mr, project_id, path)
        store.save_grant(
            Grant(username=GRACE, project_id=project_id, roles=[Role.VIEWER], granted_by="ada")
        )
    api.gitlab.add_project(3, "group/three")
    for username, _groups, roles in USERS.values():
        if roles:
            store.save_grant(
                Grant(username=username, project_id=OWN, roles=roles, granted_by="ada")
            )
    # A plain client: the resource's own speaks Python types, not the items as stored.
    client = boto3.client("dynamodb")
    built = World(api=api, tokens=tokens, client=client, table_name=table.name)
    built.seeded()
    return built


# -- the matrix ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    path: str
    body: Any = None
    query: dict[str, Any] | None = None


VIEW = frozenset({"project_owner", "priority_manager", "viewer"})
CONFIGURE = frozenset({"project_owner"})
PRIORITIZE = frozenset({"priority_manager"})
ADMINISTER: frozenset[str] = frozenset()


def _shown_by_me(body: Any) -> set[int]:
    return {int(project_id) for project_id in body["projects"]}


def _shown_by_projects(body: Any) -> set[int]:
    return {view["config"]["project_id"] for view in body}


def _shown_by_health(body: Any) -> set[int]:
    return {project["project_id"] for project in body["projects"]}


@dataclass(frozen=True)
class Row:
    method: str
    template: str
    # Which roles besides admin may, on a project they hold that role on; None: any user
    # in a Merge Assist group, whatever the project (the answer shows only theirs).
    may: frozenset[str] | None
    request: Callable[[int], Call]
    # The answer to an allowed caller, for the own, the other and the unknown project.
    answers: tuple[int, int, int]
    # The scopes where an allowed call changes something (a read never does, nor
    # repeating a connection, nor a 404).
    changes: frozenset[str] = field(default_factory=frozenset)
    # For operations that list projects: which project ids an answer shows.
    shows: Callable[[Any], set[int]] | None = None

    @property
    def key(self) -> str:
        return f"{self.method} {self.template}"


WRITES = frozenset({"own", "other"})


def _connect(project_id: int) -> Call:
    # A project GitLab has and Merge Assist not yet; one connected already (repeating it
    # changes nothing); one GitLab does not have.
    project = {OWN: "group/three", OTHER: 2}.get(project_id, "group/missing")
    return Call("/projects", body={"project": project})


ROWS: tuple[Row, ...] = (
    Row("GET", "/me", None, lambda p: Call("/me"), (200, 200, 200), shows=_shown_by_me),
    Row(
        "GET",
        "/projects",
        None,
        lambda p: Call("/projects"),
        (200, 200, 200),
        shows=_shown_by_projects,
    ),
    Row("POST", "/projects", ADMINISTER, _connect, (201, 200, 404), frozenset({"own"})),
    Row("GET", "/projects/{project_id}", VIEW, lambda p: Call(f"/projects/{p}"), (200, 200, 404)),
    Row(
        "DELETE",
        "/projects/{project_id}",
        ADMINISTER,
        lambda p: Call(f"/projects/{p}"),
        (204, 204, 404),
        WRITES,
    ),
    Row(
        "PUT",
        "/projects/{project_id}/config",
        CONFIGURE,
        lambda p: Call(f"/projects/{p}/config", body={"batch_size": 3}),
        (200, 200, 404),
        WRITES,
    ),
    Row(
        "GET",
        "/projects/{project_id}/mrs",
        VIEW,
        lambda p: Call(f"/projects/{p}/mrs", query={"category": "queued"}),
        (200, 200, 404),
    ),
    Row(
        "GET",
        "/projects/{project_id}/mrs/{iid}",
        VIEW,
        lambda p: Call(f"/projects/{p}/mrs/11"),
        (200, 200, 404),
    ),
    Row(
        "POST",
        "/projects/{project_id}/mrs/{iid}/priority",
        PRIORITIZE,
        lambda p: Call(f"/projects/{p}/mrs/13/priority", body={"before": 11}),
        (200, 200, 404),
        WRITES,
    ),
    Row(
        "POST",
        "/projects/{project_id}/mrs/{iid}/hotfix",
        PRIORITIZE,
        lambda p: Call(f"/projects/{p}/mrs/12/hotfix"),
        (200, 200, 404),
        WRITES,
    ),
    Row(
        "DELETE",
        "/projects/{project_id}/mrs/{iid}/hotfix",
        PRIORITIZE,
        lambda p: Call(f"/projects/{p}/mrs/14/hotfix"),
        (200, 200, 404),
        WRITES,
    ),
    Row(
        "GET",
        "/projects/{project_id}/batches",
        VIEW,
        lambda p: Call(f"/projects/{p}/batches", query={"limit": 10}),
        (200, 200, 404),
    ),
    Row(
        "GET",
        "/batches/{batch_id}",
        VIEW,
        lambda p: Call(f"/batches/{p}-main-seed"),
        (200, 200, 404),
    ),
    Row(
        "GET",
        "/projects/{project_id}/events",
        VIEW,
        lambda p: Call(f"/projects/{p}/events", query={"limit": 5}),
        (200, 200, 404),
    ),
    Row(
        "GET",
        "/grants",
        ADMINISTER,
        lambda p: Call("/grants", query={"project_id": p}),
        (200, 200, 200),
    ),
    Row(
        "PUT",
        "/projects/{project_id}/grants/{username}",
        ADMINISTER,
        lambda p: Call(
            f"/projects/{p}/grants/{GRACE}", body={"roles": ["viewer", "priority_manager"]}
        ),
        (200, 200, 404),
        WRITES,
    ),
    Row(
        "DELETE",
        "/projects/{project_id}/grants/{username}",
        ADMINISTER,
        lambda p: Call(f"/projects/{p}/grants/{GRACE}"),
        (204, 204, 404),
        WRITES,
    ),
    Row("GET", "/health", None, lambda p: Call("/health"), (200, 200, 200), shows=_shown_by_health),
)
ROWS_BY_KEY = {row.key: row for row in ROWS}


def expected_status(row: Row, role: str, scope: str) -> int:
    allowed = row.answers[list(SCOPES).index(scope)]
    if role == "no_group":
        return 403
    if role == "admin" or row.may is None:
        return allowed
    return allowed if scope == "own" and role in row.may else 403


def test_the_matrix_has_a_row_for_every_operation() -> None:
    documented = {
        f"{method.upper()} {path.removeprefix(API_PREFIX)}"
        for path, operations in openapi_document()["paths"].items()
        for method in operations
    }

    assert len(ROWS_BY_KEY) == len(ROWS), "two rows for one operation"
    assert sorted(ROWS_BY_KEY) == sorted(documented)


def _send(world: World, row: Row, token: str, scope: str) -> Answer:
    call = row.request(SCOPES[scope])
    return world.api.call(row.method, call.path, token=token, body=call.body, query=call.query)


def check_cell(world: World, row: Row, role: str, scope: str) -> None:
    answer = _send(world, row, world.token_of(role), scope)
    changed = world.changes()

    expected = expected_status(row, role, scope)
    assert answer.status == expected, answer.body
    if expected == 403:
        assert answer.headers["content-type"].startswith("application/json")
        assert set(answer.body) == {"message"}
        # Whether the project exists is none of a refused caller's business.
        assert "not found" not in answer.body["message"].lower()
        assert not changed, "a refused request changed something"
        return
    if scope in row.changes:
        assert changed, "an allowed change changed nothing"
    else:
        assert not changed, "a read, or a call that changes nothing, did"
    if row.shows is not None:
        assert row.shows(answer.body) == ({OWN, OTHER} if role == "admin" else {OWN})


@pytest.mark.parametrize("role", list(USERS))
def test_matrix(world: World, role: str, subtests: pytest.Subtests) -> None:
    """Every operation on the own, the other and an unknown project, as one role."""
    for row in ROWS:
        for scope in SCOPES:
            with subtests.test(operation=row.key, scope=scope):
                check_cell(world, row, role, scope)


def test_groups_that_only_look_like_ours_give_nothing(
    world: World, subtests: pytest.Subtests
) -> None:
    # Validly signed: Cognito groups of these names could exist in the pool.
    token = world.tokens.token("ada", "Admin", "ADMIN", "admins", " admin", "developers")
    for row in ROWS:
        with subtests.test(operation=row.key):
            answer = _send(world, row, token, "own")
            assert answer.status == 403, answer.body
            assert not world.changes()


# -- forged and misdirected tokens ---------------------------------------------------------


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _segment(document: dict[str, Any]) -> str:
    return _b64(json.dumps(document, separators=(",", ":")).encode())


def _unsigned(header: dict[str, Any], claims: dict[str, Any]) -> str:
    return f"{_segment(header)}.{_segment(claims)}."


def _hmac_signed(claims: dict[str, Any], secret: bytes) -> str:
    """HS256 by hand: pyjwt itself refuses a PEM key as an HMAC secret."""
    signing_input = f"{_segment({'alg': 'HS256', 'typ': 'JWT', 'kid': KID})}.{_segment(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def _public_pem(tokens: TokenFactory, format: serialization.PublicFormat) -> bytes:
    return tokens.key.public_key().public_bytes(serialization.Encoding.PEM, format)


def _admin(tokens: TokenFactory, **changes: Any) -> dict[str, Any]:
    """An admin's access token's claims, changed; a change to None removes the claim."""
    claims = tokens.claims("ada", ["admin"])
    for name, value in changes.items():
        if value is None:
            claims.pop(name, None)
        else:
            claims[name] = value
    return claims


def _forged_groups(tokens: TokenFactory) -> str:
    header, _payload, signature = tokens.token("vera", "viewer").split(".")
    claims = tokens.claims("vera", ["viewer"])
    claims["cognito:groups"] = ["viewer", "admin"]
    return f"{header}.{_segment(claims)}.{signature}"


def _id_token(tokens: TokenFactory, *, like_access: bool) -> str:
    claims = tokens.claims("ada", ["admin"], token_use="id")
    if like_access:  # everything an access token has: only token_use tells them apart
        claims.update(client_id=CLIENT_ID, username="ada")
    return tokens.sign(claims)


_OTHER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
NOW = int(time.time())
HEADER = {"typ": "JWT", "kid": KID}

# name → the Authorization header a forger sends (None: none at all).
ATTACKS: dict[str, Callable[[TokenFactory], str | None]] = {
    "no Authorization header": lambda t: None,
    "an empty Authorization header": lambda t: "",
    "Basic credentials": lambda t: "Basic " + base64.b64encode(b"ada:hunter2").decode(),
    "a valid token under another scheme": lambda t: "Token " + t.token("ada", "admin"),
    "Bearer and nothing": lambda t: "Bearer ",
    "a garbage token": lambda t: "Bearer not-a-jwt",
    "three garbage segments": lambda t: "Bearer eyJhbGciOi.garbage.garbage",
    "alg none": lambda t: "Bearer " + _unsigned({**HEADER, "alg": "none"}, _admin(t)),
    "alg None": lambda t: "Bearer " + _unsigned({**HEADER, "alg": "None"}, _admin(t)),
    "alg NONE": lambda t: "Bearer " + _unsigned({**HEADER, "alg": "NONE"}, _admin(t)),
    "RS256 without a signature": lambda t: (
        "Bearer " + _unsigned({**HEADER, "alg": "RS256"}, _admin(t))
    ),
    "HS256 keyed with the public key's PEM": lambda t: (
        "Bearer "
        + _hmac_signed(_admin(t), _public_pem(t, serialization.PublicFormat.SubjectPublicKeyInfo))
    ),
    "HS256 keyed with the public key's PKCS#1 PEM": lambda t: (
        "Bearer " + _hmac_signed(_admin(t), _public_pem(t, serialization.PublicFormat.PKCS1))
    ),
    "RS512 with the pool's key": lambda t: "Bearer " + t.sign(_admin(t), algorithm="RS512"),
    "PS256 with the pool's key": lambda t: "Bearer " + t.sign(_admin(t), algorithm="PS256"),
    "another RSA key under the pool's kid": lambda t: "Bearer " + t.sign(_admin(t), key=_OTHER_KEY),
    "a kid the pool does not have": lambda t: "Bearer " + t.sign(_admin(t), kid="rotated-out"),
    "no kid": lambda t: "Bearer " + jwt.encode(_admin(t), t.key, algorithm="RS256"),
    "expired": lambda t: (
        "Bearer " + t.sign(_admin(t, iat=NOW - 7200, auth_time=NOW - 7200, exp=NOW - 60))
    ),
    "not valid before an hour from now": lambda t: "Bearer " + t.sign(_admin(t, nbf=NOW + 3600)),
    "no exp": lambda t: "Bearer " + t.sign(_admin(t, exp=None)),
    "another pool's issuer": lambda t: (
        "Bearer " + t.sign(_admin(t, iss=ISSUER.replace(POOL_ID, "eu-west-1_Elsewhere")))
    ),
    "no issuer": lambda t: "Bearer " + t.sign(_admin(t, iss=None)),
    "another app client": lambda t: "Bearer " + t.sign(_admin(t, client_id="another-client")),
    "no client_id": lambda t: "Bearer " + t.sign(_admin(t, client_id=None)),
    "no token_use": lambda t: "Bearer " + t.sign(_admin(t, token_use=None)),
    "an id token": lambda t: "Bearer " + _id_token(t, like_access=False),
    "an id token with everything an access token has": lambda t: (
        "Bearer " + _id_token(t, like_access=True)
    ),
    "no username": lambda t: "Bearer " + t.sign(_admin(t, username=None)),
    "an empty username": lambda t: "Bearer " + t.sign(_admin(t, username="")),
    "a username that is not a string": lambda t: "Bearer " + t.sign(_admin(t, username=["ada"])),
    "a viewer's token with admin added to its groups": lambda t: "Bearer " + _forged_groups(t),
}

# A read, and changes that would show: a config change, a hotfix (which starts the idle
# release queue) and a disconnection (GitLab's hook and the AWS resources go).
ATTACKED: tuple[tuple[str, str, Any], ...] = (
    ("GET", "/projects/1", None),
    ("PUT", "/projects/1/config", {"batch_size": 2}),
    ("POST", "/projects/1/mrs/12/hotfix", None),
    ("DELETE", "/projects/2", None),
)


def _attack(world: World, authorization: str | None) -> list[Answer]:
    headers = {} if authorization is None else {"authorization": authorization}
    return [
        world.api.call(method, path, body=body, headers=headers) for method, path, body in ATTACKED
    ]


def test_forged_and_misdirected_tokens_are_401_and_change_nothing(
    world: World, subtests: pytest.Subtests
) -> None:
    for name, forge in ATTACKS.items():
        with subtests.test(attack=name):
            answers = _attack(world, forge(world.tokens))
            assert [a.status for a in answers] == [401] * len(ATTACKED)
            # The answer says no more than that: no reason for a forger to learn from.
            assert all(a.body == {"message": "Unauthorized"} for a in answers)
            assert not world.changes()
    # The control: a genuine admin token reaches every target and changes things there.
    answers = _attack(world, "Bearer " + world.tokens.token("ada", "admin"))
    assert [a.status for a in answers] == [200, 200, 200, 204]
    assert world.api.executions.started
    assert 2 not in world.api.infrastructure.queues
    assert world.changes()


def test_a_signed_in_user_in_no_group_is_refused_everything(
    world: World, subtests: pytest.Subtests
) -> None:
    # Granted a role by an admin, but not (yet) in its Cognito group.
    token = world.token_of("no_group")
    for row in ROWS:
        with subtests.test(operation=row.key):
            answer = _send(world, row, token, "own")
            assert answer.status == 403
            assert "none of the Merge Assist groups" in answer.body["message"]
            assert not world.changes()


# -- logs ---------------------------------------------------------------------------------


class _CurrentStdout:
    """Writes to whatever ``sys.stdout`` is when written to (capsys' during a test)."""

    def write(self, text: str) -> int:
        return sys.stdout.write(text)

    def flush(self) -> None:
        sys.stdout.flush()


@pytest.fixture
def handler_log(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[[], str]:
    """What the API handler logs, as Lambda ships it: Powertools' JSON lines on stdout.
    Its handler keeps the stdout of the moment it was built, so it is pointed at the
    stdout of the moment it writes."""
    handler = app_module.logger.logger_handler
    assert isinstance(handler, logging.StreamHandler)
    monkeypatch.setattr(handler, "stream", _CurrentStdout())
    capsys.readouterr()
    return lambda: capsys.readouterr().out


def _lines(logged: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in logged.splitlines() if line.startswith("{")]


def _secret_parts(token: str) -> list[str]:
    """The token, and each of its parts long enough not to turn up by chance."""
    parts = [token, *token.split(".")]
    return [part for part in parts if len(part) >= 16]


def test_a_forged_token_is_not_logged(world: World, handler_log: Callable[[], str]) -> None:
    forged = _forged_groups(world.tokens)

    answer = world.api.call("PUT", "/projects/1/config", token=forged, body={"batch_size": 2})

    logged = handler_log()
    assert answer.status == 401
    assert "refused: not authenticated" in logged, "the handler's log was not captured"
    for part in _secret_parts(forged):
        assert part not in logged


def test_no_refused_token_is_logged(world: World, handler_log: Callable[[], str]) -> None:
    for name, forge in ATTACKS.items():
        authorization = forge(world.tokens)
        world.api.call(
            "PUT",
            "/projects/1/config",
            body={"batch_size": 2},
            headers=({} if authorization is None else {"authorization": authorization}),
        )
        logged = handler_log()
        assert "refused: not authenticated" in logged, name
        for part in _secret_parts((authorization or "").removeprefix("Bearer ")):
            assert part not in logged, name


def test_a_refusal_is_not_logged_under_the_previous_callers_name(
    world: World, handler_log: Callable[[], str]
) -> None:
    # A warm container: the admin's request, then one without a valid token, then one of
    # a signed-in user in no group.
    assert world.api.call("GET", "/me", token=world.token_of("admin")).status == 200
    handler_log()

    unauthenticated = world.api.call("GET", "/me", token=_forged_groups(world.tokens))
    [refused] = [
        line for line in _lines(handler_log()) if line["message"] == "refused: not authenticated"
    ]
    no_group = world.api.call("GET", "/me", token=world.token_of("no_group"))
    [forbidden] = [line for line in _lines(handler_log()) if line["message"] == "refused: no role"]

    assert (unauthenticated.status, no_group.status) == (401, 403)
    # Nobody was authenticated: the line names no one, least of all the admin.
    assert refused.get("username") is None, refused
    assert forbidden.get("username") in (None, "nora"), forbidden


@pytest.fixture
def api_logging_events(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The API's handler as built when POWERTOOLS_LOGGER_LOG_EVENT is on (an operator's
    switch for debugging), which Powertools reads when the handler is decorated."""
    monkeypatch.setenv("POWERTOOLS_LOGGER_LOG_EVENT", "true")
    importlib.reload(app_module)
    try:
        yield
    finally:
        monkeypatch.delenv("POWERTOOLS_LOGGER_LOG_EVENT")
        importlib.reload(app_module)


@pytest.mark.usefixtures("api_logging_events")
def test_no_token_is_logged_even_when_events_are(
    world: World, handler_log: Callable[[], str]
) -> None:
    # As the WebSocket handler does (log_event=False whatever the switch says): the
    # event holds the bearer token.
    forged = _forged_groups(world.tokens)
    genuine = world.token_of("viewer")

    refused = world.api.call("GET", "/projects/1", token=forged)
    allowed = world.api.call("GET", "/projects/1", token=genuine)

    logged = handler_log()
    assert (refused.status, allowed.status) == (401, 200)
    for part in _secret_parts(forged) + _secret_parts(genuine):
        assert part not in logged

"""The dashboard API's behaviour, called as API Gateway calls it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from functions.api.openapi import render
from local.provision import REPO_ROOT
from merge_assist.adapters.dynamodb_store import DynamoDBStore
from merge_assist.audit.models import QUEUE_ACTOR, AuditAction, AuditEntry
from merge_assist.platform.access import Grant, Role
from merge_assist.platform.config import ProjectConfig
from merge_assist.queue.models import Reason, ReasonCode, StatusCategory
from tests.conftest import T0, MakeMR
from tests.integration.api_harness import (
    ApiCaller,
    FakeGitLab,
    TokenFactory,
    api,
    jwks_url,
    tokens,
)

__all__ = ["api", "jwks_url", "tokens"]  # fixtures


@pytest.fixture
def projects(store: DynamoDBStore) -> list[ProjectConfig]:
    return [
        store.save_project(ProjectConfig(project_id=1, path="group/one")),
        store.save_project(ProjectConfig(project_id=2, path="group/two")),
    ]


def test_projects_listed_are_only_those_granted(
    api: ApiCaller, tokens: TokenFactory, store: DynamoDBStore, projects: list[ProjectConfig]
) -> None:
    store.save_grant(Grant(username="vera", project_id=2, roles=[Role.VIEWER], granted_by="a"))

    seen = api.call("GET", "/projects", token=tokens.token("vera", "viewer"))
    everything = api.call("GET", "/projects", token=tokens.token("ada", "admin"))

    assert seen.status == 200
    assert [p["config"]["project_id"] for p in seen.body] == [2]
    assert seen.body[0]["roles"] == ["viewer"]
    assert [p["config"]["project_id"] for p in everything.body] == [1, 2]


def test_a_grant_without_the_group_gives_nothing(
    api: ApiCaller, tokens: TokenFactory, store: DynamoDBStore, projects: list[ProjectConfig]
) -> None:
    store.save_grant(
        Grant(username="pam", project_id=1, roles=[Role.PROJECT_OWNER], granted_by="a")
    )

    # In the viewer group only: the project_owner grant does not make her an owner.
    answer = api.call(
        "PUT", "/projects/1/config", token=tokens.token("pam", "viewer"), body={"batch_size": 2}
    )

    assert answer.status == 403
    assert store.get_project(1).batch_size == 5


def test_config_change_is_validated_saved_and_audited(
    api: ApiCaller, tokens: TokenFactory, store: DynamoDBStore, projects: list[ProjectConfig]
) -> None:
    store.save_grant(
        Grant(username="owen", project_id=1, roles=[Role.PROJECT_OWNER], granted_by="a")
    )
    owner = tokens.token("owen", "project_owner")

    changed = api.call("PUT", "/projects/1/config", token=owner, body={"batch_size": 3})
    refused = api.call("PUT", "/projects/1/config", token=owner, body={"batch_size": 0})
    unknown = api.call("PUT", "/projects/1/config", token=owner, body={"colour": "red"})
    events = api.call("GET", "/projects/1/events", token=owner)

    assert changed.status == 200
    assert changed.body["batch_size"] == 3
    assert refused.status == 400
    assert unknown.status == 400
    assert store.get_project(1).batch_size == 3
    assert events.status == 200
    [entry] = events.body["items"]
    assert entry["action"] == AuditAction.CONFIG_CHANGED.value
    assert entry["actor"] == "owen"
    assert entry["details"]["changes"]["batch_size"] == {"from": 5, "to": 3}


def test_a_config_change_starts_the_waiting_queues_unless_it_pauses_them(
    api: ApiCaller,
    tokens: TokenFactory,
    store: DynamoDBStore,
    make_mr: MakeMR,
    projects: list[ProjectConfig],
) -> None:
    store.save_merge_request(make_mr(5, project_id=1))
    admin = tokens.token("ada", "admin")

    paused = api.call("PUT", "/projects/1/config", token=admin, body={"paused": True})
    started_while_paused = list(api.executions.started)
    resumed = api.call("PUT", "/projects/1/config", token=admin, body={"paused": False})

    assert (paused.status, resumed.status) == (200, 200)
    assert started_while_paused == []
    # The resumed queue's waiting MR need not wait for the next event.
    [batch] = api.executions.started
    assert batch.startswith("1-main-")


def test_disconnecting_a_project_takes_its_grants_and_keeps_the_others(
    api: ApiCaller, tokens: TokenFactory, store: DynamoDBStore, projects: list[ProjectConfig]
) -> None:
    for project_id in (1, 2):
        store.save_grant(
            Grant(username="vera", project_id=project_id, roles=[Role.VIEWER], granted_by="a")
        )
    admin = tokens.token("ada", "admin")

    gone = api.call("DELETE", "/projects/2", token=admin)
    unknown = api.call("DELETE", "/projects/2", token=admin)

    assert (gone.status, unknown.status) == (204, 404)
    assert [g.project_id for g in store.grants_of_user("vera")] == [1]
    [entry] = store.list_audit(2, limit=10)[0]
    assert (entry.action, entry.actor) == (AuditAction.PROJECT_DISCONNECTED, "ada")


def test_merge_requests_never_judged_for_the_queue_are_not_on_the_board(
    api: ApiCaller,
    tokens: TokenFactory,
    store: DynamoDBStore,
    projects: list[ProjectConfig],
    make_mr: MakeMR,
) -> None:
    # Recorded from webhooks, never assigned to the bot: the queue's own batch MR, say.
    store.save_merge_request(make_mr(5, status=StatusCategory.NOT_READY, ready_since=None))
    store.save_merge_request(
        make_mr(
            6,
            status=StatusCategory.NOT_READY,
            ready_since=None,
            reasons=[Reason(code=ReasonCode.DRAFT, message="it is a draft")],
        )
    )
    admin = tokens.token("ada", "admin")

    listed = api.call("GET", "/projects/1/mrs", token=admin, query={"category": "not_ready"})
    project = api.call("GET", "/projects/1", token=admin)

    assert [v["merge_request"]["iid"] for v in listed.body["items"]] == [6]
    assert project.body["counts"]["not_ready"] == 1
    assert api.call("GET", "/projects/1/mrs/5", token=admin).status == 200


def test_priority_moves_and_hotfix_reorder_the_queue(
    api: ApiCaller,
    tokens: TokenFactory,
    store: DynamoDBStore,
    projects: list[ProjectConfig],
    make_mr: MakeMR,
) -> None:
    for offset, iid in enumerate((11, 12, 13, 14)):
        store.save_merge_request(make_mr(iid, ready_since=T0 + timedelta(minutes=offset)))
    store.save_grant(
        Grant(username="pia", project_id=1, roles=[Role.PRIORITY_MANAGER], granted_by="a")
    )
    pia = tokens.token("pia", "priority_manager")

    def order() -> list[int]:
        listed = api.call("GET", "/projects/1/mrs", token=pia, query={"category": "queued"})
        assert listed.status == 200
        views = sorted(listed.body["items"], key=lambda v: v["position"])
        return [v["merge_request"]["iid"] for v in views]

    assert order() == [11, 12, 13, 14]
    assert (
        api.call("POST", "/projects/1/mrs/14/priority", token=pia, body={"before": 12}).status
        == 200
    )
    assert order() == [11, 14, 12, 13]
    assert (
        api.call("POST", "/projects/1/mrs/11/priority", token=pia, body={"after": 13}).status == 200
    )
    assert order() == [14, 12, 13, 11]
    assert (
        api.call("POST", "/projects/1/mrs/13/priority", token=pia, body={"priority": 5}).status
        == 200
    )
    assert order() == [13, 14, 12, 11]
    bad = api.call(
        "POST", "/projects/1/mrs/13/priority", token=pia, body={"priority": 1, "before": 12}
    )
    assert bad.status == 400
    hotfix = api.call("POST", "/projects/1/mrs/11/hotfix", token=pia)
    assert hotfix.status == 200, hotfix.body
    assert order() == [11, 13, 14, 12]
    assert store.get_merge_request(1, 11).hotfix is True
    # The idle queue was started for the hotfix.
    assert len(api.executions.started) == 1
    kinds = [e["action"] for e in api.call("GET", "/projects/1/events", token=pia).body["items"]]
    assert kinds.count("priority_changed") == 3
    assert kinds[0] == "hotfix"


def test_moving_an_mr_that_is_not_queued_is_a_conflict(
    api: ApiCaller,
    tokens: TokenFactory,
    store: DynamoDBStore,
    projects: list[ProjectConfig],
    make_mr: MakeMR,
) -> None:
    store.save_merge_request(make_mr(21))
    store.save_merge_request(make_mr(22, status=StatusCategory.NOT_READY, ready_since=None))
    admin = tokens.token("ada", "admin")

    answer = api.call("POST", "/projects/1/mrs/22/priority", token=admin, body={"before": 21})
    hotfix = api.call("POST", "/projects/1/mrs/22/hotfix", token=admin)

    assert answer.status == 409
    assert hotfix.status == 409
    assert store.get_merge_request(1, 22).hotfix is False


def test_events_are_paged_newest_first(
    api: ApiCaller, tokens: TokenFactory, store: DynamoDBStore, projects: list[ProjectConfig]
) -> None:
    admin = tokens.token("ada", "admin")
    for size in range(1, 6):
        assert (
            api.call("PUT", "/projects/1/config", token=admin, body={"batch_size": size}).status
            == 200
        )

    first = api.call("GET", "/projects/1/events", token=admin, query={"limit": 2})
    second = api.call(
        "GET",
        "/projects/1/events",
        token=admin,
        query={"limit": 2, "cursor": first.body["next_cursor"]},
    )
    bogus = api.call("GET", "/projects/1/events", token=admin, query={"cursor": "bm90LWEtY3Vyc29y"})

    sizes = [
        e["details"]["changes"]["batch_size"]["to"]
        for e in first.body["items"] + second.body["items"]
    ]
    assert sizes == [5, 4, 3, 2]
    assert bogus.status == 400


def test_one_merge_requests_timeline_is_its_events_only(
    api: ApiCaller, tokens: TokenFactory, store: DynamoDBStore, projects: list[ProjectConfig]
) -> None:
    admin = tokens.token("ada", "admin")
    for iid in (7, 8):
        for at in range(3):
            store.append_audit(
                AuditEntry(
                    id=f"mr-{iid}-v{at}",
                    project_id=1,
                    at=T0 + timedelta(minutes=at),
                    actor=QUEUE_ACTOR,
                    action=AuditAction.STATUS_CHANGED,
                    summary=f"!{iid} step {at}",
                    merge_request=iid,
                )
            )
    api.call("PUT", "/projects/1/config", token=admin, body={"batch_size": 3})

    first = api.call(
        "GET", "/projects/1/events", token=admin, query={"merge_request": "7", "limit": 2}
    )
    rest = api.call(
        "GET",
        "/projects/1/events",
        token=admin,
        query={"merge_request": "7", "cursor": first.body["next_cursor"]},
    )
    everything = api.call("GET", "/projects/1/events", token=admin, query={"limit": 200})

    timeline = [e["summary"] for e in first.body["items"] + rest.body["items"]]
    assert timeline == ["!7 step 2", "!7 step 1", "!7 step 0"]
    assert rest.body["next_cursor"] is None
    assert len(everything.body["items"]) == 7


def test_grants_are_kept_by_admins(
    api: ApiCaller, tokens: TokenFactory, store: DynamoDBStore, projects: list[ProjectConfig]
) -> None:
    admin = tokens.token("ada", "admin")

    put = api.call("PUT", "/projects/2/grants/vera", token=admin, body={"roles": ["viewer"]})
    me = api.call("GET", "/me", token=tokens.token("vera", "viewer"))
    listed = api.call("GET", "/grants", token=admin, query={"project_id": 2})
    admin_role = api.call("PUT", "/projects/2/grants/vera", token=admin, body={"roles": ["admin"]})
    removed = api.call("DELETE", "/projects/2/grants/vera", token=admin)
    again = api.call("DELETE", "/projects/2/grants/vera", token=admin)

    assert put.status == 200
    assert me.body == {"username": "vera", "groups": ["viewer"], "projects": {"2": ["viewer"]}}
    assert [g["username"] for g in listed.body] == ["vera"]
    assert admin_role.status == 400
    assert removed.status == 204
    assert again.status == 404
    assert store.grants_of_user("vera") == []


def test_unknown_project_and_batch_are_404_for_admins(
    api: ApiCaller, tokens: TokenFactory, projects: list[ProjectConfig]
) -> None:
    admin = tokens.token("ada", "admin")

    assert api.call("GET", "/projects/99", token=admin).status == 404
    assert api.call("GET", "/batches/nope", token=admin).status == 404
    assert api.call("GET", "/projects/99/mrs", token=admin).status == 404
    # A viewer is not told whether a project they cannot see exists.
    assert api.call("GET", "/projects/99", token=tokens.token("v", "viewer")).status == 403


def test_the_dashboards_copy_of_the_openapi_document_is_current() -> None:
    # The dashboard's typed client is generated from this copy (`make api-types`).
    copy = REPO_ROOT / "web" / "src" / "api" / "openapi.json"

    assert copy.read_text() == render(), "run `make api-types`"


def test_openapi_document_is_public_and_says_400(api: ApiCaller) -> None:
    answer = api.call("GET", "/openapi.json")

    assert answer.status == 200
    paths = answer.body["paths"]
    assert "/api/v1/projects/{project_id}/mrs/{iid}/priority" in paths
    put_config = paths["/api/v1/projects/{project_id}/config"]["put"]
    assert "400" in put_config["responses"]
    assert "422" not in put_config["responses"]
    assert answer.body["components"]["securitySchemes"]["cognito"]["scheme"] == "bearer"


def test_path_parameters_are_decoded_as_api_gateway_does(
    api: ApiCaller, tokens: TokenFactory, store: DynamoDBStore, projects: list[ProjectConfig]
) -> None:
    admin = tokens.token("ada", "admin")

    granted = api.call(
        "PUT", "/projects/1/grants/jos%C3%A9", token=admin, body={"roles": ["viewer"]}
    )
    slash = api.call("PUT", "/projects/1/grants/a%2Fb", token=admin, body={"roles": ["viewer"]})

    assert granted.status == 200
    assert [g.project_id for g in store.grants_of_user("josé")] == [1]
    assert slash.status == 400
    assert store.grants_of_user("a/b") == []


class CountingGitLab(FakeGitLab):
    def __init__(self) -> None:
        super().__init__()
        self.probes = 0

    def current_user_id(self) -> int:
        self.probes += 1
        return super().current_user_id()


def test_the_health_page_cannot_spend_the_bots_gitlab_rate_limit(
    api: ApiCaller, tokens: TokenFactory, projects: list[ProjectConfig]
) -> None:
    counting = CountingGitLab()
    api.gitlab = counting
    token = tokens.token("ada", "admin")

    answers = [api.call("GET", "/health", token=token) for _ in range(20)]

    assert {answer.status for answer in answers} == {200}
    assert all(answer.body["gitlab"]["reachable"] for answer in answers)
    assert counting.probes == 1

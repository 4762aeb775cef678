"""Project issues, groups and group epics driven by python-gitlab."""

from __future__ import annotations

from typing import Any

import gitlab
import pytest
import requests

from local.gitlab_sim import GitLabSimulator


def _admin(sim: GitLabSimulator) -> dict[str, str]:
    return {"PRIVATE-TOKEN": sim.admin_token}


def test_issue_fields_filters_and_pagination(sim: GitLabSimulator, gl: gitlab.Gitlab) -> None:
    dev, _ = sim.create_user("dev")
    sim.create_project("app", namespace="g", members={"dev": 30})
    project = gl.projects.get("g/app")
    issue = project.issues.create(
        {
            "title": "Crash on start",
            "description": "stack trace attached",
            "labels": ["p1", "bug"],
            "assignee_ids": [dev.id],
            "weight": 3,
            "due_date": "2030-01-31",
        }
    )
    assert (issue.iid, issue.state, issue.labels, issue.weight, issue.due_date) == (
        1,
        "opened",
        ["bug", "p1"],
        3,
        "2030-01-31",
    )
    assert issue.assignee["username"] == "dev"
    assert [a["username"] for a in issue.assignees] == ["dev"]
    assert issue.author["username"] == "root"
    assert issue.project_id == project.id
    assert issue.web_url == f"{sim.url}/g/app/-/issues/1"
    assert issue.references["full"] == "g/app#1"
    # python-gitlab shadows the closed_by field with a method of the same name.
    assert (issue.closed_at, issue.attributes["closed_by"], issue.epic, issue.epic_iid) == (
        None,
        None,
        None,
        None,
    )
    assert (issue.user_notes_count, issue.confidential) == (0, False)
    # Unknown labels are created in the project, as GitLab does.
    assert sorted(lb.name for lb in project.labels.list()) == ["bug", "p1"]

    sim.create_issue("g/app", "Slow search", labels=["perf"], closed=True)
    sim.create_issue("g/app", "Docs typo", description="mentions the crash", author="dev")
    sim.create_issue("g/app", "Flaky test", labels=["bug"])
    sim.create_issue("g/app", "Old report", labels=["bug", "p1"], closed=True)

    def iids(**filters: Any) -> list[int]:
        return [i.iid for i in project.issues.list(get_all=True, **filters)]

    assert iids() == [5, 4, 3, 2, 1]
    assert iids(order_by="created_at", sort="asc") == [1, 2, 3, 4, 5]
    assert iids(state="opened") == [4, 3, 1]
    assert iids(state="closed") == [5, 2]
    assert iids(state="all", labels=["bug", "p1"]) == [5, 1]
    assert iids(labels=["bug", "perf"]) == []
    assert iids(labels="None") == [3]
    assert iids(search="CRASH") == [3, 1]
    assert iids(assignee_id=dev.id) == [1]
    assert iids(assignee_id="None") == [5, 4, 3, 2]
    assert iids(milestone="None") == [5, 4, 3, 2, 1]
    assert iids(milestone="v1.0") == []
    assert iids(author_id=dev.id) == [3]
    flaky = project.issues.get(4)
    flaky.title = "Flaky test (quarantined)"
    flaky.save()
    assert iids(order_by="updated_at", sort="desc")[0] == 4

    first = project.issues.list(per_page=2, get_all=False)
    assert [i.iid for i in first] == [5, 4]
    pages = project.issues.list(per_page=2, iterator=True)
    assert (pages.total, pages.total_pages, pages.per_page, pages.next_page) == (5, 3, 2, 2)
    assert [i.iid for i in project.issues.list(per_page=2, page=3, get_all=False)] == [1]
    page = requests.get(
        f"{sim.url}/api/v4/projects/{project.id}/issues",
        params={"per_page": 2, "page": 2},
        headers=_admin(sim),
        timeout=5,
    )
    assert (page.headers["X-Next-Page"], page.headers["X-Prev-Page"], page.headers["X-Total"]) == (
        "3",
        "1",
        "5",
    )
    assert 'rel="next"' in page.headers["Link"]


def test_issue_edits_state_events_and_labels(sim: GitLabSimulator, gl: gitlab.Gitlab) -> None:
    dev, _ = sim.create_user("dev")
    sim.create_project("app", namespace="g", members={"dev": 30})
    project = gl.projects.get("g/app")
    issue = project.issues.create({"title": "Broken", "labels": ["a", "b"]})
    created_at = issue.updated_at

    issue.state_event = "close"
    issue.save()
    assert issue.state == "closed"
    assert issue.attributes["closed_by"]["username"] == "root"
    assert issue.closed_at is not None
    assert issue.updated_at >= created_at
    assert project.issues.get(issue.iid).state == "closed"
    issue.state_event = "reopen"
    issue.save()
    assert (issue.state, issue.closed_at, issue.attributes["closed_by"]) == ("opened", None, None)

    issue.add_labels = "c"
    issue.remove_labels = "a"
    issue.save()
    assert issue.labels == ["b", "c"]
    issue.labels = ["z", "x"]
    issue.save()
    assert project.issues.get(issue.iid).labels == ["x", "z"]

    issue.title = "Broken badly"
    issue.description = "details"
    issue.assignee_ids = [dev.id]
    issue.weight = 5
    issue.due_date = "2031-02-03"
    issue.save()
    fresh = project.issues.get(issue.iid)
    assert (fresh.title, fresh.description, fresh.weight, fresh.due_date) == (
        "Broken badly",
        "details",
        5,
        "2031-02-03",
    )
    assert fresh.assignee["id"] == dev.id
    issue.assignee_ids = []
    issue.due_date = None
    issue.save()
    assert (issue.assignees, issue.due_date) == ([], None)

    issue.state_event = "explode"
    with pytest.raises(gitlab.GitlabUpdateError) as err:
        issue.save()
    assert err.value.response_code == 400
    assert project.issues.get(issue.iid).state == "opened"


def test_issue_errors_and_permissions(sim: GitLabSimulator, gl: gitlab.Gitlab) -> None:
    _, guest_token = sim.create_user("guest")
    _, reporter_token = sim.create_user("reporter")
    sim.create_project("app", namespace="g", members={"guest": 10, "reporter": 20})
    project = gl.projects.get("g/app")
    url = f"{sim.url}/api/v4/projects/{project.id}/issues"

    anonymous = requests.get(url, timeout=5)
    assert anonymous.status_code == 401
    assert anonymous.json() == {"message": "401 Unauthorized"}

    untitled = requests.post(url, json={"description": "no title"}, headers=_admin(sim), timeout=5)
    assert untitled.status_code == 400
    assert untitled.json() == {"message": "title is missing"}
    blank = requests.post(url, json={"title": " "}, headers=_admin(sim), timeout=5)
    assert (blank.status_code, blank.json()) == (400, {"message": {"title": ["can't be blank"]}})
    with pytest.raises(gitlab.GitlabHttpError) as http_err:
        gl.http_post(f"/projects/{project.id}/issues", post_data={"labels": "bug"})
    assert http_err.value.response_code == 400

    with pytest.raises(gitlab.GitlabGetError) as err:
        project.issues.get(99)
    assert (err.value.response_code, err.value.error_message) == (404, "404 Not found")
    with pytest.raises(gitlab.GitlabGetError) as err:
        gl.projects.get(999, lazy=True).issues.get(1)
    assert err.value.error_message == "404 Project Not Found"
    assert requests.get(f"{url}/99", headers=_admin(sim), timeout=5).json() == {
        "message": "404 Not found"
    }

    as_guest = gitlab.Gitlab(sim.url, private_token=guest_token).projects.get("g/app")
    as_reporter = gitlab.Gitlab(sim.url, private_token=reporter_token).projects.get("g/app")
    secret = project.issues.create({"title": "Security hole", "confidential": True})
    own = as_guest.issues.create({"title": "Guest report"})
    assert [i.iid for i in as_guest.issues.list(get_all=True)] == [own.iid]
    with pytest.raises(gitlab.GitlabGetError):
        as_guest.issues.get(secret.iid)
    assert as_reporter.issues.get(secret.iid).confidential
    own.title = "Guest report, edited"
    own.save()
    assert as_guest.issues.get(own.iid).title == "Guest report, edited"
    other = project.issues.create({"title": "Root's"})
    with pytest.raises(gitlab.GitlabUpdateError) as update_err:
        as_guest.issues.update(other.iid, {"title": "Hijacked"})
    assert update_err.value.response_code == 403


def test_groups_by_id_and_path(sim: GitLabSimulator, gl: gitlab.Gitlab) -> None:
    sim.create_project("app", namespace="team")
    sim.create_project("svc", namespace="org/platform")
    sim.create_project("mine")
    group = gl.groups.get("team")
    assert (group.name, group.path, group.full_path) == ("team", "team", "team")
    assert group.web_url == f"{sim.url}/groups/team"
    # python-gitlab shadows the projects field with the group's project manager.
    assert [p["path_with_namespace"] for p in group.attributes["projects"]] == ["team/app"]
    assert gl.groups.get(group.id).full_path == "team"
    nested = gl.groups.get("org/platform")
    assert (nested.path, nested.full_path) == ("platform", "org/platform")
    assert gl.projects.get("team/app").namespace["kind"] == "group"
    # A personal namespace is not a group.
    assert gl.projects.get("root/mine").namespace["kind"] == "user"
    for missing in ("root", "nope"):
        with pytest.raises(gitlab.GitlabGetError) as err:
            gl.groups.get(missing)
        assert (err.value.response_code, err.value.error_message) == (404, "404 Group Not Found")
    _, token = sim.create_user("outsider")
    with pytest.raises(gitlab.GitlabGetError):
        gitlab.Gitlab(sim.url, private_token=token).groups.get("team")


def test_epics_crud_filters_and_state(sim: GitLabSimulator, gl: gitlab.Gitlab) -> None:
    sim.create_project("app", namespace="team")
    group = gl.groups.get("team")
    epic = group.epics.create(
        {
            "title": "Q3 roadmap",
            "description": "what we ship",
            "labels": "roadmap,plan",
            "start_date": "2030-07-01",
            "due_date": "2030-09-30",
        }
    )
    assert (epic.iid, epic.group_id, epic.state, epic.labels) == (
        1,
        group.id,
        "opened",
        ["plan", "roadmap"],
    )
    assert (epic.start_date, epic.due_date, epic.end_date) == (
        "2030-07-01",
        "2030-09-30",
        "2030-09-30",
    )
    assert epic.web_url == f"{sim.url}/groups/team/-/epics/1"
    assert epic.references == {"short": "&1", "relative": "&1", "full": "team&1"}
    assert epic.author["username"] == "root"
    child = group.epics.create({"title": "Faster search", "parent_id": epic.id})
    assert (child.parent_id, child.parent_iid) == (epic.id, 1)
    sim.create_epic("team", "Old cleanup", labels=["debt"], closed=True)
    sim.create_epic("team", "Search revamp", description="plan it", parent=child.iid)

    def iids(**filters: Any) -> list[int]:
        return [e.iid for e in group.epics.list(get_all=True, **filters)]

    assert iids() == [4, 3, 2, 1]
    assert iids(order_by="created_at", sort="asc") == [1, 2, 3, 4]
    assert iids(state="opened") == [4, 2, 1]
    assert iids(state="closed") == [3]
    assert iids(labels=["plan", "roadmap"]) == [1]
    assert iids(search="SEARCH") == [4, 2]
    pages = group.epics.list(per_page=3, iterator=True)
    assert (pages.total, pages.total_pages) == (4, 2)
    assert [e.iid for e in group.epics.list(per_page=3, page=2, get_all=False)] == [1]

    epic.state_event = "close"
    epic.save()
    assert (epic.state, epic.closed_at is not None) == ("closed", True)
    assert group.epics.get(1).state == "closed"
    epic.state_event = "reopen"
    epic.add_labels = "q3"
    epic.remove_labels = "plan"
    epic.title = "Q3 roadmap (final)"
    epic.due_date = "2030-10-15"
    epic.save()
    fresh = group.epics.get(1)
    assert (fresh.state, fresh.closed_at, fresh.labels, fresh.title, fresh.due_date) == (
        "opened",
        None,
        ["q3", "roadmap"],
        "Q3 roadmap (final)",
        "2030-10-15",
    )
    # An epic cannot become its own descendant's child.
    with pytest.raises(gitlab.GitlabUpdateError) as cycle:
        group.epics.update(1, {"parent_id": child.id})
    assert cycle.value.response_code == 400

    with pytest.raises(gitlab.GitlabGetError) as err:
        group.epics.get(99)
    assert err.value.response_code == 404
    untitled = requests.post(
        f"{sim.url}/api/v4/groups/{group.id}/epics",
        json={"description": "no title"},
        headers=_admin(sim),
        timeout=5,
    )
    assert (untitled.status_code, untitled.json()) == (400, {"message": "title is missing"})
    assert requests.get(f"{sim.url}/api/v4/groups/team/-/epics/1", timeout=5).status_code == 401


def test_epic_issue_links_and_permissions(sim: GitLabSimulator, gl: gitlab.Gitlab) -> None:
    _, guest_token = sim.create_user("guest")
    _, dev_token = sim.create_user("dev")
    sim.create_project("app", namespace="team", members={"guest": 10, "dev": 30})
    sim.create_project("other", namespace="elsewhere")
    project = gl.projects.get("team/app")
    group = gl.groups.get("team")
    epic = group.epics.create({"title": "Launch"})
    first = project.issues.create({"title": "Write docs"})
    second = project.issues.create({"title": "Ship it", "epic_id": epic.id})
    assert (second.epic_iid, second.epic["id"], second.epic["group_id"]) == (1, epic.id, group.id)

    link = epic.issues.create({"issue_id": first.id})
    assert link.epic_issue_id == link.id
    assert link.issue["iid"] == first.iid
    assert link.epic["iid"] == epic.iid
    linked = epic.issues.list(get_all=True)
    assert [(i.iid, i.epic_iid) for i in linked] == [(second.iid, 1), (first.iid, 1)]
    assert all(i.epic_issue_id for i in linked)
    assert project.issues.get(first.iid).epic["iid"] == epic.iid
    assert [i.iid for i in project.issues.list(epic_id=epic.id)] == [second.iid, first.iid]
    assert project.issues.list(epic_id="None") == []

    with pytest.raises(gitlab.GitlabCreateError) as dup:
        epic.issues.create({"issue_id": first.id})
    assert dup.value.response_code == 409
    stranger = gl.projects.get("elsewhere/other").issues.create({"title": "Not here"})
    with pytest.raises(gitlab.GitlabCreateError) as foreign:
        epic.issues.create({"issue_id": stranger.id})
    assert foreign.value.response_code == 404
    with pytest.raises(gitlab.GitlabCreateError) as no_epic:
        project.issues.create({"title": "Orphan", "epic_id": 999})
    assert no_epic.value.response_code == 404

    # Moving an issue to another epic, and unlinking it with epic_id=0.
    later = group.epics.create({"title": "Later"})
    issue = project.issues.get(first.iid)
    issue.epic_id = later.id
    issue.save()
    assert issue.epic_iid == later.iid
    assert [i.iid for i in epic.issues.list()] == [second.iid]
    issue.epic_id = 0
    issue.save()
    assert issue.epic is None
    assert later.issues.list() == []

    as_guest = gitlab.Gitlab(sim.url, private_token=guest_token).groups.get("team")
    assert [e.title for e in as_guest.epics.list()] == ["Later", "Launch"]
    with pytest.raises(gitlab.GitlabCreateError) as forbidden:
        as_guest.epics.create({"title": "Mine"})
    assert forbidden.value.response_code == 403
    as_dev = gitlab.Gitlab(sim.url, private_token=dev_token).groups.get("team")
    assert as_dev.epics.create({"title": "Dev epic"}).author["username"] == "dev"


def test_scenario_issues_and_epics_over_rest(sim: GitLabSimulator, gl: gitlab.Gitlab) -> None:
    _, token = sim.create_user("carol")
    sim.create_project("app", namespace="team", members={"carol": 30})
    base = f"{sim.url}/api/v4/-/sim"
    group = requests.post(f"{base}/groups", json={"path": "empty"}, headers=_admin(sim), timeout=5)
    assert group.status_code == 201
    assert group.json()["full_path"] == "empty"
    assert gl.groups.get("empty").attributes["projects"] == []
    personal = requests.post(
        f"{base}/groups", json={"path": "carol"}, headers=_admin(sim), timeout=5
    )
    assert personal.status_code == 400

    epic = requests.post(
        f"{base}/groups/team/epics",
        json={"title": "Launch", "labels": ["x"], "start_date": "2030-01-01"},
        headers=_admin(sim),
        timeout=5,
    )
    assert epic.status_code == 201
    assert (epic.json()["iid"], epic.json()["start_date"]) == (1, "2030-01-01")
    issue = requests.post(
        f"{base}/projects/team%2Fapp/issues",
        json={
            "title": "Do it",
            "author": "carol",
            "assignees": ["carol"],
            "labels": ["y"],
            "weight": 2,
            "epic_iid": 1,
            "closed": True,
        },
        headers=_admin(sim),
        timeout=5,
    )
    assert issue.status_code == 201
    body = issue.json()
    assert (body["state"], body["author"]["username"], body["epic_iid"], body["weight"]) == (
        "closed",
        "carol",
        1,
        2,
    )
    assert sim.issue("team/app", body["iid"])["assignee"]["username"] == "carol"
    assert sim.epic("team", 1)["title"] == "Launch"
    refused = requests.post(
        f"{base}/projects/team%2Fapp/issues",
        json={"title": "Nope"},
        headers={"PRIVATE-TOKEN": token},
        timeout=5,
    )
    assert refused.status_code == 403

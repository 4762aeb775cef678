"""Projects: list, read, configure, connect and disconnect."""

# No "from __future__ import annotations": the resolver reads route signatures at run time.

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter

from functions.api import caller, wiring
from functions.api.schemas import (
    ConfigChange,
    Connected,
    Me,
    NewProject,
    ProjectId,
    ProjectView,
)
from merge_assist.admin import administration
from merge_assist.admin.onboarding import connect_project, disconnect_project
from merge_assist.platform.access import Action
from merge_assist.platform.config import ProjectConfig
from merge_assist.platform.settings import get_settings
from merge_assist.queue.models import StatusCategory
from merge_assist.queue.queue import for_the_queue

router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]

# Counting finished MRs would read the whole history; the board shows the live ones.
COUNTED = (
    StatusCategory.NOT_READY,
    StatusCategory.QUEUED,
    StatusCategory.BATCHING,
    StatusCategory.TESTING,
)


def _view(config: ProjectConfig) -> ProjectView:
    store = wiring.store()
    counts = {
        status: sum(
            1 for mr in store.list_merge_requests(config.project_id, status) if for_the_queue(mr)
        )
        for status in COUNTED
    }
    running = {}
    for branch in config.target_branches:
        lock = store.get_branch_lock(config.project_id, branch)
        if lock is not None:
            running[branch] = lock.batch_id
    return ProjectView(
        config=config,
        roles=sorted(caller.current().roles_on(config.project_id)),
        counts=counts,
        running_batches=running,
    )


@router.get("/me", summary="Who the caller is and what they may do where", tags=["access"])
def me() -> Me:
    principal = caller.current()
    projects = {
        str(config.project_id): sorted(principal.roles_on(config.project_id))
        for config in wiring.store().list_projects()
        if principal.may(Action.VIEW, config.project_id)
    }
    return Me(username=principal.username, groups=sorted(principal.groups), projects=projects)


@router.get("/projects", summary="The projects the caller may see", tags=["projects"])
def list_projects() -> list[ProjectView]:
    principal = caller.current()
    return [
        _view(config)
        for config in wiring.store().list_projects()
        if principal.may(Action.VIEW, config.project_id)
    ]


@router.get("/projects/<project_id>", summary="A project and its queues", tags=["projects"])
def get_project(project_id: Annotated[ProjectId, Path()]) -> ProjectView:
    caller.require(Action.VIEW, project_id)
    return _view(wiring.store().get_project(project_id))


@router.put(
    "/projects/<project_id>/config",
    summary="Change a project's queue settings; the next batch uses them",
    tags=["projects"],
)
def change_config(project_id: Annotated[ProjectId, Path()], change: ConfigChange) -> ProjectConfig:
    caller.require(Action.CONFIGURE, project_id)
    changes = change.model_dump(exclude_unset=True)
    config = administration.change_config(wiring.store(), caller.actor(), project_id, changes)
    if not config.paused:
        wiring.start_queues(project_id, f"api:{caller.actor().request_id}")
    return config


@router.post(
    "/projects",
    summary="Connect a GitLab project (repeating it changes nothing)",
    tags=["projects"],
    responses={
        200: {"description": "Already connected"},
        201: {"description": "Connected"},
    },
)
def connect(new: NewProject) -> Response[Connected]:
    caller.require(Action.ADMINISTER)
    webhook_url = get_settings().webhook_url
    if not webhook_url:
        raise RuntimeError("MERGE_ASSIST_WEBHOOK_URL is not set")
    settings = new.settings.model_dump(exclude_unset=True) if new.settings else None
    result = connect_project(
        wiring.store(),
        wiring.infrastructure(),
        wiring.gitlab(),
        new.project,
        webhook_url=webhook_url,
        settings=settings,
    )
    administration.connected(wiring.store(), caller.actor(), result.config, result.created)
    body = Connected(
        config=result.config,
        webhook_url=result.webhook_url,
        hook_id=result.hook_id,
        created=result.created,
    )
    return Response(
        status_code=201 if result.created else 200,
        content_type="application/json",
        body=body,
    )


@router.delete(
    "/projects/<project_id>",
    summary="Disconnect a project: its hook, queues, secret and settings go",
    tags=["projects"],
    responses={204: {"description": "Disconnected"}},
)
def disconnect(project_id: Annotated[ProjectId, Path()]) -> Response[None]:
    caller.require(Action.ADMINISTER)
    store = wiring.store()
    store.get_project(project_id)  # NotFoundError: nothing to disconnect
    webhook_url = get_settings().webhook_url or ""
    disconnect_project(
        store, wiring.infrastructure(), wiring.gitlab(), project_id, webhook_url=webhook_url
    )
    administration.disconnected(store, caller.actor(), project_id)
    for grant in store.list_grants(project_id):
        store.delete_grant(grant.username, project_id)
    return Response(status_code=204)

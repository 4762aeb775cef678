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
from merge_assist.platform.access import Action
from merge_assist.platform.config import ProjectConfig
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
    cars = {}
    for branch in config.target_branches:
        lock = store.get_branch_lock(config.project_id, branch)
        if lock is not None:
            running[branch] = lock.batch_id
            cars[branch] = list(lock.cars)
    return ProjectView(
        config=config,
        roles=sorted(caller.current().roles_on(config.project_id)),
        counts=counts,
        running_batches=running,
        running_cars=cars,
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
    return administration.change_config(
        wiring.store(),
        caller.actor(),
        project_id,
        change.model_dump(exclude_unset=True),
        wiring.queues(),
    )


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
    result = administration.connect(
        wiring.store(),
        wiring.infrastructure(),
        wiring.gitlab(),
        caller.actor(),
        new.project,
        webhook_url=wiring.webhook_url(),
        settings=new.settings.model_dump(exclude_unset=True) if new.settings else None,
    )
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
    administration.disconnect(
        wiring.store(),
        wiring.infrastructure(),
        wiring.gitlab(),
        caller.actor(),
        project_id,
        webhook_url=wiring.webhook_url(),
    )
    return Response(status_code=204)

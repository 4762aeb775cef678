"""A project's event log and the grants admins give."""

# No "from __future__ import annotations": the resolver reads route signatures at run time.

from typing import Annotated

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import Field

from functions.api import caller, wiring
from functions.api.schemas import EventPage, GrantRoles, Iid, ProjectId
from merge_assist.admin import administration
from merge_assist.platform.access import Action, Grant, Username

router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]

Cursor = Annotated[str, Field(min_length=1, max_length=512, pattern=r"^[A-Za-z0-9_-]+$")]


@router.get(
    "/projects/<project_id>/events",
    summary="The project's event log, newest first, a page at a time",
    tags=["events"],
)
def list_events(
    project_id: Annotated[ProjectId, Path()],
    limit: Annotated[int, Query(), Field(ge=1, le=200)] = 50,
    cursor: Annotated[Cursor | None, Query()] = None,
    merge_request: Annotated[Iid | None, Query()] = None,
) -> EventPage:
    caller.require(Action.VIEW, project_id)
    wiring.store().get_project(project_id)
    items, next_cursor = wiring.store().list_audit(
        project_id, limit=limit, cursor=cursor, merge_request=merge_request
    )
    return EventPage(items=items, next_cursor=next_cursor)


@router.get("/grants", summary="Who holds which roles on which project", tags=["access"])
def list_grants(
    project_id: Annotated[ProjectId | None, Query()] = None,
    username: Annotated[Username | None, Query()] = None,
) -> list[Grant]:
    caller.require(Action.ADMINISTER)
    store = wiring.store()
    if username is not None:
        grants = store.grants_of_user(username)
        return [g for g in grants if project_id is None or g.project_id == project_id]
    return store.list_grants(project_id)


@router.put(
    "/projects/<project_id>/grants/<username>",
    summary="Give a user roles on a project (they must also be in those Cognito groups)",
    tags=["access"],
)
def put_grant(
    project_id: Annotated[ProjectId, Path()],
    username: Annotated[Username, Path()],
    body: GrantRoles,
) -> Grant:
    caller.require(Action.ADMINISTER)
    return administration.grant(wiring.store(), caller.actor(), username, project_id, body.roles)


@router.delete(
    "/projects/<project_id>/grants/<username>",
    summary="Take a user's roles on a project away",
    tags=["access"],
    responses={204: {"description": "Revoked"}},
)
def delete_grant(
    project_id: Annotated[ProjectId, Path()], username: Annotated[Username, Path()]
) -> Response[None]:
    caller.require(Action.ADMINISTER)
    administration.revoke(wiring.store(), caller.actor(), username, project_id)
    return Response(status_code=204)

"""Merge requests by status, their order in the queue, and batches."""

# No "from __future__ import annotations": the resolver reads route signatures at run time.

from typing import Annotated

from aws_lambda_powertools.event_handler.openapi.params import Path, Query
from aws_lambda_powertools.event_handler.router import APIGatewayHttpRouter
from pydantic import Field

from functions.api import caller, wiring
from functions.api.schemas import (
    Iid,
    MergeRequestList,
    MergeRequestView,
    PriorityChange,
    ProjectId,
)
from merge_assist.admin import administration
from merge_assist.platform.access import Action
from merge_assist.platform.config import BranchName
from merge_assist.platform.errors import NotFoundError
from merge_assist.queue.models import Batch, MergeRequestState, StatusCategory
from merge_assist.queue.queue import for_the_queue, queue_order

router = APIGatewayHttpRouter()  # type: ignore[no-untyped-call]

# Merged and rejected MRs are history: the newest of them are enough for a board.
FINAL_SHOWN = 100


def _listed(
    project_id: int, category: StatusCategory | None, target: str | None
) -> list[MergeRequestView]:
    store = wiring.store()
    categories = [category] if category is not None else list(StatusCategory)
    items: list[MergeRequestView] = []
    for status in categories:
        found = [
            mr for mr in store.list_merge_requests(project_id, status, target) if for_the_queue(mr)
        ]
        if status is StatusCategory.QUEUED:
            items.extend(_in_line(found))
        elif status.is_final:
            found.sort(key=lambda mr: mr.updated_at, reverse=True)
            items.extend(MergeRequestView(merge_request=mr) for mr in found[:FINAL_SHOWN])
        else:
            items.extend(MergeRequestView(merge_request=mr) for mr in found)
    return items


def _in_line(queued: list[MergeRequestState]) -> list[MergeRequestView]:
    views: list[MergeRequestView] = []
    by_branch: dict[str, list[MergeRequestState]] = {}
    for mr in queued:
        by_branch.setdefault(mr.target_branch, []).append(mr)
    for line in by_branch.values():
        line.sort(key=queue_order)
        views.extend(
            MergeRequestView(merge_request=mr, position=place)
            for place, mr in enumerate(line, start=1)
        )
    return views


@router.get(
    "/projects/<project_id>/mrs",
    summary="Merge requests by status category, with the reasons of each",
    tags=["queue"],
)
def list_merge_requests(
    project_id: Annotated[ProjectId, Path()],
    category: Annotated[StatusCategory | None, Query()] = None,
    target: Annotated[BranchName | None, Query()] = None,
) -> MergeRequestList:
    caller.require(Action.VIEW, project_id)
    wiring.store().get_project(project_id)
    return MergeRequestList(items=_listed(project_id, category, target))


@router.get("/projects/<project_id>/mrs/<iid>", summary="One merge request's state", tags=["queue"])
def get_merge_request(
    project_id: Annotated[ProjectId, Path()], iid: Annotated[Iid, Path()]
) -> MergeRequestView:
    caller.require(Action.VIEW, project_id)
    mr = wiring.store().get_merge_request(project_id, iid)
    position = None
    if mr.status is StatusCategory.QUEUED:
        line = _in_line(
            wiring.store().list_merge_requests(project_id, StatusCategory.QUEUED, mr.target_branch)
        )
        position = next((v.position for v in line if v.merge_request.iid == iid), None)
    return MergeRequestView(merge_request=mr, position=position)


@router.post(
    "/projects/<project_id>/mrs/<iid>/priority",
    summary="Set an MR's priority, or move it right before or after another queued MR",
    tags=["queue"],
)
def prioritize(
    project_id: Annotated[ProjectId, Path()],
    iid: Annotated[Iid, Path()],
    change: PriorityChange,
) -> MergeRequestState:
    caller.require(Action.PRIORITIZE, project_id)
    store = wiring.store()
    if change.priority is not None:
        return administration.set_priority(store, caller.actor(), project_id, iid, change.priority)
    return administration.place(
        store, caller.actor(), project_id, iid, before=change.before, after=change.after
    )


@router.post(
    "/projects/<project_id>/mrs/<iid>/hotfix",
    summary="Put a queued MR at the front of its queue, to be tested and landed alone",
    tags=["queue"],
)
def hotfix(
    project_id: Annotated[ProjectId, Path()], iid: Annotated[Iid, Path()]
) -> MergeRequestState:
    caller.require(Action.PRIORITIZE, project_id)
    return administration.make_hotfix(
        wiring.store(), caller.actor(), project_id, iid, wiring.queues()
    )


@router.delete(
    "/projects/<project_id>/mrs/<iid>/hotfix",
    summary="Withdraw a hotfix: the MR goes back to its place by priority",
    tags=["queue"],
)
def withdraw_hotfix(
    project_id: Annotated[ProjectId, Path()], iid: Annotated[Iid, Path()]
) -> MergeRequestState:
    caller.require(Action.PRIORITIZE, project_id)
    return administration.set_hotfix(wiring.store(), caller.actor(), project_id, iid, False)


@router.get(
    "/projects/<project_id>/batches", summary="A project's batches, newest first", tags=["queue"]
)
def list_batches(
    project_id: Annotated[ProjectId, Path()],
    limit: Annotated[int, Query(), Field(ge=1, le=200)] = 50,
) -> list[Batch]:
    caller.require(Action.VIEW, project_id)
    wiring.store().get_project(project_id)
    return wiring.store().list_batches(project_id, limit=limit)


@router.get("/batches/<batch_id>", summary="A batch with its steps", tags=["queue"])
def get_batch(
    batch_id: Annotated[str, Path(), Field(min_length=1, max_length=128, pattern=r"^[\w-]+$")],
) -> Batch:
    try:
        batch = wiring.store().get_batch(batch_id)
    except NotFoundError:
        if not caller.current().is_admin:
            # Whether a batch exists is the business of those who may see its project.
            caller.require(Action.ADMINISTER)
        raise
    caller.require(Action.VIEW, batch.project_id)
    return batch

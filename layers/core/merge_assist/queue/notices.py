"""Telling authors on GitLab without letting GitLab hold the queue up.

A comment and its labels are owed once per state change of an MR: the change is saved
first, then told. If GitLab cannot take the notice now, it waits in the outbox (the store)
and the watcher delivers it later, so an outage delays what authors read but never blocks
a step, a release or a lock, and never loses a message. Each notice is keyed by the state
change it tells of (the MR's saved version); the key rides on the note as a hidden marker,
so a post that reached GitLab unanswered is found rather than posted twice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from merge_assist.platform.clock import utc_now
from merge_assist.platform.errors import GitLabRefused, NotFoundError, Unavailable, transient
from merge_assist.queue.comments import Transition
from merge_assist.queue.models import MergeRequestState, Notice
from merge_assist.queue.ports import GitLabGateway, QueueStore

# Longer than telling takes (the note is posted once, within the client's 10 s timeout;
# the labels follow, with the client's short retries), short enough that a step that died
# while telling leaves its notice to the watcher's next run but one.
IN_FLIGHT = timedelta(seconds=30)


def notice_key(state: MergeRequestState) -> str:
    return f"mr-{state.iid}-v{state.version}"


def notice_for(state: MergeRequestState, transition: Transition) -> Notice:
    return Notice(
        project_id=state.project_id,
        iid=state.iid,
        key=notice_key(state),
        comment=transition.comment,
        add_label=transition.add_label,
        remove_labels=list(transition.remove_labels),
        status=state.status,
    )


def _transition(notice: Notice) -> Transition:
    return Transition(
        comment=notice.comment,
        add_label=notice.add_label,
        remove_labels=tuple(notice.remove_labels),
    )


def tell(
    gitlab: GitLabGateway, store: QueueStore, state: MergeRequestState, transition: Transition
) -> bool:
    """Tell ``state``'s change now, or keep it for later; True if GitLab took it (or the
    MR is gone, and there is no one left to tell). The notice is in the outbox before
    GitLab is asked (marked in flight, so the watcher does not post it meanwhile) and leaves
    it only once GitLab took all of it, so a function that dies between the note and the
    labels leaves the rest to the watcher."""
    notice = notice_for(state, transition)
    store.put_notice(notice.model_copy(update={"in_flight_until": utc_now() + IN_FLIGHT}))
    try:
        gitlab.apply_transition(state.project_id, state.iid, transition, key=notice.key)
    except NotFoundError:
        pass
    except (GitLabRefused, Unavailable):
        store.hand_over_notice(state.project_id, notice.key)
        return False
    store.delete_notice(state.project_id, notice.key)
    return True


def keep_all(store: QueueStore, owed: list[tuple[MergeRequestState, Transition]]) -> None:
    """Put every notice in the outbox without trying GitLab: for a caller that already
    knows GitLab is not answering."""
    for state, transition in owed:
        store.put_notice(notice_for(state, transition))


def _stale(store: QueueStore, notice: Notice) -> bool:
    """The MR moved on since the notice was due (or is gone): telling it now would be
    telling the author something no longer true."""
    try:
        current = store.get_merge_request(notice.project_id, notice.iid)
    except NotFoundError:
        return True
    return notice.status is not None and current.status is not notice.status


@dataclass(frozen=True)
class Delivered:
    delivered: int
    pending: int


def deliver_pending(gitlab: GitLabGateway, store: QueueStore, project_id: int) -> Delivered:
    """Deliver the project's outbox, oldest first, until GitLab fails to take one. Each
    may have reached GitLab before (its first try got no answer), so it is looked for by
    its marker first."""
    pending = store.list_notices(project_id)
    delivered = dropped = 0
    for notice in pending:
        if notice.in_flight_until is not None and notice.in_flight_until > utc_now():
            continue
        if _stale(store, notice):
            store.delete_notice(project_id, notice.key)
            dropped += 1
            continue
        try:
            gitlab.apply_transition(
                project_id, notice.iid, _transition(notice), key=notice.key, may_exist=True
            )
        except NotFoundError:
            pass
        except (GitLabRefused, Unavailable) as error:
            if transient(error):
                return Delivered(delivered, len(pending) - delivered - dropped)
            # Refused for this MR alone (e.g. the bot lost access to it): the others may go
            # through; this one stays until it expires.
            continue
        store.delete_notice(project_id, notice.key)
        delivered += 1
    return Delivered(delivered, len(pending) - delivered - dropped)

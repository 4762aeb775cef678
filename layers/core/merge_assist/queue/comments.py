"""Every sentence Merge Assist shows on a merge request: the comments it writes, the label
each transition sets, and the reasons (``Reason.message``) that comments and the dashboard
show.

One module, so the bot speaks with one voice and a wording change is one edit. The modules
that decide pass facts in and never build sentences; which reasons apply, and in what
order, stays with them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from merge_assist.platform.config import ProjectConfig
from merge_assist.queue.models import Reason, ReasonCode

# How many conflicting paths a conflict reason lists; the rest are left out.
_LISTED_CONFLICTS = 10


@dataclass(frozen=True)
class Transition:
    """A comment to post, the label to add and the queue labels to take off."""

    comment: str
    add_label: str | None
    remove_labels: tuple[str, ...]


def _others(config: ProjectConfig, keep: str | None) -> tuple[str, ...]:
    labels = config.labels
    every = (labels.recognised, labels.not_ready, labels.rejected, labels.ready_to_merge)
    return tuple(label for label in every if label != keep)


def recognised(config: ProjectConfig, target_branch: str, position: int) -> Transition:
    label = config.labels.recognised
    if config.strategy.value == "serial":
        how = "It will be rebased on its target, tested and merged on its own."
    else:
        size = (
            f"sized for how often recent batches failed (up to {config.batch_size_max})"
            if config.sized_automatically
            else f"of up to {config.batch_size}"
        )
        how = (
            f"It will be tested in a batch {size} with the merge requests"
            " around it and merged when that pipeline passes."
        )
    return Transition(
        comment=(
            f"Merge Assist has queued this merge request for `{target_branch}` "
            f"(position {position}). {how}"
        ),
        add_label=label,
        remove_labels=_others(config, label),
    )


def not_ready(config: ProjectConfig, reasons: Sequence[Reason]) -> Transition:
    label = config.labels.not_ready
    listed = "\n".join(f"- {reason.message}" for reason in reasons)
    return Transition(
        comment=(
            "Merge Assist cannot queue this merge request yet:\n\n"
            f"{listed}\n\nIt will be queued by itself once these are resolved."
        ),
        add_label=label,
        remove_labels=_others(config, label),
    )


def batched(config: ProjectConfig) -> Transition:
    """The label alone: the batch, its members and its pipeline are on the dashboard and on
    the batch MR, and a note per member per batch would be noise (and webhooks) for
    nothing; the next note is the one that tells how it ended."""
    label = config.labels.ready_to_merge
    return Transition(comment="", add_label=label, remove_labels=_others(config, label))


def testing_alone(config: ProjectConfig) -> Transition:
    """The serial strategy's ``batched``: the label alone."""
    return batched(config)


def dropped(config: ProjectConfig, batch_id: str, reasons: Sequence[Reason]) -> Transition:
    """An MR taken out of a running batch because it changed; triage decides what next."""
    why = "; ".join(reason.message for reason in reasons) or "it changed"
    return Transition(
        comment=(
            f"Merge Assist took this merge request out of batch `{batch_id}`: {why}. "
            "The batch goes on without it."
        ),
        add_label=None,
        remove_labels=(config.labels.ready_to_merge,),
    )


# Why MRs go back in line, as ``requeued`` tells it.
PIPELINE_CANCELED = "its batch's pipeline was canceled, so nothing was tested"
STOPPED_ON_ERROR = "its batch stopped on an error; it keeps its place"


def requeued(config: ProjectConfig, why: str) -> Transition:
    label = config.labels.recognised
    return Transition(
        comment=f"Merge Assist put this merge request back in the queue: {why}.",
        add_label=label,
        remove_labels=_others(config, label),
    )


def bisecting(lengths: Sequence[int], total: int) -> str:
    """A batch step's note: the prefixes a bisection round tests at once."""
    firsts = " and the first ".join(str(length) for length in lengths)
    together = ", at once" if len(lengths) > 1 else ""
    return f"testing the first {firsts} of {total}{together}"


FLAKY_RETRY = "flaky retry"


def batch_title(target_branch: str, members: Sequence[int]) -> str:
    listed = ", ".join(f"!{iid}" for iid in members)
    return f"Merge Assist batch into {target_branch}: {listed}"


def batch_description(batch_id: str, target_branch: str, members: Sequence[int]) -> str:
    listed = "\n".join(f"- !{iid}" for iid in members)
    return (
        f"Batch `{batch_id}`: these merge requests, merged in this order on top of "
        f"`{target_branch}`, tested by one pipeline:\n\n{listed}\n\n"
        "Merge Assist manages this merge request and its branch; do not push to it."
    )


def rejected(config: ProjectConfig, reason: Reason, link: str | None = None) -> Transition:
    label = config.labels.rejected
    see = f" ([details]({link}))" if link else ""
    return Transition(
        comment=(
            f"Merge Assist took this merge request out of the queue: {reason.message}{see}.\n\n"
            "Push a fix (or reassign the bot) to queue it again."
        ),
        add_label=label,
        remove_labels=_others(config, label),
    )


def merged(config: ProjectConfig, target_branch: str, pipeline_url: str | None) -> Transition:
    pipeline = f"[pipeline]({pipeline_url})" if pipeline_url else "pipeline"
    return Transition(
        comment=(
            f"Merge Assist merged this merge request into `{target_branch}` after its "
            f"{pipeline} passed."
        ),
        add_label=None,
        remove_labels=_others(config, None),
    )


# Why an MR is not ready (readiness). Each kind's sentence, from the raw facts or from
# GitLab's ``detailed_merge_status``.

NOT_OPEN = Reason(code=ReasonCode.CLOSED, message="the merge request is not open")
DRAFT = Reason(code=ReasonCode.DRAFT, message="the merge request is a draft")
NEEDS_APPROVALS = Reason(code=ReasonCode.APPROVALS, message="it still needs approvals")
CHANGES_REQUESTED = Reason(code=ReasonCode.APPROVALS, message="a reviewer requested changes")
BLOCKED_BY_ANOTHER = Reason(
    code=ReasonCode.APPROVALS, message="it is blocked by another merge request"
)
NO_JIRA_ISSUE = Reason(code=ReasonCode.APPROVALS, message="it is not linked to a Jira issue")
UNRESOLVED_DISCUSSIONS = Reason(
    code=ReasonCode.DISCUSSIONS, message="it has unresolved discussions"
)
CONFLICTS_WITH_TARGET = Reason(
    code=ReasonCode.CONFLICTS, message="it conflicts with its target branch"
)
NO_PIPELINE = Reason(code=ReasonCode.PIPELINE, message="it has no pipeline yet")
PIPELINE_NOT_PASSED = Reason(code=ReasonCode.PIPELINE, message="its pipeline has not passed")
PIPELINE_STILL_RUNNING = Reason(code=ReasonCode.PIPELINE, message="its pipeline is still running")
EXTERNAL_CHECKS_NOT_PASSED = Reason(
    code=ReasonCode.PIPELINE, message="external status checks have not passed"
)


def not_open(gitlab_state: str) -> Reason:
    """``gitlab_state``: GitLab's ``state`` of the MR (closed, merged, locked ...)."""
    return Reason(code=ReasonCode.CLOSED, message=f"the merge request is {gitlab_state}")


def not_a_target_branch(target_branch: str, target_branches: Sequence[str]) -> Reason:
    return Reason(
        code=ReasonCode.TARGET_BRANCH,
        message=f"{target_branch} is not a target branch of this project "
        f"({', '.join(target_branches)})",
    )


def not_assigned(trigger_label: str | None) -> Reason:
    """How to ask the bot: assign it, or add the project's trigger label if it has one."""
    how = "assign it to the bot"
    if trigger_label:
        how += f" or add the label {trigger_label!r}"
    return Reason(code=ReasonCode.NOT_ASSIGNED, message=f"it is not queued for merging: {how}")


def pipeline_pending(status: str) -> Reason:
    """``status``: a pipeline status that may still turn green (pending, running ...)."""
    return Reason(code=ReasonCode.PIPELINE, message=f"its pipeline is {status}")


def pipeline_not_green(status: str) -> Reason:
    """``status``: a finished pipeline status other than success (failed, canceled ...)."""
    return Reason(code=ReasonCode.PIPELINE, message=f"its pipeline {status}")


# Why an MR left a running batch (triage): what was tested is no longer what its author
# wants merged.

LEFT_PUSHED = Reason(code=ReasonCode.CHANGED, message="new commits were pushed")
LEFT_CLOSED = Reason(code=ReasonCode.CLOSED, message="it was closed")
LEFT_DRAFT = Reason(code=ReasonCode.DRAFT, message="it was marked as draft")
LEFT_UNASSIGNED = Reason(code=ReasonCode.NOT_ASSIGNED, message="Merge Assist was unassigned")
LEFT_RETARGETED = Reason(code=ReasonCode.TARGET_BRANCH, message="its target branch was changed")

# GitLab answers 404 for the MR: nobody reads it on the MR, the dashboard shows it.
GONE = Reason(code=ReasonCode.CLOSED, message="GitLab no longer has it (deleted, or moved away)")


# Why the workflow holds an MR back or rejects it.

# Its head moved under a batch being built, before GitLab told the dispatcher.
UNSEEN_COMMITS = Reason(code=ReasonCode.CHANGED, message="new commits are being looked at")


def conflicts(target_branch: str, paths: Sequence[str]) -> Reason:
    """It did not merge into the batch; ``paths``: the conflicting files (the first few
    are listed)."""
    listed = ", ".join(f"`{path}`" for path in paths[:_LISTED_CONFLICTS])
    return Reason(
        code=ReasonCode.CONFLICTS,
        message=f"it conflicts with `{target_branch}` or with the merge "
        f"requests ahead of it in the batch ({listed})",
    )


def rebase_refused(target_branch: str, why: str) -> Reason:
    """GitLab refused the serial strategy's rebase request; ``why``: GitLab's answer."""
    return Reason(
        code=ReasonCode.CONFLICTS,
        message=f"GitLab refused to rebase it on `{target_branch}`: {why}",
    )


def rebase_failed(target_branch: str, error: str) -> Reason:
    """GitLab's rebase ran and failed; ``error``: the MR's ``merge_error``."""
    return Reason(
        code=ReasonCode.CONFLICTS,
        message=f"it could not be rebased on `{target_branch}`: {error}",
    )


def merge_refused(why: str) -> Reason:
    """GitLab refused the serial strategy's merge for another reason than a needed rebase."""
    return Reason(code=ReasonCode.CONFLICTS, message=f"GitLab refused to merge it: {why}")


def culprit(pipeline_url: str | None, *, timed_out: bool, alone: bool) -> Reason:
    """The MR a batch's bisection isolated. ``timed_out``: no pipeline finished within the
    project's CI timeout (else it failed); ``alone``: the batch held only this MR."""
    where = "" if alone else " on top of the merge requests ahead of it in its batch"
    if timed_out:
        return Reason(
            code=ReasonCode.CI_TIMEOUT,
            message=_with_link(
                f"its pipeline{where} did not finish within the project's CI timeout",
                pipeline_url,
            ),
        )
    return Reason(
        code=ReasonCode.CI_FAILED,
        message=_with_link(f"the pipeline failed with this merge request{where}", pipeline_url),
    )


def pipeline_skipped(pipeline_url: str | None) -> Reason:
    """CI skipped the batch's pipeline, so none of its MRs can land as tested."""
    return Reason(
        code=ReasonCode.PIPELINE_SKIPPED,
        message=_with_link(
            "CI skipped the batch's pipeline, and only tested commits are merged; "
            "check the CI rules for the batch branch",
            pipeline_url,
        ),
    )


def struck_out(reason: Reason, strikes: int) -> Reason:
    """``reason`` with the sentence that tells the author the MR reached the strike limit;
    ``strikes``: its rejections since its author last pushed."""
    return reason.model_copy(
        update={
            "message": f"{reason.message}. This is its {_ordinal(strikes)} rejection: it "
            "stays out of the queue until its author pushes a change"
        }
    )


def _ordinal(number: int) -> str:
    """1st, 2nd, 3rd, 4th ... 11th, 12th, 13th ... 21st."""
    suffix = "th"
    if not 10 <= number % 100 <= 20:
        suffix = {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"


def _with_link(message: str, pipeline_url: str | None) -> str:
    return f"{message} ({pipeline_url})" if pipeline_url else message

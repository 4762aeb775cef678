"""Every comment Merge Assist writes on a merge request, and the label each transition sets.

One module, so the bot speaks with one voice and a wording change is one edit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from merge_assist.platform.config import ProjectConfig
from merge_assist.queue.models import Reason


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
        how = (
            f"It will be tested in a batch of up to {config.batch_size} with the merge requests"
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


def batched(
    config: ProjectConfig, batch_id: str, members: Sequence[int], iid: int, link: str | None
) -> Transition:
    label = config.labels.ready_to_merge
    others = [f"!{member}" for member in members if member != iid]
    together = f" together with {', '.join(others)}" if others else ""
    where = f" ([batch merge request]({link}))" if link else ""
    return Transition(
        comment=(
            f"Merge Assist is testing this merge request in batch `{batch_id}`{together}"
            f"{where}. It merges when that pipeline passes."
        ),
        add_label=label,
        remove_labels=_others(config, label),
    )


def testing_alone(config: ProjectConfig, target_branch: str, sha: str) -> Transition:
    label = config.labels.ready_to_merge
    return Transition(
        comment=(
            f"Merge Assist rebased this merge request on `{target_branch}` and is waiting for "
            f"the pipeline of {sha[:8]}. It merges when that pipeline passes."
        ),
        add_label=label,
        remove_labels=_others(config, label),
    )


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


def requeued(config: ProjectConfig, why: str) -> Transition:
    label = config.labels.recognised
    return Transition(
        comment=f"Merge Assist put this merge request back in the queue: {why}.",
        add_label=label,
        remove_labels=_others(config, label),
    )


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

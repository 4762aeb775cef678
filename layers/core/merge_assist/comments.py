"""Every comment Merge Assist writes on a merge request, and the label each transition sets.

One module, so the bot speaks with one voice and a wording change is one edit."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from merge_assist.models import ProjectConfig, Reason


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
    config: ProjectConfig, batch_id: str, members: Sequence[int], pipeline_url: str
) -> Transition:
    label = config.labels.ready_to_merge
    together = ", ".join(f"!{iid}" for iid in members)
    return Transition(
        comment=(
            f"Merge Assist is testing this merge request in batch `{batch_id}` together with "
            f"{together}: [pipeline]({pipeline_url})."
        ),
        add_label=label,
        remove_labels=_others(config, label),
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


def merged(config: ProjectConfig, target_branch: str, pipeline_url: str) -> Transition:
    return Transition(
        comment=(
            f"Merge Assist merged this merge request into `{target_branch}` after its batch "
            f"[pipeline]({pipeline_url}) passed."
        ),
        add_label=None,
        remove_labels=_others(config, None),
    )

"""The CDK app of Merge Assist: one stack, one construct per concern, every name taken from
``merge_assist.platform.resources`` so the cloud matches the embedded local stack."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

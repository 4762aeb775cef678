"""Where a command works: the local stack described in ``DATA/endpoints.json``, or a deployed
stack found by its prefix with the caller's AWS credentials and the stack's outputs. Either
way the process environment is set as the functions' would be, so the core's settings and
adapters find the same resources."""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import dataclass
from pathlib import Path

from merge_assist.platform.resources import ResourceNames


@dataclass(frozen=True)
class AdminContext:
    names: ResourceNames
    webhook_url: str
    gitlab_url: str


def local_context(data_dir: Path) -> AdminContext:
    endpoints_file = data_dir / "endpoints.json"
    try:
        endpoints = json.loads(endpoints_file.read_text())
    except FileNotFoundError:
        raise SystemExit(f"no local stack at {data_dir}: {endpoints_file} does not exist") from None
    os.environ.update(
        {
            "AWS_ENDPOINT_URL": endpoints["aws_endpoint"],
            "AWS_DEFAULT_REGION": endpoints["region"],
            "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "local"),
            "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "local"),
            "MERGE_ASSIST_RESOURCE_PREFIX": endpoints["resource_prefix"],
        }
    )
    return AdminContext(
        names=ResourceNames(endpoints["resource_prefix"]),
        webhook_url=endpoints["webhook"],
        gitlab_url=endpoints["gitlab"],
    )


def cloud_context(args: argparse.Namespace) -> AdminContext:
    import boto3

    names = ResourceNames(args.prefix)
    os.environ["MERGE_ASSIST_RESOURCE_PREFIX"] = names.prefix
    # The stack is named after the prefix; its ApiUrl output ends with a slash.
    stack = boto3.client("cloudformation").describe_stacks(StackName=names.prefix)["Stacks"][0]
    outputs = {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}
    webhook_url = args.webhook_url or outputs["ApiUrl"].rstrip("/") + "/webhook/gitlab"
    if "AlarmTopicArn" in outputs:
        # A connected project's queue alarms notify the deployment's alarm topic.
        os.environ["MERGE_ASSIST_ALARM_TOPIC_ARN"] = outputs["AlarmTopicArn"]
    gitlab_url = args.gitlab_url or os.environ.get("MERGE_ASSIST_GITLAB_URL")
    if not gitlab_url:
        raise SystemExit("give --gitlab-url (or set MERGE_ASSIST_GITLAB_URL)")
    return AdminContext(names=names, webhook_url=webhook_url, gitlab_url=gitlab_url)

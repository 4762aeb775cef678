"""The CDK app (``cdk.json`` runs ``python3 -m infra.app``).

Context (``cdk synth -c key=value`` or ``cdk.json``):

``prefix``
    Names the stack and every resource in it (default
    ``merge_assist.platform.resources.DEFAULT_PREFIX``). One prefix is one deployment, so
    several can share an account.
``dashboardUrls``
    The URLs Cognito's hosted pages may send a user back to after sign-in and sign-out, comma
    separated (default: the dashboard's development server).

Deploy-time parameters (``cdk deploy --parameters Name=value``; docs/deploy.md has them all):

``GitLabUrl``
    The GitLab instance the functions talk to (default ``https://gitlab.com``).
``BotTokenSecretArn``
    Optional: an existing secret holding the bot's token. Empty, the stack creates
    ``<prefix>/gitlab-bot-token`` for the admin to fill in.
``DomainName`` and ``CertificateArn``
    Optional, together: a custom domain (with its ACM certificate) for the HTTP API; the
    output ``CustomDomainTarget`` is what its DNS record points at.
``AlarmEmail``, ``ChatWebhookUrl``, ``ChatKind``
    Optional: where the alarms go (``infra.constructs.ops``).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from typing import Any

from aws_cdk import App, Validations
from cdk_nag import AwsSolutionsChecks

from infra import REPO_ROOT
from infra.stack import MergeAssistStack
from merge_assist.platform.resources import DEFAULT_PREFIX

CDK_JSON = REPO_ROOT / "cdk.json"
STACK_ID = "MergeAssistStack"
DEFAULT_DASHBOARD_URLS = ("http://localhost:5173",)

# Lowercase and free of Cognito's reserved words because it becomes part of the sign-in
# domain; 40 characters at most, as merge_assist.platform.settings accepts, which also keeps
# function names within Lambda's 64.
_PREFIX = re.compile(r"[a-z][a-z0-9-]{0,38}[a-z0-9]|[a-z]")
_COGNITO_DOMAIN_RESERVED = ("aws", "amazon", "cognito")


def check_prefix(prefix: str) -> None:
    if not _PREFIX.fullmatch(prefix):
        raise ValueError(
            f"prefix {prefix!r} must be 1-40 lowercase letters, digits and hyphens, "
            "starting with a letter and not ending with a hyphen"
        )
    reserved = [word for word in _COGNITO_DOMAIN_RESERVED if word in prefix]
    if reserved:
        raise ValueError(f"prefix {prefix!r} contains {reserved}, which Cognito domains refuse")


def cdk_json_context() -> dict[str, Any]:
    context: dict[str, Any] = json.loads(CDK_JSON.read_text(encoding="utf-8"))["context"]
    return context


def context_list(value: object) -> list[str]:
    """A list from cdk.json arrives as a list, from ``-c`` as a comma-separated string."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    if isinstance(value, list | tuple):
        return [str(item) for item in value]
    raise TypeError(f"expected a list or a comma-separated string, got {value!r}")


def create_app(
    context: Mapping[str, Any] | None = None, outdir: str | None = None
) -> tuple[App, MergeAssistStack]:
    app = App(context=dict(context) if context is not None else None, outdir=outdir)
    prefix = str(app.node.try_get_context("prefix") or DEFAULT_PREFIX)
    check_prefix(prefix)
    dashboard_urls = context_list(
        app.node.try_get_context("dashboardUrls") or DEFAULT_DASHBOARD_URLS
    )
    stack = MergeAssistStack(
        app,
        STACK_ID,
        stack_name=prefix,
        description=f"Merge Assist ({prefix}): GitLab merge queue",
        prefix=prefix,
        dashboard_urls=dashboard_urls,
    )
    Validations.of(app).add_plugins(
        AwsSolutionsChecks(app, verbose=True, write_suppressions_to_cloud_formation=True)
    )
    return app, stack


def main() -> None:
    if "CDK_OUTDIR" in os.environ:
        # Run by the CDK CLI, which hands over cdk.json's context and -c values itself.
        app, _ = create_app()
    else:
        # Run directly (make synth): give the app what the CLI would.
        app, _ = create_app(cdk_json_context(), outdir=str(REPO_ROOT / "cdk.out"))
    app.synth()


if __name__ == "__main__":
    main()

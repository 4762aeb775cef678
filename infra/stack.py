"""The one stack of a Merge Assist deployment; its prefix names every resource in it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import CfnOutput, CfnParameter, Stack
from constructs import Construct

from infra.constructs import pascal_case
from infra.constructs.api import Api
from infra.constructs.functions import Functions
from infra.constructs.ingest import Ingest
from infra.constructs.ops import Ops
from infra.constructs.storage import Storage
from infra.constructs.workflow import Workflow
from merge_assist.resources import ResourceNames


class MergeAssistStack(Stack):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        prefix: str,
        dashboard_urls: Sequence[str],
        **kwargs: Any,
    ) -> None:
        super().__init__(scope, construct_id, **kwargs)
        names = ResourceNames(prefix)

        gitlab_url = CfnParameter(
            self,
            "GitLabUrl",
            type="String",
            default="https://gitlab.com",
            description="Base URL of the GitLab instance (https, no trailing slash)",
            # The bot's token travels with every request to this URL.
            allowed_pattern=r"^https://[^\s/]+(/[^\s]*[^\s/])?$",
            constraint_description="an https URL without a trailing slash",
        )

        self.storage = Storage(self, "Storage", names=names)
        self.functions = Functions(
            self,
            "Functions",
            names=names,
            storage=self.storage,
            gitlab_url=gitlab_url.value_as_string,
        )
        self.workflow = Workflow(self, "Workflow", names=names, functions=self.functions.functions)
        self.api = Api(
            self,
            "Api",
            names=names,
            functions=self.functions.functions,
            dashboard_urls=dashboard_urls,
        )
        self.ingest = Ingest(
            self,
            "Ingest",
            names=names,
            storage=self.storage,
            functions=self.functions.functions,
        )
        self.ops = Ops(self, "Ops", names=names, functions=self.functions.functions)

        CfnOutput(self, "ApiUrl", value=self.api.stage.url, description="HTTP API base URL")
        CfnOutput(self, "UserPoolId", value=self.api.user_pool.user_pool_id)
        CfnOutput(self, "UserPoolClientId", value=self.api.client.user_pool_client_id)
        CfnOutput(
            self,
            "SignInUrl",
            value=self.api.domain.base_url(),
            description="Base URL of the Cognito hosted sign-in pages",
        )
        CfnOutput(self, "TableName", value=self.storage.table.table_name)
        CfnOutput(self, "BotTokenSecretArn", value=self.storage.bot_token.secret_arn)
        CfnOutput(
            self,
            "ProjectOnboardingPolicyArn",
            value=self.ingest.onboarding_policy.managed_policy_arn,
            description="Attach to whoever runs merge-assist project add|remove|config",
        )
        for key, state_machine in self.workflow.state_machines.items():
            CfnOutput(
                self,
                f"{pascal_case(key)}StateMachineArn",
                value=state_machine.state_machine_arn,
            )

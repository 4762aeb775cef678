"""The one stack of a Merge Assist deployment; its prefix names every resource in it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import CfnOutput, CfnParameter, Stack
from constructs import Construct

from infra.constructs import pascal_case
from infra.constructs.api import Api
from infra.constructs.functions import Functions, function_access
from infra.constructs.ingest import Ingest
from infra.constructs.live import Live
from infra.constructs.ops import Ops
from infra.constructs.storage import Storage
from infra.constructs.workflow import Workflow
from merge_assist.resources import ENV_PREFIX, ResourceNames


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
        self.live = Live(
            self,
            "Live",
            names=names,
            storage=self.storage,
            functions=self.functions.functions,
            user_pool=self.api.user_pool,
            user_pool_client=self.api.client,
        )
        self._wire_api()

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
        CfnOutput(
            self,
            "WebSocketUrl",
            value=self.live.stage.url,
            description="The dashboard's live updates (WebSocket, ?token=<access token>)",
        )
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

    def _wire_api(self) -> None:
        """The API function verifies tokens of the user pool itself and registers GitLab
        hooks that post to this stack's webhook route."""
        api = self.functions.functions["api"]
        for name, value in api_environment(self.api).items():
            api.add_environment(name, value)
        # Connecting a project from the API needs what connecting it from the CLI needs.
        for key, function in self.functions.functions.items():
            if function_access(key).onboard_projects and function.role is not None:
                function.role.add_managed_policy(self.ingest.onboarding_policy)


def api_environment(api: Api) -> dict[str, str]:
    return {
        f"{ENV_PREFIX}USER_POOL_ID": api.user_pool.user_pool_id,
        f"{ENV_PREFIX}USER_POOL_CLIENT_ID": api.client.user_pool_client_id,
        f"{ENV_PREFIX}WEBHOOK_URL": f"{api.http_api.api_endpoint}/webhook/gitlab",
    }

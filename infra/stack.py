"""The one stack of a Merge Assist deployment; its prefix names every resource in it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aws_cdk import CfnOutput, CfnParameter, CfnRule, CfnRuleAssertion, Fn, Stack
from constructs import Construct

from infra import REPO_ROOT
from infra.constructs import pascal_case
from infra.constructs.api import Api
from infra.constructs.functions import Functions, function_access
from infra.constructs.ingest import Ingest
from infra.constructs.live import Live
from infra.constructs.ops import Observed, Ops, notification_parameters
from infra.constructs.storage import Storage
from infra.constructs.web import Web
from infra.constructs.workflow import Workflow
from merge_assist.platform.resources import ENV_PREFIX, ResourceNames


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

        deployment = DeployParameters(self)

        self.storage = Storage(
            self,
            "Storage",
            names=names,
            bot_token_secret_arn=deployment.bot_token_secret_arn.value_as_string,
        )
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
        self.live = Live(
            self,
            "Live",
            names=names,
            storage=self.storage,
            functions=self.functions.functions,
            user_pool=self.api.user_pool,
            user_pool_client=self.api.client,
        )
        self.ops = Ops(
            self,
            "Ops",
            names=names,
            functions=self.functions.functions,
            observed=Observed(
                state_machines=self.workflow.state_machines,
                api_stage=self.api.stage,
                stream_failure_queues=self.live.failure_queues,
            ),
            notifications=notification_parameters(self),
        )
        self.web = Web(
            self,
            "Web",
            names=names,
            api=self.api,
            websocket_url=self.live.stage.url,
            gitlab_url=gitlab_url.value_as_string,
            dist=REPO_ROOT / "web" / "dist",
        )
        self._wire_api()
        # Functions read the bot token from the secret the BotTokenSecretArn parameter chose.
        for function in self.functions.functions.values():
            function.add_environment(
                f"{ENV_PREFIX}BOT_TOKEN_SECRET", self.storage.bot_token_secret_id
            )
        custom_domain = self.api.add_custom_domain(
            deployment.domain_name.value_as_string, deployment.certificate_arn.value_as_string
        )

        CfnOutput(self, "DashboardUrl", value=f"{self.web.url}/", description="The dashboard")
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
        # Only for the secret the stack created: a given one is the admin's own, and its
        # (NoEcho) parameter does not belong in the outputs.
        CfnOutput(
            self,
            "BotTokenSecret",
            condition=self.storage.bot_token_created,
            value=names.bot_token_secret,
            description="The secret to put the GitLab bot token in",
        )
        CfnOutput(
            self,
            "CustomDomainTarget",
            condition=custom_domain,
            value=self.api.custom_domain.attr_regional_domain_name,
            description="Point a CNAME (or Route 53 alias) for DomainName at this host",
        )
        CfnOutput(
            self,
            "CustomDomainApiUrl",
            condition=custom_domain,
            value=f"https://{deployment.domain_name.value_as_string}/",
            description="HTTP API base URL on the custom domain, once DNS points there",
        )
        CfnOutput(
            self,
            "ProjectOnboardingPolicyArn",
            value=self.ingest.onboarding_policy.managed_policy_arn,
            description="Attach to whoever runs merge-assist project add|remove|config",
        )
        CfnOutput(
            self,
            "OperatorPolicyArn",
            value=self.ingest.operator_policy.managed_policy_arn,
            description="Attach to whoever runs merge-assist dlq redrive, batch retry|cancel",
        )
        CfnOutput(self, "AlarmTopicArn", value=self.ops.topic.topic_arn)
        CfnOutput(self, "DashboardName", value=self.ops.dashboard.dashboard_name)
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
        # The queue alarms of a project connected through the API notify the alarm topic.
        api.add_environment(f"{ENV_PREFIX}ALARM_TOPIC_ARN", self.ops.topic.topic_arn)
        # Connecting a project from the API needs what connecting it from the CLI needs.
        for key, function in self.functions.functions.items():
            if function_access(key).onboard_projects and function.role is not None:
                function.role.add_managed_policy(self.ingest.onboarding_policy)


class DeployParameters:
    """The optional deploy parameters (``GitLabUrl`` is the required-in-practice one above);
    empty, each keeps what the stack does without it. docs/deploy.md explains them."""

    def __init__(self, stack: Stack) -> None:
        self.bot_token_secret_arn = CfnParameter(
            stack,
            "BotTokenSecretArn",
            type="String",
            default="",
            description=(
                "Optional: complete ARN of an existing Secrets Manager secret (same account "
                "and region) holding the GitLab bot token. Empty: the stack creates "
                "<prefix>/gitlab-bot-token for you to fill in."
            ),
            # The complete ARN ends in the six characters Secrets Manager appends; IAM
            # grants name exactly this ARN, so a partial one would grant nothing.
            allowed_pattern=(
                r"^(arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:"
                r"[A-Za-z0-9/_+=.@-]+-[A-Za-z0-9]{6})?$"
            ),
            constraint_description="empty, or a secret's complete ARN (ending in -XXXXXX)",
            # Not secret, but named like one, and CloudFormation's validation asks such
            # parameters to be NoEcho.
            no_echo=True,
        )
        self.domain_name = CfnParameter(
            stack,
            "DomainName",
            type="String",
            default="",
            description=(
                "Optional: custom domain name for the HTTP API (e.g. merge.example.com); "
                "needs CertificateArn"
            ),
            allowed_pattern=r"^(([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63})?$",
            constraint_description="empty, or a lowercase DNS name",
        )
        self.certificate_arn = CfnParameter(
            stack,
            "CertificateArn",
            type="String",
            default="",
            description=(
                "Optional, with DomainName: ARN of an issued ACM certificate for it, in the "
                "stack's region"
            ),
            allowed_pattern=r"^(arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]+)?$",
            constraint_description="empty, or an ACM certificate ARN",
        )
        domain_empty = Fn.condition_equals(self.domain_name.value_as_string, "")
        certificate_empty = Fn.condition_equals(self.certificate_arn.value_as_string, "")
        CfnRule(
            stack,
            "DomainNeedsCertificate",
            assertions=[
                CfnRuleAssertion(
                    assert_=Fn.condition_or(
                        Fn.condition_and(domain_empty, certificate_empty),
                        Fn.condition_and(
                            Fn.condition_not(domain_empty), Fn.condition_not(certificate_empty)
                        ),
                    ),
                    assert_description="DomainName and CertificateArn go together",
                )
            ],
        )


def api_environment(api: Api) -> dict[str, str]:
    return {
        f"{ENV_PREFIX}USER_POOL_ID": api.user_pool.user_pool_id,
        f"{ENV_PREFIX}USER_POOL_CLIENT_ID": api.client.user_pool_client_id,
        f"{ENV_PREFIX}WEBHOOK_URL": f"{api.http_api.api_endpoint}/webhook/gitlab",
    }

"""Who may call what: the Cognito user pool of dashboard users and the HTTP API whose routes
are ``merge_assist.platform.resources.ROUTES``."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import jsii
from aws_cdk import Aws, CfnCondition, CfnResource, Duration, Fn, RemovalPolicy
from aws_cdk import aws_apigateway as apigateway
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_cognito as cognito
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from constructs import Construct

from infra.constructs import LOG_RETENTION
from infra.nag import acknowledge
from merge_assist.platform.resources import ROUTES, USER_GROUPS, ResourceNames

# Steady and burst requests per second across the API: well above what the dashboard and
# GitLab's webhooks send, low enough to bound what a runaway client can cost.
THROTTLE_RATE = 50
THROTTLE_BURST = 100

# Why each route without the Cognito authorizer may go without it.
PUBLIC_ROUTES: Mapping[str, str] = {
    "/webhook/gitlab": "GitLab webhooks cannot send a Cognito token; the handler "
    "authenticates each delivery by comparing the X-Gitlab-Token header with the project's "
    "webhook secret and answers 401 otherwise.",
    "/api/v1/openapi.json": "The API's OpenAPI description is public like any published API "
    "reference: it holds no data, and every operation it describes needs a token.",
}

# HTTP API context variables (a subset of REST API's), one JSON object per request.
ACCESS_LOG_FORMAT = json.dumps(
    {
        "requestId": "$context.requestId",
        "ip": "$context.identity.sourceIp",
        "requestTime": "$context.requestTime",
        "httpMethod": "$context.httpMethod",
        "routeKey": "$context.routeKey",
        "path": "$context.path",
        "status": "$context.status",
        "protocol": "$context.protocol",
        "responseLength": "$context.responseLength",
        "responseLatency": "$context.responseLatency",
        "integrationLatency": "$context.integrationLatency",
        "integrationError": "$context.integrationErrorMessage",
        "authorizerError": "$context.authorizer.error",
        "userAgent": "$context.identity.userAgent",
    }
)


@jsii.implements(apigwv2.IAccessLogSettings)
class AccessLogSettings:
    def __init__(
        self, destination: apigwv2.IAccessLogDestination, log_format: apigateway.AccessLogFormat
    ) -> None:
        self._destination = destination
        self._format = log_format

    @property
    def destination(self) -> apigwv2.IAccessLogDestination:
        return self._destination

    @property
    def format(self) -> apigateway.AccessLogFormat:
        return self._format


class Api(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        functions: Mapping[str, lambda_.IFunction],
        dashboard_urls: Sequence[str],
    ) -> None:
        super().__init__(scope, construct_id)
        self._dashboard_urls = [url.rstrip("/") for url in dashboard_urls]
        self._user_pool(names, dashboard_urls)
        self._http_api(names, functions)

    def _user_pool(self, names: ResourceNames, dashboard_urls: Sequence[str]) -> None:
        self.user_pool = cognito.UserPool(
            self,
            "Users",
            user_pool_name=names.user_pool,
            # Users are invited by an admin: the pool grants access to landing code on
            # protected branches.
            self_sign_up_enabled=False,
            sign_in_aliases=cognito.SignInAliases(email=True),
            auto_verify=cognito.AutoVerifiedAttrs(email=True),
            account_recovery=cognito.AccountRecovery.EMAIL_ONLY,
            password_policy=cognito.PasswordPolicy(
                min_length=14,
                require_lowercase=True,
                require_uppercase=True,
                require_digits=True,
                require_symbols=True,
                temp_password_validity=Duration.days(3),
            ),
            mfa=cognito.Mfa.REQUIRED,
            mfa_second_factor=cognito.MfaSecondFactor(otp=True, sms=False),
            # Plus adds threat protection (compromised-credential and risky sign-in
            # detection), enforced rather than only reported.
            feature_plan=cognito.FeaturePlan.PLUS,
            standard_threat_protection_mode=cognito.StandardThreatProtectionMode.FULL_FUNCTION,
            deletion_protection=True,
            removal_policy=RemovalPolicy.RETAIN,
        )
        for precedence, group in enumerate(USER_GROUPS):
            cognito.UserPoolGroup(
                self,
                f"Group{precedence}",
                user_pool=self.user_pool,
                group_name=group,
                # USER_GROUPS runs from most to least privileged; Cognito settles a user in
                # several groups by the lowest precedence.
                precedence=precedence,
            )
        # The hosted sign-in pages the dashboard redirects to; the account id keeps the
        # globally unique domain prefix free of collisions between accounts.
        self.domain = self.user_pool.add_domain(
            "SignIn",
            cognito_domain=cognito.CognitoDomainOptions(
                domain_prefix=f"{names.prefix}-{Aws.ACCOUNT_ID}"
            ),
        )
        self.client = self.user_pool.add_client(
            "Dashboard",
            user_pool_client_name=names.user_pool_client,
            # A browser app cannot keep a secret; PKCE protects its authorization codes.
            generate_secret=False,
            # Sign-in happens on the hosted pages only; the client itself just refreshes.
            auth_flows=cognito.AuthFlow(user_srp=False),
            o_auth=cognito.OAuthSettings(
                flows=cognito.OAuthFlows(authorization_code_grant=True),
                scopes=[cognito.OAuthScope.OPENID, cognito.OAuthScope.EMAIL],
                callback_urls=list(dashboard_urls),
                logout_urls=list(dashboard_urls),
            ),
            supported_identity_providers=[cognito.UserPoolClientIdentityProvider.COGNITO],
            prevent_user_existence_errors=True,
            enable_token_revocation=True,
            access_token_validity=Duration.hours(1),
            id_token_validity=Duration.hours(1),
            refresh_token_validity=Duration.days(30),
        )

    def _http_api(self, names: ResourceNames, functions: Mapping[str, lambda_.IFunction]) -> None:
        self.http_api = apigwv2.HttpApi(
            self,
            "Http",
            api_name=names.http_api,
            description="Merge Assist: dashboard REST API and GitLab webhooks",
            # The default stage is created below, with access logs and throttling.
            create_default_stage=False,
            # The dashboard is served from another origin (CloudFront); API Gateway answers
            # its preflight requests itself, before the authorizer.
            cors_preflight=apigwv2.CorsPreflightOptions(
                allow_origins=list(self._dashboard_urls) or ["https://localhost"],
                allow_methods=[apigwv2.CorsHttpMethod.ANY],
                allow_headers=["authorization", "content-type"],
                max_age=Duration.hours(1),
            ),
        )
        access_logs = logs.LogGroup(
            self,
            "AccessLogs",
            log_group_name=f"/aws/apigateway/{names.http_api}/access",
            retention=LOG_RETENTION,
            removal_policy=RemovalPolicy.DESTROY,
        )
        self.stage = apigwv2.HttpStage(
            self,
            "DefaultStage",
            http_api=self.http_api,
            stage_name="$default",
            auto_deploy=True,
            access_log_settings=AccessLogSettings(
                apigwv2.LogGroupLogDestination(access_logs),
                apigateway.AccessLogFormat.custom(ACCESS_LOG_FORMAT),
            ),
            throttle=apigwv2.ThrottleSettings(rate_limit=THROTTLE_RATE, burst_limit=THROTTLE_BURST),
        )
        # API Gateway checks the token's signature, expiry and issuer; Cognito access tokens
        # carry no "aud", so the audience is matched against their client_id claim.
        self.authorizer = authorizers.HttpJwtAuthorizer(
            "CognitoJwt",
            f"https://{self.user_pool.user_pool_provider_url}",
            jwt_audience=[self.client.user_pool_client_id],
        )
        integration_by_function: dict[str, integrations.HttpLambdaIntegration] = {}
        for route in ROUTES:
            integration = integration_by_function.get(route.function)
            if integration is None:
                integration = integrations.HttpLambdaIntegration(
                    f"{route.function}-integration", functions[route.function]
                )
                integration_by_function[route.function] = integration
            added = self.http_api.add_routes(
                path=route.path,
                methods=[apigwv2.HttpMethod[route.method]],
                integration=integration,
                authorizer=self.authorizer if route.authorized else None,
            )
            if not route.authorized:
                for http_route in added:
                    acknowledge(http_route, "AwsSolutions-APIG4", PUBLIC_ROUTES[route.path])

    def add_dashboard_url(self, url: str) -> None:
        """Lets Cognito's hosted pages send users back to ``url`` (the deployed dashboard,
        known only once its distribution exists)."""
        client = self.client.node.default_child
        assert isinstance(client, cognito.CfnUserPoolClient)
        for attribute in ("callback_ur_ls", "logout_ur_ls"):
            setattr(client, attribute, [*(getattr(client, attribute) or []), url])

    def add_custom_domain(self, domain_name: str, certificate_arn: str) -> CfnCondition:
        """The HTTP API at ``https://<domain_name>/`` (``/api/v1/...``, ``/webhook/gitlab``)
        when the ``DomainName`` deploy parameter is set; nothing otherwise.

        L1 resources, because only they can carry a condition. The WebSocket API stays on its
        execute-api URL: API Gateway refuses to map a WebSocket API on a domain that also
        serves an HTTP or REST API.
        """
        # Both are given or neither (the stack's DomainNeedsCertificate rule); naming both
        # here tells linters the certificate is never the empty default where it is used.
        self.custom_domain_given = CfnCondition(
            self,
            "CustomDomainGiven",
            expression=Fn.condition_and(
                Fn.condition_not(Fn.condition_equals(domain_name, "")),
                Fn.condition_not(Fn.condition_equals(certificate_arn, "")),
            ),
        )
        self.custom_domain = apigwv2.CfnDomainName(
            self,
            "CustomDomain",
            domain_name=domain_name,
            domain_name_configurations=[
                apigwv2.CfnDomainName.DomainNameConfigurationProperty(
                    certificate_arn=certificate_arn,
                    endpoint_type="REGIONAL",
                    security_policy="TLS_1_2",
                )
            ],
        )
        self.custom_domain.cfn_options.condition = self.custom_domain_given
        mapping = apigwv2.CfnApiMapping(
            self,
            "CustomDomainMapping",
            api_id=self.http_api.api_id,
            domain_name=self.custom_domain.ref,
            stage=self.stage.stage_name,
        )
        mapping.cfn_options.condition = self.custom_domain_given
        # The stage is named "$default" in the template, not referenced, so say it comes first.
        stage = self.stage.node.default_child
        assert isinstance(stage, CfnResource)
        mapping.add_resource_dependency(stage)
        return self.custom_domain_given

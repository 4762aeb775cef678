"""Web: the dashboard single-page app.

The built ``web/dist`` goes to a private S3 bucket that only CloudFront reads (origin access
control). The same distribution routes ``/api/*`` to the HTTP API, so the dashboard calls its
API on its own origin: no CORS preflight per call, and no cycle between the distribution's URL
and the API's CORS settings. ``config.json`` is written at deploy time from the stack's own
values (``merge_assist.platform.dashboard``), so one build serves every deployment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aws_cdk import Aws, CfnElement, Duration, RemovalPolicy, Stack
from aws_cdk import aws_cloudfront as cloudfront
from aws_cdk import aws_cloudfront_origins as origins
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_deployment as s3deploy
from constructs import Construct

from infra.constructs.api import Api
from infra.nag import acknowledge
from merge_assist.platform.dashboard import (
    API_PATH,
    CONFIG_FILE,
    dashboard_config,
    hosted_ui_sign_in,
)
from merge_assist.platform.resources import ResourceNames

# Client-side routes (no file extension) are the app's index.html; everything else is a file.
# A viewer-request function rather than a 403/404 error response, which would also turn the
# API's own 403s and 404s into the app's page.
SPA_ROUTING_FUNCTION = """\
function handler(event) {
  var request = event.request;
  var last = request.uri.split("/").pop();
  if (last.indexOf(".") === -1) {
    request.uri = "/index.html";
  }
  return request;
}
"""

# Hashed bundles never change; index.html and config.json are checked at every load.
IMMUTABLE = "public, max-age=31536000, immutable"
REVALIDATE = "no-cache"


class DashboardNotBuilt(FileNotFoundError):
    pass


class Web(Construct):
    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        names: ResourceNames,
        api: Api,
        websocket_url: str,
        gitlab_url: str,
        dist: Path,
    ) -> None:
        super().__init__(scope, construct_id)
        if not (dist / "index.html").is_file():
            raise DashboardNotBuilt(f"the dashboard is not built in {dist}: run `make web`")
        self._logs()
        # Only built files live here: the deployment writes them again at every deploy.
        self.bucket = self._private_bucket(
            "Site",
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            server_access_logs_bucket=self.logs,
            server_access_logs_prefix="site-bucket/",
        )
        self._distribution(names, api)
        self._deploy(api, websocket_url, gitlab_url, dist)
        self.url = f"https://{self.distribution.distribution_domain_name}"
        # Cognito sends users back here after the hosted sign-in and sign-out pages.
        api.add_dashboard_url(f"{self.url}/")

    def _private_bucket(self, construct_id: str, **settings: Any) -> s3.Bucket:
        """Private, encrypted, TLS only, and emptied and deleted with the stack."""
        return s3.Bucket(
            self,
            construct_id,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            encryption=s3.BucketEncryption.S3_MANAGED,
            enforce_ssl=True,
            removal_policy=RemovalPolicy.DESTROY,
            auto_delete_objects=True,
            **settings,
        )

    def _logs(self) -> None:
        self.logs = self._private_bucket(
            "AccessLogs",
            # CloudFront's standard logs are written with an ACL.
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_PREFERRED,
            lifecycle_rules=[s3.LifecycleRule(expiration=Duration.days(90))],
        )
        acknowledge(
            self.logs,
            "AwsSolutions-S1",
            "This bucket is the access log destination itself; logging its own accesses "
            "into itself would loop and a third bucket adds nothing an auditor needs.",
        )

    def _distribution(self, names: ResourceNames, api: Api) -> None:
        spa_routing = cloudfront.Function(
            self,
            "SpaRouting",
            code=cloudfront.FunctionCode.from_inline(SPA_ROUTING_FUNCTION),
            runtime=cloudfront.FunctionRuntime.JS_2_0,
            comment="Client-side routes of the dashboard are its index.html",
        )
        headers = cloudfront.ResponseHeadersPolicy(
            self,
            "SecurityHeaders",
            comment=f"{names.prefix}: dashboard security headers",
            security_headers_behavior=cloudfront.ResponseSecurityHeadersBehavior(
                content_security_policy=cloudfront.ResponseHeadersContentSecurityPolicy(
                    content_security_policy="; ".join(
                        [
                            "default-src 'self'",
                            "script-src 'self'",
                            "style-src 'self'",
                            "img-src 'self' data:",
                            # The live updates and Cognito's token and revoke endpoints.
                            f"connect-src 'self' wss://*.execute-api.{Aws.REGION}.amazonaws.com "
                            f"https://*.auth.{Aws.REGION}.amazoncognito.com",
                            "frame-ancestors 'none'",
                            "base-uri 'none'",
                            "form-action 'self'",
                        ]
                    ),
                    override=True,
                ),
                strict_transport_security=cloudfront.ResponseHeadersStrictTransportSecurity(
                    access_control_max_age=Duration.days(365),
                    include_subdomains=True,
                    override=True,
                ),
                content_type_options=cloudfront.ResponseHeadersContentTypeOptions(override=True),
                frame_options=cloudfront.ResponseHeadersFrameOptions(
                    frame_option=cloudfront.HeadersFrameOption.DENY, override=True
                ),
                referrer_policy=cloudfront.ResponseHeadersReferrerPolicy(
                    referrer_policy=cloudfront.HeadersReferrerPolicy.STRICT_ORIGIN_WHEN_CROSS_ORIGIN,
                    override=True,
                ),
            ),
        )
        api_origin = origins.HttpOrigin(
            f"{api.http_api.api_id}.execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}",
            protocol_policy=cloudfront.OriginProtocolPolicy.HTTPS_ONLY,
        )
        self.distribution = cloudfront.Distribution(
            self,
            "Distribution",
            comment=f"{names.prefix}: Merge Assist dashboard",
            default_root_object="index.html",
            http_version=cloudfront.HttpVersion.HTTP2_AND_3,
            price_class=cloudfront.PriceClass.PRICE_CLASS_100,
            enable_logging=True,
            log_bucket=self.logs,
            log_file_prefix="cloudfront/",
            default_behavior=cloudfront.BehaviorOptions(
                origin=origins.S3BucketOrigin.with_origin_access_control(self.bucket),
                viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.REDIRECT_TO_HTTPS,
                cache_policy=cloudfront.CachePolicy.CACHING_OPTIMIZED,
                response_headers_policy=headers,
                function_associations=[
                    cloudfront.FunctionAssociation(
                        function=spa_routing,
                        event_type=cloudfront.FunctionEventType.VIEWER_REQUEST,
                    )
                ],
            ),
            additional_behaviors={
                f"{API_PATH.split('/')[1]}/*": cloudfront.BehaviorOptions(
                    origin=api_origin,
                    viewer_protocol_policy=cloudfront.ViewerProtocolPolicy.HTTPS_ONLY,
                    allowed_methods=cloudfront.AllowedMethods.ALLOW_ALL,
                    # Answers depend on the caller's token; nothing is cached, and the
                    # managed policy for API Gateway forwards everything but Host
                    # (Authorization included).
                    cache_policy=cloudfront.CachePolicy.CACHING_DISABLED,
                    origin_request_policy=(
                        cloudfront.OriginRequestPolicy.ALL_VIEWER_EXCEPT_HOST_HEADER
                    ),
                    response_headers_policy=headers,
                ),
            },
        )
        acknowledge(
            self.distribution,
            "AwsSolutions-CFR1",
            "The dashboard's users are an organisation's engineers wherever they work; "
            "Cognito sign-in, not geography, decides who gets in.",
        )
        acknowledge(
            self.distribution,
            "AwsSolutions-CFR2",
            "Every API route behind the distribution needs a Cognito token and is throttled "
            "by API Gateway; the static files are public build output. A WAF web ACL can be "
            "attached by the admin where the organisation mandates one.",
        )
        acknowledge(
            self.distribution,
            "AwsSolutions-CFR4",
            "The distribution serves on its cloudfront.net name, whose default certificate's "
            "TLS policy CloudFront fixes; browsers negotiate TLS 1.3 with it. A custom "
            "domain with its own certificate is what raises the floor.",
        )

    def _deploy(self, api: Api, websocket_url: str, gitlab_url: str, dist: Path) -> None:
        config = dashboard_config(
            websocket_url=websocket_url,
            region=Aws.REGION,
            user_pool_id=api.user_pool.user_pool_id,
            client_id=api.client.user_pool_client_id,
            sign_in=hosted_ui_sign_in(api.domain.base_url()),
            gitlab_url=gitlab_url,
        )
        # Bundles first and kept (prune off): a browser holding the previous index.html
        # can still load the bundles it names while the new one rolls out.
        assets = s3deploy.BucketDeployment(
            self,
            "Assets",
            destination_bucket=self.bucket,
            sources=[s3deploy.Source.asset(str(dist), exclude=["index.html"])],
            cache_control=[s3deploy.CacheControl.from_string(IMMUTABLE)],
            prune=False,
            memory_limit=512,
        )
        entry = s3deploy.BucketDeployment(
            self,
            "Entry",
            destination_bucket=self.bucket,
            sources=[
                s3deploy.Source.asset(str(dist), exclude=["*", "!index.html"]),
                s3deploy.Source.json_data(CONFIG_FILE, config),
            ],
            cache_control=[s3deploy.CacheControl.from_string(REVALIDATE)],
            prune=False,
            distribution=self.distribution,
            distribution_paths=["/index.html", f"/{CONFIG_FILE}"],
            memory_limit=512,
        )
        entry.node.add_dependency(assets)
        self._acknowledge_deployment_handler()

    def _acknowledge_deployment_handler(self) -> None:
        """CDK's one BucketDeployment function per stack, which copies the files in."""
        stack = Stack.of(self)
        handlers = [
            child
            for child in stack.node.children
            if child.node.id.startswith("Custom::CDKBucketDeployment")
        ]
        for handler in handlers:
            acknowledge(
                handler,
                "AwsSolutions-IAM4",
                "CDK's deployment function logs through the basic execution role; it runs "
                "only during deploys and touches no data of the queue.",
                findings=[
                    "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                    "AWSLambdaBasicExecutionRole"
                ],
            )
            acknowledge(
                handler,
                "AwsSolutions-IAM5",
                "CDK grants its deployment function read on the staged asset objects and "
                "write on the site bucket's objects, whose keys are not known in advance, and "
                "CloudFront invalidations, which it requests without naming a distribution.",
                findings=[
                    "Action::s3:GetBucket*",
                    "Action::s3:GetObject*",
                    "Action::s3:List*",
                    "Action::s3:Abort*",
                    "Action::s3:DeleteObject*",
                    "Resource::arn:<AWS::Partition>:s3:::cdk-hnb659fds-assets-<AWS::AccountId>-"
                    "<AWS::Region>/*",
                    f"Resource::<{stack.get_logical_id(self._site_element())}.Arn>/*",
                    "Resource::*",
                ],
            )
            acknowledge(
                handler,
                "AwsSolutions-L1",
                "The runtime of CDK's deployment function is chosen by aws-cdk-lib and moves "
                "forward with it; it runs only while a deploy copies the dashboard's files.",
            )

    def _site_element(self) -> CfnElement:
        element = self.bucket.node.default_child
        assert isinstance(element, CfnElement)
        return element

"""The dashboard's part of the synthesized stack: the private site bucket behind CloudFront,
the API on the dashboard's own origin, config.json written at deploy time, and Cognito sending
users back to the distribution."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest
from aws_cdk import App, Stack

from infra.constructs.web import SPA_ROUTING_FUNCTION, DashboardNotBuilt, Web
from merge_assist.platform.dashboard import API_PATH, CONFIG_FILE
from tests.infra.test_synth import Synthesized, synthesized

pytestmark = pytest.mark.infra

__all__ = ["synthesized"]  # fixture

# Managed policies, by id (CloudFront's documented ids).
CACHING_OPTIMIZED = "658327ea-f89d-4fab-a63d-7e88639e58f6"
CACHING_DISABLED = "4135ea2d-6df8-44a3-9df3-4b5a84be39ad"
ALL_VIEWER_EXCEPT_HOST_HEADER = "b689b0a8-53d0-40ab-baf2-68738e2966ac"


def _distribution(synthesized: Synthesized) -> dict[str, Any]:
    [distribution] = synthesized.template.find_resources("AWS::CloudFront::Distribution").values()
    config: dict[str, Any] = distribution["Properties"]["DistributionConfig"]
    return config


def test_the_site_bucket_is_private_and_read_through_origin_access_control(
    synthesized: Synthesized,
) -> None:
    config = _distribution(synthesized)
    buckets = synthesized.template.find_resources("AWS::S3::Bucket")
    site_id = next(i for i in buckets if i.startswith("WebSite"))
    site = buckets[site_id]["Properties"]
    s3_origin = next(o for o in config["Origins"] if "S3OriginConfig" in o)
    [(_, policy)] = [
        (i, p)
        for i, p in synthesized.template.find_resources("AWS::S3::BucketPolicy").items()
        if p["Properties"]["Bucket"] == {"Ref": site_id}
    ]
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    cloudfront_read = next(
        s for s in statements if s.get("Principal") == {"Service": "cloudfront.amazonaws.com"}
    )

    assert site["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert "OriginAccessControlId" in s3_origin
    assert s3_origin["S3OriginConfig"].get("OriginAccessIdentity", "") == ""
    assert cloudfront_read["Action"] == "s3:GetObject"
    assert "AWS:SourceArn" in json.dumps(cloudfront_read["Condition"])


def test_the_api_is_served_on_the_dashboards_origin_uncached_with_the_token(
    synthesized: Synthesized,
) -> None:
    config = _distribution(synthesized)
    [api_behavior] = config["CacheBehaviors"]
    api_origin = next(o for o in config["Origins"] if o["Id"] == api_behavior["TargetOriginId"])
    http_api = synthesized.only("AWS::ApiGatewayV2::Api", {"ProtocolType": "HTTP"})

    assert api_behavior["PathPattern"] == f"{API_PATH.split('/')[1]}/*"
    assert api_behavior["CachePolicyId"] == CACHING_DISABLED
    assert api_behavior["OriginRequestPolicyId"] == ALL_VIEWER_EXCEPT_HOST_HEADER
    assert set(api_behavior["AllowedMethods"]) >= {"GET", "PUT", "POST", "DELETE", "OPTIONS"}
    assert api_behavior["ViewerProtocolPolicy"] == "https-only"
    assert {"Ref": http_api} in api_origin["DomainName"]["Fn::Join"][1]
    assert api_origin["CustomOriginConfig"]["OriginProtocolPolicy"] == "https-only"
    assert config["DefaultCacheBehavior"]["CachePolicyId"] == CACHING_OPTIMIZED
    assert config["DefaultCacheBehavior"]["ViewerProtocolPolicy"] == "redirect-to-https"
    assert config["DefaultRootObject"] == "index.html"
    # No error-response fallback: it would turn the API's own 403s and 404s into the app.
    assert "CustomErrorResponses" not in config


@pytest.mark.skipif(shutil.which("node") is None, reason="node runs the CloudFront function")
@pytest.mark.parametrize(
    ("uri", "served"),
    [
        ("/", "/index.html"),
        ("/projects/7", "/index.html"),
        ("/projects/7/mrs/12", "/index.html"),
        ("/health", "/index.html"),
        ("/assets/index-3f2a.js", "/assets/index-3f2a.js"),
        ("/config.json", "/config.json"),
        ("/favicon.svg", "/favicon.svg"),
    ],
)
def test_client_side_routes_are_the_apps_index_and_files_are_files(uri: str, served: str) -> None:
    script = SPA_ROUTING_FUNCTION + (
        f"\nconsole.log(handler({{request: {{uri: {json.dumps(uri)}}}}}).uri);\n"
    )
    result = subprocess.run(
        ["node", "-e", script], capture_output=True, text=True, check=True, timeout=30
    )

    assert result.stdout.strip() == served


def test_config_json_is_written_at_deploy_time_with_the_stacks_values(
    synthesized: Synthesized,
) -> None:
    deployments = synthesized.template.find_resources("Custom::CDKBucketDeployment")
    entry = next(d["Properties"] for i, d in deployments.items() if i.startswith("WebEntry"))
    markers = json.dumps(entry["SourceMarkers"])
    user_pool = synthesized.only("AWS::Cognito::UserPool")
    client = synthesized.only("AWS::Cognito::UserPoolClient")
    domain = synthesized.only("AWS::Cognito::UserPoolDomain")
    websocket_api = synthesized.only("AWS::ApiGatewayV2::Api", {"ProtocolType": "WEBSOCKET"})

    for logical_id in (user_pool, client, domain, websocket_api):
        assert json.dumps({"Ref": logical_id}) in markers
    assert json.dumps({"Ref": "GitLabUrl"}) in markers
    assert entry["DistributionPaths"] == ["/index.html", f"/{CONFIG_FILE}"]
    assert entry["SystemMetadata"] == {"cache-control": "no-cache"}
    assert entry["Prune"] is False


def test_the_config_json_asset_has_the_shape_the_app_reads(synthesized: Synthesized) -> None:
    """The keys web/src/config.ts requires are the keys the stack writes."""
    config_ts = (Path(__file__).parents[2] / "web" / "src" / "config.ts").read_text()
    required = re.search(r"for \(const key of \[([^\]]+)\]", config_ts)
    assert required is not None
    keys = {k.strip().strip('"') for k in required.group(1).split(",")}
    written = _written_config(synthesized)

    assert keys <= set(written)
    assert written["apiUrl"] == API_PATH
    assert written["signIn"]["kind"] == "hosted-ui"
    assert written["signIn"]["scopes"] == ["openid", "email"]


def _written_config(synthesized: Synthesized) -> dict[str, Any]:
    """The config.json inside the json_data asset, markers left in place of tokens."""
    for archive in synthesized.assembly_dir.glob("asset.*.zip"):
        with zipfile.ZipFile(archive) as opened:
            if CONFIG_FILE in opened.namelist():
                text = opened.read(CONFIG_FILE).decode()
                return dict(json.loads(re.sub(r'"?<<marker:0xbaba:\d+>>"?', '"marker"', text)))
    for folder in synthesized.assembly_dir.glob("asset.*"):
        candidate = folder / CONFIG_FILE
        if candidate.is_file():
            text = candidate.read_text()
            return dict(json.loads(re.sub(r'"?<<marker:0xbaba:\d+>>"?', '"marker"', text)))
    raise AssertionError("no config.json asset in the assembly")


def test_cognito_sends_users_back_to_the_distribution(synthesized: Synthesized) -> None:
    [client] = synthesized.template.find_resources("AWS::Cognito::UserPoolClient").values()
    distribution = next(iter(synthesized.template.find_resources("AWS::CloudFront::Distribution")))
    back_here = {"Fn::Join": ["", ["https://", {"Fn::GetAtt": [distribution, "DomainName"]}, "/"]]}

    assert back_here in client["Properties"]["CallbackURLs"]
    assert back_here in client["Properties"]["LogoutURLs"]
    assert client["Properties"]["AllowedOAuthFlows"] == ["code"]
    assert synthesized.template.find_outputs("DashboardUrl")


def test_an_unbuilt_dashboard_stops_the_synth_with_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(DashboardNotBuilt, match="make web"):
        Web(
            Stack(App(), "Empty"),
            "Web",
            names=None,  # type: ignore[arg-type]
            api=None,  # type: ignore[arg-type]
            websocket_url="wss://example.invalid/updates",
            gitlab_url="https://gitlab.example.com",
            dist=tmp_path,
        )

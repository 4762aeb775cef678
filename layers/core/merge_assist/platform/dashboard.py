"""The dashboard's ``config.json``: what the static SPA learns about its deployment at
load time. The CDK stack writes it next to the app at deploy time and ``merge-assist
local`` serves it; both build it here so its shape is defined once (``web/src/config.ts``
reads it)."""

from __future__ import annotations

from typing import Any

CONFIG_FILE = "config.json"
# The API's routes live under this path on the dashboard's own origin: CloudFront routes it
# to the HTTP API, the local HTTP front serves both.
API_PATH = "/api/v1"
# What the hosted sign-in asks Cognito for; the access token is what the API checks.
HOSTED_UI_SCOPES = ("openid", "email")


def hosted_ui_sign_in(domain_url: str) -> dict[str, Any]:
    """Cognito's hosted pages with the authorization code grant and PKCE (the cloud)."""
    return {"kind": "hosted-ui", "domain": domain_url, "scopes": list(HOSTED_UI_SCOPES)}


def password_sign_in(cognito_endpoint: str) -> dict[str, Any]:
    """A plain form posting Cognito's ``InitiateAuth`` to ``cognito_endpoint`` (the local
    stack, where moto plays Cognito and no hosted pages exist)."""
    return {"kind": "password", "endpoint": cognito_endpoint}


def dashboard_config(
    *,
    websocket_url: str,
    region: str,
    user_pool_id: str,
    client_id: str,
    sign_in: dict[str, Any],
    gitlab_url: str,
    api_url: str = API_PATH,
) -> dict[str, Any]:
    return {
        "apiUrl": api_url,
        "websocketUrl": websocket_url,
        "region": region,
        "userPoolId": user_pool_id,
        "clientId": client_id,
        "signIn": sign_in,
        "gitlabUrl": gitlab_url,
    }

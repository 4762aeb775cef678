"""The HTTP front plays API Gateway with its JWT authorizer in front of the real API handler."""

from __future__ import annotations

import http.client
import time
from urllib.parse import urlsplit

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from local.stack import LocalStack

pytestmark = pytest.mark.e2e


def _token(stack: LocalStack, group: str = "viewer") -> dict[str, str]:
    user = next(u for u in stack.provisioned.demo_users if u.group == group)  # type: ignore[union-attr]
    return stack.sign_in(user.username, user.password)


def test_authorized_route_with_cognito_access_token_reaches_handler(stack: LocalStack) -> None:
    access = _token(stack)["access_token"]

    response = requests.get(
        f"{stack.url}/api/v1/health", headers={"Authorization": f"Bearer {access}"}, timeout=10
    )

    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["store"] == "ok"


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Basic YWRtaW46YWRtaW4=", "Bearer", "Bearer not-a-jwt"],
)
def test_missing_or_malformed_token_is_401(stack: LocalStack, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}

    response = requests.get(f"{stack.url}/api/v1/health", headers=headers, timeout=10)

    assert response.status_code == 401
    assert response.json() == {"message": "Unauthorized"}


def test_forged_and_expired_tokens_are_401(stack: LocalStack) -> None:
    provisioned = stack.provisioned
    assert provisioned is not None
    claims = jwt.decode(_token(stack)["access_token"], options={"verify_signature": False})
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": "dummy"})
    unsigned = jwt.encode(claims, key=None, algorithm="none")  # type: ignore[arg-type]
    expired_claims = {**claims, "exp": int(time.time()) - 60}
    expired = jwt.encode(expired_claims, other_key, algorithm="RS256", headers={"kid": "dummy"})

    for token in (forged, unsigned, expired):
        response = requests.get(
            f"{stack.url}/api/v1/health", headers={"Authorization": f"Bearer {token}"}, timeout=10
        )
        assert response.status_code == 401, token


def test_openapi_document_is_served(stack: LocalStack) -> None:
    access = _token(stack, "admin")["access_token"]

    response = requests.get(
        f"{stack.url}/api/v1/openapi.json",
        headers={"Authorization": f"Bearer {access}"},
        timeout=10,
    )

    assert response.status_code == 200
    assert "/api/v1/health" in response.json()["paths"]


def test_unknown_route_is_404_and_oversized_body_is_413(stack: LocalStack) -> None:
    assert requests.post(f"{stack.url}/nowhere", data=b"{}", timeout=10).status_code == 404

    # Announce a body larger than API Gateway accepts; the front must refuse before reading it.
    target = urlsplit(stack.url)
    connection = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=10)
    connection.putrequest("POST", "/api/v1/health")
    connection.putheader("Content-Length", str(11 * 1024 * 1024))
    connection.endheaders()
    response = connection.getresponse()
    assert response.status == 413
    connection.close()

"""Verifies Cognito access tokens with pyjwt against the user pool's published keys.

API Gateway's JWT authorizer checks them too; the API checks again so that nothing reaches
the data without a verified token, whatever is in front of the function. Every check a
forger could aim at is explicit: the algorithm is pinned to RS256 (``alg: none`` and HMAC
with the public key are refused), the key must be one of the pool's, and issuer, expiry,
``token_use`` and the client id must all match."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jwt

from merge_assist.adapters.aws import register_cache
from merge_assist.platform.errors import Unauthenticated, Unavailable
from merge_assist.platform.settings import Settings, get_settings

ALGORITHM = "RS256"
# Keys rotate rarely; a cached set also spares the JWKS endpoint from a request per call.
JWKS_CACHE_SECONDS = 3600


class CognitoTokenVerifier:
    def __init__(self, *, issuer: str, client_id: str, jwks_url: str) -> None:
        self._issuer = issuer
        self._client_id = client_id
        self._keys = jwt.PyJWKClient(jwks_url, cache_keys=True, lifespan=JWKS_CACHE_SECONDS)

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of a valid access token of this pool and client."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as error:
            raise Unauthenticated(f"not a JWT: {error}") from error
        if header.get("alg") != ALGORITHM:
            raise Unauthenticated(f"algorithm {header.get('alg')!r} is not accepted")
        try:
            key = self._keys.get_signing_key(str(header.get("kid", "")))
        except jwt.PyJWKClientConnectionError as error:
            raise Unavailable(f"the user pool's keys could not be fetched: {error}") from error
        except jwt.PyJWKClientError as error:
            raise Unauthenticated("signed with a key the user pool does not have") from error
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=[ALGORITHM],
                issuer=self._issuer,
                # Access tokens carry client_id, not aud (checked below).
                options={
                    "require": ["exp", "iat", "iss", "sub", "token_use", "client_id"],
                    "verify_aud": False,
                },
            )
        except jwt.PyJWTError as error:
            raise Unauthenticated(str(error)) from error
        if claims.get("token_use") != "access":
            raise Unauthenticated("not an access token")
        if claims.get("client_id") != self._client_id:
            raise Unauthenticated("issued to another client")
        if not isinstance(claims.get("username"), str) or not claims["username"]:
            raise Unauthenticated("no username")
        return claims


@lru_cache(maxsize=4)
def _verifier(issuer: str, client_id: str, jwks_url: str) -> CognitoTokenVerifier:
    return CognitoTokenVerifier(issuer=issuer, client_id=client_id, jwks_url=jwks_url)


def verifier_from_settings(settings: Settings | None = None) -> CognitoTokenVerifier:
    settings = settings or get_settings()
    issuer, jwks_url = settings.resolved_token_issuer, settings.resolved_jwks_url
    if not (issuer and jwks_url and settings.user_pool_client_id):
        raise Unavailable("no user pool is configured")
    return _verifier(issuer, settings.user_pool_client_id, jwks_url)


def clear_verifier_cache() -> None:
    _verifier.cache_clear()


register_cache(clear_verifier_cache)

"""API Gateway's JWT authorizer, as the HTTP front applies it to ``authorized`` routes.

Like the cloud's: the bearer token's signature is checked against the issuer's JWKS, then
``iss``, ``exp``/``nbf`` and the audience (``aud`` of an id token or ``client_id`` of an
access token); the claims are handed to the function in
``requestContext.authorizer.jwt.claims``, list claims flattened as ``[a b]``.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import jwt


class Unauthorized(Exception):
    pass


class JwtAuthorizer:
    def __init__(self, issuer: str, audiences: Collection[str], jwks_url: str) -> None:
        self._issuer = issuer
        self._audiences = set(audiences)
        self._keys = jwt.PyJWKClient(jwks_url, cache_keys=True)

    def authorize(self, authorization: str | None) -> dict[str, str]:
        if not authorization:
            raise Unauthorized("no Authorization header")
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise Unauthorized("Authorization is not a bearer token")
        try:
            key = self._keys.get_signing_key_from_jwt(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key.key,
                algorithms=["RS256"],
                issuer=self._issuer,
                options={"require": ["exp", "iss"], "verify_aud": False},
            )
        except jwt.PyJWTError as error:
            raise Unauthorized(str(error)) from error
        audience = claims.get("aud") or claims.get("client_id")
        audiences = set(audience) if isinstance(audience, list) else {audience}
        if not audiences & self._audiences:
            raise Unauthorized("token is for another audience")
        return {name: _flatten(value) for name, value in claims.items()}


def _flatten(value: Any) -> str:
    if isinstance(value, list):
        return "[" + " ".join(str(item) for item in value) + "]"
    return str(value)

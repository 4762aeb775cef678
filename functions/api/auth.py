"""Who is calling: the bearer token verified against the user pool, then their grants."""

from __future__ import annotations

from typing import Any, Protocol

from merge_assist.admin.ports import Store
from merge_assist.platform.access import Principal, groups_from_claims, principal
from merge_assist.platform.errors import Forbidden, Unauthenticated


class TokenVerifier(Protocol):
    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims; ``Unauthenticated`` if it is not a valid access token."""
        ...


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header."""
    if not authorization:
        raise Unauthenticated("no Authorization header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authorization is not a bearer token")
    return token.strip()


def authenticate(token: str, verifier: TokenVerifier, store: Store) -> Principal:
    claims = verifier.verify(token)
    username = str(claims["username"])
    groups = groups_from_claims(claims)
    if not groups:
        # Signed in, but no admin has given this user a role yet.
        raise Forbidden(f"{username} is in none of the Merge Assist groups")
    return principal(username, groups, store.grants_of_user(username))

"""Who is calling: the bearer token verified against the user pool, then their grants."""

from __future__ import annotations

from merge_assist.adapters.tokens import verifier_from_settings
from merge_assist.admin.ports import Store
from merge_assist.platform.access import Principal, groups_from_claims, principal
from merge_assist.platform.errors import Forbidden, Unauthenticated


def authenticate(authorization: str | None, store: Store) -> Principal:
    if not authorization:
        raise Unauthenticated("no Authorization header")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("Authorization is not a bearer token")
    claims = verifier_from_settings().verify(token.strip())
    username = str(claims["username"])
    groups = groups_from_claims(claims)
    if not groups:
        # Signed in, but no admin has given this user a role yet.
        raise Forbidden(f"{username} is in none of the Merge Assist groups")
    return principal(username, groups, store.grants_of_user(username))

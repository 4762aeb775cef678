"""Who may do what: groups say what a user may be, grants say where."""

from __future__ import annotations

import pytest

from merge_assist.platform.access import Action, Grant, Role, groups_from_claims, principal
from merge_assist.platform.resources import USER_GROUPS


def _grant(username: str, project_id: int, *roles: Role) -> Grant:
    return Grant(username=username, project_id=project_id, roles=list(roles), granted_by="admin")


def test_roles_are_the_cognito_groups() -> None:
    assert {role.value for role in Role} == set(USER_GROUPS)


@pytest.mark.parametrize(
    ("groups", "granted", "allowed"),
    [
        ({Role.VIEWER}, [Role.VIEWER], {Action.VIEW}),
        ({Role.PROJECT_OWNER}, [Role.PROJECT_OWNER], {Action.VIEW, Action.CONFIGURE}),
        ({Role.PRIORITY_MANAGER}, [Role.PRIORITY_MANAGER], {Action.VIEW, Action.PRIORITIZE}),
        # A grant beyond the user's groups gives only what the groups allow.
        ({Role.VIEWER}, [Role.PROJECT_OWNER], set()),
        ({Role.VIEWER, Role.PROJECT_OWNER}, [Role.PROJECT_OWNER], {Action.VIEW, Action.CONFIGURE}),
        # A group without a grant gives nothing on the project.
        ({Role.PROJECT_OWNER}, [], set()),
    ],
)
def test_roles_on_a_project_are_groups_and_grant_together(
    groups: set[Role], granted: list[Role], allowed: set[Action]
) -> None:
    grants = [_grant("u", 1, *granted)] if granted else []
    user = principal("u", frozenset(groups), grants)

    assert {action for action in Action if user.may(action, 1)} == allowed
    assert not any(user.may(action, 2) for action in Action)
    assert not user.may(Action.ADMINISTER)


def test_admin_may_do_everything_everywhere() -> None:
    admin = principal("a", frozenset({Role.ADMIN}), [])

    assert all(admin.may(action, 42) for action in Action)
    assert admin.may(Action.ADMINISTER)
    assert admin.visible([1, 2, 3]) == [1, 2, 3]


def test_grants_of_other_users_are_ignored() -> None:
    user = principal("u", frozenset({Role.VIEWER}), [_grant("someone-else", 1, Role.VIEWER)])

    assert not user.may(Action.VIEW, 1)


def test_groups_come_from_the_claim_as_list_or_flattened_text() -> None:
    assert groups_from_claims({"cognito:groups": ["viewer", "unknown"]}) == {Role.VIEWER}
    assert groups_from_claims({"cognito:groups": "[admin viewer]"}) == {Role.ADMIN, Role.VIEWER}
    assert groups_from_claims({}) == frozenset()


def test_admin_cannot_be_granted_per_project() -> None:
    with pytest.raises(ValueError, match="admin"):
        _grant("u", 1, Role.ADMIN)

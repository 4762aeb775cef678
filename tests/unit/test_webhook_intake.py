"""The receiver's pure decisions at its edges: which token is acceptable while a secret
rotates, which project a body names before it is parsed, how deep a body may nest, and
whose an idempotency key is."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from bench.gitlab_payloads import merge_request_event, note_event
from merge_assist.platform.config import ProjectConfig, WebhookSecret
from merge_assist.platform.events import QueueEvent
from merge_assist.platform.gitlab_events import parse_hook
from merge_assist.platform.intake import (
    MAX_JSON_DEPTH,
    ROTATION_GRACE,
    Enqueue,
    TokenMatch,
    UnreadableBody,
    accepted_token,
    decide,
    idempotency_key,
    load_json_object,
    project_id_hint,
    variant_key,
)

NOW = datetime(2025, 6, 2, 12, 0, tzinfo=UTC)
OLD = "old-token-0123456789abcdef"
NEW = "new-token-0123456789abcdef"


def _rotated_at(moment: datetime) -> WebhookSecret:
    return WebhookSecret(secret_token=OLD).rotated(NEW, now=moment, grace=ROTATION_GRACE)


def test_the_current_token_is_accepted_and_others_are_not() -> None:
    secret = WebhookSecret(secret_token=OLD)

    assert accepted_token(OLD, secret, NOW) is TokenMatch.CURRENT
    assert accepted_token(NEW, secret, NOW) is None
    assert accepted_token(None, secret, NOW) is None
    assert accepted_token("", secret, NOW) is None


def test_a_rotation_keeps_the_replaced_token_acceptable_until_its_grace_ends() -> None:
    secret = _rotated_at(NOW)

    assert secret.secret_token == NEW
    assert accepted_token(NEW, secret, NOW) is TokenMatch.CURRENT
    assert accepted_token(OLD, secret, NOW) is TokenMatch.PREVIOUS
    just_before = NOW + ROTATION_GRACE - timedelta(seconds=1)
    assert accepted_token(OLD, secret, just_before) is TokenMatch.PREVIOUS
    assert accepted_token(OLD, secret, NOW + ROTATION_GRACE) is None
    assert accepted_token(NEW, secret, NOW + timedelta(days=30)) is TokenMatch.CURRENT


def test_a_previous_token_without_an_end_is_not_accepted() -> None:
    secret = WebhookSecret(secret_token=NEW, previous_secret_token=OLD)

    assert accepted_token(OLD, secret, NOW) is None


def test_the_rotated_secret_survives_storage_and_keeps_its_signing_token() -> None:
    secret = WebhookSecret(secret_token=OLD, signing_token="whsec_abc").rotated(
        NEW, now=NOW, grace=timedelta(minutes=90)
    )

    stored = WebhookSecret.model_validate(json.loads(secret.model_dump_json(exclude_none=True)))

    assert stored.signing_token == "whsec_abc"
    assert stored.previous_secret_token == OLD
    assert stored.previous_valid_until == NOW + timedelta(minutes=90)
    assert OLD not in repr(stored)
    assert NEW not in repr(stored)


@pytest.mark.parametrize(
    ("text", "project_id"),
    [
        ('{"object_kind":"push","project_id":15,"project":{"id":15}}', 15),
        ('{"object_kind": "merge_request", "project": {"id": 7, "name": "x"}}', 7),
        ('{"object_kind":"note","project_id" : 5}', 5),
        ('{"object_kind":"merge_request","source_project_id":3,"project":{"id":4}}', 4),
        # Quotes inside a string are escaped: a description cannot name a project.
        ('{"description":"\\"project_id\\": 9","project":{"id":4}}', 4),
        ('{"object_kind":"merge_request"}', None),
        ('{"project_id":0}', None),
        ('{"project_id":"7"}', None),
        ('{"project_id":1234567890123456789012}', None),
        ("[" * 200_000, None),
    ],
)
def test_the_project_a_body_names_is_found_without_parsing_it(
    text: str, project_id: int | None
) -> None:
    assert project_id_hint(text) == project_id


def test_json_objects_within_the_depth_bound_are_read() -> None:
    nested: object = {"leaf": True}
    for _ in range(MAX_JSON_DEPTH - 1):
        nested = {"inner": nested}
    text = json.dumps({"object_kind": "push", "brackets": "[[[{{{", "a": [[1], {"b": []}]})

    assert load_json_object(text)["brackets"] == "[[[{{{"
    assert load_json_object(json.dumps(nested)) == nested


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 200_000, "not JSON"),
        ('{"a":' + "[" * 200_000 + "]" * 200_000 + "}", "deeper than"),
        ('{"a":' + "{" * 100 + "}" * 100 + "}", "deeper than"),
        ("[" + "{]," * 100 + "]", "not JSON"),
        ("[" * 1000 + "}" * 1000, "deeper than"),
        ("[" * 100 + "]", "not JSON"),
        ('{"a": "unterminated', "not JSON"),
        ('{"a": ' + "9" * 5000 + "}", "not JSON"),
        ("[1, 2, 3]", "not a JSON object"),
        ('"text"', "not a JSON object"),
        ("", "not JSON"),
    ],
    ids=[
        "open-brackets",
        "deep-array",
        "deep-object",
        "mismatched",
        "mismatched-deep",
        "unpaired",
        "unterminated",
        "huge-int",
        "array",
        "string",
        "empty",
    ],
)
def test_anything_else_is_unreadable_never_an_error(text: str, message: str) -> None:
    with pytest.raises(UnreadableBody, match=message):
        load_json_object(text)


def test_idempotency_keys_belong_to_their_project() -> None:
    headers = {"idempotency-key": "0f9c", "x-gitlab-webhook-uuid": "a"}

    seven = idempotency_key(headers, b"{}", 7)
    eight = idempotency_key(headers, b"{}", 8)
    # GitLab draws X-Gitlab-Webhook-UUID anew for each request, "Resend" included.
    resent = idempotency_key({**headers, "x-gitlab-webhook-uuid": "b"}, b"{}", 7)

    assert seven == "7:0f9c"
    assert seven != eight
    assert resent == seven


def test_derived_keys_belong_to_their_project_too() -> None:
    headers = {"x-gitlab-event-uuid": "e1", "x-gitlab-event": "Push Hook"}

    assert idempotency_key(headers, b"{}", 7) != idempotency_key(headers, b"{}", 8)
    assert idempotency_key(headers, b"{}", 7) == idempotency_key(headers, b"{}", 7)


def test_a_key_reused_with_another_body_gets_a_key_of_its_own_within_sqs_limits() -> None:
    long_key = idempotency_key({"idempotency-key": "k" * 200}, b"{}", 7)

    first = variant_key("7:abc", "1" * 64)
    second = variant_key("7:abc", "2" * 64)

    assert len({first, second, "7:abc"}) == 3
    assert variant_key("7:abc", "1" * 64) == first
    assert all(len(key) <= 128 for key in (long_key, variant_key(long_key, "3" * 64)))


def test_an_event_names_who_caused_it_and_what_an_update_changed() -> None:
    config = ProjectConfig(project_id=5)
    payload = merge_request_event(5, 3)
    payload["changes"]["labels"] = {"previous": [], "current": []}
    decided = decide(parse_hook(payload), config, "k1")
    note = decide(parse_hook(note_event(5, 3)), config, "k2")

    assert isinstance(decided, Enqueue)
    assert isinstance(note, Enqueue)
    event: QueueEvent = decided.event
    assert event.actor_id == 42
    assert event.merge_request is not None
    assert event.merge_request.changed == ("labels", "updated_at")
    assert note.event.actor_id == 42

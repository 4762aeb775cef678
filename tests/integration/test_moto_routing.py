"""The local stack's memoized moto routing sends every request to the backend moto's own
lookup would, once per host."""

from __future__ import annotations

from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

from local import moto_routing

HOSTS = [
    "dynamodb.us-east-1.amazonaws.com",
    "sqs.us-east-1.amazonaws.com",
    "states.us-east-1.amazonaws.com",
    "secretsmanager.eu-west-1.amazonaws.com",
    "lambda.us-east-1.amazonaws.com",
    "s3",
    "moto_api",
    None,
]


def test_memoized_lookups_answer_as_moto_does() -> None:
    app = DomainDispatcherApplication(create_backend_app)
    expected = {host: app.get_backend_for_host(host) for host in HOSTS}
    assert expected["dynamodb.us-east-1.amazonaws.com"] == "dynamodb"

    moto_routing.install()
    moto_routing.install()  # idempotent

    assert {host: app.get_backend_for_host(host) for host in HOSTS} == expected
    assert {host: app.get_backend_for_host(host) for host in HOSTS} == expected

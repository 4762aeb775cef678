"""``merge-assist -v`` logs what the libraries do, never a secret they handle."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from cli.main import configure_logging

TOKEN = "glpat-Abcdefghijklmnop1234"
WEBHOOK_SECRET = "s3cr3t-webhook-token-0123456789"


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    levels = {name: logging.getLogger(name).level for name in ("botocore", "urllib3", "app")}
    stream = io.StringIO()
    root.handlers = [logging.StreamHandler(stream)]
    yield stream
    root.handlers, root.level = saved[0], saved[1]
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def test_verbose_logging_keeps_the_wire_loggers_out(captured: io.StringIO) -> None:
    configure_logging(verbose=True)

    logging.getLogger("botocore.endpoint").debug(
        'Response body: {"SecretString": "%s"}', WEBHOOK_SECRET
    )
    logging.getLogger("app").debug("debugging goes on")

    assert WEBHOOK_SECRET not in captured.getvalue()
    assert "debugging goes on" in captured.getvalue()


def test_tokens_that_reach_a_log_line_are_masked(captured: io.StringIO) -> None:
    configure_logging(verbose=True)

    log = logging.getLogger("app")
    log.warning("sending headers {'PRIVATE-TOKEN': '%s'}", TOKEN)
    log.warning('secret: {"SecretString": "{\\"secret_token\\": \\"%s\\"}"}', WEBHOOK_SECRET)
    log.warning("X-Gitlab-Token: %s", WEBHOOK_SECRET)
    log.warning("cloned with %s", TOKEN)

    text = captured.getvalue()
    assert TOKEN not in text
    assert WEBHOOK_SECRET not in text
    assert text.count("***") == 4

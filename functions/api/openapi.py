"""Writes the API's OpenAPI document, the one the dashboard's typed client is generated
from: ``python -m functions.api.openapi web/src/api/openapi.json`` (``make api-types``)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from functions.api.app import openapi_document


def render() -> str:
    return json.dumps(openapi_document(), indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m functions.api.openapi OUTPUT.json", file=sys.stderr)
        return 2
    Path(argv[0]).write_text(render())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

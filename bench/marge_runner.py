"""Runs marge-bot with its fixed waits (5 s, 10 s, 30 s between polls) shortened, so a test
against the simulator takes seconds; everything else is marge-bot's own code."""

from __future__ import annotations

import sys
import time
from typing import SupportsFloat, SupportsIndex

MAX_SLEEP_S = 0.2


def main() -> int:
    real_sleep = time.sleep

    def short_sleep(seconds: SupportsFloat | SupportsIndex) -> None:
        real_sleep(min(float(seconds), MAX_SLEEP_S))

    time.sleep = short_sleep
    # Imported after the patch on purpose.
    from marge.app import main as marge_main  # type: ignore[import-untyped]

    return int(marge_main(sys.argv[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())

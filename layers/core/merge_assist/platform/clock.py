from __future__ import annotations

from datetime import datetime

from merge_assist.platform.models import utc_now


class SystemClock:
    def now(self) -> datetime:
        return utc_now()

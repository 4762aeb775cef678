"""Project configs for the receiver, cached briefly: GitLab may send bursts of events for
one project and the receiver must answer fast; a config change is seen within
``CONFIG_CACHE_SECONDS``."""

from __future__ import annotations

import threading
import time

from functions.webhook import wiring
from merge_assist.adapters.aws import register_cache
from merge_assist.platform.config import ProjectConfig

CONFIG_CACHE_SECONDS = 30.0

_cache: dict[int, tuple[float, ProjectConfig]] = {}
_lock = threading.Lock()


def project_config(project_id: int) -> ProjectConfig:
    """Raises ``NotFoundError`` for a project that is not connected (never cached)."""
    now = time.monotonic()
    with _lock:
        cached = _cache.get(project_id)
    if cached and now - cached[0] < CONFIG_CACHE_SECONDS:
        return cached[1]
    config = wiring.project_configs().get_project(project_id)
    with _lock:
        _cache[project_id] = (now, config)
    return config


def clear_config_cache() -> None:
    with _lock:
        _cache.clear()


register_cache(clear_config_cache)

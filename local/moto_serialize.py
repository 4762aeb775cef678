"""moto serializes each response member by trying a list of key aliases, which it works
out again for every value: for a DynamoDB item, every attribute's ``S``/``N``/``M``/...
member goes through six alias providers. The aliases depend only on the picker's
providers, the value's type, the member's shape and its name, so they are remembered for
those; an item read took about half its time in that work. Which aliases are tried, and
in what order, is unchanged."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any

from moto.core.serialize import AttributePicker, AttributePickerContext

_lock = threading.Lock()
_original: Callable[[AttributePicker, AttributePickerContext], Iterable[str]] | None = None
_aliases: dict[tuple[Any, ...], tuple[str, ...]] = {}


def install() -> None:
    """Idempotent: remember the aliases of each (providers, type, shape, key)."""
    global _original  # noqa: PLW0603 - one patch per process
    with _lock:
        if _original is not None:
            return
        original = AttributePicker.get_possible_keys
        _original = original

        def get_possible_keys(
            picker: AttributePicker, context: AttributePickerContext
        ) -> tuple[str, ...]:
            # Shapes are botocore's model objects, built once per service model: their
            # identity is a sound key, and holding them costs nothing.
            key = (
                tuple(picker.alias_providers),
                type(context.obj),
                context.shape,
                context.key,
            )
            found = _aliases.get(key)
            if found is None:
                found = _aliases.setdefault(key, tuple(original(picker, context)))
            return found

        AttributePicker.get_possible_keys = get_possible_keys  # type: ignore[method-assign, assignment]


def uninstall() -> None:
    """moto's own alias lookup again (a test compares the two)."""
    global _original  # noqa: PLW0603 - one patch per process
    with _lock:
        if _original is None:
            return
        AttributePicker.get_possible_keys = _original  # type: ignore[method-assign, assignment]
        _original = None
        _aliases.clear()

"""Helpers shared by the modules of the query language."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..values import MAX_ID

#: The digits of a non-negative integer written in a query string.
DIGITS = re.compile(r"[0-9]+")


def details(**values: Any) -> dict[str, Any]:
    """The ``details`` of an error naming ``values``, each as a JSON error body may show it."""
    return {key: printable(value) for key, value in values.items()}


def printable(value: Any) -> Any:
    """``value`` as it may appear in a JSON error body."""
    if isinstance(value, str):
        return value[:100].encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, bool | float) or value is None:
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value <= MAX_ID else str(value)[:30]
    return repr(value)[:100]


def flatten(messages: Any) -> list[str]:
    """Every message of a marshmallow ``messages`` structure, in order."""
    if isinstance(messages, str):
        return [messages]
    if isinstance(messages, Mapping):
        return [m for value in messages.values() for m in flatten(value)]
    return [m for value in messages for m in flatten(value)]

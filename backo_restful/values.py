"""The values every backend stores: ids, integers, strings and datetimes.

One parser of ids serves every layer (URLs, query strings, filters, JWT
``sub`` claims), so they all accept the same ids.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

#: The largest id any backend can store (a signed 64-bit integer).
MAX_ID = 2**63 - 1
#: The most characters of an id given as text: more is over MAX_ID (or padded with
#: zeros beyond reason), and is not parsed.
_ID_DIGITS = 30


def check_id(value: Any) -> int:
    """Return ``value`` if it is a storable id.

    :raises ValueError: if it is not an integer between 1 and :data:`MAX_ID`.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ID:
        raise ValueError(f"an id must be an integer between 1 and {MAX_ID}")
    return value


def parse_id(value: Any) -> int:
    """An id from ``value``: an integer, or its decimal digits as text (the ids
    of URLs, query strings and JWT ``sub`` claims).

    :raises ValueError: if it is not an id (see :func:`check_id`).
    """
    if isinstance(value, str) and len(value) <= _ID_DIGITS and value.isascii() and value.isdigit():
        value = int(value)
    return check_id(value)


def storable(value: Any) -> tuple[Any, str | None]:
    """``(value as stored, None)``, or ``(value, why it cannot be stored)``.

    Every backend stores 64-bit integers, strings that are valid UTF-8 without NUL,
    and datetimes it can express in UTC (aware ones are stored as naive UTC).
    """
    if isinstance(value, bool):
        return value, None
    if isinstance(value, int):
        if not -(2**63) <= value <= MAX_ID:
            return value, f"Must be between {-(2**63)} and {MAX_ID}."
    elif isinstance(value, str):
        if "\x00" in value:
            return value, "Must not contain NUL characters."
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return value, "Must be valid Unicode (no lone surrogates)."
    elif isinstance(value, dt.datetime) and value.tzinfo is not None:
        try:
            return value.astimezone(dt.UTC).replace(tzinfo=None), None
        except OverflowError:
            return value, "Out of the range of datetimes once converted to UTC."
    return value, None

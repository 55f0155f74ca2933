"""Conditional requests (RFC 7232): the ``If-Match`` and ``If-None-Match``
headers as the arguments of the calls of :mod:`~backo_restful.api.basic`.

A read answers ``304 Not Modified`` when one of the tags of ``If-None-Match``
is its ``ETag`` (weak comparison: ``W/"x"`` and ``"x"`` are the same); a write
of one object goes on only when the object shows one of the tags of
``If-Match`` (strong comparison, done by the engine in the write's transaction:
see :mod:`backo_restful.engine.tags`). A malformed header lists no tag: an
``If-Match`` then matches nothing (412), an ``If-None-Match`` nothing (200).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from ..exceptions import PreconditionRequired

#: One entity tag of a list (RFC 7232 ``entity-tag``), or ``*``, and its comma.
_TAG = re.compile(r'[ \t]*(\*|(?:W/)?"[\x21\x23-\x7e\x80-\uffff]*")[ \t]*(?:,|$)')
#: The most tags of a header looked at (more: the header matches nothing).
MAX_HEADER_TAGS = 100


def parse_tags(value: str | None) -> str | list[str] | None:
    """The tags of an ``If-Match`` or ``If-None-Match`` header: None without
    the header, ``"*"``, or the list of tags (empty for a malformed header)."""
    if value is None:
        return None
    if value.strip() == "*":
        return "*"
    tags: list[str] = []
    position = 0
    while position < len(value) and len(tags) <= MAX_HEADER_TAGS:
        found = _TAG.match(value, position)
        if found is None or found.end() == position:
            return []
        tags.append(found.group(1))
        position = found.end()
    return tags if len(tags) <= MAX_HEADER_TAGS else []


def weak_match(tags: str | Sequence[str] | None, etag: str) -> bool:
    """Whether ``etag`` is one of ``tags`` (``*``: any), comparing them weakly
    (an ``If-None-Match`` that holds: the answer is ``304``)."""
    if tags is None:
        return False
    if isinstance(tags, str):
        tags = [tags]
    opaque = _opaque(etag)
    return any(tag == "*" or _opaque(tag) == opaque for tag in tags)


def _opaque(tag: str) -> str:
    return tag[2:] if tag.startswith("W/") else tag


def write_conditions(headers: Any, *, required: bool, put: bool = False) -> dict[str, Any]:
    """The ``if_match`` (and, for a ``PUT``, ``if_none_match``) arguments of a
    write from its request ``headers``.

    :param required: refuse a write without ``If-Match`` (``BACKO_REQUIRE_IF_MATCH``;
        a ``PUT`` with ``If-None-Match: *``, which only creates, passes).
    :raises PreconditionRequired: for a write without them, when ``required``.
    """
    conditions: dict[str, Any] = {"if_match": parse_tags(headers.get("If-Match"))}
    if put and parse_tags(headers.get("If-None-Match")) == "*":
        conditions["if_none_match"] = "*"
    check_required(conditions.get("if_none_match") or conditions["if_match"], required)
    return conditions


def check_required(condition: Any, required: bool) -> None:
    """Refuse a write without a ``condition`` when the API ``required`` one.

    :raises PreconditionRequired: then.
    """
    if required and condition is None:
        raise PreconditionRequired(
            "This API requires If-Match on writes: read the object, then send "
            "its ETag in If-Match.",
            {"header": "If-Match"},
        )

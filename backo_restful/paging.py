"""Pages of a collection: keyset cursors, counts and the ``Link`` header.

A cursor is an opaque, URL-safe token holding the sort-key values of a row (the id
last). ``after=<cursor>`` reads the rows that follow it, ``before=<cursor>`` the
rows that precede it, by the same keys the database orders by, so page 10 000
costs what page 1 costs.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import decimal
import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from marshmallow import fields as ma

from .exceptions import BadRequest, InvalidCursor
from .model import Collection
from .query import Path, SortKey, field_of, typed_value

#: ``before=`` this cursor reads the last page.
END = "end"


@dataclass
class Page:
    """One page of a collection read.

    :param items: the objects, expanded as asked.
    :param total: how many objects match (None when not counted).
    :param total_method: how ``total`` was found: ``"exact"`` (counted),
        ``"estimate"`` (the database's statistics) or ``"at-least"`` (more objects
        match than were counted; ``total`` is a lower bound). None when not counted.
    :param next: the cursor of the page after this one (None: this is the last).
    :param previous: the cursor of the page before (None: this is the first).
    """

    items: list[Any]
    total: int | None = None
    total_method: str | None = None
    next: str | None = None
    previous: str | None = None
    limit: int | None = None
    offset: int | None = None


def _signature(collection: Collection, keys: Sequence[SortKey]) -> str:
    spec = (
        collection.name + ":" + ",".join(("-" if k.descending else "") + k.path.text for k in keys)
    )
    return hashlib.sha1(spec.encode()).hexdigest()[:8]


def _jsonable(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):  # a computed key's SQL value
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dt.datetime | dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"cannot put {type(value).__name__} in a cursor")


def encode(collection: Collection, keys: Sequence[SortKey], values: Sequence[Any]) -> str:
    """The cursor of a row whose sort-key values are ``values``."""
    payload = {"s": _signature(collection, keys), "v": list(values)}
    raw = json.dumps(payload, default=_jsonable, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(
    collection: Collection, keys: Sequence[SortKey], paths: Sequence[Path], cursor: Any, name: str
) -> list[Any] | None:
    """The typed sort-key values of ``cursor`` (None for :data:`END`).

    :raises InvalidCursor: if the cursor is malformed or was made for another sort.
    """
    if cursor == END:
        return None
    try:
        if not isinstance(cursor, str) or len(cursor) > 4000:
            raise ValueError("not a cursor")
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        payload = json.loads(raw)
        values = payload["v"]
        if payload["s"] != _signature(collection, keys) or len(values) != len(paths):
            raise ValueError("made for another sort")
        if not isinstance(values, list):
            raise ValueError("not a cursor")
    except (ValueError, KeyError, TypeError, binascii.Error, RecursionError):
        raise InvalidCursor(
            f"Parameter {name!r} is not a cursor of this collection and sort: "
            "use the links of a previous response.",
            {"parameter": name},
        ) from None
    try:
        return [
            _cursor_value(collection, path, value, name)
            for path, value in zip(paths, values, strict=True)
        ]
    except (ValueError, BadRequest):
        raise InvalidCursor(
            f"Parameter {name!r} is not a cursor of this collection and sort.",
            {"parameter": name},
        ) from None


def _cursor_value(collection: Collection, path: Path, value: Any, name: str) -> Any:
    """The value of a cursor at ``path``, typed as the database stores it.

    :raises ValueError: or :class:`BadRequest` for a value the field cannot hold.
    """
    field = field_of(collection, path)
    if value is None:
        return None
    if isinstance(field, ma.DateTime | ma.Date | ma.Time) and isinstance(value, str):
        # What the cursor holds is what the database stored: naive (UTC).
        moment = _TEMPORAL[_kind(field)](value)
        if getattr(moment, "tzinfo", None) is not None:
            raise ValueError("a cursor holds naive datetimes and times")
        return moment
    return typed_value(path, field, value, False, name)


def _kind(field: ma.Field) -> str:
    if isinstance(field, ma.DateTime):
        return "datetime"
    return "date" if isinstance(field, ma.Date) else "time"


_TEMPORAL = {
    "datetime": dt.datetime.fromisoformat,
    "date": dt.date.fromisoformat,
    "time": dt.time.fromisoformat,
}


def link_header(base: str, query: Mapping[str, Any], page: Page, *, cursor_mode: bool) -> str:
    """The RFC 8288 ``Link`` value (first, prev, next, last) of ``page``.

    :param base: the URL of the collection (may be empty: relative links).
    :param query: the request's parameters, without the paging ones.
    """
    params = {
        key: value
        for key, value in query.items()
        if key not in ("after", "before", "offset", "limit")
    }
    if page.limit is not None:
        params["limit"] = page.limit

    common = urlencode(params)  # the same in every link: encoded once

    def url(**paging: Any) -> str:
        if not paging:
            return f"{base}?{common}"
        return f"{base}?{common}&{urlencode(paging)}" if common else f"{base}?{urlencode(paging)}"

    links = [(url(), "first")]
    if cursor_mode:
        if page.previous is not None:
            links.append((url(before=page.previous), "prev"))
        if page.next is not None:
            links.append((url(after=page.next), "next"))
        links.append((url(before=END), "last"))
    else:
        offset, limit = page.offset or 0, page.limit or 0
        if offset > 0:
            links.append((url(offset=max(0, offset - limit)), "prev"))
        if page.next is not None:
            links.append((url(offset=offset + limit), "next"))
        if page.total is not None and limit and page.total_method == "exact":
            links.append((url(offset=max(0, (page.total - 1) // limit * limit)), "last"))
        else:
            links.append((url(before=END), "last"))
    return ", ".join(f'<{target}>; rel="{rel}"' for target, rel in links)

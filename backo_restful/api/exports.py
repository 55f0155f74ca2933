"""Exports: every match of a list read as CSV or NDJSON, streamed a page at a time.

:func:`export` takes the arguments of :func:`~backo_restful.api.basic.get` and
answers ``(chunks, 200, headers)``: ``chunks`` yields the export's bytes, one
chunk per page of at most ``page_size`` objects, read through cursors as the
chunks are asked for, so memory does not grow with the number of objects. The
first page is read before :func:`export` returns: a bad parameter or a refused
caller is the usual ``(error body, status, headers)``. A failure after that
(the database lost, say) raises from ``chunks``: over HTTP the server then ends
the response without its last chunk, so a client sees an incomplete transfer,
never a short file that looks whole.

CSV (RFC 4180, ``\\r\\n`` line ends, UTF-8) is flat: a header row of the keys
(:meth:`Engine.columns`), then one row per object; ``depth`` is 0 or 1, so a
relation is its id, or its ids joined by :data:`ID_SEPARATOR`; a value stored
as JSON (lists, dicts) is its JSON text; null is an empty cell, ``true`` and
``false`` are spelled as in JSON. Values are written as stored: nothing is
prefixed to a text starting with ``=``, ``+``, ``-`` or ``@``, which a spreadsheet
may take for a formula (open the file as text, or clean it for a spreadsheet).
NDJSON is one JSON object (an id at depth 0) per line, at any depth.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..engine import Engine, ReadOptions, default_engine
from ..exceptions import BackoError, InvalidParameter, LimitExceeded
from ..query import Node, check_count
from .basic import (
    DEFAULT_MAX_DEPTH,
    DEFAULT_MAX_LIMIT,
    DEFAULT_MAX_OBJECTS,
    Response,
    _view,
    error_response,
)

JSON = "application/json"
CSV = "text/csv"
NDJSON = "application/x-ndjson"
#: The media types an export answers in, with the file suffix of each.
EXPORT_TYPES = {CSV: "csv", NDJSON: "ndjson"}
#: What joins the ids of a to-many relation in a CSV cell.
ID_SEPARATOR = " "


def negotiate(accept: Any) -> str | None:
    """The export type a request's ``Accept`` (werkzeug's ``MIMEAccept``) asks
    for, by its q-values; None when JSON is as good (``*/*``, a tie) or better."""
    best = accept.best_match((JSON, CSV, NDJSON), default=JSON)
    return best if best in EXPORT_TYPES else None


def export(
    name: str,
    media_type: str,
    *,
    depth: int = 1,
    filter_: Mapping[str, Any] | Node | None = None,
    sort: list[str] | str | None = None,
    limit: int | None = None,
    offset: int | None = None,
    fields: list[str] | str | None = None,
    view: str | None = None,
    after: str | None = None,
    before: str | None = None,
    auth: Mapping[str, Any] | None = None,
    engine: Engine | None = None,
    max_depth: int = DEFAULT_MAX_DEPTH,
    page_size: int = DEFAULT_MAX_LIMIT,
    max_objects: int = DEFAULT_MAX_OBJECTS,
) -> Response:
    """Every object of collection ``name`` that matches, in ``media_type``
    (``text/csv`` or ``application/x-ndjson``), as ``(chunks, 200, headers)``.

    The read is :func:`~backo_restful.api.basic.get`'s (filter, sort, fields,
    view, the caller's scope and field rights), with no page: ``limit`` caps
    the objects in all (None: every match), ``after`` starts after a cursor.
    Each page holds at most ``page_size`` objects and ``max_objects`` objects
    and ids (a page that would hold more is read again in halves); the export
    as a whole has no cap. ``offset`` and ``before`` do not apply (400).
    """
    try:
        check_count("depth", depth, maximum=max_depth, setting="BACKO_MAX_DEPTH")
        _check_export(media_type, depth, offset, before)
        if limit is not None:
            check_count("limit", limit)
        engine = engine or default_engine()
        options = ReadOptions(
            depth=depth, filter_=filter_, sort=sort, fields=fields, after=after, count="none",
            max_objects=max_objects, view=_view(engine, name, view, fields),
        )  # fmt: skip
        pages = _pages(engine, name, options, auth, limit, page_size)
        if media_type == CSV:
            collection = engine.model.collections[name]
            relations = {collection.external_name(field) for field in collection.relations}
            columns = engine.columns(name, options=options, auth=auth)
            chunks = _csv_chunks(pages, columns, relations)
        else:
            chunks = _ndjson_chunks(pages)
        first = next(chunks)  # the first page, read now: its errors are the answer
    except BackoError as error:
        return error_response(error)
    headers = {
        "Content-Type": f"{media_type}; charset=utf-8",
        "Content-Disposition": f'attachment; filename="{name}.{EXPORT_TYPES[media_type]}"',
    }
    return _chain(first, chunks), 200, headers


def _check_export(media_type: str, depth: int, offset: Any, before: Any) -> None:
    """Refuse what an export of ``media_type`` cannot give."""
    if media_type not in EXPORT_TYPES:
        raise InvalidParameter(
            f"An export is {' or '.join(EXPORT_TYPES)}, not {str(media_type)[:50]!r}.",
            {"parameter": "media_type"},
        )
    if media_type == CSV and depth > 1:
        raise InvalidParameter(
            f"A CSV export is flat: depth is 0 or 1, not {depth} (relations are ids); "
            f"ask for {NDJSON} for nested objects.",
            {"parameter": "depth"},
        )
    for parameter, value in (("offset", offset), ("before", before)):
        if value is not None:
            raise InvalidParameter(
                f"An export streams every match from the first (or from after=): "
                f"{parameter} does not apply.",
                {"parameter": parameter},
            )


def _chain(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _pages(
    engine: Engine,
    name: str,
    options: ReadOptions,
    auth: Mapping[str, Any] | None,
    limit: int | None,
    page_size: int,
) -> Iterator[list[Any]]:
    """The objects of each page of the read, walked by cursors: at most
    ``limit`` in all (None: every match)."""
    left, after, size = limit, options.after, max(1, page_size)
    while left is None or left > 0:
        wanted = size if left is None else min(left, size)
        try:
            page = engine.page(name, options=options.replace(limit=wanted, after=after), auth=auth)
        except LimitExceeded as error:
            if error.details.get("setting") != "BACKO_MAX_OBJECTS" or wanted == 1:
                raise
            size = wanted // 2  # too many objects and ids for one page: half as many
            continue
        yield page.items
        if left is not None:
            left -= len(page.items)
        if page.next is None or not page.items:
            return
        after = page.next


def _ndjson_chunks(pages: Iterable[list[Any]]) -> Iterator[bytes]:
    yielded = False
    for items in pages:
        lines = (json.dumps(item, ensure_ascii=False, separators=(",", ":")) for item in items)
        yield "".join(line + "\n" for line in lines).encode()
        yielded = True
    if not yielded:  # limit=0: an empty export
        yield b""


def _csv_chunks(
    pages: Iterable[list[Any]], columns: list[str], relations: set[str]
) -> Iterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for items in pages:
        for item in items:
            if isinstance(item, dict):
                writer.writerow([_cell(item.get(key), key in relations) for key in columns])
            else:  # depth 0: the id
                writer.writerow([item])
        yield buffer.getvalue().encode()
        buffer.seek(0)
        buffer.truncate()
    if buffer.tell():  # limit=0: the header alone
        yield buffer.getvalue().encode()


def _cell(value: Any, relation: bool) -> Any:
    """The CSV cell of ``value``."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return value
    if relation and isinstance(value, list):
        return ID_SEPARATOR.join(str(id_) for id_ in value)
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))

"""The benchmark's reference: the same API as ``app_backo``, hand-written on Flask + Peewee.

It does the least work that still answers the benchmark's requests correctly and
with the same JSON (same keys, same order, same bytes) as backo_restful:

- one connection per request, opened and closed around the work, with the same
  SQLite pragmas (``journal_mode=wal``, ``foreign_keys=1``, ``busy_timeout=10000``);
- one statement per level of embedding (``IN (...)`` batches, never one per row);
- a read of more than one statement runs in one transaction (a consistent
  snapshot); a read of one statement runs on its own;
- a write takes the write lock first (``BEGIN IMMEDIATE``), checks the author it
  links to, writes, and answers from what it wrote (PATCH reads the row back);
- ``X-Total-Count`` (one ``COUNT(*)`` of at most 10 000 matches, as backo_restful
  counts by default) on list responses only when ``BENCH_TOTAL_COUNT=1``,
  and a ``Link`` header (first, prev, next, last; one row more is read to know
  whether there is a next page) only when ``BENCH_LINKS=1``: ``run.py`` sets them
  when backo_restful sends these headers, so both apps do the same work.

It supports what the scenarios use and little more: ``depth`` 0 to 2, ``limit``,
``offset``, ``sort`` on scalar fields and ``author``, equality filters and the
``$gt``, ``$gte``, ``$lt``, ``$lte``, ``$ne`` operators on ``id`` and ``year``.

Serve it with ``BENCH_DB=/path/to/bench.db gunicorn --chdir bench app_reference:app``.
"""

from __future__ import annotations

import base64
import json
import os
from typing import Any
from urllib.parse import urlencode

import peewee
from flask import Flask, Response, request

MAX_ID = 2**63 - 1

db = peewee.SqliteDatabase(
    None,
    pragmas=[("journal_mode", "wal"), ("foreign_keys", 1), ("busy_timeout", 10000)],
)


class Author(peewee.Model):
    name = peewee.TextField(null=True)

    class Meta:
        database = db
        table_name = "author"


class Book(peewee.Model):
    title = peewee.TextField(null=True)
    year = peewee.BigIntegerField(null=True)
    author = peewee.ForeignKeyField(Author, column_name="author_id", lazy_load=False)

    class Meta:
        database = db
        table_name = "book"


_OPERATORS = {
    "$gt": lambda c, v: c > v,
    "$gte": lambda c, v: c >= v,
    "$lt": lambda c, v: c < v,
    "$lte": lambda c, v: c <= v,
    "$ne": lambda c, v: c != v,
}
_COLUMNS = {
    "book": {"id": Book.id, "title": Book.title, "year": Book.year, "author": Book.author},
    "author": {"id": Author.id, "name": Author.name},
}
_POSITIONS = {name: {field: i for i, field in enumerate(cols)} for name, cols in _COLUMNS.items()}
_NUMERIC = {"id", "year", "author"}
#: Send ``X-Total-Count`` on lists (set by :func:`create_app`).
_TOTAL_COUNT = False
#: Send a ``Link`` header on lists, and page them by ``DEFAULT_LIMIT`` (set by :func:`create_app`).
_LINKS = False
DEFAULT_LIMIT = 1000
#: The most matches a count reads, as backo_restful's ``BACKO_COUNT_LIMIT``.
COUNT_LIMIT = 10_000


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    # As Flask-RESTful writes it: json.dumps with its default separators, then "\n".
    return Response(json.dumps(body) + "\n", status, headers, mimetype="application/json")


def _int(name: str, text: str, low: int = 0, high: int = MAX_ID) -> int:
    if not (text.isascii() and text.isdigit() and len(text) < 20) or not low <= int(text) <= high:
        raise ApiError(400, "INVALID_PARAMETER", f"Invalid value for {name!r}.", parameter=name)
    return int(text)


def _id(text: str, collection: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) < 20) or not 1 <= int(text) <= MAX_ID:
        raise ApiError(400, "INVALID_ID", f"Invalid id {text!r} for {collection}.")
    return int(text)


# -- reading ---------------------------------------------------------------------------


def _books_at_1(rows: list[tuple]) -> list[dict[str, Any]]:
    return [{"id": i, "title": t, "year": y, "author": a} for i, t, y, a in rows]


def _books_of(author_ids: list[int], with_rows: bool) -> dict[int, list[Any]]:
    """Author id -> its books (ids, or book rows at depth 1), in id order: one statement."""
    found: dict[int, list[Any]] = {a: [] for a in author_ids}
    if not author_ids:
        return found
    if with_rows:
        query = Book.select(Book.id, Book.title, Book.year, Book.author)
        for i, t, y, a in query.where(Book.author.in_(author_ids)).order_by(Book.id).tuples():
            found[a].append({"id": i, "title": t, "year": y, "author": a})
    else:
        query = Book.select(Book.author, Book.id).where(Book.author.in_(author_ids))
        for a, i in query.order_by(Book.id).tuples():
            found[a].append(i)
    return found


def _render_authors(rows: list[tuple], depth: int) -> list[Any]:
    if depth == 0:
        return [row[0] for row in rows]
    books = _books_of([row[0] for row in rows], with_rows=depth > 1)
    return [{"id": i, "name": n, "books": books[i]} for i, n in rows]


def _render_books(rows: list[tuple], depth: int) -> list[Any]:
    if depth == 0:
        return [row[0] for row in rows]
    if depth == 1:
        return _books_at_1(rows)
    wanted = sorted({row[3] for row in rows})
    authors: dict[int, Any] = {}
    if wanted:
        query = Author.select(Author.id, Author.name).where(Author.id.in_(wanted))
        author_rows = list(query.order_by(Author.id).tuples())
        authors = {
            row[0]: shown
            for row, shown in zip(author_rows, _render_authors(author_rows, 1), strict=True)
        }
    return [{"id": i, "title": t, "year": y, "author": authors.get(a)} for i, t, y, a in rows]


_MODELS = {"book": (Book, _render_books), "author": (Author, _render_authors)}


def _select(name: str) -> peewee.ModelSelect:
    model, _ = _MODELS[name]
    return model.select(*_COLUMNS[name].values())


def _parse_list_args(
    name: str,
) -> tuple[int, list[Any], list[Any], int | None, int | None, list[str]]:
    columns = _COLUMNS[name]
    depth, conditions, order, limit, offset = 1, [], [], None, None
    sort_fields: list[str] = []
    sorts: list[tuple[str, bool]] = []
    non_null = {"id"}  # columns a comparison in the filter proves non-null
    for key, values in request.args.lists():
        if len(values) != 1:
            raise ApiError(400, "INVALID_PARAMETER", f"Parameter {key!r} is repeated.")
        (value,) = values
        if key == "depth":
            depth = _int(key, value, 0, 2)
        elif key == "limit":
            limit = _int(key, value)
        elif key == "offset":
            offset = _int(key, value)
        elif key == "sort":
            for item in value.split(","):
                column = columns.get(item.lstrip("-")) if item.count("-") <= 1 else None
                if column is None:
                    raise ApiError(400, "INVALID_SORT", f"Invalid sort key {item!r}.")
                sort_fields.append(item.lstrip("-"))
                sorts.append((item.lstrip("-"), item.startswith("-")))
        else:
            field, _, op = key.partition(".")
            column = columns.get(field)
            if column is None or (op and (op not in _OPERATORS or field not in ("id", "year"))):
                raise ApiError(400, "UNKNOWN_PARAMETER", f"Unknown query parameter {key!r}.")
            typed: Any = value
            if field in _NUMERIC:
                typed = None if value == "null" and not op else _int(key, value, -MAX_ID, MAX_ID)
            if op:
                conditions.append(_OPERATORS[op](column, typed))
                if op != "$ne":
                    non_null.add(field)
            else:
                conditions.append(column.is_null() if typed is None else column == typed)
    # Nulls last ascending, first descending; no NULLS clause where the filter
    # proves the column non-null, so that an index serves the order. The id breaks
    # ties in the direction of the last key.
    for field, desc in sorts:
        column = columns[field]
        if field in non_null:
            order.append(column.desc() if desc else column.asc())
        else:
            order.append(column.desc(nulls="FIRST") if desc else column.asc(nulls="LAST"))
    if "id" not in sort_fields:
        order.append(columns["id"].desc() if sorts and sorts[-1][1] else columns["id"].asc())
    return depth, conditions, order, limit, offset, [f for f in sort_fields if f != "id"]


def _get_list(name: str) -> Response:
    depth, conditions, order, limit, offset, sort_fields = _parse_list_args(name)
    model, render = _MODELS[name]
    query = _select(name) if depth or _LINKS else model.select(_COLUMNS[name]["id"])
    if conditions:
        query = query.where(*conditions)
    query = query.order_by(*order)
    if _LINKS and limit is None:
        limit = DEFAULT_LIMIT
    if limit is not None:
        query = query.limit(limit + 1 if _LINKS else limit)  # one more: is there a next page?
    if offset:
        query = query.offset(offset)
    headers = {}
    statements = 1 + (depth > 1 or (depth == 1 and name == "author")) + _TOTAL_COUNT
    with db.connection_context(), db.atomic() if statements > 1 else _NO_TRANSACTION:
        rows = list(query.tuples())
        more = limit is not None and len(rows) > limit
        rows = rows[:limit] if limit is not None else rows
        body = render(rows, depth)
        total = None
        if _TOTAL_COUNT:
            # Count at most COUNT_LIMIT matches; beyond, SQLite has no estimate:
            # the limit is a lower bound.
            matches = model.select(peewee.SQL("1")).limit(COUNT_LIMIT + 1)
            if conditions:
                matches = matches.where(*conditions)
            total = matches.count()
            method = "exact" if total <= COUNT_LIMIT else "at-least"
            total = min(total, COUNT_LIMIT)
            headers["X-Total-Count"] = str(total)
            headers["X-Total-Count-Method"] = method
    if _LINKS:
        if headers.get("X-Total-Count-Method") != "exact":
            total = None  # a lower bound cannot place the last page
        headers["Link"] = _link(name, rows, sort_fields, limit, offset, more, total)
    return _json(body, 200, headers)


def _link(
    name: str, rows: list[tuple], sort_fields: list[str], limit: int | None, offset: int | None,
    more: bool, total: int | None,
) -> str:  # fmt: skip
    """A ``Link`` header (first, prev, next, last) shaped like backo_restful's."""
    params = {
        k: v for k, v in request.args.items() if k not in ("after", "before", "offset", "limit")
    }
    if limit is not None:
        params["limit"] = limit
    base = request.path

    def url(**paging: Any) -> str:
        return f"{base}?{urlencode({**params, **paging})}"

    def cursor(row: tuple) -> str:
        positions = _POSITIONS[name]
        values = [row[positions[field]] for field in [*sort_fields, "id"]]
        raw = json.dumps({"v": values}, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    links = [(url(), "first")]
    if offset is None:  # cursor paging
        if more and rows:
            links.append((url(after=cursor(rows[-1])), "next"))
        links.append((url(before="end"), "last"))
    else:
        if offset > 0:
            links.append((url(offset=max(0, offset - (limit or 0))), "prev"))
        if more:
            links.append((url(offset=offset + (limit or 0)), "next"))
        if total is not None and limit:
            links.append((url(offset=max(0, (total - 1) // limit * limit)), "last"))
        else:
            links.append((url(before="end"), "last"))
    return ", ".join(f'<{target}>; rel="{rel}"' for target, rel in links)


def _get_one(name: str, text_id: str) -> Response:
    id_ = _id(text_id, name)
    depth = 1
    for key, values in request.args.lists():
        if key != "depth" or len(values) != 1:
            raise ApiError(400, "UNKNOWN_PARAMETER", f"Unknown query parameter {key!r}.")
        depth = _int(key, values[0], 0, 2)
    model, render = _MODELS[name]
    query = _select(name).where(_COLUMNS[name]["id"] == id_)
    statements = 1 + (depth > 1 or (depth == 1 and name == "author"))
    with db.connection_context(), db.atomic() if statements > 1 else _NO_TRANSACTION:
        rows = list(query.tuples())
        if not rows:
            raise ApiError(
                404,
                "OBJECT_DOES_NOT_EXIST",
                f"There is no {name} with id {id_}.",
                collection=name,
                id=id_,
            )
        return _json(render(rows, depth)[0])


class _NoTransaction:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


_NO_TRANSACTION = _NoTransaction()


# -- writing ---------------------------------------------------------------------------


def _book_fields(partial: bool) -> dict[str, Any]:
    if not request.is_json:
        raise ApiError(415, "UNSUPPORTED_MEDIA_TYPE", "The body must be JSON.")
    try:
        data = json.loads(request.get_data())
    except ValueError:
        raise ApiError(400, "INVALID_JSON", "The request body is not valid JSON.") from None
    if not isinstance(data, dict):
        raise ApiError(400, "INVALID_BODY", "The body must be a JSON object of book fields.")
    errors: dict[str, list[str]] = {}
    for key, value in data.items():
        if key == "title":
            ok = isinstance(value, str)
        elif key in ("year", "author"):
            ok = isinstance(value, int) and not isinstance(value, bool)
            ok = ok and (key == "year" or 1 <= value <= MAX_ID)
        else:
            ok = False
        if not ok:
            errors[key] = ["Invalid value." if key in _COLUMNS["book"] else "Unknown field."]
    if not partial and "author" not in data:
        errors["author"] = ["Missing data for required field."]
    if errors:
        raise ApiError(400, "VALIDATION_FAILED", "Invalid fields.", fields=errors)
    return data


def _require_author(author_id: int) -> None:
    if not Author.select(Author.id).where(Author.id == author_id).exists():
        raise ApiError(
            404,
            "OBJECT_DOES_NOT_EXIST",
            f"There is no author with id {author_id}.",
            collection="author",
            id=author_id,
        )


def post_book() -> Response:
    data = _book_fields(partial=False)
    with db.connection_context(), db.atomic("IMMEDIATE"):
        _require_author(data["author"])
        new_id = Book.insert(
            title=data.get("title"), year=data.get("year"), author=data["author"]
        ).execute()
    body = {
        "id": new_id,
        "title": data.get("title"),
        "year": data.get("year"),
        "author": data["author"],
    }
    return _json(body, 201, {"Location": f"/book/{new_id}"})


def patch_book(text_id: str) -> Response:
    id_ = _id(text_id, "book")
    if request.args:
        raise ApiError(400, "UNKNOWN_PARAMETER", "Writes take no query parameter.")
    data = _book_fields(partial=True)
    with db.connection_context(), db.atomic("IMMEDIATE"):
        if "author" in data:
            _require_author(data["author"])
        changed = 1
        if data:
            changed = Book.update(data).where(Book.id == id_).execute()
        rows = list(_select("book").where(Book.id == id_).tuples()) if changed else []
        if not rows:
            raise ApiError(
                404,
                "OBJECT_DOES_NOT_EXIST",
                f"There is no book with id {id_}.",
                collection="book",
                id=id_,
            )
    return _json(_books_at_1(rows)[0])


# -- the app ---------------------------------------------------------------------------


def create_app(path: str, total_count: bool | None = None, links: bool | None = None) -> Flask:
    """The reference API serving ``/author`` and ``/book`` from the SQLite file ``path``.

    :param total_count: send ``X-Total-Count`` on lists (default: ``BENCH_TOTAL_COUNT=1``).
    :param links: send a ``Link`` header on lists (default: ``BENCH_LINKS=1``).
    """
    global _TOTAL_COUNT, _LINKS
    if total_count is None:
        total_count = os.environ.get("BENCH_TOTAL_COUNT") == "1"
    if links is None:
        links = os.environ.get("BENCH_LINKS") == "1"
    _TOTAL_COUNT, _LINKS = total_count, links
    db.init(os.path.abspath(path))
    app = Flask(__name__)

    @app.errorhandler(ApiError)
    def api_error(error: ApiError) -> Response:
        body = {"error": {"code": error.code, "message": error.message, "details": error.details}}
        return _json(body, error.status)

    @app.get("/book")
    def book_list() -> Response:
        return _get_list("book")

    @app.get("/author")
    def author_list() -> Response:
        return _get_list("author")

    @app.get("/book/<id_>")
    def book_one(id_: str) -> Response:
        return _get_one("book", id_)

    @app.get("/author/<id_>")
    def author_one(id_: str) -> Response:
        return _get_one("author", id_)

    app.post("/book")(post_book)
    app.patch("/book/<text_id>")(patch_book)
    return app


def __getattr__(name: str) -> Any:
    # ``app`` is built on first access (gunicorn's ``app_reference:app``).
    if name == "app":
        path = os.environ.get("BENCH_DB")
        if not path:
            raise RuntimeError("set BENCH_DB to the SQLite file made by bench/seed.py")
        globals()["app"] = application = create_app(path)
        return application
    raise AttributeError(name)

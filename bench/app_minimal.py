"""The benchmark's floor: the scenarios written by hand on Flask + Peewee, doing the least work.

``run.py`` measures backo_restful against this app. It answers the benchmark's
requests with the same JSON data as backo_restful (``flask.jsonify`` writes the
keys sorted and without spaces), and does nothing more:

- one SQLite connection per worker thread, opened by its first request and never
  closed, with ``journal_mode=wal``, ``foreign_keys=1`` and ``busy_timeout=10000``;
- each statement runs on its own, in autocommit mode: no explicit transaction;
- a book or a page of books (at depth 0 or 1) is one ``SELECT``: no count, no ``Link``;
- each level of embedding (an author's books, a book's author at ``depth=2``) is
  one more ``SELECT ... WHERE ... IN (...)`` of the ids read by the level above;
- ``POST /book`` is one ``INSERT``: the foreign key checks the author (``422``);
- ``PATCH /book/<id>`` is one ``UPDATE ... RETURNING`` (``404`` when no row changed).

A write's body is a JSON object of ``title`` (a string), ``year`` and ``author``
(integers), no ``null``; ``POST`` needs ``author``.

Lists take ``depth`` (0 to 2, default 1), ``limit`` (at most 1000, the default, as
backo_restful), ``offset``, ``sort`` on ``id`` and ``year`` (``-`` for descending;
ties broken by id in the direction of the last key; no ``NULLS`` clause), and
filters on ``id`` and ``year``: equality, ``$gt``, ``$gte``, ``$lt``, ``$lte``, ``$ne``.
Anything else is a ``400``. Errors are ``{"error": {"status": ..., "message": ...}}``.

Serve it with ``BENCH_DB=/path/to/bench.db gunicorn --chdir bench app_minimal:app``.
"""

from __future__ import annotations

import operator
import os
from typing import Any

import peewee
from flask import Flask, abort, jsonify, request, url_for
from werkzeug.exceptions import HTTPException

MAX_LIMIT = 1000
MAX_INT = 2**63 - 1

db = peewee.SqliteDatabase(
    None, pragmas={"journal_mode": "wal", "foreign_keys": 1, "busy_timeout": 10000}
)


class Author(peewee.Model):
    name = peewee.TextField(null=True)

    class Meta:
        database = db
        table_name = "author"


class Book(peewee.Model):
    title = peewee.TextField(null=True)
    year = peewee.IntegerField(null=True)
    author = peewee.ForeignKeyField(Author, column_name="author_id", lazy_load=False)

    class Meta:
        database = db
        table_name = "book"


OPERATORS = {
    "": operator.eq,
    "$gt": operator.gt,
    "$gte": operator.ge,
    "$lt": operator.lt,
    "$lte": operator.le,
    "$ne": operator.ne,
}
#: The fields a list filters and sorts on.
KEYS: dict[type[peewee.Model], dict[str, peewee.Field]] = {
    Author: {"id": Author.id},
    Book: {"id": Book.id, "year": Book.year},
}
#: The fields of a book that a write sets, and their types.
BOOK_FIELDS = {"title": str, "year": int, "author": int}


def _int(name: str, value: str, low: int = 0, high: int = MAX_INT) -> int:
    try:
        number = int(value)
        if low <= number <= high:
            return number
    except ValueError:
        pass
    abort(400, f"Invalid value for {name!r}: {value!r}.")


def _authors(rows: list[dict[str, Any]], depth: int) -> list[Any]:
    """Authors at ``depth``, each with its books in id order (ids at depth 1)."""
    if depth == 0:
        return [row["id"] for row in rows]
    books: dict[int, list[Any]] = {row["id"]: [] for row in rows}
    if books:
        query = Book.select() if depth == 2 else Book.select(Book.id, Book.author)
        for book in query.where(Book.author.in_(list(books))).order_by(Book.id).dicts():
            books[book["author"]].append(book if depth == 2 else book["id"])
    for row in rows:
        row["books"] = books[row["id"]]
    return rows


def _books(rows: list[dict[str, Any]], depth: int) -> list[Any]:
    """Books at ``depth``: at 2, each with its author (at depth 1)."""
    if depth == 0:
        return [row["id"] for row in rows]
    if depth == 2 and rows:
        query = Author.select().where(Author.id.in_(list({row["author"] for row in rows})))
        authors = {author["id"]: author for author in _authors(list(query.dicts()), 1)}
        for row in rows:
            row["author"] = authors[row["author"]]
    return rows


RENDER = {Author: _authors, Book: _books}


def _list(model: type[peewee.Model]) -> Any:
    keys = KEYS[model]
    depth, limit, offset = 1, MAX_LIMIT, None
    conditions: list[Any] = []
    sort: list[tuple[str, bool]] = []  # (field, descending)
    for key, value in request.args.items(multi=True):
        if key == "depth":
            depth = _int(key, value, 0, 2)
        elif key == "limit":
            limit = _int(key, value, 0, MAX_LIMIT)
        elif key == "offset":
            offset = _int(key, value)
        elif key == "sort":
            sort = [(name.removeprefix("-"), name.startswith("-")) for name in value.split(",")]
            if any(name not in keys for name, _ in sort):
                abort(400, f"Invalid sort {value!r}.")
        else:
            name, _, op = key.partition(".")
            if name not in keys or op not in OPERATORS:
                abort(400, f"Unknown query parameter {key!r}.")
            conditions.append(OPERATORS[op](keys[name], _int(key, value, -MAX_INT - 1)))
    if "id" not in (name for name, _ in sort):
        sort.append(("id", bool(sort) and sort[-1][1]))
    query = model.select(model.id) if depth == 0 else model.select()
    if conditions:
        query = query.where(*conditions)
    query = query.order_by(*[keys[name].desc() if desc else keys[name] for name, desc in sort])
    rows = list(query.limit(limit).offset(offset).dicts())
    return jsonify(RENDER[model](rows, depth))


def _one(model: type[peewee.Model], text_id: str) -> Any:
    id_ = _int("id", text_id, 1)
    depth = 1
    for key, value in request.args.items(multi=True):
        if key != "depth":
            abort(400, f"Unknown query parameter {key!r}.")
        depth = _int(key, value, 0, 2)
    query = model.select(model.id) if depth == 0 else model.select()
    row = query.where(model.id == id_).dicts().first()
    if row is None:
        abort(404, f"There is no {model._meta.table_name} with id {id_}.")
    return jsonify(RENDER[model]([row], depth)[0])


def _book_fields(partial: bool) -> dict[str, Any]:
    data = request.get_json()  # 415 if not JSON, 400 if malformed
    if not isinstance(data, dict):
        abort(400, "The body must be a JSON object.")
    for key, value in data.items():
        kind = BOOK_FIELDS.get(key)
        if kind is None:
            abort(400, f"Unknown field {key!r}.")
        valid = isinstance(value, kind) and not isinstance(value, bool)
        if not valid or kind is int and not -MAX_INT - 1 <= value <= MAX_INT:
            abort(400, f"Invalid value for {key!r}.")
    if not partial and "author" not in data:
        abort(400, "'author' is required.")
    return data


def create_app(path: str) -> Flask:
    """The API serving ``/author`` and ``/book`` from the SQLite file ``path``."""
    db.init(os.path.abspath(path))
    app = Flask(__name__)

    @app.before_request
    def connect() -> None:
        db.connect(reuse_if_open=True)  # once per thread, never closed

    @app.errorhandler(HTTPException)
    def error(error: HTTPException) -> Any:
        return jsonify(error={"status": error.code, "message": error.description}), error.code

    @app.get("/author")
    def list_authors() -> Any:
        return _list(Author)

    @app.get("/book")
    def list_books() -> Any:
        return _list(Book)

    @app.get("/author/<id_>")
    def get_author(id_: str) -> Any:
        return _one(Author, id_)

    @app.get("/book/<id_>")
    def get_book(id_: str) -> Any:
        return _one(Book, id_)

    @app.post("/book")
    def create_book() -> Any:
        data = _book_fields(partial=False)
        try:
            book_id = Book.insert(**data).execute()
        except peewee.IntegrityError:
            abort(422, f"There is no author with id {data['author']}.")
        book = {"title": None, "year": None, **data, "id": book_id}
        return jsonify(book), 201, {"Location": url_for("get_book", id_=book_id)}

    @app.patch("/book/<id_>")
    def update_book(id_: str) -> Any:
        book_id = _int("id", id_, 1)
        data = _book_fields(partial=True)
        if data:
            query = Book.update(**data).where(Book.id == book_id).returning(Book)
        else:
            query = Book.select().where(Book.id == book_id)
        try:
            rows = list(query.dicts().execute())
        except peewee.IntegrityError:
            abort(422, f"There is no author with id {data['author']}.")
        if not rows:
            abort(404, f"There is no book with id {book_id}.")
        return jsonify(rows[0])

    return app


def __getattr__(name: str) -> Any:
    # ``app`` is built on first access (gunicorn's ``app_minimal:app``).
    if name == "app":
        path = os.environ.get("BENCH_DB")
        if not path:
            raise RuntimeError("set BENCH_DB to the SQLite file made by bench/seed.py")
        globals()["app"] = application = create_app(path)
        return application
    raise AttributeError(name)

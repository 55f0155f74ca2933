"""The benchmark's backo_restful app: ``author`` and ``book`` on one SQLite file.

Serve it with ``BENCH_DB=/path/to/bench.db gunicorn --chdir bench app_backo:app``;
``bench/run.py`` does that for you. The same model builds the tables that
``bench/seed.py`` fills, so every app of the benchmark reads the same layout.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask
from marshmallow import fields

from backo_restful import DataModel, Engine, Ref, RefsList, Schema
from backo_restful.api.flask import Api, Resource
from backo_restful.storage import PeeweeStorage

#: Large enough for every scenario (S3 holds 50 authors + 500 books).
MAX_OBJECTS = 100_000

dm = DataModel("bench")


@dm.collection("author")
class Author(Schema):
    name = fields.String()
    books = RefsList("book", reverse="author")


@dm.collection("book")
class Book(Schema):
    title = fields.String()
    # Lists filter and sort on the year: an index keeps those pages cheap at any size.
    year = fields.Integer(metadata={"index": True})
    author = Ref("author", reverse="books", required=True)


class AuthorResource(Resource):
    model = dm.object("author")


class BookResource(Resource):
    model = dm.object("book")


def build_engine(path: str) -> Engine:
    """The engine on the SQLite file ``path`` (WAL, foreign keys, busy timeout)."""
    return Engine(dm, PeeweeStorage(f"sqlite:///{os.path.abspath(path)}"))


def create_app(path: str) -> Flask:
    """The API serving ``/author`` and ``/book`` from the SQLite file ``path``."""
    app = Flask(__name__)
    app.config["BACKO_MAX_OBJECTS"] = MAX_OBJECTS
    # run.py --count none: lists count only when asked (no X-Total-Count by default).
    app.config["BACKO_COUNT"] = os.environ.get("BENCH_COUNT", "estimate")
    api = Api(app, engine=build_engine(path))
    api.add_resource(AuthorResource, "/author")
    api.add_resource(BookResource, "/book")
    return app


def __getattr__(name: str) -> Any:
    # ``app`` is built on first access (gunicorn's ``app_backo:app``), so importing
    # this module (seed.py, run.py) needs no BENCH_DB.
    if name == "app":
        path = os.environ.get("BENCH_DB")
        if not path:
            raise RuntimeError("set BENCH_DB to the SQLite file made by bench/seed.py")
        globals()["app"] = application = create_app(path)
        return application
    raise AttributeError(name)

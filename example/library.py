"""Books and their authors: a many-to-many relation.

A ``book`` lists its ``authors`` and an ``author`` lists their ``books``; both lists
are the sides of one relation, so linking from either side shows on the other.
Deleting a book or an author only removes its links.

Run it with ``python -m example.library``; it serves ``/book`` and ``/author`` on
http://127.0.0.1:5000 and stores them in ``library.db``.
"""

from __future__ import annotations

from flask import Flask
from marshmallow import fields, validate

from backo_restful import DataModel, DeleteStrategy, Engine, RefsList, Schema
from backo_restful.api.flask import Api, Resource
from backo_restful.storage import PeeweeStorage

dm = DataModel("library")


@dm.collection("book")
class Book(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1))
    year = fields.Integer()
    authors = RefsList("author", reverse="books", on_delete=DeleteStrategy.UNLINK_REFERENCED_ITEMS)


@dm.collection("author")
class Author(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1))
    books = RefsList("book", reverse="authors", on_delete=DeleteStrategy.UNLINK_REFERENCED_ITEMS)


class BookResource(Resource):
    model = dm.object("book")


class AuthorResource(Resource):
    model = dm.object("author")


def create_app(database: str = "sqlite:///library.db") -> Flask:
    """The library API on ``database`` (any database URL that PeeweeStorage takes)."""
    engine = Engine(dm, PeeweeStorage(database))
    app = Flask(__name__)
    api = Api(app, engine=engine, openapi=True)
    api.add_resource(BookResource, "/book")
    api.add_resource(AuthorResource, "/author")
    return app


if __name__ == "__main__":
    create_app().run(host="127.0.0.1", port=5000)

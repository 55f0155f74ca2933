"""Jars of cookies: a one-to-many relation served over HTTP.

Run it with ``python -m example.cookies``; it serves ``/jar`` and ``/cookie`` on
http://127.0.0.1:5000 and stores them in ``cookies.db`` (SQLite, created on first use).
"""

from __future__ import annotations

from flask import Flask
from marshmallow import fields, validate

from backo_restful import DataModel, DeleteStrategy, Engine, Ref, RefsList, Schema
from backo_restful.api.flask import Api, Resource
from backo_restful.storage import PeeweeStorage

dm = DataModel("cookies")


@dm.collection("jar")
class Jar(Schema):
    name = fields.String()
    cookies = RefsList("cookie", reverse="jar", on_delete=DeleteStrategy.UNLINK_REFERENCED_ITEMS)


@dm.collection("cookie")
class Cookie(Schema):
    type = fields.String(required=True, validate=validate.Length(min=1))
    jar = Ref("jar", reverse="cookies")


class JarResource(Resource):
    model = dm.object("jar")


class CookieResource(Resource):
    model = dm.object("cookie")


def create_app(database: str = "sqlite:///cookies.db") -> Flask:
    """The cookies API on ``database`` (any database URL that PeeweeStorage takes)."""
    engine = Engine(dm, PeeweeStorage(database))
    app = Flask(__name__)
    # cors=True: browser code of any origin may call it (and read Link, X-Total-Count).
    api = Api(app, engine=engine, openapi=True, cors=True)
    api.add_resource(JarResource, "/jar")
    api.add_resource(CookieResource, "/cookie")
    return app


if __name__ == "__main__":
    create_app().run(host="127.0.0.1", port=5000)

"""Married couples and their children: one-to-one and one-to-many relations.

A ``male`` has at most one ``wife`` and a ``female`` at most one ``husband``; the two
fields are the sides of one relation, so marrying someone who is already married
takes them from their previous partner. A ``female`` may have ``children``; she
cannot be deleted while she has any (the default ``MUST_BE_EMPTY`` strategy).

Run it with ``python -m example.family``; it serves ``/male``, ``/female`` and
``/child`` on http://127.0.0.1:5000 and stores them in ``family.db``.
"""

from __future__ import annotations

from flask import Flask
from marshmallow import fields, validate

from backo_restful import DataModel, Engine, Ref, RefsList, Schema
from backo_restful.api.flask import Api, Resource
from backo_restful.storage import PeeweeStorage

dm = DataModel("family")


@dm.collection("male")
class Male(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1))
    wife = Ref("female", reverse="husband")


@dm.collection("female")
class Female(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1))
    husband = Ref("male", reverse="wife")
    children = RefsList("child", reverse="mother")


@dm.collection("child")
class Child(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1))
    mother = Ref("female", reverse="children")


class MaleResource(Resource):
    model = dm.object("male")


class FemaleResource(Resource):
    model = dm.object("female")


class ChildResource(Resource):
    model = dm.object("child")


def create_app(database: str = "sqlite:///family.db") -> Flask:
    """The family API on ``database`` (any database URL that PeeweeStorage takes)."""
    engine = Engine(dm, PeeweeStorage(database))
    app = Flask(__name__)
    api = Api(app, engine=engine, openapi=True)
    api.add_resource(MaleResource, "/male")
    api.add_resource(FemaleResource, "/female")
    api.add_resource(ChildResource, "/child")
    return app


if __name__ == "__main__":
    create_app().run(host="127.0.0.1", port=5000)

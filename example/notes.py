"""Private notes: users log in for a JSON Web Token and see only their own notes.

``POST /register`` creates a user, ``POST /login`` checks a login and password
and returns a token, sent back as ``Authorization: Bearer <token>``; ``GET /me``
tells who the token is for. A ``note`` belongs to the user who creates it: others
cannot see it, except users with the ``admin`` role, who see and edit every note
and manage ``/user``. Passwords are stored hashed, and the hash is never shown,
not even to admins.

Run it with ``python -m example.notes``; it serves ``/register``, ``/login``,
``/me``, ``/user`` and ``/note`` on http://127.0.0.1:5000 and stores them in
``notes.db``. Tokens are signed with ``NOTES_SECRET``; the first start creates the
user ``admin`` with the password ``NOTES_ADMIN_PASSWORD``. Both have demo
defaults: set them for anything but a demo.
"""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, request
from marshmallow import fields, validate
from werkzeug.security import check_password_hash, generate_password_hash

from backo_restful import DataModel, Engine, Schema, current_user
from backo_restful.api.basic import error_response
from backo_restful.api.flask import Api, Resource
from backo_restful.auth import HasRole, JWTAuth, Owner
from backo_restful.exceptions import BackoError, BadRequest, Conflict, Unauthorized
from backo_restful.storage import PeeweeStorage

DEMO_SECRET = "demo secret of the notes example: set NOTES_SECRET"
DEMO_ADMIN_PASSWORD = "admin"
#: Checked when a login has no password hash: no password matches it.
NO_PASSWORD = generate_password_hash(os.urandom(32).hex())

dm = DataModel("notes")


@dm.collection("user", permissions=HasRole("admin"))
class User(Schema):
    login = fields.String(
        required=True, validate=validate.Length(min=1, max=80), metadata={"unique": True}
    )
    # Set by /register only: no caller over HTTP may read or write it, admins included.
    password_hash = fields.String(metadata={"can_read": False, "can_modify": False})
    roles = fields.List(fields.String(), load_default=list)


@dm.collection("note", permissions=Owner("owner") | HasRole("admin"), audit=True)
class Note(Schema):
    title = fields.String(required=True, validate=validate.Length(min=1))
    body = fields.String()
    owner = fields.String()  # the owner's user id, set by the server on create


class UserResource(Resource):
    model = dm.object("user")


class NoteResource(Resource):
    model = dm.object("note")


def create_app(database: str = "sqlite:///notes.db") -> Flask:
    """The notes API on ``database`` (any database URL that PeeweeStorage takes)."""
    engine = Engine(dm, PeeweeStorage(database))
    auth = JWTAuth(os.environ.get("NOTES_SECRET", DEMO_SECRET))
    if not engine.get("user", filter_={"login": "admin"}, depth=0)[0]:
        password = os.environ.get("NOTES_ADMIN_PASSWORD", DEMO_ADMIN_PASSWORD)
        add_user(engine, "admin", password, roles=["admin"])

    app = Flask(__name__)
    # Keep the keys of the error body in their order: code, message, details.
    app.json.sort_keys = False  # type: ignore[attr-defined]
    api = Api(app, engine=engine, auth=auth, openapi=True)
    api.add_resource(UserResource, "/user")
    api.add_resource(NoteResource, "/note")

    @app.post("/register")
    def register() -> Any:
        try:
            name, password = credentials()
            user = add_user(engine, name, password)
        except Conflict:
            # The trusted call's error names the user holding the login: not for
            # an anonymous caller.
            taken = Conflict("This login is taken.", {"field": "login"}, code="UNIQUE_VIOLATION")
            return error_response(taken)
        except BackoError as error:
            return error_response(error)
        return {key: user[key] for key in ("id", "login", "roles")}, 201

    @app.post("/login")
    def login() -> Any:
        try:
            name, password = credentials()
        except BackoError as error:
            return error_response(error)
        found, _ = engine.get("user", filter_={"login": name})  # trusted: sees the hash
        # No password matches a user without one (an admin created them); an
        # unknown login is checked against a hash too, so it takes as long.
        stored = found[0]["password_hash"] if found else None
        if not check_password_hash(stored or NO_PASSWORD, password) or not stored:
            return error_response(Unauthorized("Wrong login or password."))
        user = found[0]
        claims = {"sub": str(user["id"]), "login": user["login"], "roles": user["roles"]}
        return {"token": auth.create_token(claims)}

    @app.get("/me")
    def me() -> Any:
        if current_user.is_anonymous:  # a bad token is a 401 already
            return error_response(Unauthorized())
        return {"id": current_user.id, "login": current_user.login, "roles": current_user.roles}

    return app


def add_user(engine: Engine, login: str, password: str, roles: list[str] | None = None) -> Any:
    """Create a user from trusted code (``auth=None``), storing the password's hash."""
    hashed = generate_password_hash(password)
    return engine.post("user", {"login": login, "password_hash": hashed, "roles": roles or []})[0]


def credentials() -> tuple[str, str]:
    """The ``login`` and ``password`` of the request's JSON body."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not all(
        isinstance(body.get(key), str) and body[key] for key in ("login", "password")
    ):
        raise BadRequest("Send a JSON object with a login and a password.", code="INVALID_BODY")
    return body["login"], body["password"]


if __name__ == "__main__":
    create_app().run(host="127.0.0.1", port=5000)

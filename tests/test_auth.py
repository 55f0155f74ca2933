"""Authentication, permissions, field rights and audit fields: through api.basic (the
engine with ``auth`` claims) and over HTTP (JWT), on every backend, attacks included."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask, jsonify
from marshmallow import fields

from backo_restful import DataModel, DeleteStrategy, Ref, RefsList, Schema, current_user
from backo_restful.api import basic
from backo_restful.api.flask import Api, Resource
from backo_restful.auth import (
    Anyone,
    Authenticated,
    HasRole,
    JWTAuth,
    Owner,
    Permission,
    User,
    user_of,
)
from backo_restful.exceptions import DeclarationError, Forbidden, NotFound, Unauthorized
from tests.conftest import Result

KEY = "a test secret that is long enough for HS256 signatures"


def is_admin(auth: Mapping[str, Any], obj: Any) -> bool:
    return user_of(auth).has_role("admin")


class ReadOnly(Permission):
    """Everyone may read; nothing else."""

    def can(self, auth: Mapping[str, Any], action: str, obj: Any = None) -> bool:
        return action == "read"


secured = DataModel("secured")


@secured.collection("note", permissions=Owner("owner") | HasRole("admin"), audit=True)
class Note(Schema):
    title = fields.String()
    owner = fields.String(allow_none=True)
    secret = fields.String(metadata={"can_read": is_admin, "can_modify": is_admin})
    rating = fields.Integer(load_default=0, metadata={"can_modify": is_admin})
    folder = Ref("folder", reverse="notes")
    tags = RefsList("tag", reverse="notes", on_delete=DeleteStrategy.UNLINK_REFERENCED_ITEMS)


@secured.collection("folder", permissions=Owner("owner"))
class Folder(Schema):
    name = fields.String()
    owner = fields.String(allow_none=True)
    notes = RefsList("note", reverse="folder", on_delete=DeleteStrategy.DELETE_REFERENCED_ITEMS)
    seat = Ref("seat", reverse="folder")


@secured.collection("seat", permissions=Anyone())
class Seat(Schema):
    number = fields.Integer()
    folder = Ref("folder", reverse="seat")


@secured.collection("tag", permissions=Anyone())
class Tag(Schema):
    label = fields.String()
    notes = RefsList("note", reverse="tags", on_delete=DeleteStrategy.UNLINK_REFERENCED_ITEMS)


@secured.collection("board", permissions=ReadOnly() | HasRole("editor"))
class Board(Schema):
    text = fields.String()


@secured.collection("draft", permissions=Owner("owner") & ~HasRole("guest"))
class Draft(Schema):
    text = fields.String()
    owner = fields.String(allow_none=True)


@secured.collection("memo", permissions=Authenticated())
class Memo(Schema):
    text = fields.String()


ALICE = {"sub": "1", "login": "alice"}
BOB = {"sub": "2", "login": "bob"}
ADMIN = {"sub": "9", "login": "root", "roles": ["admin"]}
ANONYMOUS: dict[str, Any] = {}


def make_api(engine: Any, auth: JWTAuth) -> Flask:
    app = Flask("secured")
    api = Api(app, engine=engine, auth=auth)
    for collection in engine.model.collections.values():
        resource = type(f"{collection.name}_resource", (Resource,), {"model": collection})
        api.add_resource(resource, f"/{collection.name}")

    @app.get("/me")
    def me() -> Any:
        return jsonify(id=current_user.id, anonymous=current_user.is_anonymous)

    return app


class Caller:
    """The same calls, through api.basic with claims or over HTTP with a token."""

    def __init__(self, engine: Any, layer: str) -> None:
        self.engine = engine
        self.layer = layer
        self.auth = JWTAuth(KEY)
        self.http = make_api(engine, self.auth).test_client()

    def __call__(
        self, user: dict[str, Any], method: str, name: str, id_: Any = None, data: Any = None,
        **params: Any,
    ) -> Result:  # fmt: skip
        if self.layer == "basic":
            if method == "GET":
                return Result(*basic.get(name, id_, engine=self.engine, auth=user, **params))
            call = getattr(basic, method.lower())
            args = (name, data) if method == "POST" else (name, id_, data)
            if method == "DELETE":
                args = (name, id_)
            return Result(*call(*args, engine=self.engine, auth=user))
        headers = {}
        if user:
            headers["Authorization"] = f"Bearer {self.auth.create_token(user)}"
        query = {}
        for key, value in params.items():
            if key == "filter_":
                query["filter"] = json.dumps(value)
            else:
                query[key] = ",".join(value) if isinstance(value, list) else str(value)
        url = f"/{name}" if id_ is None else f"/{name}/{id_}"
        response = self.http.open(
            url, method=method, headers=headers, query_string=query,
            data=None if data is None else json.dumps(data), content_type="application/json",
        )  # fmt: skip
        body = response.get_json(silent=True) if response.data else None
        return Result(body, response.status_code, dict(response.headers))


@pytest.fixture
def seeded(make_engine: Any) -> Any:
    engine = make_engine(secured)
    # Seeded by trusted code (auth=None): alice's and bob's notes and folders.
    engine.post("folder", [{"name": "alices", "owner": "1"}, {"name": "bobs", "owner": "2"}])
    engine.post("tag", [{"label": "red"}, {"label": "blue"}])
    engine.post("note", [
        {"title": "a1", "owner": "1", "secret": "s1", "folder": 1, "tags": [1]},
        {"title": "a2", "owner": "1", "secret": "s2", "folder": 2, "tags": [2]},
        {"title": "b1", "owner": "2", "secret": "s3", "folder": 2},
    ])  # fmt: skip
    engine.post("board", {"text": "news"})
    return engine


@pytest.fixture
def call(seeded: Any, layer: str) -> Caller:
    return Caller(seeded, layer)


def ids(result: Result) -> list[int]:
    assert result.status == 200, result.body
    return [item if isinstance(item, int) else item["id"] for item in result.body]


def status(result: Result, expected: int, code: str | None = None) -> Result:
    assert result.status == expected, result.body
    if code is not None:
        assert result.body["error"]["code"] == code, result.body
    return result


# -- permissions: scope, status rules -----------------------------------------------------


def test_reads_are_scoped_everywhere(call: Caller) -> None:
    assert ids(call(ALICE, "GET", "note")) == [1, 2]
    assert ids(call(BOB, "GET", "note")) == [3]
    assert ids(call(ADMIN, "GET", "note")) == [1, 2, 3]
    assert call(ALICE, "GET", "note").headers["X-Total-Count"] == "2"
    assert ids(call(ALICE, "GET", "note", filter_={"title": "b1"})) == []
    status(call(ALICE, "GET", "note", 3), 404, "OBJECT_DOES_NOT_EXIST")
    assert call(BOB, "GET", "note", 3).body["title"] == "b1"


def test_pages_counts_and_cursors_are_scoped(call: Caller) -> None:
    first = call(ALICE, "GET", "note", limit=1, count="exact")
    assert ids(first) == [1] and first.headers["X-Total-Count"] == "2"
    cursor = re.search(r"after=([^&>]+)>; rel=\"next\"", first.headers["Link"])
    assert cursor is not None
    last = call(ALICE, "GET", "note", limit=1, after=cursor.group(1))
    assert ids(last) == [2] and 'rel="next"' not in last.headers["Link"]
    # Alice's cursor gives bob his notes after it, never hers.
    assert ids(call(BOB, "GET", "note", limit=5, after=cursor.group(1))) == [3]
    assert call(BOB, "GET", "note", count="exact").headers["X-Total-Count"] == "1"
    # fields= through a relation shows only what the scope lets through.
    shown = call(ALICE, "GET", "note", depth=2, fields=["title", "folder.name"]).body
    assert shown == [
        {"id": 1, "title": "a1", "folder": {"id": 1, "name": "alices"}},
        {"id": 2, "title": "a2", "folder": None},
    ]


def test_combined_permissions_in_a_model(call: Caller) -> None:
    guest = {"sub": "4", "roles": ["guest"]}
    draft = status(call(ALICE, "POST", "draft", data={"text": "d"}), 201).body
    assert draft["owner"] == "1"
    status(call(ANONYMOUS, "GET", "draft"), 401)
    status(call(guest, "GET", "draft"), 403)
    status(call(guest, "POST", "draft", data={"text": "d"}), 403)
    assert ids(call(BOB, "GET", "draft")) == []
    status(call(BOB, "PATCH", "draft", draft["id"], {"text": "x"}), 404)
    status(call(ALICE, "PATCH", "draft", draft["id"], {"text": "x"}), 200)


def test_outside_the_scope_is_404_for_every_method(call: Caller) -> None:
    status(call(BOB, "PATCH", "note", 1, {"title": "mine"}), 404)
    status(call(BOB, "PUT", "note", 1, {"title": "mine"}), 404)  # neither replaced nor created
    status(call(BOB, "DELETE", "note", 1), 404)
    assert call.engine.get("note", 1)[0]["title"] == "a1"
    # A free id: a scoped caller cannot tell it from a hidden one, so PUT creates
    # nothing for them either; a caller who sees every note may.
    status(call(BOB, "PUT", "note", 50, {"title": "new"}), 404)
    created = status(call(ADMIN, "PUT", "note", 50, {"title": "new"}), 201).body
    assert created["owner"] == "9"
    # Anonymous callers are refused before anything about the object is told.
    for method in ("PATCH", "PUT"):
        status(call(ANONYMOUS, method, "note", 1, {"title": "x"}), 401)
        status(call(ANONYMOUS, method, "note", 99, {"title": "x"}), 401)
    status(call(ANONYMOUS, "DELETE", "note", 1), 401)
    status(call(ANONYMOUS, "DELETE", "note", 99), 401)


def test_anonymous_callers_get_401_authenticated_ones_403(call: Caller) -> None:
    refused = status(call(ANONYMOUS, "GET", "note"), 401, "UNAUTHORIZED")
    assert refused.headers["WWW-Authenticate"] == "Bearer"
    status(call(ANONYMOUS, "POST", "note", data={"title": "x"}), 401)
    status(call(ANONYMOUS, "GET", "memo"), 401)
    assert ids(call(BOB, "GET", "memo")) == []
    # Visible to all, changed only by editors.
    assert ids(call(ANONYMOUS, "GET", "board")) == [1]
    status(call(ANONYMOUS, "PATCH", "board", 1, {"text": "x"}), 401)
    status(call(BOB, "PATCH", "board", 1, {"text": "x"}), 403, "FORBIDDEN")
    status(call(BOB, "DELETE", "board", 1), 403)
    status(call(BOB, "POST", "board", data={"text": "x"}), 403)
    editor = {"sub": "5", "roles": ["editor"]}
    assert status(call(editor, "PATCH", "board", 1, {"text": "x"}), 200).body["text"] == "x"


def test_combinators() -> None:
    owner, admin = Owner(), HasRole("admin")
    assert (owner | admin).scope(ADMIN) is None  # the admin sees every row
    assert (owner | admin).scope(ALICE) == {"owner": "1"}
    assert (owner & Authenticated()).scope(ALICE) == {"owner": "1"}
    assert (owner & admin).can(ALICE, "read") is False
    assert (~admin).can(ALICE, "update") and not (~admin).can(ADMIN, "update")
    assert (~admin).scope(ALICE) is None
    assert Owner().can(ANONYMOUS, "read") is False
    either = Owner("owner") | Owner("editor")
    assert either.scope(ALICE) == {"$or": [{"owner": "1"}, {"editor": "1"}]}
    with pytest.raises(DeclarationError):
        HasRole()


def test_an_owner_field_must_exist_and_hold_one_id() -> None:
    model = DataModel("owners")
    for field in ("author", "readers", "score", "tags"):
        with pytest.raises(DeclarationError, match=f"owner field '{field}'"):

            @model.collection(f"c_{field}", permissions=Owner(field) | HasRole("admin"))
            class Owned(Schema):
                owner = fields.String()
                readers = RefsList("c", reverse="x")
                score = fields.Float()
                tags = fields.List(fields.String())

    with pytest.raises(DeclarationError, match="another name in JSON"):

        @model.collection("renamed", permissions=Owner("owner"))
        class Renamed(Schema):
            owner = fields.String(data_key="ownerId")

    # A one-to-one Ref whose key the other side stores cannot own.
    pairs = DataModel("pairs")

    @pairs.collection("account")
    class PairAccount(Schema):
        paper = Ref("paper", reverse="owner")

    @pairs.collection("paper", permissions=Owner("owner"))
    class PairPaper(Schema):
        owner = Ref("account", reverse="paper")

    with pytest.raises(DeclarationError, match="make account.paper a RefsList"):
        pairs.resolve()


def test_relations_into_a_scoped_collection(call: Caller) -> None:
    # Alice's note a2 sits in bob's folder: for her, it has no folder.
    body = call(ALICE, "GET", "note", 2, depth=2).body
    assert body["folder"] is None
    assert call(ALICE, "GET", "note", 2).body["folder"] is None
    assert call(ADMIN, "GET", "note", 2).body["folder"] is None  # folders are private to all
    assert ids(call(ALICE, "GET", "note", filter_={"folder.name": "bobs"})) == []
    assert ids(call(ALICE, "GET", "note", filter_={"folder": 2})) == []
    assert ids(call(ALICE, "GET", "note", filter_={"folder": None})) == [2]
    assert ids(call(ALICE, "GET", "note", filter_={"folder.name": {"$ne": "bobs"}})) == [1, 2]
    assert ids(call(ALICE, "GET", "note", sort=["folder.name", "id"])) == [1, 2]
    assert ids(call(ALICE, "GET", "note", sort=["-folder"])) == [2, 1]
    # and from the other side: bob's folder lists only the notes bob may see
    assert call(BOB, "GET", "folder", 2).body["notes"] == [3]
    assert ids(call(BOB, "GET", "folder", filter_={"notes.title": "a2"})) == []
    assert ids(call(ADMIN, "GET", "folder")) == []


def test_linking_to_an_object_outside_the_scope_is_404(call: Caller) -> None:
    status(call(ALICE, "PATCH", "note", 1, {"folder": 2}), 404)
    status(call(ALICE, "POST", "note", data={"title": "x", "folder": 2}), 404)
    status(call(ALICE, "POST", "folder", data={"name": "x", "notes": [3]}), 404)
    assert call.engine.get("note", 1)[0]["folder"] == 1


def test_nested_writes_check_every_collection(call: Caller) -> None:
    data = {"title": "n", "folder": {"name": "new"}, "tags": [{"label": "x"}]}
    created = status(call(ALICE, "POST", "note", data=data), 201).body
    folder = call.engine.get("folder", created["folder"])[0]
    assert folder["owner"] == "1"  # the nested folder is alice's too
    # Anyone may create a tag, but not the note nested in it; nothing is written.
    status(call(ANONYMOUS, "POST", "tag", data={"label": "y", "notes": [{"title": "z"}]}), 401)
    status(
        call(BOB, "POST", "tag", data={"label": "y", "notes": [{"title": "z", "rating": 2}]}), 403
    )
    assert [t["label"] for t in call.engine.get("tag")[0]] == ["red", "blue", "x"]


def test_taking_a_partner_away_needs_the_right_to_update_its_holder(call: Caller) -> None:
    call.engine.post("seat", {"number": 7, "folder": 2})  # bob's folder holds seat 1
    status(call(ALICE, "PATCH", "folder", 1, {"seat": 1}), 403)
    status(call(ALICE, "PATCH", "seat", 1, {"folder": 1}), 403)  # from the seat's side
    status(call(ALICE, "PATCH", "seat", 1, {"folder": {"name": "new"}}), 403)
    assert call.engine.get("folder", 2)[0]["seat"] == 1
    call.engine.post("seat", {"number": 8})
    assert status(call(ALICE, "PATCH", "folder", 1, {"seat": 2}), 200).body["seat"] == 2


def test_a_cascade_needs_the_right_to_delete_each_object(call: Caller) -> None:
    # Bob's folder holds alice's note a2: deleting the folder would delete it.
    status(call(BOB, "DELETE", "folder", 2), 403)
    assert call.engine.get("note", 2)[1] == 200
    status(call(ALICE, "DELETE", "folder", 1), 204)
    status(call(ALICE, "GET", "note", 1), 404)


# -- owner and audit fields ---------------------------------------------------------------


def test_owner_and_audit_fields_are_set_by_the_server(call: Caller) -> None:
    note = status(call(ALICE, "POST", "note", data={"title": "t"}), 201).body
    assert note["owner"] == "1" and note["created_by"] == "1" and note["updated_by"] == "1"
    assert note["created_at"] and note["created_at"] == note["updated_at"]
    status(call(ALICE, "POST", "note", data={"title": "t", "owner": "2"}), 403, "FORBIDDEN")
    status(call(ALICE, "POST", "note", data={"title": "t", "created_by": "2"}), 403)
    status(
        call(ALICE, "POST", "note", data={"title": "t", "created_at": "2000-01-01T00:00:00"}), 403
    )
    assert status(call(ALICE, "POST", "note", data={"title": "t", "owner": "1"}), 201)
    time.sleep(0.01)
    changed = status(call(ADMIN, "PATCH", "note", note["id"], {"title": "u"}), 200).body
    assert changed["owner"] == "1" and changed["created_by"] == "1"
    assert changed["updated_by"] == "9" and changed["updated_at"] > note["updated_at"]
    assert changed["created_at"] == note["created_at"]
    status(call(ADMIN, "PATCH", "note", note["id"], {"owner": "9"}), 403)
    status(call(ALICE, "PATCH", "note", note["id"], {"updated_by": "1"}), 403)
    # Sending back what was read is fine: equal values are ignored.
    read = call(ALICE, "GET", "note", note["id"]).body
    again = {k: v for k, v in read.items() if k not in ("id", "folder", "tags")}
    assert status(call(ALICE, "PUT", "note", note["id"], again), 200).body["owner"] == "1"
    status(call(ALICE, "PUT", "note", note["id"], {**again, "owner": "2"}), 403)
    status(call(ADMIN, "PUT", "note", note["id"], {**again, "owner": "9"}), 403)
    assert call.engine.get("note", note["id"])[0]["owner"] == "1"


def test_trusted_code_sets_what_it_likes(seeded: Any) -> None:
    engine = seeded
    body, _ = engine.post("note", {"title": "import", "owner": "7", "created_by": "x"})
    assert body["owner"] == "7" and body["created_by"] == "x" and body["created_at"]
    assert engine.patch("note", body["id"], {"owner": "8"})[0]["owner"] == "8"


# -- field rights ------------------------------------------------------------------------


def test_a_hidden_field_is_absent_and_unknown(call: Caller) -> None:
    assert "secret" not in call(ALICE, "GET", "note", 1).body
    assert all("secret" not in note for note in call(ALICE, "GET", "note").body)
    assert "secret" not in call(ALICE, "GET", "folder", 1, depth=2).body["notes"][0]
    assert call(ADMIN, "GET", "note", 1).body["secret"] == "s1"
    for params in (
        {"filter_": {"secret": "s1"}},
        {"filter_": {"$not": {"secret": {"$null": True}}}},
        {"sort": ["secret"]},
        {"fields": ["secret"]},
    ):
        status(call(ALICE, "GET", "note", **params), 400, "UNKNOWN_FIELD")
    status(call(ALICE, "GET", "folder", filter_={"notes.secret": "s1"}), 400, "UNKNOWN_FIELD")
    assert ids(call(ADMIN, "GET", "note", filter_={"secret": "s1"})) == [1]


def test_a_hidden_field_is_no_query_parameter(http: Any) -> None:
    alice = bearer(token(ALICE))
    unknown = http.get("/note?nosuch=s", headers=alice).get_json()["error"]
    assert unknown["code"] == "UNKNOWN_PARAMETER"
    for query in ("secret=s", "secret.$x=1", "secret.$null=true"):
        error = http.get(f"/note?{query}", headers=alice).get_json()["error"]
        assert error == {
            **unknown,
            "message": unknown["message"].replace("nosuch", query.split("=")[0]),
            "details": {"parameter": query.split("=")[0]},
        }
    admin = bearer(token(ADMIN))
    assert http.get("/note?secret.$null=true", headers=admin).status_code == 200


def test_fields_the_caller_cannot_modify(call: Caller) -> None:
    status(call(ALICE, "PATCH", "note", 1, {"rating": 5}), 403, "FORBIDDEN")
    status(call(ALICE, "PATCH", "note", 1, {"secret": "mine"}), 403)
    assert status(call(ALICE, "PATCH", "note", 1, {"rating": 0, "title": "t"}), 200)
    assert status(call(ADMIN, "PATCH", "note", 1, {"rating": 5}), 200).body["rating"] == 5
    status(call(ALICE, "POST", "note", data={"title": "x", "rating": 3}), 403)
    # The value the field gets anyway (its default) may be sent.
    assert status(call(ALICE, "POST", "note", data={"title": "x", "rating": 0}), 201)


def test_read_then_save_leaves_hidden_fields_untouched(call: Caller) -> None:
    read = call(ALICE, "GET", "note", 1).body
    del read["id"]
    # No write answers with a field the caller cannot read.
    assert "secret" not in status(call(ALICE, "PUT", "note", 1, read), 200).body
    assert "secret" not in status(call(ALICE, "PATCH", "note", 1, {"title": "a1"}), 200).body
    assert "secret" not in status(call(ALICE, "POST", "note", data={"title": "n"}), 201).body
    assert "secret" in status(call(ADMIN, "PATCH", "note", 1, {"title": "a1"}), 200).body
    stored = call.engine.get("note", 1)[0]
    assert stored["secret"] == "s1" and stored["rating"] == 0 and stored["tags"] == [1]


# -- authentication (HTTP) -----------------------------------------------------------------


@pytest.fixture
def http(make_engine: Any) -> Any:
    engine = make_engine(secured)
    engine.post("note", {"title": "a1", "owner": "1"})
    return make_api(engine, JWTAuth(KEY)).test_client()


def token(claims: dict[str, Any], key: Any = KEY, algorithm: str = "HS256", **extra: Any) -> str:
    payload = {"exp": int(time.time()) + 60, **claims, **extra}
    return jwt.encode(payload, key, algorithm=algorithm)


def bearer(value: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {value}"}


def b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def assert_invalid(response: Any) -> None:
    assert response.status_code == 401, response.get_json()
    assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
    assert response.get_json()["error"]["code"] == "INVALID_TOKEN"
    assert response.get_json()["error"]["message"] == "The token is not valid."


def test_valid_and_invalid_tokens(http: Any) -> None:
    assert http.get("/note", headers=bearer(token(ALICE))).get_json()[0]["title"] == "a1"
    forged_none = b64({"alg": "none", "typ": "JWT"}) + "." + b64({**ALICE, "exp": 2**40}) + "."
    good = token(ALICE)
    header, _, signature = good.split(".")
    tampered = f"{header}.{b64({'sub': '2', 'exp': 2**40})}.{signature}"
    for bad in (
        forged_none,
        token(ALICE, key="another key that is long enough for HS256 sigs"),
        token(ALICE, exp=int(time.time()) - 10),
        token(ALICE, nbf=int(time.time()) + 600),
        token(ALICE, key=KEY + "0" * 32, algorithm="HS512"),  # an algorithm not listed
        jwt.encode({**ALICE}, KEY, algorithm="HS256"),  # no exp
        tampered,
        "not.a.token",
        "garbage",
    ):
        assert_invalid(http.get("/note", headers=bearer(bad)))
        assert_invalid(http.get("/board", headers=bearer(bad)))  # whatever the route allows
    for header_value in ("Basic abc", "Bearer", "Bearer ", "Bearer a b", "token"):
        assert_invalid(http.get("/board", headers={"Authorization": header_value}))
    # Through the cookie too; without any token the caller is anonymous.
    http.set_cookie("jwt_token", token(ALICE))
    assert http.get("/note").status_code == 200
    http.set_cookie("jwt_token", "garbage")
    assert_invalid(http.get("/note"))
    http.delete_cookie("jwt_token")
    assert http.get("/board").status_code == 200
    refused = http.get("/note")
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"


def test_required_audience_issuer(make_engine: Any) -> None:
    engine = make_engine(secured)
    auth = JWTAuth(KEY, audience="notes", issuer="https://id.example", required=True)
    client = make_api(engine, auth).test_client()
    refused = client.get("/board")
    assert refused.status_code == 401 and refused.headers["WWW-Authenticate"] == "Bearer"
    good = auth.create_token(ALICE)
    assert client.get("/board", headers=bearer(good)).status_code == 200
    # An integer id (a users' collection's) goes into the token as text.
    numeric = bearer(auth.create_token({"sub": 1}))
    assert client.get("/me", headers=numeric).get_json() == {"id": "1", "anonymous": False}
    with pytest.raises(TypeError):
        auth.create_token({"sub": 1.5})
    assert_invalid(
        client.get("/board", headers=bearer(token(ALICE, aud="other", iss="https://id.example")))
    )
    assert_invalid(
        client.get("/board", headers=bearer(token(ALICE, aud="notes", iss="https://evil")))
    )
    assert_invalid(client.get("/board", headers=bearer(token(ALICE))))  # neither


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_public_key_algorithms(make_engine: Any, algorithm: str) -> None:
    engine = make_engine(secured)
    private = (
        rsa.generate_private_key(public_exponent=65537, key_size=2048)
        if algorithm == "RS256"
        else ec.generate_private_key(ec.SECP256R1())
    )
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    auth = JWTAuth(public_pem, algorithms=[algorithm], signing_key=private_pem)
    client = make_api(engine, auth).test_client()
    assert client.get("/memo", headers=bearer(auth.create_token(BOB))).status_code == 200
    # Algorithm confusion: HS256 with the public key (which attackers know) as
    # the HMAC secret. Refused, and so is a token the HMAC key signs.
    signed = b64({"alg": "HS256", "typ": "JWT"}) + "." + b64({**BOB, "exp": 2**40})
    mac = hmac.new(public_pem, signed.encode(), hashlib.sha256).digest()
    confused = signed + "." + base64.urlsafe_b64encode(mac).decode().rstrip("=")
    assert_invalid(client.get("/memo", headers=bearer(confused)))
    assert_invalid(client.get("/memo", headers=bearer(token(BOB, key=KEY))))
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    if algorithm == "RS256":
        assert_invalid(
            client.get("/memo", headers=bearer(token(BOB, key=other, algorithm="RS256")))
        )


def test_leeway_and_cookie_settings(make_engine: Any) -> None:
    engine = make_engine(secured)
    engine.post("note", {"title": "a1", "owner": "1"})
    late = token(ALICE, exp=int(time.time()) - 10)
    lenient = make_api(engine, JWTAuth(KEY, leeway=30)).test_client()
    assert lenient.get("/note", headers=bearer(late)).status_code == 200
    assert_invalid(lenient.get("/note", headers=bearer(token(ALICE, exp=int(time.time()) - 60))))
    assert_invalid(make_api(engine, JWTAuth(KEY)).test_client().get("/note", headers=bearer(late)))
    # cookie=None reads no cookie; another name reads that cookie only.
    headerless = make_api(engine, JWTAuth(KEY, cookie=None)).test_client()
    headerless.set_cookie("jwt_token", token(ALICE))
    assert headerless.get("/note").status_code == 401
    named = make_api(engine, JWTAuth(KEY, cookie="session")).test_client()
    named.set_cookie("jwt_token", token(ALICE))
    assert named.get("/note").status_code == 401
    named.set_cookie("session", token(ALICE))
    assert named.get("/note").get_json()[0]["title"] == "a1"


def test_jwtauth_refuses_unsafe_settings() -> None:
    with pytest.raises(DeclarationError):
        JWTAuth(KEY, algorithms=["none"])
    with pytest.raises(DeclarationError):
        JWTAuth(KEY, algorithms=["HS256", "RS256"])
    with pytest.raises(DeclarationError):
        JWTAuth("")


class Member(User):
    roles_claim = "groups"

    @property
    def team(self) -> str | None:
        return self.claims.get("team")


def test_current_user_and_a_user_subclass(make_engine: Any) -> None:
    engine = make_engine(secured)
    auth = JWTAuth(KEY, user_class=Member)
    app = make_api(engine, auth)
    seen: list[Any] = []

    @app.get("/team")
    def team() -> Any:
        seen.append(current_user._get_current_object())  # type: ignore[attr-defined]
        return jsonify(team=current_user.team, admin=current_user.has_role("admin"))  # type: ignore[attr-defined]

    client = app.test_client()
    answer = client.get(
        "/team", headers=bearer(token({"sub": "4", "team": "x", "groups": ["admin"]}))
    )
    assert answer.get_json() == {"team": "x", "admin": True}
    assert isinstance(seen[0], Member) and seen[0].id == "4" and seen[0].roles == ["admin"]
    # HasRole reads the renamed claim: this member is an admin and sees every note.
    engine.post("note", {"title": "x", "owner": "1"})
    admin_token = token({"sub": "4", "groups": ["admin"]})
    assert len(client.get("/note", headers=bearer(admin_token)).get_json()) == 1
    assert client.get("/me").get_json() == {"id": None, "anonymous": True}
    assert_invalid(client.get("/me", headers=bearer("garbage")))
    assert current_user.is_anonymous  # outside a request


def test_user_mapping() -> None:
    user = User({"sub": 12, "login": "al", "roles": ["a", 3]})
    assert (user.id, user.login, user.roles, dict(user)) == ("12", "al", ["a"], dict(user.claims))
    assert user.has_role("x", "a") and not user.has_role("b")
    assert User().is_anonymous and User({"roles": "admin"}).roles == []


def test_the_engine_takes_a_mapping_or_none(seeded: Any) -> None:
    with pytest.raises(TypeError):
        seeded.get("note", auth="alice")
    with pytest.raises(NotFound):
        seeded.get("note", 3, auth=ALICE)
    with pytest.raises(Unauthorized):
        seeded.get("note", auth={})
    with pytest.raises(Forbidden):
        seeded.patch("board", 1, {"text": "x"}, auth=BOB)


seen_auth: list[Any] = []


def record(auth: Any, obj: Any = None) -> bool:
    seen_auth.append(auth)
    return True


class Recorded(Permission):
    def can(self, auth: Any, action: str, obj: Any = None) -> bool:
        return record(auth)


watched = DataModel("watched")


@watched.collection("entry", permissions=Recorded())
class Entry(Schema):
    text = fields.String(metadata={"can_read": record, "can_modify": record})


def test_rights_functions_always_get_a_mapping(make_engine: Any) -> None:
    engine = make_engine(watched)
    client = make_api(engine, JWTAuth(KEY)).test_client()
    seen_auth.clear()
    assert client.post("/entry", json={"text": "t"}).status_code == 201  # anonymous
    assert client.get("/entry", headers=bearer(token(ALICE))).status_code == 200
    assert client.patch("/entry/1", json={"text": "u"}).status_code == 200
    engine.get("entry", 1, auth={})
    assert seen_auth and all(isinstance(auth, Mapping) for auth in seen_auth)
    assert {auth.get("sub") for auth in seen_auth} == {None, "1"}


owned = DataModel("owned")


@owned.collection("account", permissions=HasRole("admin"))
class Account(Schema):
    name = fields.String()
    notes = RefsList("paper", reverse="owner")


@owned.collection("paper", permissions=Owner("owner"))
class Paper(Schema):
    title = fields.String()
    owner = Ref("account", reverse="notes")


def test_an_owner_field_that_is_a_relation(make_engine: Any) -> None:
    engine = make_engine(owned)
    engine.post("account", [{"name": "alice"}, {"name": "bob"}])
    engine.post("paper", {"title": "x"}, auth=ALICE)
    engine.post("paper", {"title": "y", "owner": 2}, auth=BOB)
    assert [p["owner"] for p in engine.get("paper")[0]] == [1, 2]
    # The owner sees their papers, though the accounts are hidden from them (the
    # scope is the model's own filter: its path sees every account).
    assert [p["id"] for p in engine.get("paper", auth=ALICE)[0]] == [1]
    assert engine.get("paper", 1, auth=ALICE)[0]["owner"] is None  # a hidden account
    assert engine.get("account", 1, auth=ADMIN)[0]["notes"] == []  # admins see no paper
    with pytest.raises(Forbidden):
        engine.post("paper", {"title": "z", "owner": 2}, auth=ALICE)
    with pytest.raises(NotFound):
        engine.patch("paper", 2, {"title": "mine"}, auth=ALICE)
    # What she reads she may save back: the hidden owner reads and compares as null.
    read = engine.get("paper", 1, auth=ALICE)[0]
    assert engine.put("paper", 1, {"title": "x2", "owner": read["owner"]}, auth=ALICE)[1] == 200
    assert engine.get("paper", 1)[0] == {"id": 1, "title": "x2", "owner": 1}
    # Her own id, as she sent it on create, is her own to send again; no other.
    assert engine.put("paper", 1, {"title": "x3", "owner": 1}, auth=ALICE)[1] == 200
    assert engine.patch("paper", 1, {"owner": 1}, auth=ALICE)[1] == 200
    with pytest.raises(Forbidden, match="set by the server"):
        engine.patch("paper", 1, {"owner": 2}, auth=ALICE)
    assert engine.get("paper", 1)[0] == {"id": 1, "title": "x3", "owner": 1}


# -- what a write must neither change nor tell ----------------------------------------------


def test_hidden_links_are_left_alone(call: Caller) -> None:
    call.engine.patch("note", 3, {"tags": [1]})  # bob's note, hidden from alice
    assert call(ALICE, "GET", "tag", 1).body["notes"] == [1]
    status(call(ALICE, "PATCH", "tag", 1, {"notes": []}), 200)
    status(call(ALICE, "PUT", "tag", 1, {"label": "red"}), 200)
    assert call.engine.get("note", 3)[0]["tags"] == [1]
    # Bob's folder 2 holds alice's note 2, which he cannot see: his PUT empties the
    # folder of what he sees, and leaves alice's note there.
    assert status(call(BOB, "PUT", "folder", 2, {"name": "b"}), 200).body["notes"] == []
    assert call.engine.get("note", 2)[0]["folder"] == 2
    assert call.engine.get("note", 3)[0]["folder"] is None
    # To alice her note 2 has no folder: nulling it keeps bob's folder, moving it
    # out of bob's folder changes his folder, which she may not.
    assert status(call(ALICE, "PATCH", "note", 2, {"folder": None}), 200).body["folder"] is None
    status(call(ALICE, "PATCH", "note", 2, {"folder": 1}), 403)
    assert call.engine.get("note", 2)[0]["folder"] == 2


shared = DataModel("shared")


@shared.collection("member", permissions=Anyone())
class SharedMember(Schema):
    name = fields.String()
    sheets = RefsList("sheet", reverse="owner", on_delete=DeleteStrategy.MUST_BE_EMPTY)


@shared.collection("sheet", permissions=Owner("owner"))
class Sheet(Schema):
    title = fields.String()
    code = fields.String(metadata={"unique": True})
    verdict = fields.String(metadata={"can_read": False, "can_modify": False})
    owner = Ref("member", reverse="sheets")


@pytest.fixture
def sheets(make_engine: Any) -> Any:
    engine = make_engine(shared)
    engine.post("member", [{"name": "alice"}, {"name": "bob"}])
    engine.post("sheet", {"title": "a", "code": "X"}, auth=ALICE)
    engine.patch("sheet", 1, {"verdict": "spam"})  # trusted code
    return engine


def test_errors_do_not_name_hidden_objects(sheets: Any) -> None:
    body, code, _ = basic.post("sheet", {"title": "b", "code": "X"}, engine=sheets, auth=BOB)
    assert code == 409 and body["error"]["details"] == {"collection": "sheet", "field": "code"}
    assert body["error"]["message"] == "Another sheet already has this code: it must be unique."
    body, code, _ = basic.delete("member", 1, engine=sheets, auth=BOB)
    assert code == 409 and body["error"]["details"]["linked"] == {"collection": "sheet", "ids": []}
    assert "sheet objects still linked" in body["error"]["message"]


def test_linking_from_the_other_side_changes_the_linked_object(sheets: Any) -> None:
    # The owner is server-set: moving a sheet to another member from the member's
    # side is refused as from the sheet's side; a hidden sheet is not found.
    with pytest.raises(Forbidden, match="set by the server"):
        sheets.patch("member", 2, {"sheets": [1]}, auth=ALICE)
    with pytest.raises(NotFound):
        sheets.patch("member", 2, {"sheets": [1]}, auth=BOB)
    assert sheets.get("sheet", 1)[0]["owner"] == 1


def test_no_answer_tells_a_hidden_value(sheets: Any) -> None:
    for guess in ("ham", "spam"):  # the right guess is refused as the wrong one
        with pytest.raises(Forbidden):
            sheets.patch("sheet", 1, {"verdict": guess}, auth=ALICE)


def test_claims_that_fit_no_owner(sheets: Any) -> None:
    for sub in ("x", "٣", "99999999999999999999999", 1.5, "01", " 1", "+1"):
        with pytest.raises(Forbidden):
            sheets.post("sheet", {"title": "t"}, auth={"sub": sub})
        assert sheets.get("sheet", auth={"sub": sub}) == ([], 200)


def test_a_refused_caller_is_refused_before_the_body_is_read(call: Caller) -> None:
    status(call(ANONYMOUS, "POST", "note", data={"title": 5, "nope": 1}), 401)
    status(call(ANONYMOUS, "POST", "tag", data={"label": "t", "notes": [{"title": "n"}]}), 401)
    for method in ("PATCH", "PUT", "DELETE"):
        status(call(ANONYMOUS, method, "note", "abc", {"title": "x"}), 401)
    status(call(ANONYMOUS, "PATCH", "note", 1, {"nope": 1}), 401)
    status(call(ANONYMOUS, "PUT", "note", 1, {"nope": 1}), 401)


@pytest.mark.parametrize(
    ("method", "url", "body", "content_type", "allowed"),
    [
        ("GET", "/memo?bogus=1", None, None, 400),
        ("GET", "/memo?text=1", None, None, 200),
        ("GET", "/memo/1?nope=1&depth=x", None, None, 400),
        ("GET", "/memo?filter={", None, None, 400),
        ("POST", "/memo", b"{", "application/json", 400),
        ("POST", "/memo", b"text", "text/plain", 415),
        ("POST", "/memo?x=1", b"{}", "application/json", 400),
        ("PUT", "/memo/1", b"[", "application/json", 400),
        ("PATCH", "/memo/1", b"{}", "text/csv", 415),
        ("DELETE", "/memo/1?x=1", None, None, 400),
    ],
)
def test_refused_callers_learn_nothing_from_parameters_or_bodies(
    http: Any, method: str, url: str, body: bytes | None, content_type: str | None, allowed: int
) -> None:
    # No parameter, no Content-Type and no body is looked at before the permissions:
    # whether a field exists, or what the body holds, tells a refused caller nothing.
    refused = http.open(url, method=method, data=body, content_type=content_type)
    assert refused.status_code == 401
    assert refused.get_json()["error"]["code"] == "UNAUTHORIZED"
    bob = {"Authorization": f"Bearer {token(BOB)}"}
    if method != "GET":  # bob may read boards, not write them
        board = url.replace("/memo", "/board")
        refused = http.open(board, method=method, data=body, content_type=content_type, headers=bob)
        assert refused.status_code == 403, refused.get_json()
        assert refused.get_json()["error"]["code"] == "FORBIDDEN"
    # A caller who may act gets the request's own answer, as before.
    answer = http.open(url, method=method, data=body, content_type=content_type, headers=bob)
    assert answer.status_code == allowed, answer.get_json()


def mine(auth: Mapping[str, Any], obj: Any) -> bool:
    return obj is not None and str(obj["id"]) == user_of(auth).id


people = DataModel("people")


@people.collection("person")
class Person(Schema):
    name = fields.String()
    contacts = RefsList("contact", reverse="person", metadata={"can_read": mine})


@people.collection("contact")
class Contact(Schema):
    name = fields.String()
    person = Ref("person", reverse="contacts")


def test_hidden_relations_are_not_expanded(make_engine: Any) -> None:
    engine = make_engine(people)
    bobs = [{"name": str(n)} for n in range(5)]
    engine.post("person", [{"name": "alice", "contacts": [{"name": "c"}]},
                           {"name": "bob", "contacts": bobs}])  # fmt: skip
    # 2 people, alice's 1 contact and its person id: bob's 5 are neither shown nor counted.
    body, code, _ = basic.get("person", depth=2, max_objects=4, engine=engine, auth=ALICE)
    assert code == 200 and body[0]["contacts"][0]["name"] == "c" and "contacts" not in body[1]


# -- a link is part of both objects ---------------------------------------------------------

linking = DataModel("linking")


@linking.collection("box", permissions=Anyone())
class Box(Schema):
    name = fields.String()
    items = RefsList("item", reverse="box")


@linking.collection("item", permissions=Anyone())
class Item(Schema):
    name = fields.String()
    box = Ref("box", reverse="items", metadata={"can_modify": is_admin})


@linking.collection("label", permissions=Anyone())
class Label(Schema):
    name = fields.String()
    posts = RefsList("post", reverse="labels")


@linking.collection("post", permissions=Owner("author") | ReadOnly() | HasRole("admin"))
class Post(Schema):
    title = fields.String()
    author = fields.String(allow_none=True)
    labels = RefsList("label", reverse="posts")
    desk = Ref("desk", reverse="post")


@linking.collection("desk", permissions=Anyone())
class Desk(Schema):
    name = fields.String()
    post = Ref("post", reverse="desk")


@linking.collection("shelf", permissions=Anyone())
class Shelf(Schema):
    name = fields.String()
    volumes = RefsList("volume", reverse="shelves")


@linking.collection("volume", permissions=Anyone())
class Volume(Schema):
    name = fields.String()
    shelves = RefsList("shelf", reverse="volumes", metadata={"can_modify": is_admin})


@linking.collection("crate", permissions=Owner("owner"))
class Crate(Schema):
    owner = fields.String()
    bottles = RefsList("bottle", reverse="crate")


@linking.collection("bottle", permissions=Anyone())
class Bottle(Schema):
    crate = Ref("crate", reverse="bottles", metadata={"can_modify": is_admin})


class ReadAndCreate(Permission):
    def can(self, auth: Mapping[str, Any], action: str, obj: Any = None) -> bool:
        return action in ("read", "create")


@linking.collection("journal", permissions=Anyone())
class Journal(Schema):
    name = fields.String()
    last = Ref("entry", reverse="last_of")
    entries = RefsList("entry", reverse="journal")


seen_objects: list[Any] = []


def record_object(auth: Any, obj: Any) -> bool:
    seen_objects.append(obj)
    return True


@linking.collection("entry", permissions=ReadAndCreate())
class JournalEntry(Schema):
    text = fields.String()
    last_of = RefsList("journal", reverse="last", metadata={"can_modify": record_object})
    journal = Ref("journal", reverse="entries")


@pytest.fixture
def links(make_engine: Any) -> Any:
    engine = make_engine(linking)
    engine.post("box", {"name": "b"})
    engine.post("item", {"name": "i"})
    engine.post("label", {"name": "l"})
    engine.post("desk", {"name": "d"})
    engine.post("post", {"title": "alice's", "desk": 1}, auth=ALICE)
    engine.post("post", {"title": "bob's"}, auth=BOB)
    return engine


def test_a_link_changes_both_objects(links: Any) -> None:
    assert links.get("desk", 1)[0]["post"] == 1
    # The item's box is the admin's to set, from either side.
    with pytest.raises(Forbidden, match="box of item"):
        links.patch("item", 1, {"box": 1}, auth=ALICE)
    with pytest.raises(Forbidden, match="box of item"):
        links.patch("box", 1, {"items": [1]}, auth=ALICE)
    assert links.patch("box", 1, {"items": [1]}, auth=ADMIN)[0]["items"] == [1]
    # Bob may read alice's post, not change it: neither its labels nor its desk.
    with pytest.raises(Forbidden):
        links.patch("label", 1, {"posts": [1]}, auth=BOB)
    with pytest.raises(Forbidden):
        links.patch("post", 2, {"desk": 1}, auth=BOB)  # desk 1 would leave alice's post
    with pytest.raises(Forbidden):
        links.patch("desk", 1, {"post": 2}, auth=BOB)
    assert links.get("desk", 1)[0]["post"] == 1 and links.get("post", 1)[0]["labels"] == []
    assert links.patch("label", 1, {"posts": [2]}, auth=BOB)[0]["posts"] == [2]


def test_a_nested_object_gets_its_link_as_if_it_gave_it(links: Any) -> None:
    # Creating an item inside a box sets the item's box: the admin's to set.
    for write in (
        lambda: links.post("box", {"name": "b2", "items": [{"name": "new"}]}, auth=ALICE),
        lambda: links.patch("box", 1, {"items": [{"name": "new"}]}, auth=ALICE),
        lambda: links.post("shelf", {"name": "s", "volumes": [{"name": "new"}]}, auth=ALICE),
    ):
        with pytest.raises(Forbidden):
            write()
    assert links.get("item")[0] == [{"id": 1, "name": "i", "box": None}]
    assert links.get("volume")[0] == [] and len(links.get("box")[0]) == 1
    body = links.post("shelf", {"name": "s", "volumes": [{"name": "v"}]}, auth=ADMIN)[0]
    assert links.get("volume", body["volumes"][0])[0]["shelves"] == [body["id"]]


def test_a_nested_object_cannot_be_given_to_someone_else(make_engine: Any) -> None:
    engine = make_engine(owned)
    engine.post("account", [{"name": "alice"}, {"name": "bob"}])
    admin_alice = {"sub": "1", "roles": ["admin"]}
    # A paper created inside account 2 would be owned by 2; its owner is the caller.
    with pytest.raises(Forbidden, match="set by the server"):
        engine.post("account", {"name": "carol", "notes": [{"title": "t"}]}, auth=admin_alice)
    with pytest.raises(Forbidden, match="set by the server"):
        engine.patch("account", 2, {"notes": [{"title": "t"}]}, auth=admin_alice)
    assert engine.get("paper")[0] == [] and len(engine.get("account")[0]) == 2
    body = engine.patch("account", 1, {"notes": [{"title": "t"}]}, auth=admin_alice)[0]
    assert engine.get("paper", body["notes"][0])[0]["owner"] == 1


def test_a_key_to_a_hidden_object_reads_and_compares_as_null(links: Any) -> None:
    links.post("crate", {"owner": "2"})  # bob's
    links.post("bottle", {"crate": 1})
    assert links.get("bottle", 1, auth=ALICE)[0] == {"id": 1, "crate": None}
    # Sending back what she read changes nothing; any crate is refused alike,
    # the hidden one too: no answer tells which it is.
    assert links.patch("bottle", 1, {"crate": None}, auth=ALICE)[0] == {"id": 1, "crate": None}
    for crate in (1, 2, 99):
        with pytest.raises(Forbidden, match="crate of bottle is not yours to change"):
            links.patch("bottle", 1, {"crate": crate}, auth=ALICE)
    assert links.get("bottle", 1)[0]["crate"] == 1


def test_a_nested_object_needs_only_the_right_to_create_it(links: Any) -> None:
    # An entry may be created, never updated: nested, from either side.
    seen_objects.clear()
    body = links.post("journal", {"name": "j", "last": {"text": "e"}}, auth=BOB)[0]
    assert body["last"] == 1
    # Rights functions see the entry as created, without the journal's id, which
    # is not known yet.
    assert seen_objects and all("last_of" not in obj for obj in seen_objects)
    body = links.post("journal", {"name": "k", "entries": [{"text": "f"}]}, auth=BOB)[0]
    assert body["entries"] == [2]
    assert links.patch("journal", 2, {"last": {"text": "g"}}, auth=BOB)[0]["last"] == 3
    assert seen_objects[-1]["last_of"] == [2]  # an id known: given
    with pytest.raises(Forbidden):
        links.patch("journal", 1, {"last": 2}, auth=BOB)  # entry 2 changes: refused


def test_changes_from_the_other_side_are_audited(call: Caller) -> None:
    before = call.engine.get("note", 2)[0]
    time.sleep(0.01)
    status(call(ADMIN, "PATCH", "note", 1, {"title": "x"}), 200)
    # Alice moves her note 2 into her folder 1 from the folder's side.
    status(call(ALICE, "PATCH", "folder", 1, {"notes": [1, 2]}), 200)
    after = call.engine.get("note", 2)[0]
    assert after["folder"] == 1 and after["updated_at"] > before["updated_at"]


def test_a_delete_takes_its_links_with_it(call: Caller) -> None:
    # Anyone may delete a tag: alice's note 1, hidden from bob, loses it, and
    # records the change.
    before = call.engine.get("note", 1)[0]
    time.sleep(0.01)
    status(call(BOB, "DELETE", "tag", 1), 204)
    after = call.engine.get("note", 1)[0]
    assert after["tags"] == [] and after["updated_by"] == "2"
    assert after["updated_at"] > before["updated_at"]
    assert call.engine.get("note", 2)[0]["updated_by"] is None  # not linked to tag 1


def test_two_apis_authenticate_each_with_its_own_key(make_engine: Any) -> None:
    engine = make_engine(secured)
    app = Flask("two")
    public, private = JWTAuth(KEY), JWTAuth(KEY + " for admins", required=True)
    for prefix, auth in (("/pub", public), ("/adm", private)):
        api = Api(app, engine=engine, auth=auth, prefix=prefix)
        api.add_resource(
            type(f"n{prefix[1:]}", (Resource,), {"model": secured.get("note")}), "/note"
        )

    @app.before_request
    def log() -> None:
        # current_user is the first Api's view of the caller; reading it first
        # must not decide who the other Api sees.
        try:
            assert current_user.id in (None, "1")
        except Unauthorized:
            pass

    client = app.test_client()
    public_token = bearer(public.create_token(ALICE))
    assert client.get("/pub/note", headers=public_token).status_code == 200
    assert_invalid(client.get("/adm/note", headers=public_token))
    assert client.get("/adm/note").status_code == 401
    assert client.get("/adm/note", headers=bearer(private.create_token(ALICE))).status_code == 200

"""Self-description: ``_meta`` (the model and the caller's rights) and ``_check``
(a draft checked without writing it), through api.basic (claims) and over HTTP
(a JWT), on every backend."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import pytest
from flask import Flask
from marshmallow import Schema as Args
from marshmallow import fields, validate

from backo_restful import Computed, DataModel, DeleteStrategy, Engine, Ref, RefsList, Schema
from backo_restful.api import basic
from backo_restful.api.flask import Api, Resource
from backo_restful.auth import Anyone, HasRole, JWTAuth, Owner, Permission, user_of
from backo_restful.exceptions import (
    BadRequest,
    Forbidden,
    InvalidBody,
    NotFound,
    RequiredRelation,
    UnknownField,
    ValidationFailed,
)
from tests.conftest import Result

KEY = "a test secret that is long enough for HS256 signatures"
ALICE = {"sub": "1", "login": "alice"}
BOB = {"sub": "2", "login": "bob"}
ADMIN = {"sub": "9", "login": "root", "roles": ["admin"]}
ANONYMOUS: dict[str, Any] = {}


def is_admin(auth: Mapping[str, Any], obj: Any) -> bool:
    return user_of(auth).has_role("admin")


def owns(auth: Mapping[str, Any], obj: Any) -> bool:
    """The caller owns ``obj`` (the stored object, or the draft)."""
    user = user_of(auth)
    return obj is not None and not user.is_anonymous and obj.get("owner") == user.id


def build_model() -> DataModel:
    dm = DataModel("library")

    @dm.collection("author")
    class Author(Schema):
        login = fields.String(
            required=True, validate=validate.Length(min=1, max=40), metadata={"unique": True}
        )
        books = RefsList("book", reverse="author")

    @dm.collection(
        "book", permissions=Owner("owner") | HasRole("admin"), views={"short": ["title", "secret"]}
    )
    class Book(Schema):
        title = fields.String(required=True, validate=validate.Length(min=1, max=80))
        status = fields.String(
            load_default="draft", validate=validate.OneOf(["draft", "published"])
        )
        isbn = fields.String(
            validate=validate.Regexp(r"^[0-9-]+$"), metadata={"unique": True}, allow_none=True
        )
        pages = fields.Integer(validate=validate.Range(min=1, max=5000), metadata={"index": True})
        secret = fields.String(metadata={"can_read": is_admin, "can_modify": is_admin})
        rating = fields.Integer(load_default=0, metadata={"can_modify": owns})
        owner = fields.String()
        extra = fields.Dict()
        shout = Computed(fields.String(), get=lambda obj: (obj["title"] or "").upper())
        author = Ref("author", reverse="books")
        folder = Ref("folder", reverse="books")
        tags = RefsList("tag", reverse="books", on_delete=DeleteStrategy.UNLINK_REFERENCED_ITEMS)

    @dm.collection("folder", permissions=Owner("owner"))
    class Folder(Schema):
        name = fields.String()
        owner = fields.String()
        books = RefsList("book", reverse="folder", on_delete=DeleteStrategy.DELETE_REFERENCED_ITEMS)

    @dm.collection("tag", permissions=Anyone())
    class Tag(Schema):
        label = fields.String()
        books = RefsList("book", reverse="tags")

    @dm.collection("vault", permissions=HasRole("admin"))
    class Vault(Schema):
        text = fields.String()

    class LendArgs(Args):
        to = fields.String(required=True, validate=validate.Length(min=1))
        days = fields.Integer(load_default=14, validate=validate.Range(min=1, max=60))

    @dm.action("book", "lend", args=LendArgs)
    def lend(ctx: Any, book: Any, args: Any) -> Any:
        return {"lent": book["id"], "to": args["to"]}

    @dm.action("vault", "seal", on="collection")
    def seal(ctx: Any, obj: Any, args: Any) -> Any:
        return None

    return dm


def in_draft(auth: Mapping[str, Any], obj: Any) -> bool:
    """Only a draft takes a note: the object's own status decides."""
    return obj is not None and obj.get("status") == "draft"


def priced_model() -> DataModel:
    """Items whose price is computed from the cents stored, set by admins only."""
    dm = DataModel("priced")

    @dm.collection("item", permissions=Anyone())
    class Item(Schema):
        status = fields.String()
        note = fields.String(metadata={"can_modify": in_draft})
        cents = fields.Integer(validate=validate.Range(min=0))
        price = Computed(
            fields.Float(metadata={"can_modify": is_admin}),
            get=lambda item: (item["cents"] or 0) / 100,
            set=lambda item, value: {"cents": round(value * 100)},
        )
        url = Computed(fields.String(), get=lambda item: f"/item/{item['id']}")

    return dm


class Caller:
    """``_meta`` and ``_check`` through api.basic (claims) or over HTTP (a token)."""

    def __init__(self, engine: Engine, layer: str) -> None:
        self.engine = engine
        self.layer = layer
        self.auth = JWTAuth(KEY)
        app = Flask("library")
        api = Api(app, engine=engine, auth=self.auth)
        for collection in engine.model.collections.values():
            resource = type(f"{collection.name}_resource", (Resource,), {"model": collection})
            api.add_resource(resource, f"/{collection.name}")
        self.http = app.test_client()

    def _headers(self, user: Any) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.auth.create_token(user)}"} if user else {}

    def _result(self, response: Any) -> Result:
        body = response.get_json(silent=True) if response.data else None
        return Result(body, response.status_code, dict(response.headers))

    def describe(
        self, user: Any, name: str | None = None, *, id_: Any = None, obj: Any = None
    ) -> Result:
        if self.layer == "basic":
            return Result(*basic.describe(name, obj=obj, id_=id_, auth=user, engine=self.engine))
        url = (
            "/_meta"
            if name is None
            else f"/{name}/_meta"
            if id_ is None
            else f"/{name}/{id_}/_meta"
        )
        if obj is None:
            return self._result(self.http.get(url, headers=self._headers(user)))
        return self._result(self.http.post(url, json=obj, headers=self._headers(user)))

    def check(
        self, user: Any, name: str, item: Any, *, path: str | None = None, id_: Any = None
    ) -> Result:
        if self.layer == "basic":
            return Result(
                *basic.check(name, item, path=path, id_=id_, auth=user, engine=self.engine)
            )
        url = f"/{name}/_check" if id_ is None else f"/{name}/{id_}/_check"
        body: dict[str, Any] = {"item": item}
        if path is not None:
            body["path"] = path
        return self._result(self.http.post(url, json=body, headers=self._headers(user)))


@pytest.fixture
def engine(make_engine: Any) -> Engine:
    engine: Engine = make_engine(build_model())
    engine.post("author", [{"login": "ann"}, {"login": "ben"}])
    engine.post("folder", [{"name": "alice's", "owner": "1"}, {"name": "bob's", "owner": "2"}])
    engine.post("tag", [{"label": "new"}, {"label": "old"}])
    engine.post("book", [
        {"title": "Alice's", "owner": "1", "isbn": "1-2", "secret": "s1", "author": 1,
         "folder": 1, "tags": [1]},
        {"title": "Bob's", "owner": "2", "isbn": "3-4", "folder": 2},
    ])  # fmt: skip
    return engine


@pytest.fixture
def call(engine: Engine, layer: str) -> Caller:
    return Caller(engine, layer)


def snapshot(engine: Engine) -> dict[str, Any]:
    """Every object of every collection, as trusted code reads them."""
    return {name: engine.get(name, sort="id")[0] for name in engine.model.collections}


def error(result: Result, status: int, code: str) -> dict[str, Any]:
    assert (result.status, result.body["error"]["code"]) == (status, code), result.body
    return dict(result.body["error"])


# -- _meta ---------------------------------------------------------------------------


def test_the_model_lists_every_collection(call: Caller) -> None:
    result = call.describe(ALICE)
    assert result.status == 200
    assert result.body["name"] == "library"
    assert list(result.body["collections"]) == ["author", "book", "folder", "tag", "vault"]
    book = result.body["collections"]["book"]
    assert book == call.describe(ALICE, "book").body


def test_fields_are_described_in_plain_data(call: Caller) -> None:
    fields_ = call.describe(ADMIN, "book").body["fields"]
    assert list(fields_) == [
        "id", "title", "status", "isbn", "pages", "secret", "rating", "owner", "extra",
        "shout", "author", "folder", "tags",
    ]  # fmt: skip
    assert fields_["id"]["type"] == "integer" and fields_["id"]["read_only"]
    title = fields_["title"]
    assert title["type"] == "string" and title["required"] and not title["nullable"]
    assert title["validators"] == [{"type": "length", "min": 1, "max": 80}]
    assert "$re" in title["filters"] and title["sortable"]
    assert fields_["status"]["default"] == "draft"
    assert fields_["status"]["validators"] == [
        {"type": "choices", "choices": ["draft", "published"]}
    ]
    assert fields_["isbn"]["validators"] == [{"type": "regexp", "pattern": "^[0-9-]+$"}]
    assert fields_["isbn"]["unique"] and fields_["isbn"]["index"] and fields_["isbn"]["nullable"]
    pages = fields_["pages"]
    assert pages["type"] == "integer" and pages["index"] and not pages["unique"]
    assert pages["validators"] == [
        {"type": "range", "min": 1, "max": 5000, "min_inclusive": True, "max_inclusive": True}
    ]
    assert "$gte" in pages["filters"] and "$contains" not in pages["filters"]
    assert fields_["extra"]["type"] == "dict" and fields_["extra"]["filters"] == []
    assert not fields_["extra"]["sortable"]
    shout = fields_["shout"]
    assert shout["computed"] and shout["read_only"] and shout["filters"] == []
    assert shout["rights"] == {"read": True, "modify": False}
    # The owner field is set by the server.
    assert fields_["owner"]["read_only"] and fields_["owner"]["rights"]["modify"] is False


def test_relations_are_described_from_each_side(call: Caller) -> None:
    book = call.describe(ADMIN, "book").body["fields"]
    assert {k: book["author"][k] for k in ("type", "target", "reverse", "kind", "many")} == {
        "type": "relation", "target": "author", "reverse": "books", "kind": "many-to-one",
        "many": False,
    }  # fmt: skip
    assert book["tags"]["kind"] == "many-to-many" and book["tags"]["many"]
    assert book["tags"]["on_delete"] == "unlink_referenced_items"
    assert book["author"]["filters"] == ["$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in",
                                         "$nin", "$null"]  # fmt: skip
    author = call.describe(ADMIN, "author").body["fields"]
    assert author["books"]["kind"] == "one-to-many"
    assert author["books"]["on_delete"] == "must_be_empty"
    assert not author["books"]["sortable"]


def test_views_and_actions(call: Caller) -> None:
    admin = call.describe(ADMIN, "book").body
    assert admin["views"] == {"short": ["title", "secret"]}
    lend = admin["actions"]["lend"]
    assert lend["on"] == "item" and lend["allowed"]
    assert lend["args"]["to"]["required"] and lend["args"]["days"]["default"] == 14
    # Fields the caller cannot read leave the views too.
    assert call.describe(ALICE, "book").body["views"] == {"short": ["title"]}
    assert call.describe(ALICE, "vault").body["actions"]["seal"] == {
        "on": "collection", "args": {}, "allowed": False,
    }  # fmt: skip
    assert call.describe(ADMIN, "vault").body["actions"]["seal"]["allowed"]


def test_rights_of_each_kind_of_caller(call: Caller) -> None:
    everything = dict.fromkeys(("list", "create", "read", "update", "delete"), True)
    nothing = dict.fromkeys(everything, False)
    assert call.describe(ADMIN, "book").body["rights"] == everything
    # Alice may do each on her own objects: "some object" is allowed.
    assert call.describe(ALICE, "book").body["rights"] == everything
    assert call.describe(ANONYMOUS, "book").body["rights"] == nothing
    assert call.describe(ANONYMOUS, "tag").body["rights"] == everything
    assert call.describe(ALICE, "vault").body["rights"] == nothing
    anonymous = call.describe(ANONYMOUS).body["collections"]
    assert anonymous["vault"]["rights"] == nothing and anonymous["author"]["rights"] == everything


def test_hidden_fields_are_absent(call: Caller) -> None:
    assert "secret" in call.describe(ADMIN, "book").body["fields"]
    for user in (ALICE, BOB, ANONYMOUS):
        fields_ = call.describe(user, "book").body["fields"]
        assert "secret" not in fields_
        assert "secret" not in call.describe(user).body["collections"]["book"]["fields"]


def test_rights_on_an_object(call: Caller) -> None:
    own = call.describe(ALICE, "book", id_=1).body
    assert own["rights"] == dict.fromkeys(("list", "create", "read", "update", "delete"), True)
    assert own["fields"]["rating"]["rights"] == {"read": True, "modify": True}
    assert own["actions"]["lend"]["allowed"]
    admin = call.describe(ADMIN, "book", id_=1).body
    assert admin["rights"]["update"] and admin["fields"]["secret"]["rights"]["modify"]
    # Not her object: the admin may update it, but not change its rating.
    assert admin["fields"]["rating"]["rights"] == {"read": True, "modify": False}
    # Without an object, a right that depends on it is "on some object".
    assert call.describe(BOB, "book").body["fields"]["rating"]["rights"]["modify"] is False


def test_objects_out_of_scope_are_404(call: Caller) -> None:
    error(call.describe(BOB, "book", id_=1), 404, "OBJECT_DOES_NOT_EXIST")
    error(call.describe(ALICE, "book", id_=99), 404, "OBJECT_DOES_NOT_EXIST")
    error(call.describe(ANONYMOUS, "book", id_=1), 401, "UNAUTHORIZED")
    error(call.describe(ALICE, "vault", id_=1), 403, "FORBIDDEN")
    error(call.describe(ALICE, "book", id_="x"), 400, "INVALID_ID")


def test_rights_on_a_draft(call: Caller) -> None:
    draft = call.describe(BOB, "book", obj={"title": "Mine", "rating": 3}).body
    # The draft is Bob's own (the server sets its owner): he may set its rating.
    assert draft["fields"]["rating"]["rights"]["modify"]
    assert draft["rights"]["create"] and draft["rights"]["update"]
    # An invalid value does not stop the description.
    assert call.describe(BOB, "book", obj={"title": 5}).status == 200
    error(call.describe(BOB, "book", obj=[1]), 400, "INVALID_BODY")


def test_unknown_collections(call: Caller) -> None:
    if call.layer == "basic":
        error(call.describe(ALICE, "nope"), 404, "UNKNOWN_COLLECTION")
    else:
        error(call.describe(ALICE, "nope"), 404, "NOT_FOUND")


def test_trusted_code_sees_everything(engine: Engine) -> None:
    body, status = engine.describe("book", id_=2)
    assert status == 200 and "secret" in body["fields"]
    assert all(body["rights"].values())
    assert all(field["rights"]["modify"] for field in body["fields"].values()
               if not field["read_only"])  # fmt: skip
    with pytest.raises(NotFound):
        engine.describe("book", id_=3)
    with pytest.raises(TypeError):
        engine.describe("book", id_=1, obj={})
    with pytest.raises(TypeError):
        engine.describe(id_=1)


def test_meta_routes_over_http(engine: Engine) -> None:
    http = Caller(engine, "http").http
    assert http.head("/book/_meta").status_code == 200
    for url, allow in (
        ("/book/_meta", "GET, HEAD, OPTIONS, POST"),
        ("/book/1/_meta", "GET, HEAD, OPTIONS"),
        ("/book/_check", "OPTIONS, POST"),
        ("/book/1/_check", "OPTIONS, POST"),
        ("/_meta", "GET, HEAD, OPTIONS"),
    ):
        assert http.options(url).headers["Allow"] == allow
        response = http.delete(url)
        assert response.status_code == 405, url
        assert response.headers["Allow"] == allow
        assert response.get_json()["error"]["code"] == "METHOD_NOT_ALLOWED"
    response = http.get("/book/_meta?depth=2")
    assert (response.status_code, response.get_json()["error"]["code"]) == (
        400, "UNKNOWN_PARAMETER",
    )  # fmt: skip
    # An item route's id never starts with "_": those are the collection's routes.
    assert http.get("/book/_nope").status_code == 404


# -- _check --------------------------------------------------------------------------


def test_a_valid_draft(engine: Engine, call: Caller) -> None:
    before = snapshot(engine)
    result = call.check(ALICE, "book", {"title": "New", "isbn": "5-6", "author": 2, "tags": [2]})
    assert (result.status, result.body) == (200, {"valid": True, "errors": {}})
    assert snapshot(engine) == before


def test_every_kind_of_error_at_once_and_nothing_written(engine: Engine, call: Caller) -> None:
    before = snapshot(engine)
    result = call.check(ALICE, "book", {
        "status": "lost",  # not a choice
        "isbn": "3-4",  # Bob's book has it
        "author": 99,  # no such author
        "folder": 2,  # Bob's folder: hidden from Alice
        "secret": "x",  # not hers to set
        "rating": 4,  # hers: the new book is hers
        "id": 7,
        "colour": "red",
    })  # fmt: skip
    assert result.status == 200, result.body
    assert result.body["valid"] is False
    assert result.body["errors"] == {
        "title": ["Missing data for required field."],
        "status": ["Must be one of: draft, published."],
        "isbn": ["Another book already has this isbn: it must be unique."],
        "author": ["There is no author with id 99."],
        "folder": ["There is no folder with id 2."],
        "secret": ["secret of book is not yours to change."],
        "id": ["Read-only field: the database chooses ids."],
        "colour": ["Unknown field."],
    }
    assert snapshot(engine) == before


def test_unique_values_name_visible_holders(call: Caller) -> None:
    result = call.check(ALICE, "author", {"login": "ben"})
    assert result.body["errors"] == {
        "login": ["author 2 already has this login: it must be unique."]
    }


def test_a_path_limits_the_check_to_one_field(call: Caller) -> None:
    draft = {"status": "lost", "isbn": "3-4", "author": 99}
    result = call.check(ALICE, "book", draft, path="author")
    assert result.body == {"valid": False, "errors": {"author": ["There is no author with id 99."]}}
    result = call.check(ALICE, "book", draft, path="pages")
    assert result.body == {"valid": True, "errors": {}}
    # A required field is checked when it is the path.
    result = call.check(ALICE, "book", {}, path="title")
    assert result.body["errors"] == {"title": ["Missing data for required field."]}
    result = call.check(ALICE, "book", {"title": "x" * 81}, path="title")
    assert result.body["errors"] == {"title": ["Length must be between 1 and 80."]}


def test_with_an_id_the_draft_is_a_patch(engine: Engine, call: Caller) -> None:
    # Missing required fields keep their stored values; its own isbn is not taken.
    result = call.check(ALICE, "book", {"isbn": "1-2", "rating": 2}, id_=1)
    assert result.body == {"valid": True, "errors": {}}
    result = call.check(ALICE, "book", {"isbn": "3-4"}, id_=1)
    assert result.body["errors"] == {
        "isbn": ["Another book already has this isbn: it must be unique."]
    }
    # The admin may update Alice's book, but not set its rating.
    result = call.check(ADMIN, "book", {"rating": 5, "secret": "new"}, id_=1)
    assert result.body["errors"] == {"rating": ["rating of book is not yours to change."]}
    # Sending back a value the caller may not change, unchanged, is fine.
    result = call.check(ADMIN, "book", {"rating": 0}, id_=1)
    assert result.body == {"valid": True, "errors": {}}


def test_objects_that_cannot_be_checked(call: Caller) -> None:
    error(call.check(BOB, "book", {"title": "x"}, id_=1), 404, "OBJECT_DOES_NOT_EXIST")
    error(call.check(ALICE, "book", {"title": "x"}, id_=99), 404, "OBJECT_DOES_NOT_EXIST")
    error(call.check(ANONYMOUS, "book", {"title": "x"}), 401, "UNAUTHORIZED")
    error(call.check(ALICE, "vault", {"text": "x"}), 403, "FORBIDDEN")
    error(call.check(ALICE, "vault", {"text": "x"}, id_=1), 403, "FORBIDDEN")


@pytest.mark.parametrize(
    ("item", "path", "code"),
    [([], None, "INVALID_BODY"), ("x", None, "INVALID_BODY"), ({}, "nope", "UNKNOWN_FIELD")],
)
def test_malformed_checks_are_400(call: Caller, item: Any, path: Any, code: str) -> None:
    error(call.check(ALICE, "book", item, path=path), 400, code)


def test_malformed_check_bodies_over_http(engine: Engine) -> None:
    caller = Caller(engine, "http")
    headers = caller._headers(ALICE)
    for body, message in (
        ([1], "The body of _check"),
        ({"items": {}}, "The body of _check"),
        ({"item": {}, "extra": 1}, "Unknown key 'extra'"),
        ({"item": {}, "path": 3}, "path is the name of a field"),
    ):
        response = caller.http.post("/book/_check", json=body, headers=headers)
        assert response.status_code == 400
        error_ = response.get_json()["error"]
        assert error_["code"] == "INVALID_BODY" and error_["message"].startswith(message)
    response = caller.http.post(
        "/book/_check", data="{", content_type="application/json", headers=headers
    )
    assert response.get_json()["error"]["code"] == "INVALID_JSON"
    response = caller.http.post("/book/_check?x=1", json={"item": {}}, headers=headers)
    assert response.get_json()["error"]["code"] == "UNKNOWN_PARAMETER"


def test_links_that_change_objects_the_caller_may_not_change(engine: Engine, call: Caller) -> None:
    # Tags are anyone's to change.
    assert call.check(ALICE, "book", {"tags": [1, 2]}, id_=1).body["valid"]
    # Alice's folder cannot take Bob's book: it is hidden from her.
    result = call.check(ALICE, "folder", {"books": [1, 2]}, id_=1)
    assert result.body["errors"] == {"books": ["There is no book with id 2."]}


def test_the_engine_raises(engine: Engine) -> None:
    with pytest.raises(InvalidBody):
        engine.check("book", [1])
    with pytest.raises(UnknownField):
        engine.check("book", {}, path="nope")
    with pytest.raises(BadRequest):
        engine.check("book", {}, id_="x")
    body, status = engine.check("book", {"title": "t", "secret": "trusted may"})
    assert (body, status) == ({"valid": True, "errors": {}}, 200)


def test_check_statements_do_not_grow_with_the_rows(engine: Engine) -> None:
    engine.post("book", [{"title": f"b{i}", "owner": "1", "isbn": f"9-{i}"} for i in range(40)])
    db = engine.storage.db
    db.count()
    engine.check("book", {"title": "t", "isbn": "1-1", "author": 1, "tags": [1, 2]},
                 auth=ALICE)  # fmt: skip
    few = db.count()
    print("STATEMENTS", few)
    assert few <= 8
    json.dumps(engine.describe(auth=ALICE)[0])
    assert db.count() == 0  # describing the model reads nothing


@pytest.fixture
def priced(make_engine: Any) -> Engine:
    engine: Engine = make_engine(priced_model())
    engine.post("item", {"status": "final", "cents": 250})
    return engine


def test_computed_fields_are_checked_as_their_write(priced: Engine, layer: str) -> None:
    call = Caller(priced, layer)
    for item, id_, errors in (
        # A value the setter gives that its stored field refuses.
        ({"price": -1.0}, None, {"price": {"cents": ["Must be greater than or equal to 0."]}}),
        # A setter that contradicts a value sent.
        (
            {"price": 1.0, "cents": 5},
            1,
            {"price": ["Gives cents another value than the one sent: send one of them."]},
        ),
        # A read-only field sent with another value than it reads.
        (
            {"url": "/elsewhere"},
            1,
            {"url": ["Read-only field: computed from the object's other fields."]},
        ),
    ):
        with pytest.raises(ValidationFailed) as refusal:
            if id_ is None:
                priced.post("item", item)
            else:
                priced.patch("item", id_, item)
        assert refusal.value.messages == errors
        assert priced.check("item", item, id_=id_) == ({"valid": False, "errors": errors}, 200)
        assert call.check(ADMIN, "item", item, id_=id_).body == {"valid": False, "errors": errors}
    assert priced.get("item", depth=0)[0] == [1]


def test_field_rights_are_those_of_the_whole_draft(priced: Engine, layer: str) -> None:
    call = Caller(priced, layer)
    assert priced.post("item", {"status": "draft", "note": "n"}, auth=ALICE)[1] == 201
    result = call.check(ALICE, "item", {"status": "draft", "note": "n"})
    assert result.body == {"valid": True, "errors": {}}
    described = call.describe(ALICE, "item", obj={"status": "draft", "note": "n"}).body
    assert described["fields"]["note"]["rights"]["modify"]
    result = call.check(ALICE, "item", {"status": "final", "note": "n"})
    assert result.body["errors"] == {"note": ["note of item is not yours to change."]}


def test_a_computed_fields_own_right_guards_its_writes(priced: Engine, layer: str) -> None:
    call = Caller(priced, layer)
    assert call.describe(ALICE, "item", id_=1).body["fields"]["price"]["rights"] == {
        "read": True, "modify": False,
    }  # fmt: skip
    refused = {"price": ["price of item is not yours to change."]}
    assert call.check(ALICE, "item", {"price": 3.0}, id_=1).body["errors"] == refused
    assert call.check(ALICE, "item", {"price": 3.0}).body["errors"] == refused
    with pytest.raises(Forbidden):
        priced.patch("item", 1, {"price": 3.0}, auth=ALICE)
    with pytest.raises(Forbidden):
        priced.post("item", {"price": 3.0}, auth=ALICE)
    # The value it reads may be sent back; the admin may change it.
    assert call.check(ALICE, "item", {"price": 2.5}, id_=1).body["valid"]
    assert priced.patch("item", 1, {"price": 2.5}, auth=ALICE)[0]["cents"] == 250
    assert priced.patch("item", 1, {"price": 3.0}, auth=ADMIN)[0]["cents"] == 300
    assert priced.get("item", depth=0)[0] == [1]


def test_links_removed_from_objects_that_require_them(make_engine: Any) -> None:
    from example import shop

    engine: Engine = make_engine(shop.dm)
    engine.post("product", {"name": "tea", "price_cents": 100})
    engine.post("order", {"product": 1})
    refused = ["order 1 would lose its required product."]
    assert engine.check("product", {"orders": []}, id_=1)[0]["errors"] == {"orders": refused}
    assert engine.check("product", {"orders": [1]}, id_=1)[0]["valid"]
    with pytest.raises(RequiredRelation) as refusal:
        engine.patch("product", 1, {"orders": []})
    assert [refusal.value.message] == refused


def test_links_that_change_objects_the_caller_may_only_read(make_engine: Any) -> None:
    """Linking a box to a shelf changes the shelf's boxes: a caller who may
    read shelves but not update them is refused, by _check as by the write."""

    class ReadOnly(Permission):
        def can(self, auth: Mapping[str, Any], action: str, obj: Any = None) -> bool:
            return action == "read" or user_of(auth).has_role("admin")

    dm = DataModel("store")

    @dm.collection("shelf", permissions=ReadOnly())
    class Shelf(Schema):
        label = fields.String()
        boxes = RefsList("box", reverse="shelf")

    @dm.collection("box", permissions=Anyone())
    class Box(Schema):
        label = fields.String()
        shelf = Ref("shelf", reverse="boxes")

    engine: Engine = make_engine(dm)
    engine.post("shelf", {"label": "top"})
    errors = engine.check("box", {"label": "b", "shelf": 1}, auth=ALICE)[0]["errors"]
    with pytest.raises(Forbidden) as refusal:
        engine.post("box", {"label": "b", "shelf": 1}, auth=ALICE)
    assert errors == {"shelf": [refusal.value.message]}
    assert engine.check("box", {"label": "b", "shelf": 1}, auth=ADMIN)[0]["valid"]
    assert engine.get("box")[0] == []

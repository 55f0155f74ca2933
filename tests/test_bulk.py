"""Bulk writes by filter: PATCH and DELETE of every match, all or nothing, through
api.basic and over HTTP, on every backend."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest
from flask import Flask
from marshmallow import fields

from backo_restful import DataModel, DeleteStrategy, Engine, Ref, RefsList, Schema
from backo_restful.api import basic
from backo_restful.api.flask import Api, Resource
from backo_restful.api.openapi import openapi_document
from backo_restful.auth import JWTAuth, Owner, Permission
from backo_restful.exceptions import InvalidFilter, LimitExceeded, NotEmpty
from backo_restful.lifecycle import Event

from .conftest import Result

KEY = "a test secret that is long enough for HS256 signatures"
ALICE = {"sub": "1"}
BOB = {"sub": "2"}


class Unlocked(Permission):
    """A locked object may be read, not changed or deleted."""

    def can(self, auth: Mapping[str, Any], action: str, obj: Any = None) -> bool:
        return obj is None or action in ("read", "create") or not obj.get("locked")


def build() -> DataModel:
    dm = DataModel("bulk")

    @dm.collection("shelf")
    class Shelf(Schema):
        name = fields.String()
        jars = RefsList("jar", reverse="shelf", on_delete=DeleteStrategy.DELETE_REFERENCED_ITEMS)

    @dm.collection("jar")
    class Jar(Schema):
        name = fields.String()
        shelf = Ref("shelf", reverse="jars")
        cookies = RefsList("cookie", reverse="jar", on_delete=DeleteStrategy.MUST_BE_EMPTY)

    @dm.collection("cookie")
    class Cookie(Schema):
        type = fields.String(required=True)
        price = fields.Integer()
        jar = Ref("jar", reverse="cookies")

    @dm.collection("note", permissions=Owner() & Unlocked())
    class Note(Schema):
        title = fields.String()
        owner = fields.String(allow_none=True)
        locked = fields.Boolean(load_default=False)
        grade = fields.Integer(metadata={"can_modify": False})

    return dm


class Client:
    """The bulk calls through api.basic (claims) or over HTTP (a token)."""

    def __init__(self, engine: Engine, form: str, **config: Any) -> None:
        self.engine = engine
        self.layer = "basic" if form == "basic" else "http"
        #: Over HTTP, the filters as flat ones (``type=biscuit``) rather than ``filter=``.
        self.flat = form == "http-flat"
        self.auth = JWTAuth(KEY)
        app = Flask("bulk")
        app.config.update(config)
        api = Api(app, engine=engine, auth=self.auth)
        for collection in engine.model.collections.values():
            resource = type(f"{collection.name}_resource", (Resource,), {"model": collection})
            api.add_resource(resource, f"/{collection.name}")
        self.api = api
        self.http = app.test_client()
        self.max_affected = config.get("BACKO_MAX_AFFECTED", basic.DEFAULT_MAX_AFFECTED)

    def patch(self, name: str, data: Any, filter_: Any, *, user: Any = None) -> Result:
        if self.layer == "basic":
            return Result(
                *basic.patch_many(
                    name, data, filter_=filter_, auth=user, engine=self.engine,
                    max_affected=self.max_affected,
                )
            )  # fmt: skip
        return self.send("PATCH", name, filter_, data, user=user)

    def delete(self, name: str, filter_: Any, *, user: Any = None) -> Result:
        if self.layer == "basic":
            return Result(
                *basic.delete_many(
                    name, filter_=filter_, auth=user, engine=self.engine,
                    max_affected=self.max_affected,
                )
            )  # fmt: skip
        return self.send("DELETE", name, filter_, None, user=user)

    def send(
        self,
        method: str,
        name: str,
        filter_: Any,
        data: Any,
        *,
        user: Any = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
    ) -> Result:
        headers = {}
        if user:
            headers["Authorization"] = f"Bearer {self.auth.create_token(user)}"
        query = dict(query or {})
        if self.flat and filter_:
            query.update(_flat(filter_))
        elif filter_ is not None:
            query["filter"] = json.dumps(filter_)
        response = self.http.open(
            f"/{name}", method=method, headers=headers, query_string=query,
            data=None if data is None else json.dumps(data), content_type=content_type,
        )  # fmt: skip
        body = response.get_json(silent=True) if response.data else None
        return Result(body, response.status_code, dict(response.headers))


def _flat(filter_: dict[str, Any]) -> dict[str, str]:
    """``{"jar.name": "blue", "price": {"$lt": 3}}`` as flat filters of a query string."""
    query = {}
    for path, value in filter_.items():
        if isinstance(value, dict):
            ((op, operand),) = value.items()
            query[f"{path}.{op}"] = _text(operand)
        else:
            query[path] = _text(value)
    return query


def _text(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(map(_text, value))
    return json.dumps(value) if isinstance(value, bool) else str(value)


@pytest.fixture(params=["basic", "http-json", "http-flat"])
def form(request: pytest.FixtureRequest) -> str:
    """The layer called, and over HTTP, how the filter is given."""
    return str(request.param)


@pytest.fixture
def client(make_engine: Any, form: str) -> Client:
    engine = make_engine(build())
    engine.post("shelf", [{"name": "top"}, {"name": "bottom"}])
    engine.post(
        "jar",
        [{"name": "blue", "shelf": 1}, {"name": "red", "shelf": 1}, {"name": "green", "shelf": 2}],
    )
    engine.post(
        "cookie",
        [
            {"type": "biscuit", "price": 1, "jar": 1},
            {"type": "biscuit", "price": 2, "jar": 2},
            {"type": "oat", "price": 5, "jar": 1},
            {"type": "biscuit", "price": 7},
        ],
    )
    return Client(engine, form)


def prices(engine: Engine) -> dict[int, int | None]:
    return {cookie["id"]: cookie["price"] for cookie in engine.get("cookie")[0]}


def error_code(result: Result) -> str:
    code: str = result.body["error"]["code"]
    return code


# -- matching ------------------------------------------------------------------------


def test_patch_changes_every_match_and_names_them(client: Client) -> None:
    result = client.patch("cookie", {"price": 3}, {"type": "biscuit"})
    assert (result.status, result.body) == (200, {"count": 3, "ids": [1, 2, 4]})
    assert prices(client.engine) == {1: 3, 2: 3, 3: 5, 4: 3}


def test_a_filter_through_a_relation_and_an_operator(client: Client) -> None:
    result = client.patch("cookie", {"type": "rye"}, {"jar.name": "blue"})
    assert result.body == {"count": 2, "ids": [1, 3]}
    result = client.delete("cookie", {"price": {"$lt": 3}})
    assert (result.status, result.body) == (200, {"count": 2, "ids": [1, 2]})
    remaining = client.engine.get("cookie")[0]
    assert [(c["id"], c["type"]) for c in remaining] == [(3, "rye"), (4, "biscuit")]


def test_flat_filters_and_a_json_filter_combine(client: Client) -> None:
    result = client.send("DELETE", "cookie", {"price": {"$gt": 1}}, None, query={"type": "biscuit"})
    assert result.body == {"count": 2, "ids": [2, 4]}


def test_no_match_changes_nothing(client: Client) -> None:
    result = client.patch("cookie", {"price": 0}, {"type": "rye"})
    assert (result.status, result.body) == (200, {"count": 0, "ids": []})
    assert client.delete("jar", {"name": "white"}).body == {"count": 0, "ids": []}


def test_links_by_id_in_a_bulk_patch(client: Client) -> None:
    result = client.patch("cookie", {"jar": 3}, {"type": "biscuit"})
    assert result.body == {"count": 3, "ids": [1, 2, 4]}
    assert client.engine.get("jar", 3)[0]["cookies"] == [1, 2, 4]
    assert client.engine.get("jar", 1)[0]["cookies"] == [3]
    # Another side's list of links, set on every match, moves them all.
    assert client.patch("jar", {"cookies": [4]}, {"name": "green"}).status == 200
    assert client.engine.get("jar", 3)[0]["cookies"] == [4]


def test_a_link_to_a_missing_object_changes_nothing(client: Client) -> None:
    result = client.patch("cookie", {"jar": 99}, {"type": "biscuit"})
    assert (result.status, error_code(result)) == (404, "OBJECT_DOES_NOT_EXIST")
    assert client.engine.get("jar", 3)[0]["cookies"] == []


def test_nested_objects_are_refused(client: Client) -> None:
    result = client.patch("cookie", {"jar": {"name": "new"}}, {"type": "biscuit"})
    assert (result.status, error_code(result)) == (400, "INVALID_BODY")
    assert result.body["error"]["details"] == {"collection": "cookie", "field": "jar"}
    assert client.engine.get("jar", depth=0)[0] == [1, 2, 3]


def test_an_invalid_body_is_a_422_with_nothing_changed(client: Client) -> None:
    result = client.patch("cookie", {"price": "many"}, {"type": "biscuit"})
    assert (result.status, error_code(result)) == (422, "VALIDATION_FAILED")
    assert prices(client.engine) == {1: 1, 2: 2, 3: 5, 4: 7}


# -- the guards ----------------------------------------------------------------------


@pytest.mark.parametrize("filter_", [None, {}])
def test_a_filter_is_required(client: Client, filter_: Any) -> None:
    for result in (client.patch("cookie", {"price": 0}, filter_), client.delete("cookie", filter_)):
        assert (result.status, error_code(result)) == (400, "INVALID_FILTER")
        if filter_ is None or client.layer == "basic":
            # (?filter={} is refused as a read refuses it.)
            assert result.body["error"]["message"] == (
                "A bulk write needs a filter: it changes or deletes the cookie objects the "
                "filter matches, and none was given."
            )
    assert prices(client.engine) == {1: 1, 2: 2, 3: 5, 4: 7}


def test_a_bad_filter_is_a_400(client: Client) -> None:
    result = client.delete("cookie", {"colour": "blue"})
    # A flat filter on no field is an unknown parameter of the query string.
    expected = "UNKNOWN_PARAMETER" if client.flat else "UNKNOWN_FIELD"
    assert (result.status, error_code(result)) == (400, expected)
    assert len(client.engine.get("cookie")[0]) == 4


@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
def test_more_matches_than_max_affected_change_nothing(
    make_engine: Any, form: str, method: str
) -> None:
    engine = make_engine(build())
    engine.post("cookie", [{"type": "biscuit", "price": n} for n in range(3)])
    client = Client(engine, form, BACKO_MAX_AFFECTED=2)
    call = (
        (lambda f: client.patch("cookie", {"price": 9}, f))
        if method == "PATCH"
        else (lambda f: client.delete("cookie", f))
    )
    result = call({"type": "biscuit"})
    assert (result.status, error_code(result)) == (400, "LIMIT_EXCEEDED")
    assert result.body["error"]["details"] == {
        "parameter": "filter",
        "setting": "BACKO_MAX_AFFECTED",
        "maximum": 2,
    }
    assert "BACKO_MAX_AFFECTED=2" in result.body["error"]["message"]
    assert prices(engine) == {1: 0, 2: 1, 3: 2}
    assert call({"price": {"$gte": 1}}).body == {"count": 2, "ids": [2, 3]}  # at the limit


@pytest.mark.parametrize(
    "parameter", ["depth=0", "sort=type", "limit=1", "fields=type", "count=none"]
)
@pytest.mark.parametrize("method", ["PATCH", "DELETE"])
def test_parameters_other_than_filters_are_refused(
    make_engine: Any, parameter: str, method: str
) -> None:
    engine = make_engine(build())
    engine.post("cookie", {"type": "biscuit"})
    client = Client(engine, "http")
    name, _, value = parameter.partition("=")
    data = {"price": 1} if method == "PATCH" else None
    result = client.send(method, "cookie", None, data, query={"type": "biscuit", name: value})
    assert (result.status, error_code(result)) == (400, "UNKNOWN_PARAMETER")
    assert result.body["error"]["details"] == {"parameter": name}
    assert engine.get("cookie", 1)[0]["price"] is None


def test_a_json_patch_is_not_a_bulk_patch(make_engine: Any) -> None:
    engine = make_engine(build())
    engine.post("cookie", {"type": "biscuit"})
    client = Client(engine, "http")
    patch = [{"op": "replace", "path": "/price", "value": 1}]
    result = client.send(
        "PATCH", "cookie", None, patch, query={"type": "biscuit"},
        content_type="application/json-patch+json",
    )  # fmt: skip
    assert (result.status, error_code(result)) == (415, "UNSUPPORTED_MEDIA_TYPE")
    result = client.send("PATCH", "cookie", None, patch, query={"type": "biscuit"})
    assert (result.status, error_code(result)) == (400, "INVALID_BODY")


def test_the_collection_route_serves_bulk_writes(make_engine: Any) -> None:
    client = Client(make_engine(build()), "http")
    allow = "DELETE, GET, HEAD, OPTIONS, PATCH, POST"
    assert client.http.options("/cookie").headers["Allow"] == allow
    response = client.http.put("/cookie", json={"type": "oat"})
    assert (response.status_code, response.headers["Allow"]) == (405, allow)


# -- the caller ----------------------------------------------------------------------


@pytest.fixture
def notes(make_engine: Any, form: str) -> Client:
    engine = make_engine(build())
    engine.post(
        "note",
        [
            {"title": "a", "owner": "1"},
            {"title": "a", "owner": "2"},
            {"title": "a", "owner": "1"},
            {"title": "b", "owner": "1"},
        ],
    )
    return Client(engine, form)


def titles(engine: Engine) -> list[str]:
    return [note["title"] for note in engine.get("note")[0]]


def test_the_scope_limits_the_matches(notes: Client) -> None:
    result = notes.patch("note", {"title": "z"}, {"title": "a"}, user=ALICE)
    assert (result.status, result.body) == (200, {"count": 2, "ids": [1, 3]})
    assert titles(notes.engine) == ["z", "a", "z", "b"]
    result = notes.delete("note", {"id": {"$gte": 1}}, user=BOB)
    assert result.body == {"count": 1, "ids": [2]}
    assert [note["id"] for note in notes.engine.get("note")[0]] == [1, 3, 4]


def test_an_anonymous_caller_is_refused_first(notes: Client) -> None:
    result = notes.delete("note", {"title": "a"}, user={})
    assert (result.status, error_code(result)) == (401, "UNAUTHORIZED")
    assert len(notes.engine.get("note")[0]) == 4


def test_one_refusal_aborts_the_whole_write(notes: Client) -> None:
    notes.engine.patch("note", 3, {"locked": True})
    for result in (
        notes.patch("note", {"title": "z"}, {"title": "a"}, user=ALICE),
        notes.delete("note", {"title": "a"}, user=ALICE),
    ):
        assert (result.status, error_code(result)) == (403, "FORBIDDEN")
    assert titles(notes.engine) == ["a", "a", "a", "b"]
    # Without the locked one, it goes through.
    result = notes.delete("note", {"title": "a", "locked": False}, user=ALICE)
    assert result.body == {"count": 1, "ids": [1]}


def test_field_rights_apply_to_each_object(notes: Client) -> None:
    result = notes.patch("note", {"title": "z", "grade": 5}, {"title": "a"}, user=ALICE)
    assert (result.status, error_code(result)) == (403, "FORBIDDEN")
    assert result.body["error"]["details"] == {"collection": "note", "field": "grade"}
    assert titles(notes.engine) == ["a", "a", "a", "b"]
    # A field the caller may not read is no filter of theirs either.
    result = notes.patch("note", {"title": "z"}, {"owner": "2"}, user=ALICE)
    assert result.body == {"count": 0, "ids": []}


# -- delete strategies and events ------------------------------------------------------


def test_a_refused_strategy_aborts_the_whole_delete(client: Client) -> None:
    result = client.delete("jar", {"name": {"$in": ["blue", "red", "green"]}})
    assert (result.status, error_code(result)) == (409, "NOT_EMPTY")
    # It names the jars that hold cookies, not those that could go.
    assert result.body["error"]["details"]["ids"] == [1, 2]
    assert client.engine.get("jar", depth=0)[0] == [1, 2, 3]
    assert client.delete("jar", {"name": "green"}).body == {"count": 1, "ids": [3]}


def test_delete_referenced_items_cascades(client: Client) -> None:
    client.engine.delete_many("cookie", filter_={"jar": {"$null": False}})
    result = client.delete("shelf", {"name": "top"})
    assert result.body == {"count": 1, "ids": [1]}
    assert client.engine.get("jar", depth=0)[0] == [3]  # the top shelf's jars went with it


def test_events_fire_for_each_object(make_engine: Any, form: str) -> None:
    dm = build()
    seen: list[Event] = []
    for name in ("before_save", "saved", "before_delete", "deleted"):
        dm.on("cookie", name, seen.append)
    engine = make_engine(dm)
    engine.post("cookie", [{"type": "biscuit"}, {"type": "oat"}, {"type": "biscuit"}])
    seen.clear()
    client = Client(engine, form)
    assert client.patch("cookie", {"price": 2}, {"type": "biscuit"}).body["ids"] == [1, 3]
    assert [(e.name, e.id, sorted(e.changes)) for e in seen] == [
        ("before_save", 1, ["price"]),
        ("saved", 1, ["price"]),
        ("before_save", 3, ["price"]),
        ("saved", 3, ["price"]),
    ]
    seen.clear()
    assert client.delete("cookie", {"price": 2}).body["ids"] == [1, 3]
    assert [(e.name, e.id) for e in seen] == [
        ("before_delete", 1),
        ("before_delete", 3),
        ("deleted", 1),
        ("deleted", 3),
    ]


# -- the engine ----------------------------------------------------------------------


def test_the_engine_raises(make_engine: Any) -> None:
    engine = make_engine(build())
    engine.post("jar", [{"name": "a", "cookies": [{"type": "oat"}]}, {"name": "b"}])
    with pytest.raises(InvalidFilter):
        engine.patch_many("jar", {"name": "c"}, filter_=None)
    with pytest.raises(LimitExceeded):
        engine.delete_many("jar", filter_={"id": {"$gte": 1}}, max_affected=1)
    with pytest.raises(NotEmpty):
        engine.delete_many("jar", filter_={"id": {"$gte": 1}})
    assert engine.delete_many("jar", filter_={"name": "b"}, max_affected=1) == (
        {"count": 1, "ids": [2]},
        200,
    )


def test_the_statements_do_not_grow_with_the_matches(make_engine: Any, database: Any) -> None:
    engine = make_engine(build())
    engine.post("shelf", {"name": "top"})

    def statements(count: int, tag: str) -> tuple[int, int, int]:
        engine.post("cookie", [{"type": tag} for _ in range(count)])
        database.count()
        assert engine.patch_many("cookie", {"price": 3}, filter_={"type": tag})[0]["count"] == count
        patched = database.count()  # one UPDATE of every match
        assert engine.delete_many("cookie", filter_={"type": tag})[0]["count"] == count
        deleted = database.count()
        # Jars on a shelf, with cookies that must be none: the strategies too
        # are applied to every match at once.
        engine.post("jar", [{"name": tag, "shelf": 1} for _ in range(count)])
        database.count()
        assert engine.delete_many("jar", filter_={"name": tag})[0]["count"] == count
        return patched, deleted, database.count()

    assert statements(3, "a") == statements(40, "b")


@pytest.mark.backends("postgresql", "mysql")
def test_a_match_changed_while_the_write_waits_is_read_again(make_engine: Any) -> None:
    engine = make_engine(build())
    engine.post("cookie", [{"type": "biscuit"}, {"type": "biscuit"}])
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:  # changes cookie 2, and keeps its lock until told
        with engine.storage.transaction(write=True):
            engine.patch("cookie", 2, {"type": "oat"})
            holding.set()
            release.wait(30)

    result: list[Any] = []
    holder = threading.Thread(target=hold)
    holder.start()
    assert holding.wait(30)
    bulk = threading.Thread(
        target=lambda: result.append(
            engine.patch_many("cookie", {"price": 1}, filter_={"type": "biscuit"})
        )
    )
    bulk.start()
    time.sleep(0.5)
    assert bulk.is_alive()  # it found two biscuits, and waits for cookie 2
    release.set()
    holder.join(30)
    bulk.join(30)
    assert result == [({"count": 1, "ids": [1]}, 200)]
    assert prices(engine) == {1: 1, 2: None}


@pytest.mark.backends("postgresql", "mysql")
def test_crossing_bulk_and_single_writes_all_succeed(make_engine: Any) -> None:
    engine = make_engine(build())
    engine.post("cookie", [{"type": "biscuit"} for _ in range(20)])
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            for round_ in range(5):
                engine.patch_many("cookie", {"price": index}, filter_={"type": "biscuit"})
                for id_ in (20, 11, 3):  # against the bulk write's order
                    engine.patch("cookie", id_, {"price": round_})
                engine.delete_many("jar", filter_={"name": f"j{index}"})
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads) and errors == []
    # Each bulk write is whole: the rows no single write touched hold the last one's value.
    untouched = {price for id_, price in prices(engine).items() if id_ not in (20, 11, 3)}
    assert len(untouched) == 1 and untouched <= {0, 1, 2, 3}


def test_bulk_writes_in_the_openapi_document(make_engine: Any) -> None:
    client = Client(make_engine(build()), "http", BACKO_MAX_AFFECTED=50)
    document = openapi_document(client.api, client.http.application)
    path = document["paths"]["/cookie"]
    for method in ("patch", "delete"):
        operation = path[method]
        names = [parameter["name"] for parameter in operation["parameters"]]
        assert "filter" in names and "type" in names and "price.$lt" in names
        assert not {"depth", "sort", "limit", "fields"} & set(names)
        assert "at most 50 objects" in operation["description"]
        filter_parameter = operation["parameters"][names.index("filter")]
        assert filter_parameter["content"]["application/json"]["example"] == {"id": {"$in": []}}
        ok = operation["responses"]["200"]["content"]["application/json"]["schema"]
        assert ok["required"] == ["count", "ids"]
    assert path["patch"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CookiePatch"
    }
    get_filter = next(p for p in path["get"]["parameters"] if p["name"] == "filter")
    assert get_filter["content"]["application/json"]["example"] == {"id": {"$gte": 1}}

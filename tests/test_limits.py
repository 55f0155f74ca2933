"""Inputs at the edges: what every backend cannot store, server limits, odd declarations."""

from __future__ import annotations

import threading
import tracemalloc
from typing import Any

import peewee
import pytest
from flask import Blueprint, Flask
from marshmallow import fields

from backo_restful import DataModel, Engine, Schema
from backo_restful.api import basic
from backo_restful.api.flask import Api, Resource
from backo_restful.exceptions import DeclarationError
from backo_restful.storage import PeeweeStorage
from tests import models
from tests.conftest import HttpClient, make_app
from tests.test_behaviour import error, ok


@pytest.fixture
def kinds(make_client: Any) -> Any:
    return make_client(models.kinds)


@pytest.mark.parametrize(
    "body",
    [
        {"name": "\ud800"},
        {"name": "a\x00b"},
        {"name": "n", "seen_at": "0001-01-01T00:00:00+05:00"},
        {"name": "n", "quantity": 10**19},
    ],
)
def test_unstorable_values_are_422(kinds: Any, body: dict[str, Any]) -> None:
    err = error(kinds.post("thing", body), 422, "VALIDATION_FAILED")
    assert set(err["details"]["fields"]) == set(body) - {"name"} or "name" in body
    assert ok(kinds.get("thing")) == []


@pytest.mark.parametrize(
    "filter_",
    [
        {"name": "\ud800"},
        {"name": "a\x00b"},
        {"quantity": 10**23},
        {"seen_at": "0001-01-01T00:00:00+05:00"},
    ],
)
def test_unusable_filter_values_are_400(kinds: Any, filter_: dict[str, Any]) -> None:
    ok(kinds.post("thing", {"name": "n"}), 201)
    err = error(kinds.get("thing", filter_=filter_), 400, "INVALID_FILTER")
    assert err["details"]["field"] == next(iter(filter_))


def test_flat_filter_values_at_the_edges(make_engine: Any) -> None:
    client = make_app(make_engine(models.kinds)).test_client()
    for query in ("name=a%00b", "quantity=99999999999999999999999"):
        response = client.get(f"/thing?{query}")
        assert response.status_code == 400, (query, response.get_json())


def test_deep_nesting_is_refused_through_every_layer(make_client: Any) -> None:
    client = make_client(models.storage)
    body: dict[str, Any] = {"name": "leaf"}
    for level in range(200):
        body = {"id": level, "name": "n", "parent": body}
    result = client.post("node", body)
    assert result.status in (400, 422), result.body
    assert ok(client.get("node")) == []


def test_put_leaves_room_for_later_posts(make_client: Any) -> None:
    cookies = make_client(models.cookies)
    err = error(cookies.put("cookie", 2**53, {"type": "x"}), 400, "INVALID_ID")
    assert err["details"]["maximum"] == 2**53 - 1
    ok(cookies.put("cookie", 2**53 - 1, {"type": "x"}), 201)
    assert ok(cookies.post("cookie", {"type": "y"}), 201)["id"] == 2**53
    error(cookies.get("cookie", 2**63), 400, "INVALID_ID")
    error(cookies.get("cookie", 2**63 - 1), 404, "OBJECT_DOES_NOT_EXIST")


def test_strings_compare_exactly_trailing_spaces_included(make_client: Any) -> None:
    cookies = make_client(models.cookies)
    ok(
        cookies.post("cookie", [{"type": "biscuit"}, {"type": "biscuit  "}, {"type": "BISCUIT"}]),
        201,
    )
    assert [c["id"] for c in ok(cookies.get("cookie", filter_={"type": "biscuit"}))] == [1]
    assert [c["id"] for c in ok(cookies.get("cookie", filter_={"type": "biscuit  "}))] == [2]


def test_text_sorts_in_code_point_order_on_every_backend(make_client: Any) -> None:
    cookies = make_client(models.cookies)
    for kind in ("b", "é", "_x", "a", "B", "Z", "A"):
        ok(cookies.post("cookie", {"type": kind}), 201)
    sorted_types = [c["type"] for c in ok(cookies.get("cookie", sort=["type"]))]
    assert sorted_types == ["A", "B", "Z", "_x", "a", "b", "é"]


def test_long_names_fit_every_backend(make_client: Any) -> None:
    client = make_client(models.long_names)
    body = ok(
        client.post(
            "user_account_with_a_long_name",
            {
                "administered_organisations_of_user": [{}],
            },
        ),
        201,
    )
    assert body["administered_organisations_of_user"] == [1]
    organisation = ok(client.get("organisation_with_a_long_name", 1))
    assert organisation["administrators_of_this_organisation"] == [1]


def test_aware_datetimes_read_back_as_written(make_client: Any) -> None:
    client = make_client(models.long_names)
    body = ok(
        client.post("user_account_with_a_long_name", {"at": "2024-05-01T12:00:00+02:00"}), 201
    )
    assert body["at"] == "2024-05-01T10:00:00+00:00"
    body.pop("id")
    assert ok(client.put("user_account_with_a_long_name", 1, body))["at"] == body["at"]


def test_max_objects(make_engine: Any, database: Any) -> None:
    engine = make_engine(models.library)
    engine.post("book", [{"title": str(n), "authors": [{"name": f"a{n}"}]} for n in range(6)])
    client = make_app(engine, BACKO_MAX_OBJECTS=12).test_client()
    assert client.get("/book?depth=1").status_code == 200  # 6 books, 6 author ids
    response = client.get("/book?depth=2")  # 6 books, 6 authors, 6 book ids
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "LIMIT_EXCEEDED"
    assert "BACKO_MAX_OBJECTS=12" in response.get_json()["error"]["message"]
    assert basic.get("book", depth=1, engine=engine, max_objects=11)[1] == 400
    assert basic.get("book", depth=2, engine=engine, max_objects=18)[1] == 200
    assert basic.get("book", depth=2, engine=engine, max_objects=17)[1] == 400
    assert basic.get("book", 1, depth=2, engine=engine, max_objects=3)[1] == 200
    assert basic.get("book", 1, depth=2, engine=engine, max_objects=2)[1] == 400
    assert len(engine.get("book", depth=3)[0]) == 6  # code is not limited
    # a refused response stops reading as soon as the limit is passed
    database.count()
    assert basic.get("book", depth=5, engine=engine, max_objects=3)[1] == 400
    assert database.count("SELECT") <= 3


def test_concurrent_relation_writes_never_mix(make_engine: Any) -> None:
    engine = make_engine(models.library)
    engine.post("author", [{"name": str(n)} for n in range(6)])
    engine.post("book", {"title": "shared"})
    wanted = ([1, 2], [3, 4], [5, 6])
    failures: list[BaseException] = []

    def write(authors: list[int]) -> None:
        try:
            for _ in range(8):
                engine.patch("book", 1, {"authors": authors})
        except BaseException as exc:  # reported below
            failures.append(exc)

    for _ in range(3):
        threads = [threading.Thread(target=write, args=(a,)) for a in wanted]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert failures == []
        assert engine.get("book", 1)[0]["authors"] in wanted
        books = {tuple(engine.get("author", n)[0]["books"]) for n in range(1, 7)}
        assert books == {(), (1,)}


def test_api_on_a_blueprint(make_engine: Any) -> None:
    blueprint = Blueprint("v1", __name__, url_prefix="/v1")
    api = Api(blueprint, engine=make_engine(models.cookies))

    class Jar(Resource):
        model = models.cookies.object("jar")

    api.add_resource(Jar, "/jar")
    app = Flask("bp")
    app.config["BACKO_MAX_DEPTH"] = 1
    app.register_blueprint(blueprint)
    client = app.test_client()
    created = client.post("/v1/jar", json={"name": "a"})
    assert created.status_code == 201 and created.headers["Location"] == "/v1/jar/1"
    assert client.get("/v1/jar/1").get_json()["name"] == "a"
    assert client.get("/v1/jar?depth=2").status_code == 400


def test_unserved_methods_allow_what_the_route_serves(make_engine: Any) -> None:
    client = make_app(make_engine(models.cookies)).test_client()
    response = client.open("/jar", method="TRACE")
    assert response.status_code == 405
    assert response.headers["Allow"] == "DELETE, GET, HEAD, OPTIONS, PATCH, POST"
    item = client.open("/jar/1", method="TRACE")
    assert item.headers["Allow"] == "DELETE, GET, HEAD, OPTIONS, PATCH, PUT"


def test_both_sides_of_a_relation_within_one_collection_is_422(make_client: Any) -> None:
    tricky = make_client(models.tricky)
    ok(tricky.post("order", [{}, {}, {}]), 201)
    err = error(tricky.patch("order", 3, {"group": 3, "table": 1}), 422, "VALIDATION_FAILED")
    assert "group" in err["details"]["fields"]
    assert ok(tricky.get("order", 3))["group"] is None


@pytest.mark.parametrize("name", ["sort", "limit", "depth", "filter", "fields", "count"])
def test_reserved_field_names(name: str) -> None:
    dm = DataModel("reserved")
    dm.add_collection("thing", type("Thing", (Schema,), {name: fields.String()}))
    with pytest.raises(DeclarationError, match="reserved"):
        Engine(dm, PeeweeStorage("sqlite:///:memory:"))
    renamed = DataModel("renamed")
    attrs = {name: fields.String(data_key=f"{name}_value")}
    renamed.add_collection("thing", type("Thing", (Schema,), attrs))
    engine = Engine(renamed, PeeweeStorage("sqlite:///:memory:"))
    assert engine.post("thing", {f"{name}_value": "x"})[0] == {"id": 1, f"{name}_value": "x"}


def test_a_served_model_cannot_grow() -> None:
    dm = DataModel("frozen")
    dm.add_collection("one", type("One", (Schema,), {"name": fields.String()}))
    Engine(dm, PeeweeStorage("sqlite:///:memory:"))
    with pytest.raises(DeclarationError, match="already serves"):
        dm.add_collection("two", type("Two", (Schema,), {}))


def test_a_thread_local_in_memory_database_is_refused() -> None:
    with pytest.raises(DeclarationError, match="in-memory"):
        PeeweeStorage(peewee.SqliteDatabase(":memory:"))
    shared = peewee.SqliteDatabase(":memory:", thread_safe=False, check_same_thread=False)
    engine = Engine(models.cookies, PeeweeStorage(shared))
    engine.post("jar", {"name": "main"})
    seen: list[Any] = []
    thread = threading.Thread(target=lambda: seen.append(engine.get("jar")[0]))
    thread.start()
    thread.join(10)
    assert seen == [[{"id": 1, "name": "main", "cookies": []}]]


def test_a_response_is_bounded_before_it_is_built(make_engine: Any) -> None:
    engine = make_engine(models.cookies)
    engine.post("jar", {"name": "full"})
    storage = engine.storage
    table = storage.table(models.cookies.collections["cookie"])
    with storage.db.connection_context(), storage.db.atomic():
        for start in range(0, 50_000, 5000):
            rows = [{table.f_type: f"c{n}", table.f_jar: 1} for n in range(start, start + 5000)]
            table.insert_many(rows).execute()
    client = HttpClient(engine)  # BACKO_MAX_OBJECTS: 10 000
    tracemalloc.start()
    try:
        # 1000 cookies, each showing the jar with its 50 000 cookie ids: refused
        # after reading one id over the limit, never building the 50-million-id body.
        result = client.get("cookie", limit=1000, depth=2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert result.status == 400 and result.body["error"]["code"] == "LIMIT_EXCEEDED"
    assert peak < 8 * 2**20, peak
    # The jar shown once, with its ids: each id counts.
    assert client.get("jar", 1).status == 400
    assert client.get("jar", 1, fields="name").body == {"id": 1, "name": "full"}
    # Few rows, many times shown: 1000 cookies share one jar of 3000 cookies. Read
    # once, it would be shown 1000 times (3 million ids): it counts each time.
    with storage.db.connection_context(), storage.db.atomic():
        table.delete().where(table.id > 3000).execute()
    result = client.get("cookie", limit=1000, depth=2)
    assert result.status == 400 and result.body["error"]["code"] == "LIMIT_EXCEEDED"
    assert basic.get("cookie", limit=2, depth=2, engine=engine, max_objects=6004)[1] == 200
    assert basic.get("cookie", limit=2, depth=2, engine=engine, max_objects=6003)[1] == 400

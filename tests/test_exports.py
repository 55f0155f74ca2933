"""Exports: a list GET with ``Accept: text/csv`` or ``application/x-ndjson``
streams every match, page by page, through ``api.exports.export`` and over HTTP,
on every backend."""

from __future__ import annotations

import csv
import io
import json
import tracemalloc
from typing import Any

import pytest
from flask import Flask
from marshmallow import fields

from backo_restful import DataModel, Engine, Ref, RefsList, Schema
from backo_restful.api import basic, exports
from backo_restful.api.flask import Api, Resource
from backo_restful.auth import JWTAuth, Owner
from backo_restful.exceptions import StorageUnavailable

from .conftest import make_app

CSV = "text/csv"
NDJSON = "application/x-ndjson"
SECRET = "an export test secret, long enough for HS256"


def _model() -> DataModel:
    dm = DataModel("exports")

    @dm.collection("jar", views={"card": ["name"]})
    class Jar(Schema):
        name = fields.String()
        cookies = RefsList("cookie", reverse="jar")

    @dm.collection("cookie")
    class Cookie(Schema):
        type = fields.String()
        tags = fields.List(fields.String())
        fresh = fields.Boolean()
        weight = fields.Float()
        jar = Ref("jar", reverse="cookies")

    @dm.collection("note", permissions=Owner("owner"))
    class Note(Schema):
        title = fields.String()
        owner = fields.String()
        secret = fields.String(metadata={"can_read": False})

    return dm


@pytest.fixture
def engine(make_engine: Any) -> Engine:
    engine: Engine = make_engine(_model())
    engine.post(
        "jar",
        [
            {"name": 'blue, "big"', "cookies": [{"type": "oat", "tags": ["a", "b"]}]},
            {"name": "red", "cookies": [{"type": "=1+1", "fresh": True, "weight": 1.5}]},
        ],
    )
    engine.post("cookie", {"type": "lone\nline", "fresh": False})
    return engine


class Layer:
    """An export through ``api.exports.export`` or over HTTP: (text, status, headers)."""

    def __init__(self, engine: Engine, kind: str) -> None:
        self.engine = engine
        self.kind = kind
        self.client = make_app(engine).test_client()

    def export(self, name: str, media_type: str, **params: Any) -> tuple[Any, int, dict[str, str]]:
        if self.kind == "basic":
            body, status, headers = exports.export(name, media_type, engine=self.engine, **params)
            if status == 200:
                body = b"".join(body).decode()
            return body, status, headers
        query = {
            ("filter" if key == "filter_" else key): json.dumps(value)
            if key == "filter_"
            else ",".join(value)
            if isinstance(value, list)
            else str(value)
            for key, value in params.items()
        }
        response = self.client.get(f"/{name}", query_string=query, headers={"Accept": media_type})
        body = response.get_json() if response.is_json else response.get_data(as_text=True)
        return body, response.status_code, dict(response.headers)


@pytest.fixture
def via(engine: Engine, layer: str) -> Layer:
    return Layer(engine, layer)


def _rows(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_csv_has_a_header_and_flat_rows(via: Layer) -> None:
    text, status, headers = via.export("cookie", CSV)
    assert status == 200
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert headers["Content-Disposition"] == 'attachment; filename="cookie.csv"'
    assert text.endswith("\r\n")
    assert _rows(text) == [
        ["id", "type", "tags", "fresh", "weight", "jar"],
        ["1", "oat", '["a","b"]', "", "", "1"],
        ["2", "=1+1", "", "true", "1.5", "2"],  # data as stored: no formula guard
        ["3", "lone\nline", "", "false", "", ""],
    ]
    jars, _, _ = via.export("jar", CSV)
    assert _rows(jars) == [["id", "name", "cookies"], ["1", 'blue, "big"', "1"], ["2", "red", "2"]]
    assert 'blue, ""big""' in jars  # RFC 4180 quoting


def test_csv_relation_ids_are_joined_by_a_space(via: Layer, engine: Engine) -> None:
    engine.patch("jar", 1, {"cookies": [1, 2, 3]})
    text, status, _ = via.export("jar", CSV, fields=["cookies"])
    assert status == 200
    assert _rows(text) == [["id", "cookies"], ["1", "1 2 3"], ["2", ""]]


def test_csv_at_depth_0_is_the_ids(via: Layer) -> None:
    text, _, _ = via.export("cookie", CSV, depth=0)
    assert _rows(text) == [["id"], ["1"], ["2"], ["3"]]


def test_csv_refuses_nested_objects(via: Layer) -> None:
    body, status, _ = via.export("jar", CSV, depth=2)
    assert status == 400
    assert body["error"]["code"] == "INVALID_PARAMETER"
    assert body["error"]["details"] == {"parameter": "depth"}
    assert NDJSON in body["error"]["message"]


def test_ndjson_is_one_object_a_line_at_any_depth(via: Layer) -> None:
    text, status, headers = via.export("jar", NDJSON, depth=2, sort="-name")
    assert status == 200
    assert headers["Content-Type"] == "application/x-ndjson; charset=utf-8"
    lines = text.split("\n")
    assert lines[-1] == ""
    objects = [json.loads(line) for line in lines[:-1]]
    assert [obj["name"] for obj in objects] == ["red", 'blue, "big"']
    assert objects[0]["cookies"][0]["type"] == "=1+1"


def test_filter_sort_fields_view_and_limit_apply(via: Layer) -> None:
    text, _, _ = via.export("cookie", CSV, filter_={"jar.name": "red"}, fields=["type"])
    assert _rows(text) == [["id", "type"], ["2", "=1+1"]]
    text, _, _ = via.export("cookie", NDJSON, sort="-id", limit=2, fields="type")
    assert [json.loads(line) for line in text.splitlines()] == [
        {"id": 3, "type": "lone\nline"},
        {"id": 2, "type": "=1+1"},
    ]
    text, _, _ = via.export("jar", CSV, view="card")
    assert _rows(text) == [["id", "name"], ["1", 'blue, "big"'], ["2", "red"]]
    text, _, _ = via.export("cookie", CSV, limit=0)
    assert _rows(text) == [["id", "type", "tags", "fresh", "weight", "jar"]]


@pytest.mark.parametrize(
    ("params", "code", "parameter"),
    [
        ({"filter_": {"nope": 1}}, "UNKNOWN_FIELD", None),
        ({"offset": 1}, "INVALID_PARAMETER", "offset"),
        ({"before": "end"}, "INVALID_PARAMETER", "before"),
        ({"depth": 9}, "LIMIT_EXCEEDED", "depth"),
        ({"after": "garbage"}, "INVALID_CURSOR", "after"),
    ],
)
def test_errors_before_the_first_byte_are_the_error_body(
    via: Layer, params: dict[str, Any], code: str, parameter: str | None
) -> None:
    body, status, _ = via.export("cookie", NDJSON, **params)
    assert status == 400
    assert body["error"]["code"] == code
    if parameter:
        assert body["error"]["details"]["parameter"] == parameter


def test_the_export_walks_pages_lazily(engine: Engine, database: Any) -> None:
    engine.post("cookie", [{"type": f"t{n}"} for n in range(7)])  # 10 cookies
    database.count()
    chunks, status, _ = exports.export("cookie", CSV, engine=engine, page_size=3, depth=0)
    assert status == 200
    assert database.count("SELECT") == 1  # the first page, read before the answer
    first = next(chunks)
    assert _rows(first.decode()) == [["id"], ["1"], ["2"], ["3"]]
    assert database.count("SELECT") == 0  # nothing more until asked
    rest = b"".join(chunks)
    assert database.count("SELECT") == 3  # pages 2 to 4, one statement each
    assert _rows(rest.decode()) == [[str(n)] for n in range(4, 11)]


def test_a_page_over_max_objects_is_read_in_halves(engine: Engine) -> None:
    engine.patch("jar", 1, {"cookies": [1, 2, 3]})
    # At depth 2 jar 1 shows 7 objects and ids (itself, 3 cookies and their
    # jar ids), jar 2 one: one page of both is over 7.
    assert basic.get("jar", depth=2, engine=engine, max_objects=7)[1] == 400
    chunks, status, _ = exports.export("jar", NDJSON, engine=engine, depth=2, max_objects=7)
    assert status == 200
    lines = b"".join(chunks).decode().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [1, 2]
    body, status, _ = exports.export("jar", NDJSON, engine=engine, depth=2, max_objects=6)
    assert status == 400
    assert body["error"]["details"]["setting"] == "BACKO_MAX_OBJECTS"


def test_a_failure_mid_stream_ends_the_stream(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    chunks, status, _ = exports.export("cookie", CSV, engine=engine, page_size=1)
    assert status == 200
    next(chunks)

    def down(*args: Any, **kwargs: Any) -> Any:
        raise StorageUnavailable()

    monkeypatch.setattr(engine, "page", down)
    with pytest.raises(StorageUnavailable):
        next(chunks)


def test_scope_and_field_rights_apply(engine: Engine, layer: str) -> None:
    engine.post(
        "note",
        [
            {"title": "mine", "owner": "7", "secret": "s"},
            {"title": "theirs", "owner": "8", "secret": "t"},
        ],
    )
    auth = JWTAuth(SECRET)
    if layer == "basic":
        chunks, status, _ = exports.export("note", CSV, engine=engine, auth={"sub": "7"})
        text = b"".join(chunks).decode()
        refused, refused_status, _ = exports.export("note", CSV, engine=engine, auth={})
    else:
        app = Flask("notes")
        api = Api(app, engine=engine, auth=auth)
        resource = type("notes", (Resource,), {"model": engine.model.object("note")})
        api.add_resource(resource, "/note")
        client = app.test_client()
        token = auth.create_token({"sub": "7"})
        headers = {"Accept": CSV, "Authorization": f"Bearer {token}"}
        response = client.get("/note", headers=headers)
        status, text = response.status_code, response.get_data(as_text=True)
        anonymous = client.get("/note", headers={"Accept": CSV})
        refused, refused_status = anonymous.get_json(), anonymous.status_code
    assert status == 200
    assert _rows(text) == [["id", "title", "owner"], ["1", "mine", "7"]]
    assert refused_status == 401
    assert refused["error"]["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize(
    ("accept", "exported"),
    [
        ("text/csv", CSV),
        ("application/x-ndjson", NDJSON),
        ("text/csv;q=0.5, application/json", None),
        ("application/json;q=0.5, text/csv", CSV),
        ("text/csv, application/json", None),  # a tie: JSON, the default
        ("*/*", None),
        ("application/x-ndjson, */*;q=0.1", NDJSON),
        (None, None),
    ],
)
def test_accept_chooses_by_q_values(engine: Engine, accept: str | None, exported: str) -> None:
    client = make_app(engine).test_client()
    response = client.get("/cookie", headers={"Accept": accept} if accept else {})
    assert response.status_code == 200
    assert response.headers["Vary"] == "Accept"
    if exported is None:
        assert response.is_json and len(response.get_json()) == 3
        assert "X-Total-Count" in response.headers
    else:
        assert response.mimetype == exported
        assert "Link" not in response.headers
    # An object is JSON whatever the Accept.
    assert client.get("/cookie/1", headers={"Accept": CSV}).is_json


def test_http_streams_and_head_sends_headers_only(engine: Engine) -> None:
    client = make_app(engine, BACKO_MAX_LIMIT=1).test_client()
    response = client.get("/cookie?fields=type", headers={"Accept": CSV})
    assert response.is_streamed
    assert "Content-Length" not in response.headers
    assert _rows(response.get_data(as_text=True))[1:] == [
        ["1", "oat"],
        ["2", "=1+1"],
        ["3", "lone\nline"],
    ]
    head = client.head("/cookie", headers={"Accept": CSV})
    assert head.status_code == 200
    assert head.data == b""
    assert head.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "Content-Length" not in head.headers
    bad = client.head("/cookie?depth=2", headers={"Accept": CSV})
    assert bad.status_code == 400 and bad.data == b""


def _fill(engine: Engine, count: int) -> None:
    for start in range(0, count, 5000):
        engine.post("cookie", [{"type": f"c{n}"} for n in range(start, min(count, start + 5000))])


def _peak(engine: Engine, media_type: str) -> tuple[int, int]:
    """Peak memory (bytes) of streaming an export of every cookie, and its lines."""
    tracemalloc.start()
    try:
        chunks, status, _ = exports.export(
            "cookie", media_type, engine=engine, page_size=500, fields="type"
        )
        assert status == 200
        lines = 0
        for chunk in chunks:
            lines += chunk.count(b"\n")
        return tracemalloc.get_traced_memory()[1], lines
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("media_type", [CSV, NDJSON])
def test_memory_does_not_grow_with_the_objects(
    make_engine: Any, database: Any, media_type: str
) -> None:
    dm = DataModel("many")

    @dm.collection("cookie")
    class Cookie(Schema):
        type = fields.String()

    engine = make_engine(dm)
    _fill(engine, 2_000)
    _peak(engine, media_type)  # warm up: caches, compiled statements
    small, lines = _peak(engine, media_type)
    assert lines == 2_000 + (media_type == CSV)
    _fill(engine, 18_000)
    database.count()
    large, lines = _peak(engine, media_type)
    assert lines == 20_000 + (media_type == CSV)
    assert database.count("SELECT") == 20_000 // 500  # one statement a page
    assert large < 1.5 * small, (small, large)

"""The named loggers: a record per engine call, per SQL statement (DEBUG), per
HTTP request and per refused token; and what no record ever holds."""

from __future__ import annotations

import logging
import re
import time
from typing import Any

import jwt
import pytest
from flask import Flask
from marshmallow import fields

from backo_restful import DataModel, Schema
from backo_restful.api import basic
from backo_restful.api.flask import Api, Resource
from backo_restful.auth import JWTAuth, Owner
from backo_restful.exceptions import NotFound

KEY = "a test secret that is long enough for HS256 signatures"

logged = DataModel("logged")


@logged.collection("product")
class Product(Schema):
    name = fields.String()
    stock = fields.Integer()


@logged.collection("account", permissions=Owner("owner"))
class Account(Schema):
    login = fields.String()
    owner = fields.String(allow_none=True)
    password = fields.String(load_only=True, metadata={"can_read": False})
    verdict = fields.String(metadata={"can_read": False, "can_modify": False})


ENGINE_FIELDS = ("call", "collection", "id", "caller", "status", "code")


def records(caplog: Any, name: str) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == name]


def app_of(engine: Any, auth: JWTAuth | None = None) -> Flask:
    app = Flask("logged")
    api = Api(app, engine=engine, auth=auth)
    for collection in engine.model.collections.values():
        resource = type(f"{collection.name}_resource", (Resource,), {"model": collection})
        api.add_resource(resource, f"/{collection.name}")
    return app


def token(claims: dict[str, Any], key: str = KEY, **extra: Any) -> str:
    return jwt.encode({"exp": int(time.time()) + 60, **claims, **extra}, key, algorithm="HS256")


# -- backo_restful.engine --------------------------------------------------------------


def test_one_record_per_engine_call(make_engine: Any, database: Any, caplog: Any) -> None:
    engine = make_engine(logged)
    engine.post("product", {"name": "tea"})  # tables exist from here on
    caplog.set_level(logging.INFO, logger="backo_restful.engine")
    database.count()
    assert engine.get("product", 1)[1] == 200
    statements = database.count()
    (record,) = records(caplog, "backo_restful.engine")
    assert record.levelno == logging.INFO
    assert record.getMessage().startswith("get product 1 by system: 200 (")
    assert [getattr(record, name) for name in ENGINE_FIELDS] == [
        "get", "product", 1, "system", 200, None,
    ]  # fmt: skip
    assert isinstance(record.duration_ms, float) and record.duration_ms >= 0
    assert record.statements == statements >= 1


@pytest.mark.parametrize(
    ("call", "args", "expected"),
    [
        ("post", ("product", {"name": "x"}), ("post", None, 201, None)),
        ("get", ("product",), ("get", None, 200, None)),
        ("page", ("product",), ("page", None, 200, None)),
        ("put", ("product", 1, {"name": "y"}), ("put", 1, 200, None)),
        ("patch", ("product", "1", {"stock": 2}), ("patch", "1", 200, None)),
        ("delete", ("product", 1), ("delete", 1, 204, None)),
        ("get", ("product", 9), ("get", 9, 404, "OBJECT_DOES_NOT_EXIST")),
        ("patch", ("product", 1, {"stock": "x"}), ("patch", 1, 422, "VALIDATION_FAILED")),
        ("get", ("nothing", 1), ("get", 1, 404, "UNKNOWN_COLLECTION")),
    ],
)
def test_engine_outcomes(
    make_engine: Any, caplog: Any, call: str, args: tuple[Any, ...], expected: Any
) -> None:
    engine = make_engine(logged)
    engine.post("product", {"name": "tea"})
    caplog.set_level(logging.INFO, logger="backo_restful.engine")
    try:
        getattr(engine, call)(*args)
    except Exception as error:
        assert expected[3] == error.code  # type: ignore[attr-defined]
    (record,) = records(caplog, "backo_restful.engine")
    assert (record.call, record.id, record.status, record.code) == expected
    outcome = str(expected[2]) if expected[3] is None else f"{expected[2]} {expected[3]}"
    assert f": {outcome} (" in record.getMessage()


@pytest.mark.parametrize(
    ("auth", "caller"), [(None, "system"), ({}, "anonymous"), ({"sub": 7}, "7")]
)
def test_engine_caller(make_engine: Any, caplog: Any, auth: Any, caller: str) -> None:
    engine = make_engine(logged)
    caplog.set_level(logging.INFO, logger="backo_restful.engine")
    engine.page("product", auth=auth)
    (record,) = records(caplog, "backo_restful.engine")
    assert record.caller == caller
    assert f" by {caller}: " in record.getMessage()


def test_engine_records_through_basic_and_objects(make_engine: Any, caplog: Any) -> None:
    engine = make_engine(logged)
    caplog.set_level(logging.INFO, logger="backo_restful.engine")
    assert basic.post("product", {"name": "tea"}, engine=engine)[1] == 201
    assert basic.get("product", 5, engine=engine)[1] == 404
    engine.collection("product").load(1)
    found = [(r.call, r.status, r.code) for r in records(caplog, "backo_restful.engine")]
    assert found == [("post", 201, None), ("get", 404, "OBJECT_DOES_NOT_EXIST"), ("get", 200, None)]


def test_no_engine_record_at_the_default_level(make_engine: Any, caplog: Any) -> None:
    engine = make_engine(logged)
    caplog.set_level(logging.WARNING)
    engine.post("product", {"name": "tea"})
    engine.get("product")
    with pytest.raises(NotFound):
        engine.get("product", 9)
    assert [r for r in caplog.records if r.name.startswith("backo_restful")] == []


# -- backo_restful.storage -------------------------------------------------------------


def test_statements_without_values(
    make_engine: Any, caplog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BACKO_LOG_SQL_PARAMS", raising=False)
    engine = make_engine(logged)
    engine.get("product")
    caplog.set_level(logging.DEBUG, logger="backo_restful.storage")
    engine.post("product", {"name": "value-in-a-row", "stock": 918273})
    engine.get("product", filter_={"name": "value-in-a-filter"})
    found = records(caplog, "backo_restful.storage")
    assert len(found) >= 2 and all(r.levelno == logging.DEBUG for r in found)
    assert any(r.sql.startswith("INSERT") for r in found)
    for record in found:
        assert record.getMessage() == f"SQL {record.duration_ms:.3f} ms: {record.sql}"
        assert not hasattr(record, "params")
        text = record.getMessage()
        assert "value-in-a" not in text and "918273" not in text


def test_statements_with_values_when_asked(
    make_engine: Any, caplog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKO_LOG_SQL_PARAMS", "1")
    engine = make_engine(logged)  # read when the storage is made
    engine.get("product")
    caplog.set_level(logging.DEBUG, logger="backo_restful.storage")
    engine.post("product", {"name": "value-in-a-row", "stock": 918273})
    (insert,) = [r for r in records(caplog, "backo_restful.storage") if "INSERT" in r.sql]
    assert "value-in-a-row" in insert.params and 918273 in insert.params
    assert "'value-in-a-row'" in insert.getMessage()


# -- backo_restful.http ----------------------------------------------------------------


@pytest.mark.backends("sqlite")
def test_one_record_per_request(make_engine: Any, caplog: Any) -> None:
    client = app_of(make_engine(logged)).test_client()
    caplog.set_level(logging.INFO, logger="backo_restful.http")
    response = client.post("/product", json={"name": "tea"}, headers={"X-Request-Id": "abc-1.2_3"})
    assert response.status_code == 201
    assert response.headers["X-Request-Id"] == "abc-1.2_3"
    (record,) = records(caplog, "backo_restful.http")
    assert (record.method, record.path, record.status, record.request_id) == (
        "POST", "/product", 201, "abc-1.2_3",
    )  # fmt: skip
    assert isinstance(record.duration_ms, float)
    assert re.fullmatch(r"POST /product 201 \d+\.\d ms \[abc-1\.2_3\]", record.getMessage())


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("x" * 128, True),
        ("A.b-c_9", True),
        (None, False),
        ("", False),
        ("x" * 129, False),
        ("has space", False),
        ("semi;colon", False),
        ("é", False),
    ],
)
def test_request_ids(make_engine: Any, caplog: Any, given: str | None, kept: bool) -> None:
    client = app_of(make_engine(logged)).test_client()
    caplog.set_level(logging.INFO, logger="backo_restful.http")
    headers = {} if given is None else {"X-Request-Id": given}
    response = client.get("/product/9", headers=headers)  # an error answer, too
    assert response.status_code == 404
    sent = response.headers["X-Request-Id"]
    if kept:
        assert sent == given
    else:
        assert re.fullmatch(r"[0-9a-f]{32}", sent)
    (record,) = records(caplog, "backo_restful.http")
    assert (record.status, record.request_id) == (404, sent)


@pytest.mark.backends("sqlite")
def test_request_ids_without_logging(make_engine: Any) -> None:
    client = app_of(make_engine(logged)).test_client()
    first, second = client.get("/nowhere"), client.get("/product")
    assert first.status_code == 404 and second.status_code == 200
    ids = {first.headers["X-Request-Id"], second.headers["X-Request-Id"]}
    assert len(ids) == 2


# -- backo_restful.auth ----------------------------------------------------------------


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        (token({"sub": "a"}, exp=int(time.time()) - 60), "expired"),
        (token({"sub": "a"}, key="another key that is long enough for HS256"), "bad signature"),
        (token({"sub": "a"}, nbf=int(time.time()) + 600), "not yet valid"),
        ("not.a.token", "malformed"),
    ],
)
def test_refused_tokens(make_engine: Any, caplog: Any, bad: str, reason: str) -> None:
    client = app_of(make_engine(logged), JWTAuth(KEY)).test_client()
    caplog.set_level(logging.INFO, logger="backo_restful")
    response = client.get("/product", headers={"Authorization": f"Bearer {bad}"})
    assert response.status_code == 401
    (record,) = records(caplog, "backo_restful.auth")
    assert record.reason == reason
    assert record.getMessage() == f"token refused: {reason}"
    (request,) = records(caplog, "backo_restful.http")
    assert request.status == 401
    assert request.request_id == response.headers["X-Request-Id"]
    assert all(bad not in str(vars(r)) for r in caplog.records)


def test_a_bad_authorization_header(caplog: Any) -> None:
    caplog.set_level(logging.INFO, logger="backo_restful.auth")
    with pytest.raises(Exception, match="not valid"):
        JWTAuth(KEY).user_from("Basic dXNlcjpwYXNzd29yZA==")
    (record,) = records(caplog, "backo_restful.auth")
    assert "dXNlcjpwYXNzd29yZA" not in record.getMessage()
    assert record.reason == "the Authorization header is not 'Bearer <token>'"


# -- never logged ----------------------------------------------------------------------


def test_no_secret_in_any_record(
    make_engine: Any, caplog: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("BACKO_LOG_SQL_PARAMS", raising=False)
    engine = make_engine(logged)
    client = app_of(engine, JWTAuth(KEY)).test_client()
    alice = token({"sub": "alice"})
    headers = {"Authorization": f"Bearer {alice}"}
    caplog.set_level(logging.DEBUG, logger="backo_restful")
    body = {"login": "alice", "password": "pa55-w0rd-xyzzy"}
    response = client.post("/account", json=body, headers=headers)
    assert response.status_code == 201
    engine.patch("account", 1, {"verdict": "hidden-verdict-42"})  # trusted code
    response = client.get("/account/1", headers=headers)
    assert response.status_code == 200 and "verdict" not in response.get_json()
    client.get("/account", headers=headers, query_string={"login": "alice"})
    client.get("/account", headers={"Authorization": "Bearer " + alice[:-3] + "xyz"})
    names = {record.name for record in caplog.records}
    assert {"backo_restful.engine", "backo_restful.storage", "backo_restful.http"} <= names
    assert "backo_restful.auth" in names
    for record in caplog.records:
        text = record.getMessage() + repr(vars(record))
        for secret in (alice, alice[:-3], "pa55-w0rd-xyzzy", "hidden-verdict-42"):
            assert secret not in text, (record.name, text)

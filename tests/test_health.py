"""``<prefix>/_health``: 200 when the database answers, 503 when it cannot be
reached (bounded in time), no token needed; through api.basic and HTTP."""

from __future__ import annotations

import time
from typing import Any

import pytest
from flask import Flask
from marshmallow import fields

from backo_restful import DataModel, Engine, Schema
from backo_restful.api import basic
from backo_restful.api.flask import Api, Resource
from backo_restful.auth import JWTAuth
from backo_restful.storage import PeeweeStorage

#: Databases that cannot be reached: nothing listens on port 1, no such directory.
UNREACHABLE = {
    "sqlite": "sqlite:////nonexistent-backo-dir/health.db",
    "postgresql": "postgresql://postgres@127.0.0.1:1/test",
    "mysql": "mysql://root@127.0.0.1:1/test",
}


def _model() -> DataModel:
    dm = DataModel("health")

    @dm.collection("cookie")
    class Cookie(Schema):
        type = fields.String()

    return dm


def _app(engine: Engine, **api: Any) -> Flask:
    app = Flask("health")
    backo = Api(app, engine=engine, **api)
    backo.add_resource(type("c", (Resource,), {"model": engine.model.object("cookie")}), "/cookie")
    return app


def test_up_through_basic(make_engine: Any, database: Any) -> None:
    engine = make_engine(_model())
    database.count()
    assert basic.health(engine=engine) == ({"status": "ok"}, 200, {})
    assert 1 <= database.count() <= 4  # the query, and its time limit around it


def test_up_over_http_without_a_token(make_engine: Any) -> None:
    engine = make_engine(_model())
    auth = JWTAuth("a secret for the health tests!!!!", required=True)
    client = _app(engine, auth=auth, prefix="/v1").test_client()
    assert client.get("/v1/cookie").status_code == 401
    response = client.get("/v1/_health?probe=1")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"
    head = client.head("/v1/_health")
    assert head.status_code == 200 and head.data == b""
    options = client.options("/v1/_health")
    assert options.headers["Allow"] == "GET, HEAD, OPTIONS"
    refused = client.post("/v1/_health")
    assert refused.status_code == 405
    assert refused.get_json()["error"]["details"]["allowed"] == ["GET", "HEAD", "OPTIONS"]
    assert client.get("/_health").status_code == 404  # on the API's prefix only


def test_down_is_503_and_quick(backend: str) -> None:
    engine = Engine(_model(), PeeweeStorage(UNREACHABLE[backend]))
    started = time.monotonic()
    body, status, headers = basic.health(engine=engine, timeout=1)
    assert time.monotonic() - started < 5
    assert status == 503
    assert body["error"]["code"] == "STORAGE_UNAVAILABLE"
    assert headers == {"Retry-After": "1"}
    response = _app(engine).test_client().get("/_health")
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "STORAGE_UNAVAILABLE"
    assert response.headers["Retry-After"] == "1"
    assert response.headers["Cache-Control"] == "no-store"


def test_a_statement_over_the_timeout_is_unavailable(
    make_engine: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    engine = make_engine(_model())
    dialect = engine.storage.dialect
    slow = {
        "sqlite": "WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n) "
        "SELECT count(*) FROM n",
        "postgresql": "SELECT pg_sleep(5)",
        "mysql": "SELECT SLEEP(5) FROM (SELECT 1 UNION SELECT 2) AS t",
    }[engine.storage.backend]
    monkeypatch.setattr(dialect, "PING", slow)
    started = time.monotonic()
    body, status, _ = basic.health(engine=engine, timeout=0.3)
    assert time.monotonic() - started < 3
    assert status == 503, body
    assert body["error"]["code"] == "STORAGE_UNAVAILABLE"
    monkeypatch.undo()
    assert basic.health(engine=engine)[1] == 200  # the connection is still good


def test_health_is_not_a_collection(make_engine: Any) -> None:
    engine = make_engine(_model())
    api = Api(engine=engine)
    app = Flask("routes")
    api.add_resource(type("c", (Resource,), {"model": engine.model.object("cookie")}), "/cookie")
    api.init_app(app)
    with app.app_context():
        assert [route.rule for route in api.routes() if "_health" in route.rule] == []
        assert api.health_rules() == ["/_health"]
    result = app.test_cli_runner().invoke(args=["backo", "routes"])
    assert result.exit_code == 0, result.output
    line = next(line for line in result.output.splitlines() if "/_health" in line)
    assert line.split() == ["GET,", "HEAD,", "OPTIONS", "/_health", "the", "health", "check"]

"""CORS on an Api's routes (flask-cors): preflights without a token, exposed
and allowed headers, only the Api's routes, off unless asked for."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Blueprint, Flask
from marshmallow import fields

from backo_restful import DataModel, Engine, Schema
from backo_restful.api.cors import ALLOWED_HEADERS, EXPOSED_HEADERS, cors_options
from backo_restful.api.flask import Api, Resource
from backo_restful.auth import JWTAuth

ORIGIN = "https://front.example.com"
PREFLIGHT = {
    "Origin": ORIGIN,
    "Access-Control-Request-Method": "PATCH",
    "Access-Control-Request-Headers": "Authorization, Content-Type, If-Match",
}


def _model() -> DataModel:
    dm = DataModel("cors")

    @dm.collection("cookie")
    class Cookie(Schema):
        type = fields.String()

    return dm


@pytest.fixture
def engine(make_engine: Any) -> Engine:
    engine: Engine = make_engine(_model())
    engine.post("cookie", {"type": "oat"})
    return engine


def _app(engine: Engine, *, prefix: str = "", config: Any = None, **api: Any) -> Flask:
    app = Flask("cors")
    app.config.update(config or {})
    backo = Api(app, engine=engine, prefix=prefix, **api)
    backo.add_resource(type("c", (Resource,), {"model": engine.model.object("cookie")}), "/cookie")

    @app.route("/elsewhere")
    def elsewhere() -> str:
        return "not the API's"

    return app


def _exposed(response: Any) -> set[str]:
    value = response.headers.get("Access-Control-Expose-Headers", "")
    return {name.strip() for name in value.split(",") if name.strip()}


def test_a_preflight_needs_no_token(engine: Engine) -> None:
    app = _app(engine, cors=True, auth=JWTAuth("a secret for the CORS tests!!!!!", required=True))
    client = app.test_client()
    assert client.get("/cookie").status_code == 401  # the API requires a token
    for url in ("/cookie", "/cookie/1", "/_meta", "/_health"):
        response = client.options(url, headers=PREFLIGHT)
        assert response.status_code == 200, url
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert "PATCH" in response.headers["Access-Control-Allow-Methods"]
        allowed = {h.strip() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
        assert allowed == {"Authorization", "Content-Type", "If-Match"}
    # The refusal itself is readable by browser code: CORS headers on errors too.
    refused = client.get("/cookie", headers={"Origin": ORIGIN})
    assert refused.status_code == 401
    assert refused.headers["Access-Control-Allow-Origin"] == "*"


def test_browser_code_can_read_the_api_headers(engine: Engine) -> None:
    client = _app(engine, cors=True).test_client()
    response = client.get("/cookie", headers={"Origin": ORIGIN})
    assert response.status_code == 200
    assert _exposed(response) == set(EXPOSED_HEADERS)
    assert {"Link", "X-Total-Count", "X-Total-Count-Method", "ETag", "Location"} <= _exposed(
        response
    )
    created = client.post("/cookie", json={"type": "rye"}, headers={"Origin": ORIGIN})
    assert created.status_code == 201
    assert created.headers["Access-Control-Allow-Origin"] == "*"


def test_request_headers_outside_the_list_are_not_allowed(engine: Engine) -> None:
    client = _app(engine, cors=True).test_client()
    headers = {**PREFLIGHT, "Access-Control-Request-Headers": "X-Custom"}
    response = client.options("/cookie", headers=headers)
    assert "Access-Control-Allow-Headers" not in response.headers
    assert set(ALLOWED_HEADERS) == {"Authorization", "Content-Type", "If-Match", "If-None-Match"}


def test_only_the_api_routes_get_cors(engine: Engine) -> None:
    client = _app(engine, cors=True, prefix="/v1").test_client()
    assert client.get("/v1/cookie", headers={"Origin": ORIGIN}).headers.get(
        "Access-Control-Allow-Origin"
    )
    other = client.get("/elsewhere", headers={"Origin": ORIGIN})
    assert other.status_code == 200
    assert "Access-Control-Allow-Origin" not in other.headers


def test_without_it_there_is_no_cors_header(engine: Engine) -> None:
    client = _app(engine).test_client()
    for response in (
        client.get("/cookie", headers={"Origin": ORIGIN}),
        client.options("/cookie", headers=PREFLIGHT),
    ):
        assert response.status_code == 200
        assert not [name for name in response.headers.keys() if name.startswith("Access-Control")]
    off = _app(engine, cors=False, config={"BACKO_CORS_ORIGINS": [ORIGIN]}).test_client()
    response = off.get("/cookie", headers={"Origin": ORIGIN})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_origins_from_the_setting(engine: Engine) -> None:
    origins = [ORIGIN, "https://admin.example.com"]
    client = _app(engine, config={"BACKO_CORS_ORIGINS": origins}).test_client()
    allowed = client.get("/cookie", headers={"Origin": ORIGIN})
    assert allowed.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert allowed.headers.getlist("Vary") == ["Accept", "Origin"]
    other = client.get("/cookie", headers={"Origin": "https://evil.example.com"})
    assert other.status_code == 200  # CORS is the browser's guard: the answer stays
    assert "Access-Control-Allow-Origin" not in other.headers


def test_flask_cors_options_as_a_dict(engine: Engine) -> None:
    options = {"origins": [ORIGIN], "max_age": 600, "expose_headers": ["Link"]}
    client = _app(engine, cors=options).test_client()
    response = client.options("/cookie", headers=PREFLIGHT)
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert response.headers["Access-Control-Max-Age"] == "600"
    assert _exposed(client.get("/cookie", headers={"Origin": ORIGIN})) == {"Link"}


def test_an_api_on_a_blueprint(engine: Engine) -> None:
    app = Flask("blueprints")
    served = Blueprint("served", __name__)
    other = Blueprint("other", __name__)
    api = Api(served, engine=engine, cors=True)
    api.add_resource(type("c", (Resource,), {"model": engine.model.object("cookie")}), "/cookie")
    # The same endpoint name on another blueprint is not the API's.
    other.add_url_rule("/cookie", "c", lambda: "other")
    app.register_blueprint(served, url_prefix="/api")
    app.register_blueprint(other, url_prefix="/other")
    client = app.test_client()
    ours = client.get("/api/cookie", headers={"Origin": ORIGIN})
    assert ours.status_code == 200
    assert ours.headers["Access-Control-Allow-Origin"] == "*"
    theirs = client.get("/other/cookie", headers={"Origin": ORIGIN})
    assert theirs.status_code == 200
    assert "Access-Control-Allow-Origin" not in theirs.headers


def test_cors_options_refuses_a_wrong_value() -> None:
    with pytest.raises(TypeError, match="cors="):
        cors_options("yes", ())  # type: ignore[arg-type]
    assert cors_options(None, ()) is None
    assert cors_options(None, [ORIGIN])["origins"] == [ORIGIN]  # type: ignore[index]

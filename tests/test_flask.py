"""HTTP behaviour that only exists over Flask: routes, headers, media types, error handling."""

from __future__ import annotations

import io
import json
from typing import Any

import flask_restful
import pytest
from flask import Flask, abort, got_request_exception, request

from backo_restful.api import basic
from backo_restful.api.flask import Api, Resource
from tests import models
from tests.conftest import make_app


@pytest.fixture
def app(make_engine: Any) -> Flask:
    return make_app(make_engine(models.cookies))


@pytest.fixture
def client(app: Flask) -> Any:
    return app.test_client()


def check_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.data
    assert response.mimetype == "application/json"
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code, body
    return body["error"]


def post(client: Any, url: str, data: Any) -> Any:
    return client.post(url, data=json.dumps(data), content_type="application/json")


def test_post_gives_201_and_location(client: Any) -> None:
    response = post(client, "/jar", {"name": "blue"})
    assert response.status_code == 201
    assert response.headers["Location"] == "/jar/1"
    assert client.get(response.headers["Location"]).get_json() == {
        "id": 1,
        "name": "blue",
        "cookies": [],
    }


def test_put_status_and_location(client: Any) -> None:
    created = client.put("/jar/7", json={"name": "x"})
    assert created.status_code == 201 and created.headers["Location"] == "/jar/7"
    replaced = client.put("/jar/7", json={"name": "y"})
    assert replaced.status_code == 200 and "Location" not in replaced.headers


def test_delete_gives_204_with_an_empty_body(client: Any) -> None:
    post(client, "/jar", {})
    response = client.delete("/jar/1")
    assert response.status_code == 204
    assert response.data == b""


@pytest.mark.parametrize(
    ("method", "url", "allowed"),
    [
        ("POST", "/jar/1", "DELETE, GET, HEAD, OPTIONS, PATCH, PUT"),
        ("PUT", "/jar", "DELETE, GET, HEAD, OPTIONS, PATCH, POST"),
    ],
)
def test_method_not_allowed_has_allow(client: Any, method: str, url: str, allowed: str) -> None:
    response = client.open(url, method=method, json={})
    err = check_error(response, 405, "METHOD_NOT_ALLOWED")
    assert response.headers["Allow"] == allowed
    assert err["details"]["allowed"] == allowed.split(", ")


def test_method_unknown_to_the_resource(client: Any) -> None:
    response = client.open("/jar", method="TRACE")
    check_error(response, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in response.headers["Allow"]


def test_unknown_route_is_a_json_404(client: Any) -> None:
    check_error(client.get("/nothing/here"), 404, "NOT_FOUND")


def test_non_json_body_is_415(client: Any) -> None:
    response = client.post(
        "/jar", data="name=blue", content_type="application/x-www-form-urlencoded"
    )
    check_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    check_error(client.post("/jar"), 415, "UNSUPPORTED_MEDIA_TYPE")
    assert client.get("/jar").get_json() == []


@pytest.mark.parametrize(
    "raw",
    [b"{", b"", b"{'a': 1}", b"\xff\xfe", b"[" * 100_000, b"NaN x", b'{"name": NaN}',
     b'{"name": "x", "z": -Infinity}', b'[{"name": 1e999}]'],
)  # fmt: skip
def test_malformed_json_is_400(client: Any, raw: bytes) -> None:
    response = client.post("/jar", data=raw, content_type="application/json")
    check_error(response, 400, "INVALID_JSON")
    check_error(
        client.patch("/jar/1", data=raw, content_type="application/json"), 400, "INVALID_JSON"
    )


@pytest.mark.parametrize("filter_", ['{"id": NaN}', '{"id": 1e999}', '{"name": Infinity}'])
def test_a_filter_that_is_not_json_is_400(client: Any, filter_: str) -> None:
    error = check_error(client.get("/jar", query_string={"filter": filter_}), 400, "INVALID_FILTER")
    assert "Infinity" not in json.dumps(error) and "NaN" not in json.dumps(error)


def test_flat_filters_and_json_filter(client: Any) -> None:
    post(client, "/jar", {"name": "a"})
    post(client, "/jar", {"name": "b"})
    for body in (
        {"type": "biscuit", "jar": 1},
        {"type": "muffin", "jar": 1},
        {"type": "biscuit", "jar": 2},
        {"type": "loose"},
    ):
        post(client, "/cookie", body)
    ids = lambda url: [c["id"] for c in client.get(url).get_json()]  # noqa: E731
    assert ids("/cookie?jar=1&type=biscuit") == [1]
    assert ids("/cookie?jar=1") == [1, 2]
    assert ids('/cookie?filter={"jar": 1}') == [1, 2]
    assert ids('/cookie?filter={"jar": null}') == [4]
    assert ids("/cookie?jar=null") == [4]
    assert ids('/cookie?type=biscuit&filter={"jar": 2}') == [3]
    assert ids("/cookie?sort=jar,-type&limit=2&offset=1") == [1, 3]
    assert client.get("/cookie/1?depth=0").get_json() == 1


@pytest.mark.parametrize(
    ("query", "code", "named"),
    [
        ("colour=red", "UNKNOWN_PARAMETER", "colour"),
        ("depht=2", "UNKNOWN_PARAMETER", "depht"),
        ("depth=abc", "INVALID_PARAMETER", "depth"),
        ("depth=-1", "INVALID_PARAMETER", "depth"),
        ("depth=1.5", "INVALID_PARAMETER", "depth"),
        ("depth=6", "LIMIT_EXCEEDED", "depth"),
        ("limit=" + "9" * 5000, "LIMIT_EXCEEDED", "limit"),
        ("limit=x", "INVALID_PARAMETER", "limit"),
        ("offset=", "INVALID_PARAMETER", "offset"),
        ("type=a&type=b", "INVALID_PARAMETER", "type"),
        ("filter={", "INVALID_FILTER", "filter"),
        ("filter=[1]", "INVALID_FILTER", "filter"),
        ('filter={"colour": 1}', "UNKNOWN_FIELD", "colour"),
        ("jar=abc", "INVALID_FILTER", "jar"),
        ("sort=colour", "UNKNOWN_FIELD", "colour"),
    ],
)
def test_bad_query_parameters_are_400(client: Any, query: str, code: str, named: str) -> None:
    err = check_error(client.get(f"/cookie?{query}"), 400, code)
    assert named in err["message"]


def test_writes_take_no_query_parameters(client: Any) -> None:
    response = client.post("/jar?depth=2", json={"name": "x"})
    check_error(response, 400, "UNKNOWN_PARAMETER")
    assert client.get("/jar").get_json() == []


def test_config_max_depth(make_engine: Any) -> None:
    app = make_app(make_engine(models.cookies), BACKO_MAX_DEPTH=1)
    client = app.test_client()
    assert client.get("/jar?depth=1").status_code == 200
    err = check_error(client.get("/jar?depth=2"), 400, "LIMIT_EXCEEDED")
    assert "BACKO_MAX_DEPTH=1" in err["message"]


@pytest.mark.parametrize("debug", [True, False])
def test_errors_have_the_same_shape_in_debug_and_production(make_engine: Any, debug: bool) -> None:
    engine = make_engine(models.cookies)
    app = Flask("shape")
    app.debug = debug
    app.testing = debug
    api = Api(app, engine=engine)

    class Cookie(Resource):
        model = models.cookies.object("cookie")

    class Broken(Resource):
        model = models.cookies.object("jar")

        def get(self, id_: str | None = None) -> Any:
            raise RuntimeError("a bug in the application")

    api.add_resource(Cookie, "/cookie")
    api.add_resource(Broken, "/broken")
    client = app.test_client()
    check_error(client.get("/cookie/5"), 404, "OBJECT_DOES_NOT_EXIST")
    check_error(
        client.post("/cookie", data="{", content_type="application/json"), 400, "INVALID_JSON"
    )
    check_error(client.get("/nowhere"), 404, "NOT_FOUND")
    err = check_error(client.get("/broken"), 500, "INTERNAL_ERROR")
    assert "a bug" not in json.dumps(err)


def test_only_server_failures_are_sent_to_got_request_exception(make_engine: Any) -> None:
    # Error trackers listen to got_request_exception: as for Flask's own
    # handler, a client's error (a 404, a 400, a 405) is not an exception of the
    # server. schemathesis, over WSGI, re-raised each 4xx of the API as a crash.
    app = Flask("signals")
    app.logger.disabled = True
    api = Api(app, engine=make_engine(models.cookies))

    class Cookie(Resource):
        model = models.cookies.object("cookie")

    class Broken(Resource):
        model = models.cookies.object("jar")

        def get(self, id_: str | None = None) -> Any:
            raise RuntimeError("a bug in the application")

    api.add_resource(Cookie, "/cookie")
    api.add_resource(Broken, "/broken")
    sent: list[BaseException] = []

    def record(sender: Any, exception: BaseException, **extra: Any) -> None:
        sent.append(exception)

    client = app.test_client()
    with got_request_exception.connected_to(record, app):
        check_error(client.get("/cookie/5"), 404, "OBJECT_DOES_NOT_EXIST")
        check_error(client.get("/cookie?colour=blue"), 400, "UNKNOWN_PARAMETER")
        check_error(client.put("/cookie", json={}), 405, "METHOD_NOT_ALLOWED")
        check_error(client.get("/nowhere"), 404, "NOT_FOUND")
        assert sent == []
        check_error(client.get("/broken"), 500, "INTERNAL_ERROR")
    assert [type(error) for error in sent] == [RuntimeError]


def test_plain_flask_restful_resources_keep_working(make_engine: Any) -> None:
    app = Flask("mixed")
    api = Api(app, engine=make_engine(models.cookies))

    class Hello(flask_restful.Resource):
        def get(self) -> Any:
            return {"hello": "world"}

    class Cookie(Resource):
        model = models.cookies.object("cookie")

        def get(self, id_: str | None = None) -> Any:
            body, status, headers = super().get(id_)
            headers["X-Extra"] = "yes"
            return body, status, headers

    api.add_resource(Hello, "/hello")
    api.add_resource(Cookie, "/cookie", endpoint="cookies")
    client = app.test_client()
    assert client.get("/hello").get_json() == {"hello": "world"}
    response = client.get("/cookie")
    assert response.get_json() == [] and response.headers["X-Extra"] == "yes"
    assert client.post("/cookie", json={"type": "a"}).headers["Location"] == "/cookie/1"
    with app.test_request_context():
        assert api.url_for(Cookie, id_=1) == "/cookie/1"
    assert client.head("/cookie").status_code == 200
    assert client.options("/cookie").status_code == 200


def test_init_app_later_and_a_url_prefix(make_engine: Any) -> None:
    engine = make_engine(models.cookies)
    api = Api(engine=engine, prefix="/v1")

    class Jar(Resource):
        model = models.cookies.object("jar")

    api.add_resource(Jar, "/jar")
    app = Flask("later")
    api.init_app(app)
    client = app.test_client()
    response = client.post("/v1/jar", json={"name": "a"})
    assert response.status_code == 201 and response.headers["Location"] == "/v1/jar/1"
    assert client.get("/v1/jar/1").get_json()["name"] == "a"


def test_default_engine_is_used_without_engine(database: Any) -> None:
    import backo_restful
    from backo_restful.engine import default_engine
    from backo_restful.engine.default import install
    from backo_restful.storage import PeeweeStorage

    previous = install(None)
    try:
        backo_restful.setup(models.cookies, PeeweeStorage(database))
        app = Flask("default")
        api = Api(app)

        class Jar(Resource):
            model = models.cookies.object("jar")

        api.add_resource(Jar, "/jar")
        client = app.test_client()
        assert client.post("/jar", json={"name": "d"}).status_code == 201
        assert default_engine().get("jar", 1)[0]["name"] == "d"
    finally:
        install(previous)


def test_options_lists_what_each_route_serves(client: Any) -> None:
    collection = client.options("/jar")
    assert collection.status_code == 200
    assert collection.headers["Allow"] == "DELETE, GET, HEAD, OPTIONS, PATCH, POST"
    assert client.options("/jar/1").headers["Allow"] == "DELETE, GET, HEAD, OPTIONS, PATCH, PUT"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
def test_a_body_over_the_limit_is_413_and_changes_nothing(make_engine: Any, method: str) -> None:
    engine = make_engine(models.cookies)
    engine.post("jar", {"name": "kept"})
    client = make_app(engine, BACKO_MAX_BODY=1000).test_client()
    url = "/jar" if method == "POST" else "/jar/1"
    fits = json.dumps({"name": "x" * 900}).encode()
    assert (
        client.open(url, method=method, data=fits, content_type="application/json").status_code
        < 300
    )
    if method == "POST":
        engine.delete("jar", 2)
    engine.put("jar", 1, {"name": "kept"})
    big = json.dumps({"name": "x" * 2000}).encode()
    error = check_error(
        client.open(url, method=method, data=big, content_type="application/json"),
        413,
        "BODY_TOO_LARGE",
    )
    assert error["details"] == {"setting": "BACKO_MAX_BODY", "maximum": 1000}
    # Sent in chunks, with no Content-Length: refused once more than the limit arrived.
    chunked = client.open(
        url,
        method=method,
        input_stream=io.BytesIO(big),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},  # as gunicorn says
    )
    check_error(chunked, 413, "BODY_TOO_LARGE")
    assert engine.get("jar")[0] == [{"id": 1, "name": "kept", "cookies": []}]


def test_flasks_own_body_limit_gives_the_same_code(make_engine: Any) -> None:
    client = make_app(make_engine(models.cookies), MAX_CONTENT_LENGTH=100).test_client()
    check_error(post(client, "/jar", {"name": "x" * 200}), 413, "BODY_TOO_LARGE")


def test_a_batch_over_the_limit_is_400(make_engine: Any) -> None:
    engine = make_engine(models.cookies)
    client = make_app(engine, BACKO_MAX_BATCH=3).test_client()
    assert post(client, "/jar", [{}, {}, {}]).status_code == 201
    error = check_error(post(client, "/jar", [{}, {}, {}, {}]), 400, "LIMIT_EXCEEDED")
    assert error["details"] == {"setting": "BACKO_MAX_BATCH", "maximum": 3}
    # Nested objects count too, in every write.
    check_error(post(client, "/jar", {"cookies": [{"type": "a"}] * 3}), 400, "LIMIT_EXCEEDED")
    assert post(client, "/jar", {"cookies": [{"type": "a"}] * 2}).status_code == 201
    cookies = {"cookies": [{"type": "a"}] * 4}
    for method in ("PUT", "PATCH"):
        response = client.open("/jar/1", method=method, json=cookies)
        check_error(response, 400, "LIMIT_EXCEEDED")
    assert client.patch("/jar/1", json={"cookies": [{"type": "b"}] * 3}).status_code == 200
    assert basic.post("jar", [{}] * 1001, engine=engine)[1] == 400  # the default: 1000
    assert basic.post("jar", [{}] * 4, engine=engine, max_batch=4)[1] == 201
    assert (
        basic.put("jar", 1, {"cookies": [{"type": "c"}] * 2}, engine=engine, max_batch=2)[1] == 400
    )
    assert len(engine.get("jar")[0]) == 8
    assert len(engine.get("cookie")[0]) == 5


@pytest.mark.parametrize("status", [413, 414, 431])
def test_oversize_answers_that_reach_the_app_carry_the_error_body(
    make_engine: Any, status: int
) -> None:
    # A server or middleware in front may refuse a URL or headers too large; when
    # such an answer comes from within the app, it is the shared body too.
    app = make_app(make_engine(models.cookies))

    @app.before_request
    def too_large() -> None:
        if request.headers.get("X-Huge"):
            abort(status)

    response = app.test_client().get("/jar", headers={"X-Huge": "1"})
    check_error(response, status, {413: "BODY_TOO_LARGE", 414: "REQUEST_URI_TOO_LONG",
                                   431: "REQUEST_HEADER_FIELDS_TOO_LARGE"}[status])  # fmt: skip

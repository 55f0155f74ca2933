"""Unit tests of backo_restful.api.basic: every answer is (body, status, headers)."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import fields

from backo_restful import DataModel, Engine, Ref, RefsList, Schema
from backo_restful import exceptions as exc
from backo_restful.api import basic
from backo_restful.auth import HasRole
from backo_restful.storage import Change, PeeweeStorage

dm = DataModel("basic")


@dm.collection("jar")
class Jar(Schema):
    name = fields.String()
    cookies = RefsList("cookie", reverse="jar")


@dm.collection("cookie")
class Cookie(Schema):
    type = fields.String(required=True)
    jar = Ref("jar", reverse="cookies")


@dm.collection("vault", permissions=HasRole("admin"))
class Vault(Schema):
    gold = fields.Integer()


@pytest.fixture
def engine() -> Engine:
    engine = Engine(dm, PeeweeStorage("sqlite:///:memory:"))
    engine.post("jar", {"name": "blue", "cookies": [{"type": "oat"}, {"type": "rye"}]})
    return engine


class Unavailable(Engine):
    """An engine whose database is down."""

    def get(self, *args: Any, **kwargs: Any) -> Any:
        raise exc.StorageUnavailable("connection refused")


def test_success_answers(engine: Engine) -> None:
    jar = {"id": 1, "name": "blue", "cookies": [1, 2]}
    assert basic.get("jar", 1, engine=engine) == (jar, 200, {"ETag": engine.etag("jar", jar)})
    cookie = {"id": 3, "type": "bran", "jar": 1}
    assert basic.post("cookie", {"type": "bran", "jar": 1}, engine=engine) == (
        cookie,
        201,
        {"ETag": engine.etag("cookie", cookie)},
    )
    body, status, headers = basic.patch("cookie", 3, {"type": "spelt"}, engine=engine)
    assert (status, headers) == (200, {"ETag": engine.etag("cookie", body)})
    body, status, headers = basic.put("cookie", 3, {"type": "barley"}, engine=engine)
    assert (status, headers) == (200, {"ETag": engine.etag("cookie", body)})
    assert basic.delete("cookie", 3, engine=engine) == (None, 204, {})


def test_a_list_is_a_page_with_its_headers(engine: Engine) -> None:
    body, status, headers = basic.get("cookie", depth=0, limit=1, count="exact", engine=engine)
    assert (body, status) == ([1], 200)
    assert headers["X-Total-Count"] == "2" and headers["X-Total-Count-Method"] == "exact"
    rels = [link.rsplit('rel="', 1)[1].rstrip('"') for link in headers["Link"].split(", ")]
    assert rels == ["first", "next", "last"]
    _, _, uncounted = basic.get("cookie", count="none", engine=engine)
    assert set(uncounted) == {"ETag", "Link"}


@pytest.mark.parametrize(
    ("call", "error", "status"),
    [
        (lambda e: basic.get("cookie", 99, engine=e), exc.NotFound, 404),
        (lambda e: basic.get("nothing", engine=e), exc.UnknownCollection, 404),
        (lambda e: basic.get("cookie", "x", engine=e), exc.InvalidId, 400),
        (lambda e: basic.get("cookie", depth=6, engine=e), exc.LimitExceeded, 400),
        (lambda e: basic.get("cookie", limit=-1, engine=e), exc.InvalidParameter, 400),
        (lambda e: basic.get("cookie", sort="nope", engine=e), exc.UnknownField, 400),
        (lambda e: basic.get("cookie", sort="jar.cookies.type", engine=e), exc.InvalidSort, 400),
        (lambda e: basic.get("cookie", filter_={"type.$x": 1}, engine=e), exc.UnknownOperator, 400),
        (
            lambda e: basic.get("cookie", filter_={"type.$re": "(?i)"}, engine=e),
            exc.InvalidPattern,
            400,
        ),
        (lambda e: basic.get("cookie", filter_={"jar": "x"}, engine=e), exc.InvalidFilter, 400),
        (lambda e: basic.get("cookie", after="garbage", engine=e), exc.InvalidCursor, 400),
        (lambda e: basic.post("cookie", {}, engine=e), exc.ValidationFailed, 422),
        (
            lambda e: basic.post("cookie", [{"type": "a"}] * 3, engine=e, max_batch=2),
            exc.LimitExceeded,
            400,
        ),
        (lambda e: basic.delete("jar", 1, engine=e), exc.NotEmpty, 409),
        (lambda e: basic.get("vault", engine=e, auth={}), exc.Unauthorized, 401),
        (lambda e: basic.get("vault", engine=e, auth={"sub": "1"}), exc.Forbidden, 403),
    ],
)
def test_error_answers(engine: Engine, call: Any, error: type[exc.BackoError], status: int) -> None:
    body, answered, headers = call(engine)
    assert answered == status == error.status
    assert body["error"]["code"] == error.code
    assert set(body["error"]) == {"code", "message", "details"}
    expected = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    assert headers == expected


def test_an_unavailable_database_says_when_to_try_again() -> None:
    down = Unavailable(dm, PeeweeStorage("sqlite:///:memory:"))
    body, status, headers = basic.get("jar", 1, engine=down)
    assert status == 503 and headers == {"Retry-After": "1"}
    assert body["error"]["code"] == "STORAGE_UNAVAILABLE"
    assert "connection refused" not in str(body)  # the reason is for the logs


def errors() -> list[exc.BackoError]:
    """One instance of each exception class."""
    made: dict[type, exc.BackoError] = {
        exc.DeclarationError: exc.DeclarationError("bad", collection="jar", field="x"),
        exc.PatternTooSlow: exc.PatternTooSlow("pattern_timeout"),
        exc.BodyTooLarge: exc.BodyTooLarge(10),
        exc.UnknownCollection: exc.UnknownCollection("nothing"),
        exc.UnknownAction: exc.UnknownAction("jar", "open"),
        exc.MethodNotAllowed: exc.MethodNotAllowed("POST", ["GET", "HEAD"]),
        exc.ValidationFailed: exc.ValidationFailed({"type": ["Missing."]}),
        exc.MigrationRefused: exc.MigrationRefused(
            [(Change("drop_column", "jar", "name", None, True, "drop column"), "it loses data")]
        ),
    }
    return [made.get(cls) or cls() for cls in classes()]


def classes() -> list[type[exc.BackoError]]:
    return [
        value
        for name, value in vars(exc).items()
        if isinstance(value, type) and issubclass(value, exc.BackoError) and name[0] != "_"
    ]


def expected_headers(error: exc.BackoError) -> dict[str, str]:
    if isinstance(error, exc.MethodNotAllowed):
        return {"Allow": "GET, HEAD"}
    if isinstance(error, exc.InvalidToken):
        return {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    if isinstance(error, exc.Unauthorized):
        return {"WWW-Authenticate": "Bearer"}
    if isinstance(error, exc.StorageUnavailable):
        return {"Retry-After": "1"}
    return {}


@pytest.mark.parametrize("error", errors(), ids=lambda error: type(error).__name__)
def test_error_response_of_each_class(error: exc.BackoError) -> None:
    body, status, headers = basic.error_response(error)
    assert body == {
        "error": {"code": type(error).code, "message": error.message, "details": error.details}
    }
    assert status == type(error).status
    assert headers == expected_headers(error)


def test_each_error_answer_of_an_engine_call(engine: Engine) -> None:
    class Raising(Engine):
        def post(self, *args: Any, **kwargs: Any) -> Any:
            raise self.error

    raising = Raising(DataModel("empty"), PeeweeStorage("sqlite:///:memory:"))
    for error in errors():
        raising.error = error  # type: ignore[attr-defined]
        assert basic.post("x", {}, engine=raising) == basic.error_response(error)

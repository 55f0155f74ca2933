"""The engine from code: typed exceptions, the default engine, storage, statements."""

from __future__ import annotations

from typing import Any

import peewee
import pytest

import backo_restful
from backo_restful import Engine
from backo_restful import engine as default
from backo_restful.api import basic
from backo_restful.engine.default import install
from backo_restful.exceptions import (
    BackoError,
    BadRequest,
    ClientError,
    Conflict,
    NotFound,
    ValidationFailed,
)
from backo_restful.storage import PeeweeStorage
from tests import models


@pytest.fixture
def cookies(make_engine: Any) -> Engine:
    return make_engine(models.cookies)


def test_exception_tree() -> None:
    for cls, status in (
        (BadRequest, 400),
        (NotFound, 404),
        (Conflict, 409),
        (ValidationFailed, 422),
    ):
        assert issubclass(cls, ClientError) and issubclass(cls, BackoError)
        assert cls.status == status
        assert cls.code.isupper()


def test_engine_raises_typed_exceptions(cookies: Engine) -> None:
    with pytest.raises(NotFound) as caught:
        cookies.delete("cookie", 99)
    assert (caught.value.collection, caught.value.id) == ("cookie", 99)
    assert caught.value.code == "OBJECT_DOES_NOT_EXIST" and caught.value.status == 404
    with pytest.raises(ValidationFailed) as invalid:
        cookies.post("cookie", {"type": 1, "colour": "x"})
    assert set(invalid.value.messages) == {"type", "colour"}
    with pytest.raises(BadRequest):
        cookies.get("cookie", depth=-1)
    with pytest.raises(NotFound) as unknown:
        cookies.get("biscuit")
    assert unknown.value.code == "UNKNOWN_COLLECTION"


def test_engine_calls_return_data_and_status(cookies: Engine) -> None:
    assert cookies.post("jar", {"name": "blue", "cookies": [{"type": "biscuit"}]}) == (
        {"id": 1, "name": "blue", "cookies": [1]},
        201,
    )
    assert cookies.get("jar", 1, depth=2) == (
        {"id": 1, "name": "blue", "cookies": [{"id": 1, "type": "biscuit", "jar": 1}]},
        200,
    )
    assert cookies.put("cookie", 1, {"type": "muffin"}) == (
        {"id": 1, "type": "muffin", "jar": None},
        200,
    )
    assert cookies.patch("cookie", 1, {"jar": 1}) == ({"id": 1, "type": "muffin", "jar": 1}, 200)
    assert cookies.delete("cookie", 1) == (None, 204)
    assert cookies.get("cookie") == ([], 200)


def test_engine_accepts_string_ids(cookies: Engine) -> None:
    cookies.post("jar", {})
    assert cookies.get("jar", "1")[0]["id"] == 1


def test_setup_installs_the_default_engine(database: Any) -> None:
    previous = install(None)
    try:
        with pytest.raises(BackoError) as missing:
            default.get("jar")
        assert missing.value.code == "NO_ENGINE"
        engine = backo_restful.setup(models.cookies, PeeweeStorage(database))
        assert default.default_engine() is engine
        assert default.post("jar", {"name": "d"}) == ({"id": 1, "name": "d", "cookies": []}, 201)
        assert default.put("jar", 1, {"name": "e"})[1] == 200
        assert default.patch("jar", 1, {"name": "f"})[0]["name"] == "f"
        assert default.get("jar", 1) == ({"id": 1, "name": "f", "cookies": []}, 200)
        assert basic.get("jar", 1)[:2] == ({"id": 1, "name": "f", "cookies": []}, 200)
        body, status, headers = basic.get("jar", 2)
        assert (status, headers, body["error"]["code"]) == (404, {}, "OBJECT_DOES_NOT_EXIST")
        assert default.delete("jar", 1) == (None, 204)
    finally:
        install(previous)


def test_two_engines_are_independent(tmp_path: Any) -> None:
    first = Engine(models.cookies, PeeweeStorage(f"sqlite:///{tmp_path / 'one.db'}"))
    second = Engine(models.cookies, PeeweeStorage(f"sqlite:///{tmp_path / 'two.db'}"))
    first.post("jar", {"name": "first"})
    assert second.get("jar") == ([], 200)
    second.post("jar", [{"name": "a"}, {"name": "b"}])
    assert [j["name"] for j in first.get("jar")[0]] == ["first"]
    assert [j["name"] for j in second.get("jar")[0]] == ["a", "b"]


def test_in_memory_sqlite_url() -> None:
    engine = Engine(models.cookies, PeeweeStorage("sqlite:///:memory:"))
    engine.post("jar", {"name": "m"})
    assert engine.get("jar", 1)[0]["name"] == "m"


def test_a_failed_request_changes_nothing(cookies: Engine, database: Any) -> None:
    cookies.post("jar", {"name": "a", "cookies": [{"type": "x"}]})
    before = (cookies.get("jar", depth=2), cookies.get("cookie"))
    # the jar and the first cookie are written before the missing id is found
    with pytest.raises(NotFound):
        cookies.post("jar", {"name": "b", "cookies": [{"type": "y"}, 1, 77]})
    with pytest.raises(NotFound):
        cookies.patch("jar", 1, {"name": "changed", "cookies": [{"type": "z"}, 55]})
    with pytest.raises(ValidationFailed):
        cookies.post("cookie", [{"type": "ok"}, {"type": ""}])
    assert (cookies.get("jar", depth=2), cookies.get("cookie")) == before


def test_every_statement_goes_through_the_database(cookies: Engine, database: Any) -> None:
    database.count()
    cookies.post("jar", {"name": "a"})
    assert database.count("INSERT") == 1
    cookies.get("jar")
    assert database.count("SELECT") >= 1


@pytest.mark.backends("sqlite")
def test_sqlite_foreign_keys_are_on_for_every_connection(cookies: Engine, database: Any) -> None:
    cookies.get("jar")
    database.connect(reuse_if_open=True)
    try:
        assert database.execute_sql("PRAGMA foreign_keys").fetchone()[0] == 1
        with pytest.raises(peewee.IntegrityError):
            database.execute_sql('INSERT INTO "cookie" ("type", "jar_id") VALUES (?, ?)', ("x", 9))
    finally:
        database.close()


def test_expansion_is_batched(cookies: Engine, database: Any) -> None:
    def statements(depth: int) -> int:
        database.count()
        cookies.get("jar", depth=depth)
        return database.count("SELECT")

    def grow(jars: int) -> None:
        for _ in range(jars):
            cookies.post("jar", {"cookies": [{"type": "a"}, {"type": "b"}]})

    grow(2)
    small = [statements(depth) for depth in range(5)]
    grow(30)
    assert [statements(depth) for depth in range(5)] == small
    # The page, then at most one statement per relation per level: jar.cookies is
    # read from the cookie table; cookie.jar is a column of the rows already read.
    assert small == [1, 2, 2, 4, 4]


def test_single_object_expansion_is_batched(cookies: Engine, database: Any) -> None:
    cookies.post("jar", {"cookies": [{"type": str(n)} for n in range(40)]})
    database.count()
    body, _ = cookies.get("jar", 1, depth=3)
    assert len(body["cookies"]) == 40 and body["cookies"][0]["jar"]["cookies"][:2] == [1, 2]
    assert database.count("SELECT") == 4


def test_an_unreachable_database_is_a_503() -> None:
    storage = PeeweeStorage("postgresql://nobody@127.0.0.1:9/none?connect_timeout=2")
    engine = Engine(models.cookies, storage)
    body, status, _ = basic.get("jar", engine=engine)
    assert status == 503 and body["error"]["code"] == "STORAGE_UNAVAILABLE"
    with pytest.raises(BackoError) as caught:
        engine.post("jar", {})
    assert caught.value.status == 503


def test_deep_expansion_of_nothing_costs_nothing(cookies: Engine, database: Any) -> None:
    cookies.post("jar", {})
    database.count()
    assert cookies.get("jar", depth=60) == ([{"id": 1, "name": None, "cookies": []}], 200)
    assert database.count("SELECT") == 2


def test_a_write_the_database_aborts_is_run_again(cookies: Engine, monkeypatch: Any) -> None:
    from backo_restful.exceptions import StorageConflict

    storage = cookies.storage
    calls: list[int] = []

    def flaky(real: Any) -> Any:
        def insert(*args: Any, **kwargs: Any) -> Any:
            calls.append(1)
            if len(calls) < 3:
                raise StorageConflict("deadlock detected")
            return real(*args, **kwargs)

        return insert

    def aborting(*args: Any, **kwargs: Any) -> Any:
        raise StorageConflict("deadlock detected")

    # One object alone and a list take different insert paths: both are retried.
    with monkeypatch.context() as patched:
        patched.setattr(storage, "insert_returning", flaky(storage.insert_returning))
        assert cookies.post("jar", {"name": "third time"})[1] == 201
        assert len(calls) == 3
    calls.clear()
    with monkeypatch.context() as patched:
        patched.setattr(storage, "insert", flaky(storage.insert))
        assert cookies.post("jar", [{"name": "again"}])[1] == 201
        assert len(calls) == 3
    assert [j["name"] for j in cookies.get("jar")[0]] == ["third time", "again"]
    for method in ("insert", "insert_returning"):
        monkeypatch.setattr(storage, method, aborting)
    with pytest.raises(StorageConflict):
        cookies.post("jar", {"name": "never"})
    with pytest.raises(StorageConflict):
        cookies.post("jar", [{"name": "never"}])
    assert [j["name"] for j in cookies.get("jar")[0]] == ["third time", "again"]


def test_database_errors_never_reach_callers_raw(cookies: Engine, monkeypatch: Any) -> None:
    from backo_restful.exceptions import StorageError

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise peewee.ProgrammingError("syntax error somewhere")

    cookies.get("jar")
    monkeypatch.setattr(cookies.storage.db, "execute_sql", broken)
    with pytest.raises(StorageError) as caught:
        cookies.get("jar")
    assert caught.value.status == 500 and caught.value.code == "STORAGE_ERROR"


def test_calls_inside_the_callers_own_transaction(cookies: Engine, database: Any) -> None:
    cookies.post("jar", {"name": "blue"})
    with database.atomic() as transaction:
        cookies.post("cookie", {"type": "inner", "jar": 1})
        assert cookies.get("cookie", filter_={"type": {"$re": "^in"}}, depth=0) == ([1], 200)
        # The call's time limit of patterns ends with the call, not with the transaction.
        if isinstance(database, peewee.PostgresqlDatabase):
            (value,) = database.execute_sql("SHOW statement_timeout").fetchone()
            assert value == "0"
        elif isinstance(database, peewee.MySQLDatabase):
            (value,) = database.execute_sql("SELECT @@SESSION.max_statement_time").fetchone()
            assert float(value) == 0
        with pytest.raises(NotFound):
            cookies.patch("cookie", 1, {"jar": 99})
        assert cookies.get("cookie", 1)[0]["jar"] == 1  # the failed call alone rolled back
        transaction.rollback()
    assert cookies.get("cookie") == ([], 200)


def test_peewees_after_commit_callbacks_run_once_committed(cookies: Engine, database: Any) -> None:
    ran: list[str] = []
    with cookies.storage.transaction(write=True):
        database.after_commit(lambda: ran.append("committed"))
        assert ran == []
    assert ran == ["committed"]
    with pytest.raises(RuntimeError), cookies.storage.transaction(write=True):
        database.after_commit(lambda: ran.append("rolled back"))
        raise RuntimeError("the call failed")
    assert ran == ["committed"]

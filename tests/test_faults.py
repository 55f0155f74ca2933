"""Faults provoked for real, through HTTP: deadlocks and lock waits run again, sessions
killed at each step of a call answered 503 and replaced, PUTs racing to create one id.

Nothing is mocked: a second connection takes the locks, the server ends the sessions.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import peewee
import pytest
from marshmallow import fields

from backo_restful import DataModel, Engine, Schema
from backo_restful.storage import PeeweeStorage
from tests import models
from tests.conftest import HttpClient, make_app
from tests.faults import (
    Background,
    deadlocks,
    kill,
    pooled,
    raw_connection,
    run,
    session_id,
    waiting_for,
)

servers = pytest.mark.backends("postgresql", "mysql")


@pytest.fixture
def raw(database: peewee.Database) -> Iterator[Any]:
    """A second connection to the test's database, to hold locks."""
    connection = raw_connection(database)
    yield connection
    connection.close()


@pytest.fixture
def admin(database: peewee.Database) -> Iterator[Any]:
    """A connection for what an operator does: look at sessions, end them."""
    connection = raw_connection(database)
    yield connection
    connection.close()


@pytest.fixture
def jars(database: peewee.Database, admin: Any) -> Iterator[tuple[Engine, Any]]:
    """An engine on a pool of one connection, with jar 1 ("a") holding cookie 1."""
    pool = pooled(database)
    pool.admin = admin
    engine = Engine(models.cookies, PeeweeStorage(pool))
    engine.post("jar", {"name": "a", "cookies": [{"type": "plain"}]})
    yield engine, pool
    pool.close_all()


def assert_unavailable(result: Any) -> None:
    assert result.status == 503, result
    assert result.body["error"]["code"] == "STORAGE_UNAVAILABLE"
    assert result.headers["Retry-After"] == "1"


# -- deadlocks and lock waits ----------------------------------------------------------


@servers
def test_a_real_deadlock_is_run_again(make_engine: Any, raw: Any, admin: Any) -> None:
    engine = make_engine(models.cookies)
    engine.post("jar", [{"name": "a"}, {"name": "b"}])
    engine.post("cookie", [{"type": "x", "jar": 2}, {"type": "y", "jar": 2}])
    client = HttpClient(engine)
    before = deadlocks(admin)
    postgres = type(raw).__module__.startswith("psycopg2")
    run(raw, "BEGIN")
    if postgres:
        # The engine's transaction waits longer, so it is the one to find the cycle.
        run(raw, "SET LOCAL deadlock_timeout = '20s'")
    else:
        # InnoDB aborts the transaction that changed fewer rows: the engine's.
        run(raw, "UPDATE jar SET name = 'heavy' WHERE id = 2")
    run(raw, "SELECT id FROM jar WHERE id = 1 FOR UPDATE")
    # The engine locks cookie 2, then waits for jar 1 ...
    call = Background(lambda: client.patch("cookie", 2, {"jar": 1}))
    waiting_for(admin, session_id(raw))
    # ... while this waits for cookie 2: a deadlock, which the database breaks.
    run(raw, "UPDATE cookie SET type = 'raw' WHERE id = 2")
    run(raw, "COMMIT")
    result = call.result()
    assert (result.status, result.body) == (200, {"id": 2, "type": "raw", "jar": 1})
    deadline = time.monotonic() + 15  # PostgreSQL counts it when the session reports
    while deadlocks(admin) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert deadlocks(admin) == before + 1
    assert client.get("jar", 1).body["cookies"] == [2]


@pytest.mark.backends("mysql")
def test_a_lock_wait_timeout_is_run_again(make_engine: Any, database: Any, raw: Any) -> None:
    engine = make_engine(models.cookies)
    engine.post("cookie", {"type": "x"})
    client = HttpClient(engine)
    database.connect()  # the engine uses this open connection in this thread
    database.execute_sql("SET SESSION innodb_lock_wait_timeout = 1")
    run(raw, "BEGIN")
    run(raw, "SELECT id FROM cookie WHERE id = 1 FOR UPDATE")
    release = threading.Timer(1.5, lambda: run(raw, "COMMIT"))
    release.start()
    database.count()
    result = client.patch("cookie", 1, {"type": "late"})
    release.join()
    assert (result.status, result.body) == (200, {"id": 1, "type": "late", "jar": None})
    # The first attempt gave up waiting after 1 s; the second got the lock.
    assert database.count("SELECT `t1`.`id` FROM `cookie`") == 2
    database.close()


@servers
@pytest.mark.parametrize("method", ["DELETE", "PATCH"])
def test_rows_found_late_and_busy_are_waited_for_in_order(
    make_engine: Any, raw: Any, admin: Any, method: str
) -> None:
    engine = make_engine(models.cookies)
    engine.post("jar", [{"name": "a", "cookies": [{"type": "x"}, {"type": "y"}]}, {"name": "b"}])
    client = HttpClient(engine)
    run(raw, "BEGIN")
    run(raw, "SELECT id FROM cookie WHERE id = 2 FOR UPDATE")  # another write, a slow one
    # The delete finds cookie 2 only once it holds jar 1 (to unlink it); a PATCH
    # of jar 1's cookies finds it among those it unlinks. Neither waits for it out
    # of order: the attempt stops, and the next one locks it first, in order.
    if method == "DELETE":
        call = Background(lambda: client.delete("jar", 1))
    else:
        call = Background(lambda: client.patch("jar", 1, {"cookies": [1]}))
    waiting_for(admin, session_id(raw))
    time.sleep(0.5)  # longer than every pause between attempts together
    run(raw, "COMMIT")
    result = call.result()
    assert result.status == (204 if method == "DELETE" else 200), result.body
    assert client.get("cookie", 2).body == {"id": 2, "type": "y", "jar": None}


# -- sessions killed ---------------------------------------------------------------------


@servers
def test_a_session_killed_in_a_statement_is_a_503(
    jars: tuple[Engine, Any], raw: Any, admin: Any
) -> None:
    engine, _ = jars
    client = HttpClient(engine)
    run(raw, "BEGIN")
    run(raw, "SELECT id FROM jar WHERE id = 1 FOR UPDATE")
    call = Background(lambda: client.patch("jar", 1, {"name": "b", "cookies": []}))
    kill(admin, waiting_for(admin, session_id(raw)))
    assert_unavailable(call.result())
    run(raw, "ROLLBACK")
    # Nothing changed, and the pool's one connection was replaced.
    assert client.get("jar", 1).body == {"id": 1, "name": "a", "cookies": [1]}
    assert client.patch("jar", 1, {"name": "c"}).status == 200


@servers
@pytest.mark.parametrize("layer", ["engine", "http"])
def test_a_session_killed_before_the_commit_is_a_503(jars: tuple[Engine, Any], layer: str) -> None:
    engine, pool = jars
    client = HttpClient(engine)
    pool.kill_at = "commit"
    if layer == "engine":
        from backo_restful.exceptions import StorageUnavailable

        with pytest.raises(StorageUnavailable):
            engine.post("jar", {"name": "lost"})
    else:
        assert_unavailable(client.post("jar", {"name": "lost"}))
    assert pool.kill_at is None  # it did die
    assert [jar["name"] for jar in client.get("jar").body] == ["a"]
    assert client.post("jar", {"name": "kept"}).status == 201


@servers
def test_a_session_killed_before_the_rollback_keeps_the_answer(
    jars: tuple[Engine, Any],
) -> None:
    engine, pool = jars
    client = HttpClient(engine)
    pool.kill_at = "rollback"
    # The call failed for its own reason; the connection failing after does not
    # change the answer, and does not stay in the pool.
    result = client.patch("cookie", 1, {"jar": 99})
    assert result.status == 404 and result.body["error"]["details"]["collection"] == "jar"
    assert pool.kill_at is None
    assert client.get("cookie", 1).body == {"id": 1, "type": "plain", "jar": 1}


@servers
def test_a_connection_killed_while_idle_is_replaced(jars: tuple[Engine, Any], admin: Any) -> None:
    engine, pool = jars
    client = HttpClient(engine)
    with pool.connection_context():
        postgres = isinstance(pool, peewee.PostgresqlDatabase)
        sql = "SELECT pg_backend_pid()" if postgres else "SELECT CONNECTION_ID()"
        (session,) = pool.execute_sql(sql).fetchone()
    kill(admin, session)  # the server restarts, a proxy drops it: the pool cannot tell
    assert client.get("jar", 1).status == 200
    assert client.patch("jar", 1, {"name": "b"}).status == 200


def test_an_unreachable_server_is_a_503_with_retry_after() -> None:
    storage = PeeweeStorage("postgresql://nobody@127.0.0.1:9/none?connect_timeout=2")
    result = HttpClient(Engine(models.cookies, storage)).get("jar")
    assert_unavailable(result)
    assert "127.0.0.1" not in result.body["error"]["message"]  # no database text


# -- races to create -------------------------------------------------------------------


def test_concurrent_puts_create_an_id_once(make_engine: Any) -> None:
    app = make_app(make_engine(models.cookies))
    threads = 8
    for id_ in range(100, 110):
        barrier = threading.Barrier(threads)

        def put(index: int, id_: int = id_, barrier: threading.Barrier = barrier) -> Any:
            http = app.test_client()
            barrier.wait()
            return http.put(f"/jar/{id_}", json={"name": f"by {index}"})

        calls = [Background(lambda n=n: put(n)) for n in range(threads)]
        answers = [call.result(timeout=60) for call in calls]
        statuses = sorted(answer.status_code for answer in answers)
        assert statuses == [200] * (threads - 1) + [201], [a.get_json() for a in answers]
        stored = app.test_client().get(f"/jar/{id_}").get_json()
        assert stored["name"] in {answer.get_json()["name"] for answer in answers}


catalog = DataModel("catalog")


@catalog.collection("item")
class Item(Schema):
    sku = fields.String(metadata={"unique": True})


def test_concurrent_writes_of_one_unique_value(make_engine: Any) -> None:
    app = make_app(make_engine(catalog))
    threads = 8
    for round_ in range(5):
        barrier = threading.Barrier(threads)

        def post(barrier: threading.Barrier = barrier, sku: str = f"sku-{round_}") -> Any:
            http = app.test_client()
            barrier.wait()
            return http.post("/item", json={"sku": sku})

        answers = [call.result(timeout=60) for call in [Background(post) for _ in range(threads)]]
        assert sorted(answer.status_code for answer in answers) == [201] + [409] * (threads - 1)
        for answer in answers:
            if answer.status_code == 409:
                # The engine's check, or the database's index when both passed it:
                # the same answer, naming the field.
                error = answer.get_json()["error"]
                assert error["code"] == "UNIQUE_VIOLATION", error
                assert error["details"]["field"] == "sku"

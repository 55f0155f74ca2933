"""Connections kept and the least work per call: a persistent connection per thread
for a SQLite URL, a pool for a server URL, dead pooled connections replaced, reads of
one statement without a transaction, counts the page makes needless, and creates
whose links the foreign key checks.

Faults are real: sessions are ended on the server, the pool is really full.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import peewee
import pytest
from playhouse.pool import PooledDatabase

from backo_restful import Engine
from backo_restful.exceptions import DeclarationError, NotFound
from backo_restful.storage import POOL_SETTINGS, PeeweeStorage
from tests import models
from tests.conftest import HttpClient
from tests.faults import Background, kill, raw_connection

servers = pytest.mark.backends("postgresql", "mysql")


def url_of(database: peewee.Database) -> str:
    """A URL of the test's own database (its PostgreSQL schema, its MySQL database)."""
    params = database.connect_params
    user = params.get("user") or ""
    server = f"{params.get('host', '127.0.0.1')}:{params['port']}"
    if isinstance(database, peewee.PostgresqlDatabase):
        options = quote(params["options"], safe="")
        return f"postgresql://{user}@{server}/{database.database}?options={options}"
    return f"mysql://{user}@{server}/{database.database}"


@pytest.fixture
def admin(database: peewee.Database) -> Iterator[Any]:
    connection = raw_connection(database)
    yield connection
    connection.close()


def session_of(storage: PeeweeStorage) -> int:
    """The server's id of the session a pooled storage hands out next."""
    postgres = storage.backend == "postgresql"
    with storage.db.connection_context():
        sql = "SELECT pg_backend_pid()" if postgres else "SELECT CONNECTION_ID()"
        (session,) = storage.db.execute_sql(sql).fetchone()
    return int(session)


# -- connections kept ------------------------------------------------------------------


def test_a_sqlite_url_keeps_one_connection_per_thread(tmp_path: Any) -> None:
    storage = PeeweeStorage(f"sqlite:///{tmp_path / 'kept.db'}")
    engine = Engine(models.cookies, storage)
    engine.post("jar", {"name": "a"})
    connection = storage.db.connection()
    assert engine.get("jar", 1)[1] == 200 and engine.get("jar")[1] == 200
    assert not storage.db.is_closed() and storage.db.connection() is connection
    other = Background(lambda: (engine.get("jar", 1), storage.db.connection())).result()
    assert other[0][1] == 200 and other[1] is not connection  # each thread its own
    storage.close()
    assert storage.db.is_closed()
    assert engine.get("jar", 1) == ({"id": 1, "name": "a", "cookies": []}, 200)


def test_a_given_database_is_opened_and_closed_per_call_unless_persistent(
    tmp_path: Any,
) -> None:
    given = peewee.SqliteDatabase(str(tmp_path / "given.db"))
    engine = Engine(models.cookies, PeeweeStorage(given))
    engine.post("jar", {"name": "a"})
    assert given.is_closed()
    kept = peewee.SqliteDatabase(str(tmp_path / "given.db"))
    engine = Engine(models.cookies, PeeweeStorage(kept, persistent=True))
    assert engine.get("jar", 1)[1] == 200
    assert not kept.is_closed()
    kept.close()


def test_server_urls_give_a_pool_sized_by_the_query_string() -> None:
    storage = PeeweeStorage("postgresql://app@db.example.com/shop")
    pool: Any = storage.db
    assert isinstance(pool, PooledDatabase) and isinstance(pool, peewee.PostgresqlDatabase)
    assert (pool._max_connections, pool._stale_timeout, pool._wait_timeout) == tuple(
        POOL_SETTINGS.values()
    )
    storage = PeeweeStorage("mysql://app@db.example.com/shop?max_connections=4&stale_timeout=60")
    pool = storage.db
    assert isinstance(pool, PooledDatabase) and isinstance(pool, peewee.MySQLDatabase)
    assert (pool._max_connections, pool._stale_timeout) == (4, 60)
    with pytest.raises(DeclarationError, match="pooled"):
        PeeweeStorage("postgresql://app@db.example.com/shop", persistent=True)
    with pytest.raises(DeclarationError, match="names no database"):
        PeeweeStorage("postgresql://app@db.example.com/")


@servers
def test_a_pool_from_a_url_serves_every_call_with_one_connection(database: Any) -> None:
    storage = PeeweeStorage(url_of(database))
    engine = Engine(models.cookies, storage)
    try:
        engine.post("jar", {"name": "a", "cookies": [{"type": "plain"}]})
        first = session_of(storage)
        for _ in range(5):
            assert engine.get("jar", 1)[1] == 200
            assert engine.patch("cookie", 1, {"type": "chewy"})[1] == 200
        pool: Any = storage.db
        assert len(pool._connections) == 1 and not pool._in_use
        assert session_of(storage) == first
    finally:
        storage.close()


@servers
def test_a_full_pool_is_a_503_once_its_wait_is_over(database: Any) -> None:
    storage = PeeweeStorage(f"{url_of(database)}{'&' if '?' in url_of(database) else '?'}"
                            "max_connections=1&timeout=1")  # fmt: skip
    engine = Engine(models.cookies, storage)
    engine.post("jar", {"name": "a"})
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with storage.transaction(write=False):
            holding.set()
            release.wait(10)

    holder = Background(hold)
    assert holding.wait(10)
    try:
        result = HttpClient(engine).get("jar", 1)
        assert result.status == 503, result
        assert result.body["error"]["code"] == "STORAGE_UNAVAILABLE"
        assert "in use" in result.body["error"]["message"]
        assert result.headers["Retry-After"] == "1"
    finally:
        release.set()
        holder.result()
    assert engine.get("jar", 1)[1] == 200  # the connection is back in the pool
    storage.close()


@servers
@pytest.mark.parametrize("first", ["read of one statement", "read", "write"])
def test_a_pooled_connection_ended_while_idle_is_replaced(
    database: Any, admin: Any, first: str
) -> None:
    storage = PeeweeStorage(url_of(database) + ("&" if "?" in url_of(database) else "?")
                            + "max_connections=1")  # fmt: skip
    engine = Engine(models.cookies, storage)
    client = HttpClient(engine)
    try:
        assert client.post("jar", {"name": "a", "cookies": [{"type": "plain"}]}).status == 201
        kill(admin, session_of(storage))  # a restart, a proxy: the pool cannot tell
        if first == "read of one statement":
            result = client.get("cookie", 1)  # no BEGIN: the SELECT finds it dead
        elif first == "read":
            result = client.get("jar", 1)
        else:
            result = client.patch("cookie", 1, {"type": "chewy"})
        assert result.status == 200, result
        assert client.get("cookie", 1).status == 200
    finally:
        storage.close()


# -- the least work per call -----------------------------------------------------------


class Begins:
    """Counts the transactions a database begins."""

    def __init__(self, database: peewee.Database) -> None:
        self.count = 0
        original = database.begin

        def begin(*args: Any) -> Any:
            self.count += 1
            return original(*args)

        database.begin = begin  # type: ignore[method-assign]

    def take(self) -> int:
        count, self.count = self.count, 0
        return count


def test_a_read_of_one_statement_runs_without_a_transaction(
    make_engine: Any, database: Any
) -> None:
    engine = make_engine(models.cookies)
    engine.post("jar", {"name": "a", "cookies": [{"type": "plain"}]})
    begins = Begins(database)
    database.count()
    assert engine.get("cookie", 1) == ({"id": 1, "type": "plain", "jar": 1}, 200)
    assert engine.get("cookie", depth=1) == (
        [{"id": 1, "type": "plain", "jar": 1}],
        200,
    )
    assert (begins.take(), database.count()) == (0, 2)
    # Two statements or more see one snapshot.
    assert engine.get("jar", 1)[0]["cookies"] == [1]
    assert engine.get("cookie", 1, depth=2)[0]["jar"]["name"] == "a"
    assert begins.take() == 2
    with pytest.raises(NotFound):
        engine.get("cookie", 2)
    assert begins.take() == 0


def test_a_pattern_read_of_one_statement_keeps_its_time_limit(
    make_engine: Any, database: Any
) -> None:
    engine = make_engine(models.cookies)
    engine.post("cookie", [{"type": "plain"}, {"type": "chewy"}])
    database.count()
    assert engine.get("cookie", depth=0, filter_={"type": {"$re": "^ch"}}) == ([2], 200)
    limits = [s for s in database.statements if s.startswith("SET")]
    if isinstance(database, peewee.PostgresqlDatabase):
        # SET LOCAL lasts as long as a transaction: the read opens one for it.
        assert limits and all("LOCAL" in s for s in limits)
        assert database.execute_sql("SHOW statement_timeout").fetchone() == ("0",)
    elif isinstance(database, peewee.MySQLDatabase):
        assert len(limits) == 2  # set, then lifted
        (value,) = database.execute_sql("SELECT @@SESSION.max_statement_time").fetchone()
        assert float(value) == 0


@pytest.mark.parametrize(
    ("params", "total", "statements"),
    [
        ({"limit": 10}, 3, 1),  # the first page holds every match
        ({"limit": 10, "offset": 1}, 3, 1),  # from the second on, and the end
        ({"limit": 2}, 3, 1),  # more than a page: counted in the page's statement
        ({"limit": 10, "offset": 5}, 3, 2),  # past the end: no row carries the count
        ({"limit": 10, "filter_": {"name": {"$ne": "b"}}}, 2, 1),
        ({"limit": 1, "sort": "-name"}, 3, 1),
    ],
)
def test_a_page_and_its_count_are_one_statement(
    make_client: Any, database: Any, params: dict[str, Any], total: int, statements: int
) -> None:
    client = make_client(models.cookies)
    client.post("jar", [{"name": "a"}, {"name": "b"}, {"name": "c"}])
    begins = Begins(database)
    database.count()
    result = client.get("jar", depth=0, **params)
    assert result.status == 200 and result.headers["X-Total-Count"] == str(total)
    assert result.headers["X-Total-Count-Method"] == "exact"
    assert database.count() == statements and begins.take() == 0


def test_a_page_sorted_through_a_relation_is_counted_in_its_snapshot(
    make_client: Any, database: Any
) -> None:
    client = make_client(models.cookies)
    client.post("jar", [{"name": "b", "cookies": [{"type": "x"}]}, {"name": "a"}])
    client.post("cookie", [{"type": "y", "jar": 2}, {"type": "z"}])
    begins = Begins(database)
    result = client.get("cookie", depth=0, limit=2, sort="jar.name")
    assert (result.body, result.headers["X-Total-Count"]) == ([2, 1], "3")
    assert begins.take() == 1  # the page joins: its count is a statement of its own


def test_a_create_leaves_the_check_of_its_link_to_the_foreign_key(
    make_client: Any, database: Any
) -> None:
    client = make_client(models.cookies)
    client.post("jar", {"name": "a"})
    database.count()
    result = client.post("cookie", {"type": "plain", "jar": 1})
    assert (result.status, result.body) == (201, {"id": 1, "type": "plain", "jar": 1})
    statements = [s for s in database.statements if not s.startswith(("BEGIN", "SET"))]
    assert not any('FROM "jar"' in s or "FROM `jar`" in s for s in statements), statements
    assert len(statements) == (1 if client.engine.storage.dialect.returning else 2), statements
    # A missing object is named, as when the engine checks it; nothing is created.
    result = client.post("cookie", {"type": "lost", "jar": 99})
    assert result.status == 404, result
    assert result.body["error"]["details"] == {"collection": "jar", "id": 99, "ids": [99]}
    assert client.get("cookie", depth=0).body == [1]
    # (PostgreSQL and MariaDB may have spent an id on the refused row.)
    assert client.post("cookie", {"type": "second", "jar": 1}).status == 201


def test_links_are_checked_where_the_database_has_no_foreign_key(tmp_path: Any) -> None:
    path = str(tmp_path / "legacy.db")
    with sqlite3.connect(path) as legacy:  # tables made before, without the key
        legacy.execute("CREATE TABLE jar (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT)")
        legacy.execute(
            "CREATE TABLE cookie (id INTEGER PRIMARY KEY AUTOINCREMENT, type TEXT, jar_id INTEGER)"
        )
    client = HttpClient(Engine(models.cookies, PeeweeStorage(f"sqlite:///{path}")))
    assert client.post("jar", {"name": "a"}).status == 201
    result = client.post("cookie", {"type": "lost", "jar": 99})
    assert result.status == 404 and result.body["error"]["details"]["collection"] == "jar"
    assert client.get("cookie", depth=0).body == []
    assert client.post("cookie", {"type": "plain", "jar": 1}).status == 201


def test_lists_count_only_when_asked_under_backo_count_none(
    make_engine: Any, database: Any
) -> None:
    engine = make_engine(models.cookies)
    engine.post("jar", [{"name": "a"}, {"name": "b"}, {"name": "c"}])
    client = HttpClient(engine, BACKO_COUNT="none")
    database.count()
    result = client.get("jar", limit=2, depth=0)
    assert result.body == [1, 2] and "X-Total-Count" not in result.headers
    assert 'rel="next"' in result.headers["Link"]
    assert not any("COUNT(" in sql for sql in database.statements)
    result = client.get("jar", limit=2, depth=0, count="estimate")
    assert result.headers["X-Total-Count"] == "3"
    with pytest.raises(DeclarationError, match="BACKO_COUNT"):
        HttpClient(engine, BACKO_COUNT="sometimes")


def test_a_small_table_is_counted_whole_where_that_is_fast(make_engine: Any, database: Any) -> None:
    engine = make_engine(models.cookies)
    engine.post("jar", [{"name": name} for name in "abcd"])
    database.count()
    page = engine.page("jar", limit=2, count="estimate", count_limit=10)
    assert (page.total, page.total_method) == (4, "exact")
    whole = [sql for sql in database.statements if "COUNT(*)" in sql]
    assert len(whole) == 1 and ("CASE" in whole[0]) == (
        database.__class__.__name__ == "CountingSqlite"
    )
    # Ids beyond the bound: the rows are counted one by one, up to the bound.
    page = engine.page("jar", limit=2, count="estimate", count_limit=3)
    assert page.total_method in ("at-least", "estimate") and page.total >= 3
    # A filter is never answered from the whole table.
    page = engine.page("jar", limit=1, count="estimate", filter_={"name": {"$ne": "a"}})
    assert (page.total, page.total_method) == (3, "exact")

"""Real faults for tests: raw connections beside the engine's, sessions killed on the
server, lock waits to wait for. Nothing here is mocked: the database does it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import peewee
from playhouse.pool import PooledMySQLDatabase, PooledPostgresqlDatabase


def raw_connection(database: peewee.Database) -> Any:
    """A new DB-API connection (autocommit) to the test's database, beside the engine's."""
    if isinstance(database, peewee.PostgresqlDatabase):
        import psycopg2

        connection = psycopg2.connect(dbname=database.database, **database.connect_params)
        connection.autocommit = True
        return connection
    import pymysql

    return pymysql.connect(database=database.database, autocommit=True, **database.connect_params)


def pooled(database: peewee.Database, size: int = 1) -> Any:
    """A pool of ``size`` connections to the test's database (by default one: a
    broken connection must leave it, or the next call finds none)."""
    base = (
        PooledPostgresqlDatabase
        if isinstance(database, peewee.PostgresqlDatabase)
        else PooledMySQLDatabase
    )

    class Pool(base):  # type: ignore[misc, valid-type]
        #: ``"commit"`` or ``"rollback"``: end this connection's session right before.
        kill_at: str | None = None
        admin: Any = None

        def _die_before(self, step: str) -> None:
            if self.kill_at == step:
                self.kill_at = None
                postgres = isinstance(self, peewee.PostgresqlDatabase)
                sql = "SELECT pg_backend_pid()" if postgres else "SELECT CONNECTION_ID()"
                (session,) = self.execute_sql(sql).fetchone()
                kill(self.admin, session)

        def commit(self) -> Any:
            self._die_before("commit")
            return super().commit()

        def rollback(self) -> Any:
            self._die_before("rollback")
            return super().rollback()

    return Pool(database.database, max_connections=size, **database.connect_params)


def run(connection: Any, sql: str, params: Any = None) -> list[Any]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchall()) if cursor.description else []


def session_id(connection: Any) -> int:
    """The server's id of a raw connection's session."""
    postgres = type(connection).__module__.startswith("psycopg2")
    ((pid,),) = run(connection, "SELECT pg_backend_pid()" if postgres else "SELECT CONNECTION_ID()")
    return int(pid)


def waiting_for(admin: Any, holder: int, timeout: float = 10.0) -> int:
    """The session that waits for a lock held by session ``holder`` (waits for one)."""
    postgres = type(admin).__module__.startswith("psycopg2")
    if postgres:
        sql = "SELECT pid FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))"
        params: Any = (holder,)
    else:
        sql = (
            "SELECT r.trx_mysql_thread_id FROM information_schema.INNODB_LOCK_WAITS w "
            "JOIN information_schema.INNODB_TRX r ON r.trx_id = w.requesting_trx_id "
            "JOIN information_schema.INNODB_TRX b ON b.trx_id = w.blocking_trx_id "
            "WHERE b.trx_mysql_thread_id = %s"
        )
        params = (holder,)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = run(admin, sql, params)
        if rows:
            return int(rows[0][0])
        # InnoDB refreshes its information_schema tables only when they have not
        # been read for 0.1 s: asking more often would read the same cache forever.
        time.sleep(0.15)
    raise AssertionError(f"no session waited for session {holder} within {timeout} s")


def kill(admin: Any, session: int) -> None:
    """End a session on the server, as an operator (or a crash) would."""
    if type(admin).__module__.startswith("psycopg2"):
        # With a timeout, the call returns once the session is gone.
        ((done,),) = run(admin, "SELECT pg_terminate_backend(%s, 5000)", (session,))
        assert done
    else:
        run(admin, f"KILL CONNECTION {int(session)}")


def deadlocks(admin: Any) -> int:
    """The deadlocks the server has counted (in the current database, on PostgreSQL)."""
    if type(admin).__module__.startswith("psycopg2"):
        sql = "SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()"
        ((count,),) = run(admin, sql)
        return int(count)
    ((_, count),) = run(admin, "SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'")
    return int(count)


class Background:
    """Run ``call`` in a thread; :meth:`result` gives what it returned or raised."""

    def __init__(self, call: Callable[[], Any]) -> None:
        self._value: Any = None
        self._error: BaseException | None = None

        def target() -> None:
            try:
                self._value = call()
            except BaseException as exc:  # handed to the test by result()
                self._error = exc

        self._thread = threading.Thread(target=target, daemon=True)
        self._thread.start()

    def result(self, timeout: float = 30.0) -> Any:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the call did not return"
        if self._error is not None:
            raise self._error
        return self._value

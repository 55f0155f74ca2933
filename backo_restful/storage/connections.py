"""Connections, transactions and the translation of database errors.

The bottom layer of :class:`~backo_restful.storage.PeeweeStorage`: it opens the
database of a URL (pooled for a server), gives each thread a connection, runs
transactions, bounds the time of pattern statements, and turns every peewee
error into a :class:`~backo_restful.exceptions.BackoError`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import peewee
from playhouse.db_url import connect as connect_url
from playhouse.db_url import parse as parse_url
from playhouse.pool import (
    MaxConnectionsExceeded,
    PooledDatabase,
    PooledMySQLDatabase,
    PooledPostgresqlDatabase,
)

from ..exceptions import (
    BackoError,
    ConnectionLost,
    ConstraintViolation,
    DeclarationError,
    InvalidPattern,
    InvalidValue,
    PatternTooSlow,
    ReferenceViolation,
    StorageConflict,
    StorageError,
    StorageUnavailable,
    UniqueViolation,
)
from ..logs import sql_params_enabled, storage_logger
from ..model import Collection
from ._utils import reason
from .dialects import Dialect, Failure

#: Seconds a statement filtering with ``$re`` may run (``pattern_timeout``).
PATTERN_TIMEOUT = 1.0
#: The pool a PostgreSQL or MariaDB/MySQL URL gets, unless its query string says
#: otherwise: at most 20 connections per process, each replaced after 5 minutes,
#: and a call waits up to 10 s for a free one before it fails (503).
POOL_SETTINGS = {"max_connections": 20, "stale_timeout": 300, "timeout": 10}


class _PooledMySQLDatabase(PooledMySQLDatabase):
    """peewee's MySQL pool, without a round trip to the server at each checkout:
    a connection that died idle fails at its first statement, and the storage
    replaces it then (see :meth:`Connections.transaction`)."""

    def _is_closed(self, conn: Any) -> bool:
        return not getattr(conn, "open", True)


#: The pooled database of each URL scheme that pools by default.
_POOLED = {
    "postgres": PooledPostgresqlDatabase,
    "postgresql": PooledPostgresqlDatabase,
    "postgres+pool": PooledPostgresqlDatabase,
    "postgresql+pool": PooledPostgresqlDatabase,
    "mysql": _PooledMySQLDatabase,
    "mysql+pool": _PooledMySQLDatabase,
}


def database_from_url(url: str) -> peewee.Database:
    """The peewee database of ``url``: pooled for PostgreSQL and MariaDB/MySQL.

    :raises DeclarationError: for a URL peewee cannot use.
    """
    if url.startswith("sqlite:") and url.rstrip("/").endswith((":memory:", "sqlite:")):
        # One shared in-memory database for every thread (access is serialized).
        return peewee.SqliteDatabase(":memory:", thread_safe=False, check_same_thread=False)
    try:
        pooled = _POOLED.get(url.partition("://")[0].lower())
        if pooled is None:
            return connect_url(url)
        # A server database is used through a pool, sized by the query string.
        settings = parse_url(url)
        for name, value in POOL_SETTINGS.items():
            settings.setdefault(name, value)
        database = settings.pop("database")
        if not database:
            raise ValueError("it names no database (postgresql://host/dbname)")
        db: peewee.Database = pooled(database, **settings)
        return db
    except Exception as exc:  # peewee raises RuntimeError or ValueError here
        raise DeclarationError(f"cannot use database URL {url!r}: {exc}") from exc


class Transaction:
    """What one thread's transaction holds: the ids of the rows it locked (or, on
    SQLite, found) by collection, whether it locked what its request names
    (``ordered``: later locks do not wait), whether a statement filters with a
    pattern, and whether the time limit of patterns is on."""

    __slots__ = ("expected", "held", "limited", "ordered", "patterns", "peewee")

    def __init__(self, peewee_transaction: Any = None) -> None:
        self.peewee = peewee_transaction
        self.held: dict[str, set[int]] = {}
        #: Rows an earlier attempt could not lock without waiting: this one locks
        #: them in order, with the rest.
        self.expected: dict[str, set[int]] = {}
        self.ordered = False
        self.patterns = False
        self.limited = False


class Connections:
    """Connections, transactions, time limits and error translation."""

    db: peewee.Database
    dialect: Dialect
    pattern_timeout: float
    #: The database lives in memory: one connection, calls serialized.
    _memory: bool
    #: Keep each thread's connection open between calls.
    _keep: bool
    #: Serializes the calls on an in-memory database.
    _serial: threading.RLock | None
    #: What the transaction of each thread holds (see :meth:`transaction`).
    _local: threading.local
    #: Each unique index, by every name a database gives it in an error -> its
    #: collection and field (see the schema layer).
    _uniques: dict[str, tuple[Collection, str]]
    #: Each thread's count of statements (see :meth:`statements`).
    _counted: threading.local
    #: Whether peewee tells each statement run (its query hooks).
    _counting: bool
    #: Whether the SQL records show parameter values (``BACKO_LOG_SQL_PARAMS``).
    _log_params: bool

    def _ensure_tables(self) -> None:
        """Create the tables on first use (the schema layer does)."""

    # -- counting and logging statements ----------------------------------------

    def _watch_statements(self) -> None:
        """Count, per thread, and log every statement the database runs, through
        peewee's query hooks (peewee 4; with peewee 3, neither happens).

        Whether the records show parameter values (``BACKO_LOG_SQL_PARAMS``) is
        read here, once.
        """
        self._counted = threading.local()
        self._log_params = sql_params_enabled()
        hooks = getattr(self.db, "query_hooks", None)
        self._counting = isinstance(hooks, list)
        if isinstance(hooks, list):
            hooks.append(self._statement_ran)

    def statements(self) -> int | None:
        """How many statements this thread has run on the database so far (None
        when peewee cannot tell): the difference around a call is its count."""
        if not self._counting:
            return None
        return getattr(self._counted, "count", 0)  # type: ignore[no-any-return]

    def _statement_ran(self, event: Any) -> None:
        """Peewee's hook after each statement (``event``: its SQL, parameters,
        duration and exception)."""
        counted = self._counted
        counted.count = getattr(counted, "count", 0) + 1
        if storage_logger.isEnabledFor(logging.DEBUG):
            self._log_statement(event)

    def _log_statement(self, event: Any) -> None:
        duration_ms = round(event.duration * 1000, 3)
        extra: dict[str, Any] = {"sql": event.sql, "duration_ms": duration_ms}
        message = "SQL %.3f ms: %s"
        args: list[Any] = [duration_ms, event.sql]
        if event.exception is not None:
            extra["error"] = type(event.exception).__name__
            message += " (failed: %s)"
            args.append(extra["error"])
        if self._log_params:
            extra["params"] = list(event.params or ())
            message += " params=%r"
            args.append(extra["params"])
        storage_logger.debug(message, *args, extra=extra)

    @contextmanager
    def _connection(self) -> Iterator[None]:
        opened = self._connect()
        try:
            yield
        finally:
            if opened and not self._keep:
                self.db.close()

    def _connect(self) -> bool:
        """Give this thread a connection if it has none; True if it opened one.

        :raises StorageUnavailable: if a pool has no connection free in time.
        """
        if not self.db.is_closed():
            return False
        try:
            self.db.connect()
        except MaxConnectionsExceeded as exc:
            raise StorageUnavailable(
                message="Every connection to the database is in use: try again shortly."
            ) from exc
        return True

    def close(self) -> None:
        """Close the connection this thread keeps, and the idle ones of a pool.

        The next call opens a new one. For the end of a script, a test, or a
        worker process; a server never needs it.
        """
        if self._memory:
            return
        with self._translated():
            if not self.db.is_closed():
                self.db.close()
            if isinstance(self.db, PooledDatabase):
                self.db.close_idle()

    @contextmanager
    def transaction(self, *, write: bool, snapshot: bool = True) -> Iterator[None]:
        """Run the enclosed calls in one transaction; roll back on any exception.

        A database error leaves as a :class:`~backo_restful.exceptions.BackoError`.
        A connection lost anywhere (at the start, in a statement, at the commit or
        the rollback) is discarded, a pooled one too, and the call fails with
        :class:`ConnectionLost`; the next call gets a new connection. A call
        made while this thread's transaction is open joins it.

        On SQLite a write transaction takes the write lock when it begins, so
        concurrent writers queue instead of failing.

        :param snapshot: for a read (``write=False``): False when it runs one
            statement, which sees one consistent state of the database on its
            own: no ``BEGIN`` and ``COMMIT`` are sent around it.
        """
        with self._translated():
            self._ensure_tables()
        if self.db.in_transaction():
            with self._joined():
                yield
            return
        serial = self._serial
        if serial is not None:
            serial.acquire()
        try:
            with self._translated():
                opened = self._begin(write, snapshot or write)
            try:
                yield
            except BaseException as exc:
                self._abort(exc)
            else:
                self._commit()
            finally:
                self._local.transaction = None
                if opened and not self._keep:
                    self._close()
        finally:
            if serial is not None:
                serial.release()

    @contextmanager
    def _joined(self) -> Iterator[None]:
        """A call inside a transaction already open on this thread: a savepoint.

        The transaction may be the caller's own (``db.atomic()`` around engine
        calls): then this call keeps its locks and time limit to itself.
        """
        own = getattr(self._local, "transaction", None) is None
        if own:
            self._local.transaction = Transaction()
        try:
            with self._translated(), self.db.atomic():
                try:
                    yield
                except BaseException:
                    if own:  # rolled back to the savepoint, which undoes it where it can
                        with suppress(peewee.PeeweeException):
                            self._end_time_limit(closing=False)
                    raise
                if own:
                    self._end_time_limit(closing=False)
        finally:
            if own:
                self._local.transaction = None

    def _begin(self, write: bool, snapshot: bool) -> bool:
        """Begin this thread's transaction (only take a connection when not
        ``snapshot``); True if it opened the connection."""
        opened = self._connect()
        self.dialect.pattern_refused()  # forget a refusal an earlier call left
        if not snapshot:
            self._local.transaction = Transaction()
            return opened
        args = self.dialect.begin_args(write)
        try:
            try:
                self.db.begin(*args)
            except (peewee.OperationalError, peewee.InterfaceError) as exc:
                if self.dialect.failure(exc) is not Failure.LOST:
                    raise
                # A connection that died while it waited (the server restarted, a
                # proxy dropped it): nothing was done on it yet, so take a new one.
                self._discard()
                opened = self._connect()
                self.db.begin(*args)
        except BaseException:
            if opened and not self._keep:
                self._close()
            raise
        self._local.transaction = Transaction(self._push_transaction())
        return opened

    def _push_transaction(self) -> Any:
        transaction = self.db.transaction()
        self.db.push_transaction(transaction)
        return transaction

    def _state(self) -> Transaction:
        """What this thread's transaction holds (a throwaway outside of one)."""
        state = getattr(self._local, "transaction", None)
        return Transaction() if state is None else state

    def _commit(self) -> None:
        state = self._state()
        if state.peewee is None:  # one statement, committed on its own
            return
        self.db.pop_transaction()
        try:
            self._end_time_limit(closing=True)
            state.peewee.commit(begin=False)  # with peewee's after_commit callbacks
        except BaseException as exc:
            error = self._translate(exc)
            self._rollback(exc)
            raise error from exc

    def _abort(self, exc: BaseException) -> None:
        """Roll back after ``exc``, then raise it (translated if it is the database's)."""
        error = self._translate(exc)
        if self._state().peewee is not None:
            self.db.pop_transaction()
            self._rollback(exc)
        elif self._lost(exc):
            self._discard()
        else:
            try:
                self._end_time_limit(closing=False)
            except Exception:  # the connection failed on its way out: never use it again
                self._discard()
        if error is exc:
            raise exc
        raise error from exc

    def _lost(self, exc: BaseException) -> bool:
        """Whether ``exc`` says the connection is gone."""
        return isinstance(exc, peewee.PeeweeException) and (
            self.dialect.failure(exc) is Failure.LOST
        )

    def _rollback(self, exc: BaseException) -> None:
        if self._lost(exc):
            self._discard()
            return
        try:
            self._end_time_limit(closing=True)
            self._state().peewee.rollback(begin=False)
        except Exception:  # the connection failed on its way out: never use it again
            self._discard()

    def _close(self) -> None:
        try:
            self.db.close()
        except Exception:  # the driver failed to close it: leave it to be collected
            self._discard()

    def _discard(self) -> None:
        """Drop this thread's connection for good (a pooled one leaves the pool)."""
        if self._memory or self.db.is_closed():
            return
        try:
            if isinstance(self.db, PooledDatabase):
                self.db.manual_close()
            else:
                self.db.close()
        except Exception:  # closing a broken connection may fail too: it is gone anyway
            if not self.db.is_closed():
                self.db.close()

    # -- error translation ----------------------------------------------------

    @contextmanager
    def _translated(self) -> Iterator[None]:
        try:
            yield
        except peewee.PeeweeException as exc:
            raise self._translate(exc) from exc

    def _translate(self, exc: BaseException) -> BaseException:
        """The :class:`BackoError` a database error ``exc`` means (``exc`` itself
        when it is not the database's). The database's own words stay on the
        exception chain, for logs: none of them reaches a client."""
        if not isinstance(exc, peewee.PeeweeException):
            return exc
        failure = self.dialect.failure(exc)
        error = self._failed(failure, exc)
        if error is not None:
            return error
        if failure is not None or isinstance(exc, peewee.OperationalError):
            return StorageUnavailable(reason(exc))
        if isinstance(exc, peewee.IntegrityError):
            return self._violation(exc)
        if isinstance(exc, peewee.DataError):
            return InvalidValue("A value does not fit its database column.")
        return StorageError(reason(exc))

    def _failed(self, failure: Failure | None, exc: BaseException) -> BackoError | None:
        """The error ``failure`` names, if it names one. A pattern refused as too
        much work makes the statement fail in any way: it is asked before the
        failure's own meaning (a timeout, say)."""
        if failure is Failure.CONFLICT:
            return StorageConflict(reason(exc))
        if failure is Failure.PATTERN:
            return PatternTooSlow(limit="the database's regular expression limits")
        if failure is Failure.BAD_PATTERN:
            return InvalidPattern("The database could not read the $re pattern.")
        if self.dialect.pattern_refused():
            return PatternTooSlow(limit="the matching work allowed per value")
        if failure is Failure.TIMEOUT and self._state().limited:
            return PatternTooSlow(limit=f"{self.pattern_timeout:g} s")
        if failure is Failure.LOST:
            return ConnectionLost(reason(exc))
        return None

    def _violation(self, exc: peewee.IntegrityError) -> BackoError:
        """The error a constraint refusing a write means."""
        unique = self._uniques.get(self.dialect.unique_key(exc) or "")
        if unique is not None:
            # Another write gave the value first, since the engine checked it.
            collection, name = unique
            key = collection.external_name(name)
            return UniqueViolation(
                f"Another {collection.name} already has this {key}: it must be unique.",
                {"collection": collection.name, "field": key},
            )
        if self.dialect.missing_reference(exc):
            return ReferenceViolation()
        return ConstraintViolation()  # NOT NULL, say

    # -- time limits of patterns ----------------------------------------------

    def _run(self, query: Any) -> list[Any]:
        """Execute a read and read its rows; a statement that filters with a
        pattern does so under the time limit of patterns (``pattern_timeout``)."""
        state = self._state()
        if not state.patterns:
            return list(query.execute())
        self._limit_time(state)
        # On failure the limit stays on until the rollback lifts it: the statement
        # may have left the transaction unable to run another.
        cursor = query.execute()
        rows = list(cursor)
        self.dialect.check_result(cursor.cursor)
        self._end_time_limit(closing=False)
        return rows

    def _execute(self, sql: str, params: list[Any]) -> list[tuple[Any, ...]]:
        """:meth:`_run` for a statement given as SQL: its rows as tuples."""
        state = self._state()
        if not state.patterns:
            return self.db.execute_sql(sql, params).fetchall()  # type: ignore[no-any-return]
        self._limit_time(state)
        cursor = self.db.execute_sql(sql, params)
        rows = cursor.fetchall()
        self.dialect.check_result(cursor)
        self._end_time_limit(closing=False)
        return rows  # type: ignore[no-any-return]

    def _limit_time(self, state: Transaction) -> None:
        """Put the next statement under the time limit of patterns."""
        state.patterns = False
        if self.dialect.time_limit_ends_with_transaction and not self.db.in_transaction():
            # A read of one statement, whose time limit only lasts in a transaction.
            self.db.begin(*self.dialect.begin_args(False))
            state.peewee = self._push_transaction()
        self.dialect.start_time_limit(self.pattern_timeout)
        state.limited = True

    def _end_time_limit(self, *, closing: bool) -> None:
        """Lift the time limit of patterns, if this transaction set it (``closing``:
        right before it ends, which lifts some databases' limits already)."""
        state = getattr(self._local, "transaction", None)
        if state is None or not state.limited:
            return
        state.limited = False
        if not (closing and self.dialect.time_limit_ends_with_transaction):
            self.dialect.end_time_limit()

"""Relational storage through Peewee (SQLite, PostgreSQL, MariaDB/MySQL).

:class:`PeeweeStorage` maps each collection of a resolved :class:`DataModel` to a
table: scalar fields become columns, a one-to-many or one-to-one relation a
foreign-key column, a many-to-many relation a join table. Every statement goes
through the peewee ``Database`` it was given. The engine decides *what* to read and
write; this module only turns those decisions into SQL.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import operator
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import peewee
from marshmallow import fields as ma
from playhouse.db_url import connect as connect_url
from playhouse.db_url import parse as parse_url
from playhouse.pool import (
    MaxConnectionsExceeded,
    PooledDatabase,
    PooledMySQLDatabase,
    PooledPostgresqlDatabase,
)

from .dialects import Failure, dialect_of
from .exceptions import (
    BadRequest,
    Conflict,
    ConnectionLost,
    DeclarationError,
    PatternTooSlow,
    ReferenceViolation,
    StorageConflict,
    StorageError,
    StorageUnavailable,
)
from .model import Collection, DataModel, RelationInfo
from .query import And, Condition, Node, Not, Or, SortKey, compile_pattern

#: Collection name -> the filter that limits which of its objects a caller sees,
#: for the collections that have one (see :mod:`backo_restful.auth`).
Scopes = Mapping[str, Node]

#: Ids per ``IN (...)`` list: below every backend's limit on bound parameters.
CHUNK = 5000
#: Where the ids go in a statement built once (see PeeweeStorage._by_ids).
_IDS = "(__backo_ids__)"
#: Seconds a statement filtering with ``$re`` may run (``pattern_timeout``).
PATTERN_TIMEOUT = 1.0
#: The pool a PostgreSQL or MariaDB/MySQL URL gets, unless its query string says
#: otherwise: at most 20 connections per process, each replaced after 5 minutes,
#: and a call waits up to 10 s for a free one before it fails (503).
POOL_SETTINGS = {"max_connections": 20, "stale_timeout": 300, "timeout": 10}

_BIGINT_MIN, _BIGINT_MAX = -(2**63), 2**63 - 1


class _SqliteAutoIncrement(peewee.AutoField):
    """SQLite primary key that never reuses the id of a deleted row."""

    def ddl(self, ctx: Any) -> Any:
        return peewee.NodeList((super().ddl(ctx), peewee.SQL("AUTOINCREMENT")))


class _JSONField(peewee.TextField):
    """A marshmallow container field (Dict, List, Nested, ...) stored as JSON text."""

    def db_value(self, value: Any) -> Any:
        return None if value is None else json.dumps(value, separators=(",", ":"))

    def python_value(self, value: Any) -> Any:
        return None if value is None else json.loads(value)


#: Column types whose values every driver gives as the Python value (int, str).
_AS_READ = (
    _SqliteAutoIncrement,
    peewee.BigAutoField,
    peewee.BigIntegerField,
    peewee.ForeignKeyField,
    peewee.TextField,
    peewee.CharField,
)


def _converter(field: peewee.Field) -> Any:
    """What turns a value read from ``field``'s column into its Python value
    (None: the driver gives that already)."""
    return None if type(field) in _AS_READ else field.python_value


class _DateTimeField(peewee.DateTimeField):
    """Stores aware datetimes as naive UTC, so every backend compares them alike."""

    def db_value(self, value: Any) -> Any:
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return super().db_value(value)


class _Transaction:
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


@dataclass(frozen=True, slots=True)
class _Statements:
    """What every read of a collection's rows starts from, written once."""

    #: ``SELECT <every column>`` (as :meth:`PeeweeStorage._columns` names them).
    head: str
    #: `` FROM <table> AS t1``.
    source: str
    #: The row of one id (its one parameter).
    by_id: str
    #: ``SELECT COUNT(*) FROM <table> AS t1`` and ``SELECT 1 FROM <table> AS t1``.
    count_all: str
    count_one: str
    #: The name and converter (None: none needed) of each column of ``head``.
    converters: list[tuple[str, Any]]
    #: The names of those columns when none needs a converter.
    plain: list[str] | None


class PeeweeStorage:
    """Store collections in a relational database through Peewee.

    :param db: a peewee ``Database`` or a URL (``sqlite:///path.db``,
        ``postgresql://user@host/db``, ``mysql://user@host/db``).
    :param pattern_timeout: the seconds a statement that filters with ``$re``
        may run before it is stopped (:class:`PatternTooSlow`).
    :param persistent: keep each thread's connection open from one call to the
        next, instead of opening and closing one per call. The default: yes for
        a SQLite file given by URL, no for a ``Database`` given (used as given).
        A PostgreSQL or MariaDB/MySQL URL gives a pooled database, whose
        connections go back to their pool after each call.
    """

    def __init__(
        self,
        db: peewee.Database | str,
        *,
        pattern_timeout: float = PATTERN_TIMEOUT,
        persistent: bool | None = None,
    ) -> None:
        from_url = isinstance(db, str)
        if isinstance(db, str):
            db = _database_from_url(db)
        if not isinstance(db, peewee.Database):
            raise TypeError("PeeweeStorage takes a peewee Database or a database URL")
        if not pattern_timeout > 0:
            raise DeclarationError("pattern_timeout must be a number of seconds above 0")
        pooled = isinstance(db, PooledDatabase)
        if persistent and pooled:
            raise DeclarationError(
                "a pooled database gives its connections back to the pool after each "
                "call: persistent=True does not apply to it"
            )
        self.db = db
        self.dialect = dialect_of(db)
        self.backend = self.dialect.name
        self.pattern_timeout = float(pattern_timeout)
        self._memory = self.backend == "sqlite" and db.database in ("", ":memory:")
        #: Keep each thread's connection open between calls.
        self._keep = self._memory or (
            persistent if persistent is not None else from_url and not pooled
        )
        #: The statements of each collection built once (see :meth:`_sql`).
        self._statements: dict[str, _Statements] = {}
        #: What a read by ids reads -> its SQL before and after the ids.
        self._id_plans: dict[tuple[Any, ...], tuple[str, str]] = {}
        #: (collection, (column, descending, without NULLS clause)...) -> ORDER BY.
        self._orders: dict[tuple[Any, ...], tuple[str, list[Any]]] = {}
        #: (collection, kind, columns) -> SQL of its INSERT or UPDATE ... RETURNING.
        self._write_plans: dict[tuple[str, str, tuple[str, ...]], tuple[str, list[Any]]] = {}
        # INSERT ... RETURNING gives a written row back in the same statement.
        self._returning = self.dialect.returning
        #: What the transaction of each thread holds (see :meth:`transaction`).
        self._local = threading.local()
        if self._memory and db.thread_safe:
            raise DeclarationError(
                "an in-memory SQLite Database is private to each thread: use the URL "
                "'sqlite:///:memory:', or SqliteDatabase(':memory:', thread_safe=False, "
                "check_same_thread=False)"
            )
        self._serial = threading.RLock() if self._memory else None
        self._schema_lock = threading.Lock()
        self._tables_ready = False
        # A database opened from a URL is ours to tune: WAL lets readers run beside
        # the writer (set once, it stays with the file).
        self._wal = isinstance(db, peewee.SqliteDatabase) and not self._memory and from_url
        self._model: DataModel | None = None
        self._tables: dict[str, Any] = {}
        self._joins: dict[tuple[str, str], Any] = {}
        self._serializers: dict[str, list[tuple[str, Callable[[Any], Any] | None]]] = {}
        self._uniques: dict[str, tuple[Collection, str]] = {}
        #: (table, column) of the foreign keys the database enforces.
        self._enforced: set[tuple[str, str]] = set()
        if self.backend == "sqlite":
            _sqlite_pragmas(db)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"<PeeweeStorage {self.backend} {self.db.database!r}>"

    # -- schema ---------------------------------------------------------------

    def attach(self, model: DataModel) -> None:
        """Build the tables of ``model`` (created in the database on first use).

        :raises DeclarationError: for a field type that cannot be stored.
        """
        if self._model is not None and self._model is not model:
            raise DeclarationError("this storage already serves another data model")
        self._model = model
        base = type(
            "BackoBase",
            (peewee.Model,),
            {"Meta": type("Meta", (), {"database": self.db, "legacy_table_names": False})},
        )
        tables: dict[str, Any] = {}
        for collection in model.collections.values():
            tables[collection.name] = self._build_table(base, collection)
        for collection in model.collections.values():
            for relation in collection.relations.values():
                if relation.storage == "fk_here":
                    self._add_foreign_key(tables, relation)
        joins: dict[tuple[str, str], Any] = {}
        for collection in model.collections.values():
            for relation in collection.relations.values():
                if relation.storage == "m2m":
                    join = joins.get((relation.reverse.collection.name, relation.reverse.name))
                    if join is None:
                        join = self._build_join(base, tables, relation)
                    joins[(collection.name, relation.name)] = join
        self._tables = tables
        self._joins = joins
        self._serializers = {
            c.name: [(name, _serializer(field)) for name, field in c.scalars.items()]
            for c in model.collections.values()
        }
        self._uniques = self._unique_keys(model)

    def _unique_keys(self, model: DataModel) -> dict[str, tuple[Collection, str]]:
        """Each unique index, by every name a database gives it in an error (its
        name, cut to PostgreSQL's 63 characters, and ``table.column``) -> its
        collection and field."""
        keys: dict[str, tuple[Collection, str]] = {}
        for collection in model.collections.values():
            table = self.table(collection)
            for index in table._meta.fields_to_index():
                columns = [f for f in index._expressions if isinstance(f, peewee.Field)]
                if not index._unique or len(columns) != 1:
                    continue
                (field,) = columns
                name = _field_name(field.name)
                for key in (
                    index._name,
                    index._name[:63],
                    f"{table._meta.table_name}.{field.column_name}",
                ):
                    keys[key] = (collection, name)
        return keys

    def _build_table(self, base: type[peewee.Model], collection: Collection) -> Any:
        if self.backend == "sqlite":
            primary_key: peewee.Field = _SqliteAutoIncrement()
        else:
            primary_key = peewee.BigAutoField()
        attrs: dict[str, Any] = {"id": primary_key}
        for name, field in collection.scalars.items():
            attrs[_attr(name)] = self._column(collection, name, field)
        meta: dict[str, Any] = {"table_name": collection.name}
        if self.backend == "postgresql":
            # An index ends with the id, so it serves a sort on its field *and* the
            # id tie-breaker. SQLite's and InnoDB's indexes end with it already.
            meta["indexes"] = [
                ((_attr(name), "id"), False)
                for name, field in collection.scalars.items()
                if field.metadata.get("index") and not field.metadata.get("unique")
            ]
        attrs["Meta"] = type("Meta", (), meta)
        return type(f"Table_{collection.name}", (base,), attrs)

    def _column(self, collection: Collection, name: str, field: ma.Field) -> peewee.Field:
        options: dict[str, Any] = {"null": True, "column_name": name}
        mysql = self.backend == "mysql"
        column: peewee.Field
        if isinstance(field, (ma.Dict, ma.List, ma.Tuple, ma.Nested, ma.Enum, ma.Raw)):
            column = _JSONField(**options)
        elif isinstance(field, ma.UUID):
            column = peewee.UUIDField(**options)
        elif isinstance(field, ma.String) and name in collection.key_lengths:
            column = peewee.CharField(max_length=collection.key_lengths[name], **options)
        elif isinstance(field, ma.String):
            column = peewee.TextField(**options)
        elif isinstance(field, ma.Boolean):
            column = peewee.BooleanField(**options)
        elif isinstance(field, ma.Integer):
            column = peewee.BigIntegerField(**options)
        elif isinstance(field, ma.Float):
            column = peewee.DoubleField(**options)
        elif isinstance(field, ma.DateTime):
            column = _DateTimeField(**options)
        elif isinstance(field, ma.Date):
            column = peewee.DateField(**options)
        elif isinstance(field, ma.Time):
            column = peewee.TimeField(**options)
        else:
            raise DeclarationError(
                f"fields.{type(field).__name__} cannot be stored yet "
                "(supported: String, Email, Url, UUID, Integer, Float, Boolean, DateTime, "
                "Date, Time, Dict, List, Tuple, Nested, Enum, Raw)",
                collection=collection.name,
                field=name,
            )
        column.index = (
            bool(field.metadata.get("index"))
            and not field.metadata.get("unique")
            and self.backend != "postgresql"  # there, a (column, id) index: _build_table
        )
        column.unique = bool(field.metadata.get("unique"))
        if self.backend == "postgresql" and isinstance(column, peewee.TextField | peewee.CharField):
            # Byte order, as on SQLite and MariaDB, whatever the database's locale.
            column.collation = '"C"'
        if mysql:
            # MySQL's TEXT holds 64 KiB and its DATETIME drops microseconds.
            mysql_types = {"TEXT": "LONGTEXT", "DATETIME": "DATETIME(6)", "TIME": "TIME(6)"}
            column.field_type = mysql_types.get(column.field_type, column.field_type)  # type: ignore[misc]
        return column

    def _add_foreign_key(self, tables: dict[str, Any], relation: RelationInfo) -> None:
        table = tables[relation.collection.name]
        column_name = f"{relation.name}_id"
        if column_name in table._meta.columns:
            raise DeclarationError(
                f"column {column_name!r} is needed for the relation {relation.name!r} "
                "but a scalar field already uses it",
                collection=relation.collection.name,
                field=relation.name,
            )
        foreign_key = _foreign_key(
            tables[relation.target.name],
            column_name=column_name,
            null=not relation.required,
            unique=not relation.reverse.multi,
            backref="+",
            lazy_load=False,
            # SQLite accepts references to tables not created yet; the others get
            # their constraints added once every table exists.
            _deferred=self.backend != "sqlite",
        )
        table._meta.add_field(_attr(relation.name), foreign_key)

    def _build_join(
        self,
        base: type[peewee.Model],
        tables: dict[str, Any],
        relation: RelationInfo,
    ) -> Any:
        # Name the join table and its columns after both sides, in a stable order.
        first, second = sorted(
            (relation, relation.reverse), key=lambda r: (r.collection.name, r.name)
        )
        name = _identifier(
            f"{first.collection.name}_{first.name}__{second.collection.name}_{second.name}"
        )
        deferred = self.backend != "sqlite"
        attrs: dict[str, Any] = {
            "left": _foreign_key(
                tables[first.collection.name],
                column_name=_identifier(f"{first.collection.name}_{first.name}"),
                backref="+",
                lazy_load=False,
                on_delete="CASCADE",
                _deferred=deferred,
            ),
            "right": _foreign_key(
                tables[second.collection.name],
                column_name=_identifier(f"{second.collection.name}_{second.name}"),
                backref="+",
                lazy_load=False,
                on_delete="CASCADE",
                _deferred=deferred,
            ),
            "Meta": type(
                "Meta",
                (),
                {
                    "table_name": name,
                    "primary_key": peewee.CompositeKey("left", "right"),
                },
            ),
        }
        join = type(f"Join_{name}", (base,), attrs)
        join._backo_sides = (first, second)  # type: ignore[attr-defined]
        return join

    def _join_columns(self, relation: RelationInfo) -> tuple[peewee.Field, peewee.Field]:
        """The join table's (this side, other side) columns for ``relation``."""
        join = self._joins[(relation.collection.name, relation.name)]
        first = join._backo_sides[0]  # type: ignore[attr-defined]
        if (first.collection.name, first.name) == (relation.collection.name, relation.name):
            return join.left, join.right
        return join.right, join.left

    def _ensure_tables(self) -> None:
        if self._tables_ready:
            return
        with self._schema_lock:
            if self._tables_ready:
                return
            if self._model is None:
                raise StorageError(message="The storage is not attached to a data model.")
            with self._connection():
                if self._wal:
                    self.db.execute_sql("PRAGMA journal_mode = wal")
                existing = set(self.db.get_tables())
                models = list(self._tables.values()) + list(dict.fromkeys(self._joins.values()))
                created = [m for m in models if m._meta.table_name not in existing]
                settings = self.dialect.table_settings()
                for table in created:
                    table._meta.table_settings = settings
                    table.create_table(safe=True)
                if self.backend != "sqlite":
                    for table in created:
                        for field in table._meta.refs:
                            table._schema.create_foreign_key(field)
                self._enforced = self._foreign_keys([m for m in models if m not in created])
                for table in created:
                    for field in table._meta.refs:
                        self._enforced.add((table._meta.table_name, field.column_name))
            self._tables_ready = True

    def _foreign_keys(self, tables: list[Any]) -> set[tuple[str, str]]:
        """``(table, column)`` of the foreign keys the database enforces on
        ``tables`` (which it made before this storage)."""
        enforced = set()
        for table in tables:
            name = table._meta.table_name
            targets = {field.column_name: field.rel_model for field in table._meta.refs}
            for key in self.db.get_foreign_keys(name):
                target = targets.get(key.column)
                if target is not None and key.dest_table == target._meta.table_name:
                    enforced.add((name, key.column))
        return enforced

    def enforces(self, relation: RelationInfo) -> bool:
        """Whether the database's foreign key checks the links of ``relation``
        (an ``fk_here`` relation): a row cannot link to an object that does not
        exist."""
        table = self.table(relation.collection)
        column = self.column(relation.collection, relation.name).column_name
        return (table._meta.table_name, column) in self._enforced

    def drop_tables(self) -> None:
        """Drop every table of the model (for tests and scripts)."""
        with self._connection():
            models = list(self._tables.values()) + list(dict.fromkeys(self._joins.values()))
            if self.backend == "postgresql":
                for table in models:
                    self.db.execute_sql(f'DROP TABLE IF EXISTS "{table._meta.table_name}" CASCADE')
            elif self.backend == "mysql":
                # Tables may reference each other in a cycle: drop them unchecked.
                self.db.execute_sql("SET FOREIGN_KEY_CHECKS = 0")
                try:
                    self.db.drop_tables(models, safe=True)
                finally:
                    self.db.execute_sql("SET FOREIGN_KEY_CHECKS = 1")
            else:
                self.db.drop_tables(models, safe=True)
        self._tables_ready = False

    # -- connections and transactions -----------------------------------------

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
            self._local.transaction = _Transaction()
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
        _functions.too_costly = False
        if not snapshot:
            self._local.transaction = _Transaction()
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
        self._local.transaction = _Transaction(self._push_transaction())
        return opened

    def _push_transaction(self) -> Any:
        transaction = self.db.transaction()
        self.db.push_transaction(transaction)
        return transaction

    def _state(self) -> _Transaction:
        """What this thread's transaction holds (a throwaway outside of one)."""
        state = getattr(self._local, "transaction", None)
        return _Transaction() if state is None else state

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
        elif isinstance(exc, peewee.PeeweeException) and self.dialect.failure(exc) is Failure.LOST:
            self._discard()
        else:
            try:
                self._end_time_limit(closing=False)
            except Exception:  # the connection failed on its way out: never use it again
                self._discard()
        if error is exc:
            raise exc
        raise error from exc

    def _rollback(self, exc: BaseException) -> None:
        if isinstance(exc, peewee.PeeweeException) and self.dialect.failure(exc) is Failure.LOST:
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
        reason = _reason(exc)
        if failure is Failure.CONFLICT:
            return StorageConflict(reason)
        if failure is Failure.PATTERN:
            return PatternTooSlow(limit="the database's regular expression limits")
        if failure is Failure.BAD_PATTERN:
            message = "The database could not read the $re pattern."
            return BadRequest(message, code="INVALID_PATTERN")
        if getattr(_functions, "too_costly", False):
            _functions.too_costly = False
            return PatternTooSlow(limit="the matching work allowed per value")
        if failure is Failure.TIMEOUT and self._state().limited:
            return PatternTooSlow(limit=f"{self.pattern_timeout:g} s")
        if failure is Failure.LOST:
            return ConnectionLost(reason)
        if failure is not None or isinstance(exc, peewee.OperationalError):
            return StorageUnavailable(reason)
        if isinstance(exc, peewee.IntegrityError):
            unique = self._uniques.get(self.dialect.unique_key(exc) or "")
            if unique is not None:
                # Another write gave the value first, since the engine checked it.
                collection, name = unique
                key = collection.external_name(name)
                return Conflict(
                    f"Another {collection.name} already has this {key}: it must be unique.",
                    {"collection": collection.name, "field": key},
                    code="UNIQUE_VIOLATION",
                )
            if self.dialect.missing_reference(exc):
                return ReferenceViolation()
            return Conflict(
                "The change violates a constraint of the database.", code="CONSTRAINT_VIOLATION"
            )
        if isinstance(exc, peewee.DataError):
            return BadRequest("A value does not fit its database column.", code="INVALID_VALUE")
        return StorageError(reason)

    # -- locks and time limits ------------------------------------------------

    @property
    def row_locks(self) -> bool:
        """Whether writes lock rows (SQLite lets one writer in at a time instead)."""
        return self.dialect.row_locks

    def lock_in_order(self, wanted: Mapping[Collection, Iterable[int]]) -> None:
        """Lock the rows ``wanted`` in one global order: collection by collection
        in name order, each by id.

        Every write locks what its request names this way before anything else, so
        two writes never wait for each other in opposite orders (a deadlock). Rows
        locked later in the transaction are locked without waiting (see
        :meth:`lock`).
        """
        state = self._state()
        plan = {collection.name: (collection, set(ids)) for collection, ids in wanted.items()}
        for name, ids in state.expected.items():
            plan.setdefault(name, (self._model.collections[name], set()))[1].update(ids)  # type: ignore[union-attr]
        for name in sorted(plan):
            self.lock(*plan[name])
        state.ordered = True

    def expect(self, rows: Mapping[str, Iterable[int]]) -> None:
        """Have this transaction lock ``rows`` (collection name -> ids) in order
        with what its request names (see :meth:`lock_in_order`): rows an earlier
        attempt of the same write could not lock without waiting."""
        expected = self._state().expected
        for name, ids in rows.items():
            expected.setdefault(name, set()).update(ids)

    def lock(self, collection: Collection, ids: Iterable[int]) -> set[int]:
        """Lock rows ``ids`` until the transaction ends; return those that exist.

        Rows this transaction holds are not asked for again. After
        :meth:`lock_in_order`, a row another transaction holds is not waited for:
        waiting out of the global order could deadlock, so the transaction is
        aborted as a :class:`StorageConflict` instead, for the engine to run again.
        On SQLite, whose writers run one at a time, this only tells which exist.
        """
        state = self._state()
        held = state.held.setdefault(collection.name, set())
        wanted = set(ids)
        todo = sorted(wanted - held)
        if todo:
            table = self.table(collection)
            for chunk in _chunks(todo):
                query = table.select(table.id).where(table.id.in_(chunk)).order_by(table.id)
                if self.row_locks:
                    query = query.for_update(nowait=state.ordered or None)
                try:
                    held.update(row for (row,) in query.tuples())
                except peewee.PeeweeException as exc:
                    if not state.ordered or self.dialect.failure(exc) is not Failure.CONFLICT:
                        raise
                    # Busy: the write runs again, locking these in order first.
                    raise StorageConflict(_reason(exc), rows={collection.name: set(todo)}) from exc
        return wanted & held

    def _locked(self, collection: Collection, ids: Iterable[int]) -> None:
        """Make sure the rows a write changes are locked (without waiting, once the
        write's own rows are: see :meth:`lock`)."""
        if self.row_locks:
            self.lock(collection, ids)

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

    def _limit_time(self, state: _Transaction) -> None:
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

    # -- reading --------------------------------------------------------------

    def table(self, collection: Collection) -> Any:
        return self._tables[collection.name]

    def column(self, collection: Collection, name: str) -> Any:
        """The peewee field storing field ``name`` (or ``"id"``) of ``collection``."""
        table = self.table(collection)
        return table.id if name == "id" else table._meta.fields[_attr(name)]

    def _by_column(self, collection: Collection, values: dict[str, Any]) -> dict[Any, Any]:
        return {self.column(collection, name): value for name, value in values.items()}

    def _columns(self, collection: Collection) -> list[peewee.Field]:
        table = self.table(collection)
        # Select every column under its field's name (model attributes are prefixed).
        # Columns the driver reads as their Python value need no converter.
        return [
            (field if _converter(field) else field.coerce(False)).alias(_field_name(name))
            for name, field in table._meta.fields.items()
        ]

    def select(
        self,
        collection: Collection,
        where: Node | None = None,
        sort: Sequence[SortKey] = (),
        limit: int | None = None,
        offset: int | None = None,
        *,
        after: Sequence[Any] | None = None,
        reverse: bool = False,
        scope: Node | None = None,
        scopes: Scopes | None = None,
    ) -> list[dict[str, Any]]:
        """Rows of ``collection`` matching ``where``, in ``sort`` order then by id.

        Each row also holds the values of sort keys read through joins, under the
        names :meth:`sort_row_keys` gives. ``after`` takes a row's sort-key values
        (the id last): the rows strictly after that position (keyset paging).
        ``reverse`` reads the same order backwards. ``scope`` is the caller's
        scope of ``collection`` (a trusted filter, whose own paths see every
        object); ``scopes`` limits the related objects that paths in ``where`` and
        the sort see (see :data:`Scopes`).
        """
        return self._select(
            collection, where, sort, limit, offset, after, reverse, scope, scopes, None
        )[0]

    def select_counted(
        self,
        collection: Collection,
        where: Node | None = None,
        sort: Sequence[SortKey] = (),
        limit: int | None = None,
        offset: int | None = None,
        *,
        after: Sequence[Any] | None = None,
        reverse: bool = False,
        scope: Node | None = None,
        scopes: Scopes | None = None,
        count_limit: int | None = None,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """:meth:`select`, and :meth:`count` of every match of ``where`` and
        ``scope`` (``count_limit``: the count's ``limit``; None counts them all).

        The count rides in the same statement as the page where the page reads
        the collection's table alone: one snapshot, no transaction needed. It is
        None when the page came back empty (no row to carry it).
        """
        return self._select(
            collection, where, sort, limit, offset, after, reverse, scope, scopes, (count_limit,)
        )

    def _select(
        self,
        collection: Collection,
        where: Node | None,
        sort: Sequence[SortKey],
        limit: int | None,
        offset: int | None,
        after: Sequence[Any] | None,
        reverse: bool,
        scope: Node | None,
        scopes: Scopes | None,
        counting: tuple[int | None] | None,
    ) -> tuple[list[dict[str, Any]], int | None]:
        table = self.table(collection)
        joins, keys = self._sort_keys(collection, sort, scopes)
        # Columns the filter proves non-null need no NULLS clause: an index on the
        # column then serves the whole order, and a cursor's position seeks it.
        proven = [self.column(collection, name) for name in _non_null(where)]
        non_null = [expr is table.id or any(expr is c for c in proven) for expr, _ in keys]
        plain = [self.backend == "postgresql" or known for known in non_null]
        if reverse:
            keys = [(expr, not descending) for expr, descending in keys]
        if not joins:
            return self._select_rows(
                collection, where, scope, scopes, after, keys, non_null, plain, limit, offset,
                counting,
            )  # fmt: skip
        query = table.select(*self._columns(collection))
        for source, alias, on in joins:
            query = query.join_from(source, alias, peewee.JOIN.LEFT_OUTER, on=on)
        joined = [
            expr.alias(name)
            for name, (expr, _) in zip(self.sort_row_keys(sort, scopes), keys, strict=True)
            if name.startswith("_k")
        ]
        if joined:
            query = query.select_extend(*joined)
        conditions = self._conditions(collection, where, scope, scopes)
        if after is not None:
            conditions.append(_after(keys, after, non_null))
        if conditions:
            query = query.where(*conditions)
        query = query.order_by(*_order_by(keys, plain))
        if limit is not None:
            query = query.limit(limit)
        if offset:
            if limit is None and self.backend == "mysql":
                query = query.limit(_BIGINT_MAX)  # MySQL has no OFFSET without LIMIT
            query = query.offset(offset)
        rows = self._run(query.dicts())
        if counting is None:
            return rows, None
        (count_limit,) = counting
        return rows, self.count(collection, where, limit=count_limit, scope=scope, scopes=scopes)

    def _select_rows(
        self,
        collection: Collection,
        where: Node | None,
        scope: Node | None,
        scopes: Scopes | None,
        after: Sequence[Any] | None,
        keys: list[tuple[Any, bool]],
        non_null: list[bool],
        plain: list[bool],
        limit: int | None,
        offset: int | None,
        counting: tuple[int | None] | None,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """:meth:`_select` of a statement on the collection's table alone, with
        the count as one more column when ``counting``: put together from the
        SQL of :meth:`_sql` and an ``ORDER BY`` built once per sort, around the
        filter's."""
        shape = (collection.name, *((e.name, d, b) for (e, d), b in zip(keys, plain, strict=True)))
        order = self._orders.get(shape)
        if order is None:
            ctx = self._context(collection)
            ctx.literal(" ORDER BY ").sql(peewee.CommaNodeList(_order_by(keys, plain)))
            order = self._orders[shape] = ctx.query()
        sql, params = self._filtered(collection, where, scope, scopes)
        statements = self._sql(collection)
        head = statements.head
        if counting is not None:
            total_sql, total_params = self._count_sql(collection, sql, params, counting[0])
            head = f"{head}, ({total_sql}) AS _total"
            params = total_params + params
        ctx = self._context(collection)
        if after is not None:
            ctx.literal(" AND " if sql else " WHERE ").sql(_after(keys, after, non_null))
        ctx.literal(order[0])
        if limit is None and offset and self.db.limit_max is not None:
            limit = self.db.limit_max  # no OFFSET without LIMIT (SQLite, MySQL)
        if limit is not None:
            ctx.literal(f" LIMIT {int(limit)}")
        if offset:
            ctx.literal(f" OFFSET {int(offset)}")
        rest, more = ctx.query()
        rows = self._execute(head + statements.source + sql + rest, params + more + order[1])
        # (The count, when asked, is the last column: _dicts leaves it out.)
        total = None if counting is None or not rows else int(rows[0][-1] or 0)
        return self._dicts(collection, rows), total

    def _context(self, collection: Collection) -> Any:
        """A context to write SQL in, where the collection's table is ``t1`` as
        in the statements of :meth:`_sql`."""
        ctx = self.db.get_sql_context()
        ctx.alias_manager[self.table(collection)._meta.table]  # the first table seen: t1
        # As inside a SELECT: a subquery in the filter is written in parentheses.
        ctx.scope_normal(
            converter=None, in_expr=False, in_function=False, in_projection=False,
            bare_subquery=False, subquery=True,
        )  # fmt: skip
        return ctx

    def _sql(self, collection: Collection) -> _Statements:
        """The statements every read of ``collection`` starts from."""
        statements = self._statements.get(collection.name)
        if statements is None:
            table = self.table(collection)
            rows = table.select(*self._columns(collection))
            select = rows.sql()[0]
            cut = select.rindex(" FROM ")
            converters = [
                (_field_name(name), _converter(field)) for name, field in table._meta.fields.items()
            ]
            plain = all(read is None for _, read in converters)
            statements = self._statements[collection.name] = _Statements(
                head=select[:cut],
                source=select[cut:],
                by_id=rows.where(table.id == 0).sql()[0],
                count_all=table.select(peewee.fn.COUNT(peewee.SQL("*"))).sql()[0],
                count_one=table.select(peewee.SQL("1")).sql()[0],
                converters=converters,
                plain=[name for name, _ in converters] if plain else None,
            )
        return statements

    def _filtered(
        self, collection: Collection, where: Node | None, scope: Node | None, scopes: Scopes | None
    ) -> tuple[str, list[Any]]:
        """`` WHERE ...`` (or nothing) of ``where`` and ``scope``, as SQL and its
        parameters."""
        conditions = self._conditions(collection, where, scope, scopes)
        if not conditions:
            return "", []
        ctx = self._context(collection)
        ctx.literal(" WHERE ").sql(functools.reduce(operator.and_, conditions))
        sql, params = ctx.query()
        return sql, list(params)

    def _conditions(
        self, collection: Collection, where: Node | None, scope: Node | None, scopes: Scopes | None
    ) -> list[Any]:
        conditions = []
        if where is not None:
            conditions.append(self._where(collection, where, scopes))
        if scope is not None:
            conditions.append(self._where(collection, scope))
        return conditions

    @staticmethod
    def sort_row_keys(sort: Sequence[SortKey], scopes: Scopes | None = None) -> list[str]:
        """Where a row of :meth:`select` holds each sort-key value (the id last)."""
        names = []
        for index, key in enumerate(sort):
            steps = key.path.steps
            if not steps:
                names.append(key.path.field)
            elif _key_column(key, scopes):
                names.append(steps[0].name)  # the key column, selected already
            else:
                names.append(f"_k{index}")
        if not any(k.path.field == "id" and not k.path.steps for k in sort):
            names.append("id")
        return names

    def count(
        self,
        collection: Collection,
        where: Node | None = None,
        *,
        limit: int | None = None,
        scope: Node | None = None,
        scopes: Scopes | None = None,
    ) -> int:
        """How many rows of ``collection`` match ``where``.

        With ``limit``, the database stops after ``limit + 1`` rows: the result is
        exact up to ``limit``, and ``limit + 1`` means "more than ``limit``".
        """
        sql, params = self._filtered(collection, where, scope, scopes)
        ((total,),) = self._execute(*self._count_sql(collection, sql, params, limit))
        return int(total or 0)

    def _count_sql(
        self, collection: Collection, where: str, params: list[Any], limit: int | None
    ) -> tuple[str, list[Any]]:
        """The statement of :meth:`count` on the filter ``where`` (SQL, as
        :meth:`_filtered` writes it) and its parameters.

        Without a filter, where the database counts a whole table fast (SQLite,
        from the pages of its smallest index: 10 000 rows in a few microseconds,
        where counting them one by one takes a few hundred), a table whose ids
        (which its rows never outnumber) stay within ``limit`` is counted whole.
        """
        statements = self._sql(collection)
        if limit is None:
            return statements.count_all + where, list(params)
        bounded = (
            f"SELECT COUNT(*) FROM ({statements.count_one}{where} LIMIT {int(limit) + 1}) AS _rows"
        )
        if where or not self.dialect.fast_table_count:
            return bounded, list(params)
        name = self.table(collection)._meta.table_name
        return (
            f'SELECT CASE WHEN (SELECT COALESCE(MAX("id"), 0) FROM "{name}") <= {int(limit)} '
            f'THEN (SELECT COUNT(*) FROM "{name}") ELSE ({bounded}) END',
            [],
        )

    def estimate(
        self,
        collection: Collection,
        where: Node | None = None,
        scope: Node | None = None,
        scopes: Scopes | None = None,
    ) -> int | None:
        """The database's own estimate of :meth:`count`, or None where it has none."""
        table = self.table(collection)
        name = table._meta.table_name
        conditions = self._conditions(collection, where, scope, scopes)
        if self.backend == "postgresql":
            if not conditions:
                cursor = self.db.execute_sql(
                    "SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)", (f'"{name}"',)
                )
                (tuples,) = cursor.fetchone() or (None,)
                if tuples is None or tuples < 0:
                    return None  # never analyzed: the planner's guess means nothing
                return int(tuples)
            query = table.select(table.id).where(*conditions)
            sql, params = query.sql()
            (plan,) = self.db.execute_sql("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()
            plan = json.loads(plan) if isinstance(plan, str) else plan
            return int(plan[0]["Plan"]["Plan Rows"])
        if self.backend == "mysql" and not conditions:
            cursor = self.db.execute_sql(
                "SELECT TABLE_ROWS FROM information_schema.TABLES "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
                (name,),
            )
            row = cursor.fetchone()
            return None if row is None or row[0] is None else int(row[0])
        return None

    def _sort_keys(
        self, collection: Collection, sort: Sequence[SortKey], scopes: Scopes | None
    ) -> tuple[list[tuple[Any, Any, Any]], list[tuple[Any, bool]]]:
        """The joins ``sort`` needs (``(source, alias, on)``, for ``join_from``),
        and its ``(expression, descending)`` keys, the id last. Paths through a
        ``Ref`` are LEFT JOINs; a related object outside its scope joins as none."""
        table = self.table(collection)
        joined: dict[tuple[str, ...], Any] = {}
        joins: list[tuple[Any, Any, Any]] = []
        keys: list[tuple[Any, bool]] = []
        for key in sort:
            source: Any = table
            prefix: tuple[str, ...] = ()
            steps = key.path.steps
            last: RelationInfo | None = None
            if (
                key.path.field == "id"
                and steps
                and steps[-1].storage == "fk_here"
                and _scope_of(steps[-1].target, scopes) is None
            ):
                last, steps = steps[-1], steps[:-1]  # sort on the key column, no join
            for step in steps:
                prefix += (step.name,)
                alias = joined.get(prefix)
                if alias is None:
                    alias = self.table(step.target).alias(f"j{len(joined)}")
                    if step.storage == "fk_here":
                        on = getattr(source, _attr(step.name)) == alias.id
                    else:  # one-to-one, the key is in the target's table
                        on = getattr(alias, _attr(step.reverse.name)) == source.id
                    visible = self._visible(step.target, scopes)
                    if visible is not None:
                        on = on & alias.id.in_(visible)
                    joins.append((source, alias, on))
                    joined[prefix] = alias
                source = alias
            if last is not None:
                column = getattr(source, _attr(last.name))
            elif key.path.field == "id":
                column = source.id
            else:
                column = getattr(source, _attr(key.path.field))
            keys.append((column, key.descending))
        if not any(k.path.field == "id" and not k.path.steps for k in sort):
            # The id breaks ties in the direction of the last key, so that an index
            # on that key (which ends with the id) serves the whole order.
            keys.append((table.id, bool(sort) and sort[-1].descending))
        return joins, keys

    def _where(
        self,
        collection: Collection,
        node: Node,
        scopes: Scopes | None = None,
        negated: bool = False,
    ) -> Any:
        """The SQL condition of a filter tree.

        Under an odd number of ``Not`` every leaf is made two-valued (``x IS NOT
        NULL AND ...``), so that a null value or a missing related object matches
        the complement; elsewhere SQL's own null handling already gives that.
        """
        if isinstance(node, And | Or):
            parts = [self._where(collection, n, scopes, negated) for n in node.nodes]
            if len(parts) == 1:
                return parts[0]
            if not parts:
                return peewee.SQL("1 = 1" if isinstance(node, And) else "1 = 0")
            # One flat list, not a nest of pairs: SQLite's parser has a small stack.
            glue = " AND " if isinstance(node, And) else " OR "
            return peewee.NodeList(parts, glue=glue, parens=True)
        if isinstance(node, Not):
            return ~self._where(collection, node.node, scopes, not negated)
        return self._through(collection, node.path.steps, node, negated, scopes)

    def _visible(self, collection: Collection, scopes: Scopes | None) -> Any:
        """The ids of ``collection`` its scope lets through (a subquery), or None
        when it has no scope."""
        scope = _scope_of(collection, scopes)
        if scope is None:
            return None
        table = self.table(collection)
        return table.select(table.id).where(self._where(collection, scope))

    def _through(
        self,
        collection: Collection,
        steps: tuple[RelationInfo, ...],
        node: Condition,
        guard: bool,
        scopes: Scopes | None = None,
        source: Any = None,
    ) -> Any:
        """``node`` on ``collection`` when its path still has ``steps`` to go: semi-joins.

        ``source`` is the table (or the alias of it) the condition tests. A related
        object outside its scope (``scopes``) is no related object.
        """
        source = self.table(collection) if source is None else source
        if not steps:
            if node.path.field == "id":
                return self._leaf(source.id, node, guard=False)
            return self._leaf(getattr(source, _attr(node.path.field)), node, guard=guard)
        if len(steps) > 1:
            return self._chain(steps, node, guard, scopes, source)
        (step,) = steps
        target = self.table(step.target)
        at_id = node.path.field == "id"
        if at_id and node.op == "isnull" and step.storage != "fk_here":
            # A to-many relation is null when it holds no (visible) object.
            some = Condition(node.path, "notnull", None)
            return ~self._through(collection, steps, some, False, scopes, source)
        scope = _scope_of(step.target, scopes)

        def within(inner: Any) -> Any:
            return inner if scope is None else inner & self._where(step.target, scope)

        if step.storage == "fk_here":
            fk = getattr(source, _attr(step.name))
            if at_id and scope is None:
                return self._leaf(fk, node, guard=guard)
            if at_id and node.op == "isnull":
                # No related object, or one the caller cannot see.
                return fk.is_null() | ~fk.in_(self._visible(step.target, scopes))
            # Inside the subquery, null means "no match": SQL's own rule is right there.
            inner = self._through(step.target, (), node, False, scopes)
            linked = fk.in_(target.select(target.id).where(within(inner)))
            return (fk.is_null(False) & linked) if guard else linked
        if step.storage == "fk_there":
            back = self.column(step.target, step.reverse.name)
            inner = within(self._through(step.target, (), node, False, scopes))
            return source.id.in_(target.select(back).where(back.is_null(False) & inner))
        mine, theirs = self._join_columns(step)
        if at_id and scope is None:
            query = mine.model.select(mine).where(self._leaf(theirs, node, guard=False))
            return source.id.in_(query)
        inner = within(self._through(step.target, (), node, False, scopes))
        links = mine.model.select(mine).join(target, on=(theirs == target.id)).where(inner)
        return source.id.in_(links)

    def _chain(
        self,
        steps: tuple[RelationInfo, ...],
        node: Condition,
        guard: bool,
        scopes: Scopes | None,
        source: Any,
    ) -> Any:
        """A path of several steps: one subquery joins the tables of every step but
        the last, whose condition is tested on the last table joined.

        One subquery per step would nest as deep as the path is long, and SQLite's
        parser overflows its stack on long paths inside nested groups.
        """
        tables = [self.table(step.target).alias(f"_p{n}") for n, step in enumerate(steps[:-1])]
        first = steps[0]
        conditions = []
        if first.storage == "fk_here":
            outer, key = getattr(source, _attr(first.name)), tables[0].id
            query = tables[0].select(key)
        elif first.storage == "fk_there":
            outer, key = source.id, getattr(tables[0], _attr(first.reverse.name))
            query = tables[0].select(key)
            conditions.append(key.is_null(False))
        else:
            link = self._join_alias(first, 0)
            outer, key = source.id, link[0]
            query = link[0].model.select(key).join(tables[0], on=(link[1] == tables[0].id))
        for n, step in enumerate(steps[1:-1], start=1):
            previous, here = tables[n - 1], tables[n]
            if step.storage == "fk_here":
                on = getattr(previous, _attr(step.name)) == here.id
                query = query.join_from(previous, here, on=on)
            elif step.storage == "fk_there":
                on = getattr(here, _attr(step.reverse.name)) == previous.id
                query = query.join_from(previous, here, on=on)
            else:
                mine, theirs = self._join_alias(step, n)
                query = query.join_from(previous, mine.model, on=(mine == previous.id))
                query = query.join_from(mine.model, here, on=(theirs == here.id))
        for step, table in zip(steps[:-1], tables, strict=True):
            visible = self._visible(step.target, scopes)
            if visible is not None:
                conditions.append(table.id.in_(visible))
        last = self._through(steps[-2].target, steps[-1:], node, False, scopes, tables[-1])
        linked = outer.in_(query.where(*conditions, last))
        return (outer.is_null(False) & linked) if guard and first.storage == "fk_here" else linked

    def _join_alias(self, relation: RelationInfo, number: int) -> tuple[Any, Any]:
        """The (this side, other side) columns of an alias of ``relation``'s join table."""
        mine, theirs = self._join_columns(relation)
        alias = mine.model.alias(f"_l{number}")
        return getattr(alias, mine.name), getattr(alias, theirs.name)

    def _leaf(self, column: Any, node: Condition, guard: bool) -> Any:
        op, value = node.op, node.value
        if op == "notnull":
            return column.is_null(False)
        if op == "isnull":
            return column.is_null()
        if op == "in":
            if not value:
                return peewee.SQL("1 = 0")
            expression = column.in_([column.db_value(v) for v in value])
        elif op in _COMPARISONS:
            expression = _COMPARISONS[op](column, column.db_value(value))
        elif op == "contains":
            expression = self.dialect.position(column, value) > 0
        elif op == "icontains":
            lower = self.dialect.lower
            expression = self.dialect.position(lower(column), lower(peewee.Value(value))) > 0
        elif op == "startswith":
            expression = peewee.fn.SUBSTR(column, 1, len(value)) == value
        elif op == "re":
            self._state().patterns = True
            expression = self.dialect.regexp(column, value)
        else:
            raise AssertionError(f"unknown operator {op}")
        return (column.is_null(False) & expression) if guard else expression

    def fetch_one(self, collection: Collection, id_: int) -> dict[str, Any] | None:
        """The row of ``collection`` with this id, or None.

        The most frequent read: its SQL is built once per collection, and its
        values converted as :meth:`fetch` converts them.
        """
        row = self.db.execute_sql(self._sql(collection).by_id, (id_,)).fetchone()
        return None if row is None else self._dicts(collection, [row])[0]

    def fetch(
        self,
        collection: Collection,
        ids: Iterable[int],
        *,
        limit: int | None = None,
        scope: Node | None = None,
    ) -> list[dict[str, Any]]:
        """Rows of ``collection`` with these ids, by id (at most ``limit`` of them;
        only those matching ``scope``)."""
        table = self.table(collection)
        rows: list[dict[str, Any]] = []
        for chunk in _chunks(sorted(set(ids))):

            def query(ids: Any) -> Any:
                query = table.select(*self._columns(collection)).where(table.id.in_(ids))
                if scope is not None:
                    query = query.where(self._where(collection, scope))
                return query.order_by(table.id)

            key = ("fetch", collection.name)
            found = self._by_ids(
                key, query, chunk, scope, None if limit is None else limit - len(rows)
            )
            rows.extend(self._dicts(collection, found))
            if limit is not None and len(rows) >= limit:
                break
        return rows

    def _by_ids(
        self,
        key: tuple[Any, ...],
        build: Callable[[Any], Any],
        ids: Sequence[int],
        scope: Node | None,
        limit: int | None,
    ) -> list[tuple[Any, ...]]:
        """Run ``build(ids)``, a query on the rows whose ids are in ``ids``, at most
        ``limit`` rows: its SQL is built once per ``key`` and number of ids,
        unless a ``scope`` (with values of its own) takes part."""
        if scope is not None:
            query = build(ids)
            if limit is not None:
                query = query.limit(limit)
            return self._execute(*query.sql())
        plan = self._id_plans.get(key)
        if plan is None:
            sql, _ = build(peewee.SQL(_IDS)).sql()
            head, _, tail = sql.partition(_IDS)
            plan = self._id_plans[key] = head, tail
        marks = ", ".join([self.db.param] * len(ids))
        sql = f"{plan[0]}({marks}){plan[1]}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self._execute(sql, list(ids))

    def _dicts(
        self, collection: Collection, rows: list[tuple[Any, ...]], skip: int = 0
    ) -> list[dict[str, Any]]:
        """Rows read from :meth:`_columns` (after ``skip`` other columns, before
        any other) as dicts of field name to value, converted as peewee would."""
        statements = self._sql(collection)
        if skip:
            rows = [row[skip:] for row in rows]
        if statements.plain is not None:  # ints and texts: as read
            return [dict(zip(statements.plain, row, strict=False)) for row in rows]
        converters = statements.converters
        return [
            {
                name: value if read is None else read(value)
                for (name, read), value in zip(converters, row, strict=False)
            }
            for row in rows
        ]

    def existing_ids(
        self, collection: Collection, ids: Iterable[int], *, scope: Node | None = None
    ) -> set[int]:
        """Which of ``ids`` exist (and match ``scope``)."""
        table = self.table(collection)
        found: set[int] = set()
        for chunk in _chunks(sorted(set(ids))):
            query = table.select(table.id).where(table.id.in_(chunk))
            if scope is not None:
                query = query.where(self._where(collection, scope))
            found.update(row for (row,) in self._run(query.tuples()))
        return found

    def links(
        self,
        relation: RelationInfo,
        ids: Iterable[int],
        *,
        with_rows: bool = False,
        limit: int | None = None,
        scope: Node | None = None,
    ) -> list[tuple[int, int, dict[str, Any] | None]]:
        """``(owner id, related id, related row or None)`` for owners ``ids``.

        Ordered by related id, at most ``limit`` of them, only related objects
        matching ``scope``. For an ``fk_here`` relation the related id is the
        owner's own column; the others are read from the target table or the join
        table in one statement per chunk of ids.
        """
        ids = sorted(set(ids))
        target = self.table(relation.target)
        result: list[tuple[int, int, dict[str, Any] | None]] = []
        columns = self._columns(relation.target) if with_rows else [target.id]

        def query(ids: Any) -> Any:
            if relation.storage == "fk_here":
                # Aliased: the owner's table may be the target's own.
                owner_table = self.table(relation.collection).alias("_owner_row")
                fk = getattr(owner_table, self.column(relation.collection, relation.name).name)
                query = (
                    owner_table.select(owner_table.id.alias("_owner"), *columns)
                    .join(target, on=(fk == target.id))
                    .where(owner_table.id.in_(ids))
                )
            elif relation.storage == "fk_there":
                back = self.column(relation.target, relation.reverse.name)
                query = target.select(back.alias("_owner"), *columns).where(back.in_(ids))
            else:
                mine, theirs = self._join_columns(relation)
                query = (
                    mine.model.select(mine.alias("_owner"), *columns)
                    .join(target, on=(theirs == target.id))
                    .where(mine.in_(ids))
                )
            if scope is not None:
                query = query.where(self._where(relation.target, scope))
            return query.order_by(target.id)

        key = ("links", relation.collection.name, relation.name, with_rows)
        for chunk in _chunks(ids):
            room = None if limit is None else limit - len(result)
            rows = self._by_ids(key, query, chunk, scope, room)
            if with_rows:
                objects = self._dicts(relation.target, rows, skip=1)
                result.extend(
                    (row[0], obj["id"], obj) for row, obj in zip(rows, objects, strict=True)
                )
            else:
                result.extend((owner, id_, None) for owner, id_ in rows)
            if limit is not None and len(result) >= limit:
                break
        return result

    # -- writing --------------------------------------------------------------

    def insert(self, collection: Collection, values: dict[str, Any], id_: int | None = None) -> int:
        """Insert a row and return its id (``id_`` chooses it explicitly).

        :raises StorageConflict: if another transaction created row ``id_`` since
            this one found it free: run again, the write finds it.
        """
        table = self.table(collection)
        row = dict(values)
        if id_ is not None:
            row["id"] = id_
        try:
            new_id = table.insert(self._by_column(collection, row)).execute()
        except peewee.IntegrityError as exc:
            if id_ is not None and self.dialect.primary_key_clash(exc, table._meta.table_name):
                raise StorageConflict(_reason(exc)) from exc
            raise
        new_id = id_ if id_ is not None else int(new_id)
        if id_ is not None:
            self._after_explicit_id(collection, id_)
        self._state().held.setdefault(collection.name, set()).add(new_id)
        return new_id

    def insert_returning(self, collection: Collection, values: dict[str, Any]) -> dict[str, Any]:
        """Insert a row and return it as :meth:`fetch` would read it, in the same
        statement where the database can (``RETURNING``: PostgreSQL, SQLite 3.35+)."""
        if not self._returning:
            new_id = self.insert(collection, values)
            return self.fetch(collection, [new_id])[0]
        row = self._returned(collection, "insert", values)
        if row is None:
            raise StorageError(message="The database did not give back the row it inserted.")
        self._state().held.setdefault(collection.name, set()).add(row["id"])
        return row

    def _returned(
        self, collection: Collection, kind: str, values: dict[str, Any], id_: int | None = None
    ) -> dict[str, Any] | None:
        """Run the ``INSERT`` (or the ``UPDATE`` of row ``id_``) of ``values`` that
        gives the written row back, and read that row (None: no row matched).

        Its SQL is built once per collection and set of columns, and reused.
        """
        key = (collection.name, kind, tuple(values))
        plan = self._write_plans.get(key)
        if plan is None:
            plan = self._write_plans[key] = self._write_plan(collection, kind, list(values))
        sql, slots = plan
        params = [id_ if field is None else field.db_value(values[name]) for name, field in slots]
        row = self.db.execute_sql(sql, params).fetchone()
        return None if row is None else self._dicts(collection, [row])[0]

    def _write_plan(
        self, collection: Collection, kind: str, names: list[str]
    ) -> tuple[str, list[tuple[str, peewee.Field | None]]]:
        """The SQL of :meth:`_returned`, and what each of its parameters is: a
        field's value (its name and column), or the id (``None``)."""
        table = self.table(collection)
        slots = {name: peewee.Value(name, unpack=False) for name in names}
        columns = {self.column(collection, name): slot for name, slot in slots.items()}
        if kind == "insert":
            query = table.insert(columns)
        else:
            query = table.update(columns).where(table.id == peewee.Value(None, unpack=False))
        sql, params = query.returning(*self._columns(collection)).sql()
        order = [(name, None if name is None else self.column(collection, name)) for name in params]
        return sql, order

    def _after_explicit_id(self, collection: Collection, id_: int) -> None:
        # SQLite (AUTOINCREMENT) and MySQL move their counters past an explicit id
        # themselves; a PostgreSQL sequence has to be told.
        if self.backend == "postgresql":
            table = self.table(collection)._meta.table_name
            cursor = self.db.execute_sql("SELECT pg_get_serial_sequence(%s, 'id')", (f'"{table}"',))
            (sequence,) = cursor.fetchone()
            self.db.execute_sql(
                f"SELECT setval(%s, GREATEST(%s, last_value)) FROM {sequence}", (sequence, id_)
            )

    def taken(self, collection: Collection, name: str, value: Any, id_: int | None) -> int | None:
        """The id of another row whose field ``name`` holds ``value``, if any."""
        table = self.table(collection)
        column = self.column(collection, name)
        query = table.select(table.id).where(column == column.db_value(value))
        if id_ is not None:
            query = query.where(table.id != id_)
        return query.limit(1).scalar()

    def update_returning(
        self, collection: Collection, id_: int, values: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Update row ``id_`` and return it as :meth:`fetch` would read it (None if
        there is no such row), in one statement where the database can."""
        if not self._returning:
            if not self.lock(collection, [id_]):
                return None
            self.update(collection, id_, values)
            return self.fetch(collection, [id_])[0]
        return self._returned(collection, "update", values, id_)

    def update(self, collection: Collection, id_: int, values: dict[str, Any]) -> None:
        if values:
            self._locked(collection, [id_])
            table = self.table(collection)
            table.update(self._by_column(collection, values)).where(table.id == id_).execute()

    def update_many(
        self, collection: Collection, ids: Iterable[int], values: dict[str, Any]
    ) -> None:
        """Write the same ``values`` to rows ``ids``."""
        ids = set(ids)
        self._locked(collection, ids)
        table = self.table(collection)
        for chunk in _chunks(sorted(ids)):
            table.update(self._by_column(collection, values)).where(table.id.in_(chunk)).execute()

    def set_link(
        self,
        relation: RelationInfo,
        ids: Iterable[int],
        target_id: int | None,
        *,
        linked_to: Iterable[int] | None = None,
    ) -> None:
        """Point the ``fk_here`` column of rows ``ids`` at ``target_id`` (only of
        those that point at one of ``linked_to`` now, if given)."""
        ids = set(ids)
        self._locked(relation.collection, ids)
        table = self.table(relation.collection)
        fk = self.column(relation.collection, relation.name)
        now = None if linked_to is None else sorted(set(linked_to))
        for chunk in _chunks(sorted(ids)):
            query = table.update({fk: target_id}).where(table.id.in_(chunk))
            if now is not None:
                query = query.where(fk.in_(now))
            query.execute()

    def rows_linked_to(
        self, relation: RelationInfo, target_ids: Iterable[int]
    ) -> list[tuple[int, int]]:
        """``(row id, target id)`` of rows whose ``fk_here`` column is in ``target_ids``."""
        table = self.table(relation.collection)
        fk = self.column(relation.collection, relation.name)
        result: list[tuple[int, int]] = []
        for chunk in _chunks(sorted(set(target_ids))):
            query = table.select(table.id, fk).where(fk.in_(chunk)).order_by(table.id)
            result.extend((row_id, target) for row_id, target in query.tuples())
        return result

    def m2m_add(self, relation: RelationInfo, owner_id: int, other_ids: Iterable[int]) -> None:
        mine, theirs = self._join_columns(relation)
        rows = [{mine: owner_id, theirs: other} for other in sorted(set(other_ids))]
        for start in range(0, len(rows), CHUNK // 2):
            mine.model.insert_many(rows[start : start + CHUNK // 2]).execute()

    def m2m_remove(
        self, relation: RelationInfo, owner_ids: Iterable[int], other_ids: Iterable[int] | None
    ) -> None:
        """Remove links of ``owner_ids`` (to ``other_ids``, or to everything)."""
        mine, theirs = self._join_columns(relation)
        join = mine.model
        others_list = None if other_ids is None else sorted(set(other_ids))
        for chunk in _chunks(sorted(set(owner_ids))):
            if others_list is None:
                join.delete().where(mine.in_(chunk)).execute()
                continue
            for others in _chunks(others_list):
                join.delete().where(mine.in_(chunk) & theirs.in_(others)).execute()

    def delete(self, collection: Collection, ids: Iterable[int]) -> None:
        ids = set(ids)
        self._locked(collection, ids)
        table = self.table(collection)
        for chunk in _chunks(sorted(ids)):
            table.delete().where(table.id.in_(chunk)).execute()
        self._state().held.get(collection.name, set()).difference_update(ids)

    # -- output ---------------------------------------------------------------

    def serializers(self, collection: Collection) -> list[tuple[str, Callable[[Any], Any] | None]]:
        """``(field name, value -> JSON value or None)`` for each scalar of ``collection``."""
        return self._serializers[collection.name]


def _identifier(name: str, limit: int = 60) -> str:
    """``name``, shortened with a hash suffix to fit every backend's identifiers."""
    if len(name) <= limit:
        return name
    return f"{name[: limit - 9]}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def _attr(name: str) -> str:
    """The model attribute of field ``name``: prefixed, so no field name can shadow
    a peewee ``Model`` attribute (``select``, ``save``, ``delete`` ...)."""
    return f"f_{name}"


def _field_name(attribute: str) -> str:
    """The field stored under model attribute ``attribute`` (the reverse of :func:`_attr`)."""
    return attribute if attribute == "id" else attribute.removeprefix("f_")


def _foreign_key(target: Any, **options: Any) -> peewee.ForeignKeyField:
    # peewee's stubs do not know ``_deferred`` (create the constraint later).
    return peewee.ForeignKeyField(target, **options)


def _serializer(field: ma.Field) -> Callable[[Any], Any] | None:
    """A fast ``stored value -> JSON value`` function for one marshmallow field, or
    None where the stored value is the JSON value already."""
    if isinstance(field, (ma.Dict, ma.List, ma.Tuple, ma.Nested, ma.Enum, ma.Raw)):
        return None  # stored already serialized, as JSON
    plain = (ma.String, ma.Integer, ma.Boolean)
    if type(field) in plain or (type(field) is ma.Float and not field.as_string):
        return None  # the stored value is the JSON value

    if isinstance(field, ma.AwareDateTime):
        # Stored as naive UTC: say so, so the value reads back as it was written.
        def serialize_aware(value: Any) -> Any:
            if value is None:
                return None
            return field._serialize(value.replace(tzinfo=dt.UTC), field.name, None)

        return serialize_aware

    def serialize(value: Any) -> Any:
        return None if value is None else field._serialize(value, field.name, None)

    return serialize


def to_storable(field: ma.Field, value: Any) -> Any:
    """Turn a loaded (validated) value into what its column stores."""
    if value is None:
        return None
    if isinstance(field, (ma.Dict, ma.List, ma.Tuple, ma.Nested, ma.Enum, ma.Raw)):
        return field._serialize(value, field.name, None)
    return value


def _chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


_COMPARISONS = {
    "eq": operator.eq,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def _order_by(keys: list[tuple[Any, bool]], plain: list[bool]) -> list[Any]:
    """The ORDER BY terms of ``keys`` (see :func:`_ordering`)."""
    return [_ordering(expr, desc, bare) for (expr, desc), bare in zip(keys, plain, strict=True)]


def _ordering(expression: Any, descending: bool, plain: bool) -> Any:
    """``expression`` in an ORDER BY: nulls last ascending and first descending.

    ``plain`` leaves the NULLS clause out: for PostgreSQL, whose own order that is,
    and for columns that hold no null here, so that an index serves the order.
    """
    if descending:
        return expression.desc() if plain else expression.desc(nulls="FIRST")
    return expression.asc() if plain else expression.asc(nulls="LAST")


def _scope_of(collection: Collection, scopes: Scopes | None) -> Node | None:
    return None if scopes is None else scopes.get(collection.name)


def _key_column(key: SortKey, scopes: Scopes | None) -> bool:
    """Whether ``key`` sorts on a key column of the table itself (``sort=jar``)."""
    steps = key.path.steps
    return (
        len(steps) == 1
        and key.path.field == "id"
        and steps[0].storage == "fk_here"
        and _scope_of(steps[0].target, scopes) is None
    )


def _non_null(where: Node | None) -> set[str]:
    """The fields of the collection itself that every row matching ``where`` holds
    a value in: those a comparison of the top-level AND tests (a comparison is
    never true for null; ``$ne``, ``$nin`` and ``$not`` are left out, they match it)."""
    if where is None:
        return set()
    if isinstance(where, And):
        return set().union(*(_non_null(node) for node in where.nodes))
    if isinstance(where, Or) and where.nodes:
        return set.intersection(*(_non_null(node) for node in where.nodes))
    if isinstance(where, Condition) and not where.path.steps and where.op != "isnull":
        return {where.path.field} if where.path.field != "id" else set()
    return set()


def _after(
    keys: Sequence[tuple[Any, bool]], values: Sequence[Any], non_null: Sequence[bool]
) -> Any:
    """Rows strictly after ``values`` in the order of ``keys`` (nulls last ascending,
    first descending): an OR, over each key, of "equal so far, then after".
    ``non_null`` tells which keys hold no null in the rows read.

    Where the first key's column holds no null after the position, the condition
    also bounds that column, so that an index on it seeks the position instead of
    scanning from the start.
    """
    if len(values) != len(keys):
        raise BadRequest("The cursor does not match this sort.", code="INVALID_CURSOR")
    bound = None
    (first, descending), value = keys[0], values[0]
    if value is not None and (descending or non_null[0]):
        bound = first <= value if descending else first >= value
    clauses = []
    equal: list[Any] = []
    for (expression, descending), value, known in zip(keys, values, non_null, strict=True):
        if value is None:
            after = expression.is_null(False) if descending else None
        elif descending:
            after = expression < value
        elif known:
            after = expression > value
        else:
            after = (expression > value) | expression.is_null()
        if after is not None:
            clauses.append(functools.reduce(operator.and_, [*equal, after]))
        equal.append(expression.is_null() if value is None else expression == value)
    if not clauses:
        return peewee.SQL("1 = 0")
    after = functools.reduce(operator.or_, clauses)
    return after if bound is None else bound & after


#: The most work one SQLite match may take: the value's length times the size of
#: the pattern's matcher. RE2 matches in time linear in the value, but the factor
#: is the matcher's size when its fast matcher gives up; a single match cannot be
#: interrupted, so it is bounded before it starts (about 1 s at this budget).
MATCH_BUDGET = 10**8

#: What the SQLite functions of this thread tell the storage (see :func:`_regexp`).
_functions = threading.local()


def _regexp(pattern: str, value: Any) -> bool:
    if value is None:
        return False
    program = compile_pattern(pattern)
    if len(value) * program.programsize > MATCH_BUDGET:
        _functions.too_costly = True
        raise OverflowError("value too long for this pattern")
    return program.search(value) is not None


def _lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


class _PooledMySQLDatabase(PooledMySQLDatabase):
    """peewee's MySQL pool, without a round trip to the server at each checkout:
    a connection that died idle fails at its first statement, and the storage
    replaces it then (see :meth:`PeeweeStorage.transaction`)."""

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


def _database_from_url(url: str) -> peewee.Database:
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


def _sqlite_pragmas(db: Any, extra: dict[str, Any] | None = None) -> None:
    """Turn on foreign keys and a busy timeout for every connection of ``db``, and
    give it the functions that filters use."""
    db.register_function(_regexp, "regexp", 2, deterministic=True)
    db.register_function(_lower, "backo_lower", 1, deterministic=True)
    pragmas = dict(db._pragmas or ())
    pragmas.update(extra or {})
    pragmas["foreign_keys"] = 1
    pragmas.setdefault("busy_timeout", 10000)
    db._pragmas = list(pragmas.items())
    if not db.is_closed():
        db.execute_sql("PRAGMA foreign_keys = 1")


def _reason(exc: Exception) -> str:
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__

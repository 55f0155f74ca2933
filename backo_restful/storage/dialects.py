"""What differs between the databases the storage runs on, one class per database.

The storage asks its :class:`Dialect` how to begin a transaction, whether rows can
be locked, what a driver's exception means (a conflict to run again, a lost
connection, a statement out of time, a duplicate primary key), how to bound the
time of a statement, and how a few SQL functions are spelled. It never asks which
database it is on.

Driver exceptions reach the dialect wrapped by peewee, which keeps the driver's
own exception on ``.orig``.
"""

from __future__ import annotations

import enum
import functools
import json
import re
import sqlite3
import threading
import time
from collections.abc import Sequence
from typing import Any, ClassVar

import peewee

from ..exceptions import DeclarationError, PatternTooSlow
from ..query import ascii_classes, compile_pattern
from .migrators import MysqlMigrator, PostgresqlMigrator, SqliteMigrator


class Failure(enum.Enum):
    """What a database error means for the call that got it."""

    #: The database gave up matching a ``$re`` pattern.
    PATTERN = "pattern"
    #: The database could not read a ``$re`` pattern.
    BAD_PATTERN = "bad pattern"
    #: The database aborted the transaction to break a deadlock, a serialization
    #: conflict or a lock it would not wait for: running it again should succeed.
    CONFLICT = "conflict"
    #: The connection is gone (killed, server restarted, network cut): it is
    #: discarded, and the call may be sent again.
    LOST = "lost"
    #: The statement ran out of the time it was given.
    TIMEOUT = "timeout"


def driver_error(error: BaseException) -> BaseException:
    """The driver's own exception behind ``error`` (peewee keeps it on ``orig``)."""
    return getattr(error, "orig", None) or error


class Dialect:
    """The behaviour of one database, for a peewee ``Database`` of it."""

    name: ClassVar[str]
    #: Whether ``SELECT ... FOR UPDATE`` locks rows (SQLite has one writer at a time).
    row_locks: ClassVar[bool] = True
    #: Whether ``INSERT``/``UPDATE ... RETURNING`` gives the written row back.
    returning: ClassVar[bool] = False
    #: Whether ``COUNT(*)`` of a whole table costs far less than reading its rows
    #: (SQLite counts the pages of its smallest index).
    fast_table_count: ClassVar[bool] = False
    #: Whether the limit of :meth:`start_time_limit` ends with the transaction.
    time_limit_ends_with_transaction: ClassVar[bool] = False
    #: Whether the database's own order puts nulls last ascending and first
    #: descending, as the storage wants them: no ``NULLS`` clause is needed.
    nulls_sort_high: ClassVar[bool] = False
    #: Whether an indexed column gets an index on ``(column, id)``, so that it
    #: serves a sort on the column *and* the id tie-breaker (where the database's
    #: own indexes do not end with the primary key).
    id_suffixed_indexes: ClassVar[bool] = False
    #: Whether a foreign key constraint is added once every table exists (where a
    #: table cannot reference one not created yet).
    deferred_foreign_keys: ClassVar[bool] = True
    #: The ``LIMIT`` that keeps every row, for an ``OFFSET`` without a limit
    #: (None where ``OFFSET`` may stand alone).
    limit_all: ClassVar[int | None] = None
    #: The schema migrator of the database (see :mod:`.migrators`).
    migrator_class: ClassVar[type[Any]]

    def __init__(self, db: peewee.Database) -> None:
        self.db = db

    def migrator(self) -> Any:
        """A :mod:`playhouse.migrate` migrator of the database."""
        return self.migrator_class(self.db)

    @property
    def in_memory(self) -> bool:
        """Whether the database lives in this process's memory (one connection,
        shared by every thread)."""
        return False

    def prepare(self) -> None:
        """Set up the database given to the storage (before any connection)."""

    def tune(self) -> None:
        """Settings the storage makes once to a database it opened from a URL
        (on a connection, before creating tables)."""

    def primary_key(self) -> peewee.Field:
        """The ``id`` column of a collection's table."""
        return peewee.BigAutoField()

    def adapt_column(self, column: peewee.Field) -> None:
        """Fit ``column`` (of a collection's table) to this database: its type,
        collation."""

    def drop_tables(self, tables: Sequence[Any]) -> None:
        """Drop ``tables`` if they exist, whatever references them."""
        self.db.drop_tables(tables, safe=True)

    def estimate(self, table: Any, conditions: Sequence[Any]) -> int | None:
        """The database's own estimate of the rows of ``table`` matching
        ``conditions``, or None where it has none."""
        return None

    def after_explicit_id(self, table: str, id_: int) -> None:
        """Keep ``table``'s id counter past ``id_``, a row inserted with its id."""

    def pattern_refused(self) -> bool:
        """Whether a pattern function of this thread refused a value as too much
        work since this was last asked (it forgets it)."""
        return False

    def begin_args(self, write: bool) -> tuple[str, ...]:
        """The arguments of ``Database.begin`` for a read or a write transaction."""
        return ()

    def failure(self, error: BaseException) -> Failure | None:
        """What ``error`` (raised by the driver, wrapped by peewee) means, if anything
        more than "this statement failed"."""
        return None

    def primary_key_clash(self, error: BaseException, table: str) -> bool:
        """Whether ``error`` is an insert into ``table`` at an id that exists
        (never on SQLite, whose writers run one at a time)."""
        return False

    def unique_key(self, error: BaseException) -> str | None:
        """The unique index (its name, or ``table.column``) ``error`` violates."""
        return None

    def missing_reference(self, error: BaseException) -> bool:
        """Whether ``error`` is a foreign key refusing a row that links to none."""
        return False

    def start_time_limit(self, seconds: float) -> None:
        """Bound the time of each statement until :meth:`end_time_limit`."""

    def end_time_limit(self) -> None:
        """Lift the bound of :meth:`start_time_limit` (the transaction is still open)."""

    def check_result(self, cursor: Any) -> None:
        """Raise for a statement that the database ran but could not run right."""

    def ping(self, seconds: float) -> None:
        """Run a trivial query, bounded to ``seconds``, on this thread's connection."""
        self.start_time_limit(seconds)
        try:
            self.db.execute_sql(self.PING).fetchall()
        finally:
            if not self.time_limit_ends_with_transaction:  # else: its end lifts it
                self.end_time_limit()

    #: The trivial query of :meth:`ping`.
    PING: ClassVar[str] = "SELECT 1"

    def table_settings(self) -> list[str]:
        """Options for ``CREATE TABLE``."""
        return []

    def position(self, haystack: Any, needle: Any) -> Any:
        """The 1-based position of ``needle`` in ``haystack`` (0 when absent)."""
        return peewee.fn.instr(haystack, needle)

    def regexp(self, column: Any, pattern: str) -> Any:
        """Whether ``pattern`` matches somewhere in ``column``."""
        return column.regexp(pattern)

    def lower(self, value: Any) -> Any:
        """``value`` lower-cased by Unicode rules."""
        return peewee.fn.LOWER(value)


class SqliteDialect(Dialect):
    name = "sqlite"
    row_locks = False
    fast_table_count = True
    returning = sqlite3.sqlite_version_info >= (3, 35)
    # SQLite accepts references to tables not created yet.
    deferred_foreign_keys = False
    limit_all = -1
    migrator_class = SqliteMigrator

    #: How often (in SQLite virtual machine steps) a bounded statement looks at the time.
    STEPS = 1000
    # SELECT 1 reads no page of the file: this one reads its schema.
    PING = "SELECT count(*) FROM sqlite_master"

    @property
    def in_memory(self) -> bool:
        return self.db.database in ("", ":memory:")

    def prepare(self) -> None:
        # Foreign keys on, a busy timeout, and the functions that filters use, for
        # every connection of the database.
        db: Any = self.db
        db.register_function(_sqlite_regexp, "regexp", 2, deterministic=True)
        db.register_function(_sqlite_lower, "backo_lower", 1, deterministic=True)
        pragmas = dict(db._pragmas or ())
        pragmas["foreign_keys"] = 1
        pragmas.setdefault("busy_timeout", 10000)
        db._pragmas = list(pragmas.items())
        if not db.is_closed():
            db.execute_sql("PRAGMA foreign_keys = 1")

    def tune(self) -> None:
        # WAL lets readers run beside the writer (set once, it stays with the file).
        if not self.in_memory:
            self.db.execute_sql("PRAGMA journal_mode = wal")

    def primary_key(self) -> peewee.Field:
        return _SqliteAutoIncrement()

    def pattern_refused(self) -> bool:
        refused = getattr(_functions, "too_costly", False)
        _functions.too_costly = False
        return bool(refused)

    def begin_args(self, write: bool) -> tuple[str, ...]:
        # Take the write lock at once: writers queue, and never deadlock.
        return ("IMMEDIATE",) if write else ()

    def failure(self, error: BaseException) -> Failure | None:
        original = driver_error(error)
        if isinstance(original, sqlite3.OperationalError) and str(original) == "interrupted":
            return Failure.TIMEOUT
        return None

    def unique_key(self, error: BaseException) -> str | None:
        message = str(driver_error(error))
        prefix = "UNIQUE constraint failed: "
        return message[len(prefix) :] if message.startswith(prefix) else None

    def missing_reference(self, error: BaseException) -> bool:
        return str(driver_error(error)) == "FOREIGN KEY constraint failed"

    def start_time_limit(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds

        def out_of_time() -> bool:
            return time.monotonic() > deadline

        self.db.connection().set_progress_handler(out_of_time, self.STEPS)

    def end_time_limit(self) -> None:
        self.db.connection().set_progress_handler(None, 0)

    def lower(self, value: Any) -> Any:
        # SQLite's lower() knows ASCII only: the storage registers a Unicode one.
        return peewee.fn.backo_lower(value)


#: PostgreSQL SQLSTATEs of a transaction to run again: serialization failure,
#: deadlock, a lock not available to ``NOWAIT``.
_PG_CONFLICTS = {"40001", "40P01", "55P03"}
#: The server ended the session: admin shutdown, crash shutdown, cannot connect now.
_PG_ENDED = {"57P01", "57P02", "57P03"}


class PostgresqlDialect(Dialect):
    name = "postgresql"
    returning = True
    nulls_sort_high = True
    # SQLite's and InnoDB's indexes end with the primary key already.
    id_suffixed_indexes = True
    time_limit_ends_with_transaction = True  # SET LOCAL
    migrator_class = PostgresqlMigrator

    def adapt_column(self, column: peewee.Field) -> None:
        if isinstance(column, peewee.TextField | peewee.CharField):
            # Byte order, as on SQLite and MariaDB, whatever the database's locale.
            column.collation = '"C"'

    def drop_tables(self, tables: Sequence[Any]) -> None:
        for table in tables:
            self.db.execute_sql(f'DROP TABLE IF EXISTS "{table._meta.table_name}" CASCADE')

    def estimate(self, table: Any, conditions: Sequence[Any]) -> int | None:
        if not conditions:
            name = f'"{table._meta.table_name}"'
            cursor = self.db.execute_sql(
                "SELECT reltuples FROM pg_class WHERE oid = to_regclass(%s)", (name,)
            )
            (tuples,) = cursor.fetchone() or (None,)
            if tuples is None or tuples < 0:
                return None  # never analyzed: the planner's guess means nothing
            return int(tuples)
        sql, params = table.select(table.id).where(*conditions).sql()
        (plan,) = self.db.execute_sql("EXPLAIN (FORMAT JSON) " + sql, params).fetchone()
        plan = json.loads(plan) if isinstance(plan, str) else plan
        return int(plan[0]["Plan"]["Plan Rows"])

    def after_explicit_id(self, table: str, id_: int) -> None:
        # SQLite (AUTOINCREMENT) and MySQL move their counters past an explicit id
        # themselves; a PostgreSQL sequence has to be told.
        cursor = self.db.execute_sql("SELECT pg_get_serial_sequence(%s, 'id')", (f'"{table}"',))
        (sequence,) = cursor.fetchone()
        self.db.execute_sql(
            f"SELECT setval(%s, GREATEST(%s, last_value)) FROM {sequence}", (sequence, id_)
        )

    def begin_args(self, write: bool) -> tuple[str, ...]:
        # A read sees one snapshot across its statements (the page, then each level).
        return () if write else ("REPEATABLE READ",)

    def failure(self, error: BaseException) -> Failure | None:
        original = driver_error(error)
        code = getattr(original, "pgcode", None)
        if code in _PG_CONFLICTS:
            return Failure.CONFLICT
        if code == "2201B":  # invalid_regular_expression
            return Failure.BAD_PATTERN
        if code == "57014" and "statement timeout" in str(original):
            return Failure.TIMEOUT  # (57014 is any cancel: an operator's too)
        if type(original).__name__ == "InterfaceError" or code in _PG_ENDED:
            return Failure.LOST
        if (code is None or code.startswith("08")) and self._connection_closed():
            return Failure.LOST
        return None

    def _connection_closed(self) -> bool:
        # psycopg2 marks its connection closed when the server or the network ends it.
        return self.db.is_closed() or bool(getattr(self.db.connection(), "closed", False))

    def primary_key_clash(self, error: BaseException, table: str) -> bool:
        original = driver_error(error)
        diagnostics = getattr(original, "diag", None)
        return getattr(original, "pgcode", None) == "23505" and (
            getattr(diagnostics, "constraint_name", None) == f"{table}_pkey"
        )

    def unique_key(self, error: BaseException) -> str | None:
        original = driver_error(error)
        if getattr(original, "pgcode", None) != "23505":
            return None
        return getattr(getattr(original, "diag", None), "constraint_name", None)

    def missing_reference(self, error: BaseException) -> bool:
        return getattr(driver_error(error), "pgcode", None) == "23503"

    def start_time_limit(self, seconds: float) -> None:
        self.db.execute_sql(f"SET LOCAL statement_timeout = {max(1, round(seconds * 1000))}")

    def end_time_limit(self) -> None:
        self.db.execute_sql("SET LOCAL statement_timeout TO DEFAULT")

    def ping(self, seconds: float) -> None:
        with self.db.atomic():  # where SET LOCAL lasts
            super().ping(seconds)

    def position(self, haystack: Any, needle: Any) -> Any:
        return peewee.fn.strpos(haystack, needle)

    def lower(self, value: Any) -> Any:
        # By Unicode rules, not by the column's "C" collation.
        return peewee.fn.lower(peewee.NodeList((value, peewee.SQL('COLLATE "default"'))))


#: MySQL/MariaDB error numbers of a transaction to run again: lock wait timeout
#: (also what MariaDB's NOWAIT gives), deadlock, NOWAIT (MySQL 8).
_MYSQL_CONFLICTS = {1205, 1213, 3572}
#: The connection is gone: server shutdown, killed, gone away, lost during a query.
_MYSQL_LOST = {1053, 1927, 2006, 2013, 2055}
#: Statement out of time: MariaDB's max_statement_time, MySQL's max_execution_time.
_MYSQL_TIMEOUTS = {1969, 3024}
#: MariaDB's warning for a pattern its regular expression library gave up on.
_REGEX_WARNING = 1139
#: MySQL 8's errors for a pattern its regular expression library gave up on
#: (time limit, stack): the pattern's fault, whatever the time limit of patterns.
_MYSQL_REGEX_ERRORS = {3698, 3699}
#: MariaDB's and MySQL 8's errors for a pattern they cannot read.
_MYSQL_BAD_PATTERNS = {_REGEX_WARNING, 3685, 3692, 3693, 3694, 3695, 3696, 3697}
#: What marks a value too long for MariaDB's matcher (see MysqlDialect.regexp).
_TOO_LONG = "backo:too-long:"


#: MySQL's TEXT holds 64 KiB and its DATETIME and TIME drop microseconds.
_MYSQL_TYPES = {"TEXT": "LONGTEXT", "DATETIME": "DATETIME(6)", "TIME": "TIME(6)"}


class MysqlDialect(Dialect):
    name = "mysql"
    # MySQL has no OFFSET without LIMIT.
    limit_all = 2**63 - 1
    migrator_class = MysqlMigrator

    def adapt_column(self, column: peewee.Field) -> None:
        column.field_type = _MYSQL_TYPES.get(column.field_type, column.field_type)  # type: ignore[misc]

    def drop_tables(self, tables: Sequence[Any]) -> None:
        # Tables may reference each other in a cycle: drop them unchecked.
        self.db.execute_sql("SET FOREIGN_KEY_CHECKS = 0")
        try:
            self.db.drop_tables(tables, safe=True)
        finally:
            self.db.execute_sql("SET FOREIGN_KEY_CHECKS = 1")

    def estimate(self, table: Any, conditions: Sequence[Any]) -> int | None:
        if conditions:
            return None
        cursor = self.db.execute_sql(
            "SELECT TABLE_ROWS FROM information_schema.TABLES "
            "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = %s",
            (table._meta.table_name,),
        )
        row = cursor.fetchone()
        return None if row is None or row[0] is None else int(row[0])

    def begin_args(self, write: bool) -> tuple[str, ...]:
        # Writes read the latest committed rows (the ones they lock), never a
        # snapshot taken before a lock was granted; reads keep InnoDB's default,
        # one snapshot for all their statements.
        return ("READ COMMITTED",) if write else ()

    def failure(self, error: BaseException) -> Failure | None:
        original = driver_error(error)
        code = original.args[0] if original.args else None
        if code in _MYSQL_CONFLICTS:
            return Failure.CONFLICT
        if code in _MYSQL_TIMEOUTS:
            return Failure.TIMEOUT
        if code in _MYSQL_REGEX_ERRORS:
            return Failure.PATTERN
        if code in _MYSQL_BAD_PATTERNS:
            return Failure.BAD_PATTERN
        if type(original).__name__ == "InterfaceError" or code in _MYSQL_LOST:
            return Failure.LOST
        return None

    def primary_key_clash(self, error: BaseException, table: str) -> bool:
        original = driver_error(error)
        if not original.args or original.args[0] != 1062:
            return False
        message = str(original.args[-1])
        return message.endswith(("for key 'PRIMARY'", f"for key '{table}.PRIMARY'"))

    def unique_key(self, error: BaseException) -> str | None:
        original = driver_error(error)
        if not original.args or original.args[0] != 1062:
            return None
        found = re.search(r"for key '([^']+)'$", str(original.args[-1]))
        return found.group(1).rsplit(".", 1)[-1] if found else None  # MySQL 8: table.key

    def missing_reference(self, error: BaseException) -> bool:
        original = driver_error(error)
        return bool(original.args) and original.args[0] == 1452  # no parent row

    @functools.cached_property
    def mariadb(self) -> bool:
        """Whether the server is MariaDB (else MySQL), asked of a connection once."""
        info = getattr(self.db.connection(), "get_server_info", None)
        return info is not None and "mariadb" in info().lower()

    def start_time_limit(self, seconds: float) -> None:
        if self.mariadb:
            self.db.execute_sql(f"SET SESSION max_statement_time = {seconds:.3f}")
        else:
            self.db.execute_sql(f"SET SESSION max_execution_time = {max(1, round(seconds * 1000))}")

    def end_time_limit(self) -> None:
        variable = "max_statement_time" if self.mariadb else "max_execution_time"
        self.db.execute_sql(f"SET SESSION {variable} = DEFAULT")

    def check_result(self, cursor: Any) -> None:
        # MariaDB answers "no match", with a warning, where PCRE2 gives up on a
        # pattern (its match limit): that answer would be wrong.
        if not getattr(cursor, "warning_count", 1):
            return
        warnings = self.db.execute_sql("SHOW WARNINGS").fetchall()
        if any(row[1] == _REGEX_WARNING for row in warnings):
            raise PatternTooSlow(limit="MariaDB's regular expression match limit")
        if any(_TOO_LONG in str(row[2]) for row in warnings):
            raise PatternTooSlow(limit=f"MariaDB's {self.MAX_MATCHED} characters per value")

    #: The longest value MariaDB's matcher is given (see :meth:`regexp`).
    MAX_MATCHED = 20_000

    def regexp(self, column: Any, pattern: str) -> Any:
        # Not peewee's REGEXP BINARY, which reads the value and the pattern byte by
        # byte (".": one byte of "é"). The columns' binary collation makes the
        # match case-sensitive, character by character.
        if not self.mariadb:
            # MySQL's ICU bounds the time of each match itself.
            return _regexp(column, pattern)
        # PCRE2 backtracks, and MariaDB can stop neither a match (not even by KILL)
        # nor a statement in the middle of one: the work on one value must be
        # bounded. PCRE2's match limit bounds the backtracking from one starting
        # point, so the pattern is matched from the value's start only; its warning
        # says the answer would be wrong (see check_result). What the limit does not
        # count (a repeat that cannot backtrack) grows with the square of the value's
        # length: longer values than MAX_MATCHED are not matched, and a warning
        # (a cast that fails, naming the length) says so.
        length = peewee.fn.CHAR_LENGTH(column)
        too_long = peewee.Cast(peewee.fn.CONCAT(_TOO_LONG, length), "SIGNED")
        # And its \d, \w and \s are Unicode classes: the ASCII ones are spelt out.
        matches = _regexp(column, f"^[\\s\\S]*?(?:{ascii_classes(pattern)})")
        return peewee.fn.IF(length > self.MAX_MATCHED, too_long, matches)

    def table_settings(self) -> list[str]:
        # A binary collation that does not pad: strings compare exactly, trailing
        # spaces included, as on SQLite and PostgreSQL.
        collation = "utf8mb4_nopad_bin" if self.mariadb else "utf8mb4_0900_bin"
        return [f"DEFAULT CHARSET=utf8mb4 COLLATE={collation}"]

    def position(self, haystack: Any, needle: Any) -> Any:
        return peewee.fn.LOCATE(needle, haystack)


def _regexp(column: Any, pattern: str) -> Any:
    """``column REGEXP pattern``, as written (peewee writes ``REGEXP BINARY``)."""
    return peewee.NodeList((column, peewee.SQL("REGEXP"), peewee.Value(pattern)), parens=True)


class _SqliteAutoIncrement(peewee.AutoField):
    """SQLite primary key that never reuses the id of a deleted row."""

    def ddl(self, ctx: Any) -> Any:
        return peewee.NodeList((super().ddl(ctx), peewee.SQL("AUTOINCREMENT")))


#: The most work one SQLite match may take: the value's length times the size of
#: the pattern's matcher. RE2 matches in time linear in the value, but the factor
#: is the matcher's size when its fast matcher gives up; a single match cannot be
#: interrupted, so it is bounded before it starts (about 1 s at this budget).
MATCH_BUDGET = 10**8

#: What the SQLite functions of this thread tell the dialect (see
#: :meth:`SqliteDialect.pattern_refused`).
_functions = threading.local()


def _sqlite_regexp(pattern: str, value: Any) -> bool:
    if value is None:
        return False
    program = compile_pattern(pattern)
    if len(value) * program.programsize > MATCH_BUDGET:
        _functions.too_costly = True
        raise OverflowError("value too long for this pattern")
    return program.search(value) is not None


def _sqlite_lower(value: Any) -> Any:
    return value.lower() if isinstance(value, str) else value


def dialect_of(db: peewee.Database) -> Dialect:
    """The dialect of ``db``.

    :raises DeclarationError: for a database other than SQLite, PostgreSQL and
        MySQL/MariaDB.
    """
    for base, dialect in (
        (peewee.SqliteDatabase, SqliteDialect),
        (peewee.PostgresqlDatabase, PostgresqlDialect),
        (peewee.MySQLDatabase, MysqlDialect),
    ):
        if isinstance(db, base):
            return dialect(db)
    raise DeclarationError(
        f"unsupported database {type(db).__name__}: use SQLite, PostgreSQL or MySQL/MariaDB"
    )

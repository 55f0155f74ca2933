"""One schema migrator per database: peewee's :mod:`playhouse.migrate`
migrators, with what the migrations of the storage need besides.

What each database cannot do in place is here, as the dialects hold what differs
in reads and writes: SQLite rebuilds a table to drop a foreign key column or
change a column (and the rebuild would forget the table's id counter);
PostgreSQL keeps the ``"C"`` collation of text columns only when told again; a
MySQL/MariaDB column takes no ``CASCADE`` when dropped, and the index of a foreign
key column is replaced in one statement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import peewee
from playhouse import migrate

#: A column's type as the storage compares them: its family (``text``,
#: ``integer``, ``float``, ``boolean``, ``datetime``, ``date``, ``time``,
#: ``uuid``) and, for text, the characters it holds (None: any number).
ColumnType = tuple[str, int | None]


class _Hooks:
    """What the storage asks of a migrator besides peewee's operations."""

    database: peewee.Database
    #: How the database stores the families it has no type of its own for.
    stored_types: ClassVar[dict[str, ColumnType]] = {}
    #: The SQL function giving the length of a text in characters.
    length_function: ClassVar[str] = "CHAR_LENGTH"

    def drop_column_operations(
        self, table: str, column: str, indexes: Sequence[str], foreign_key: bool
    ) -> list[Any]:
        """The operations dropping ``column`` of ``table``, with its ``indexes``
        and, for a ``foreign_key``, its constraint."""
        migrator: Any = self
        return [migrator.drop_column(table, column)]

    def replace_index(
        self, table: str, name: str, columns: Sequence[str], unique: bool
    ) -> list[Any]:
        """The operations replacing index ``name`` of ``table`` by one of that name
        on ``columns`` (unique or not)."""
        migrator: Any = self
        return [
            migrator.drop_index(table, name),
            migrator.add_index(table, columns, unique, name=name),
        ]

    def change_type(self, table: str, field: peewee.Field) -> Any:
        """The operation giving column ``field`` of ``table`` the field's type."""
        migrator: Any = self
        # peewee names the column before the field's definition: one without a name.
        unnamed = field.clone()
        unnamed.column_name = None
        return migrator.alter_column_type(table, field.column_name, unnamed)

    def id_counters(self) -> dict[str, int]:
        """Each table's id counter, where rebuilding a table would lose it."""
        return {}

    def restore_id_counters(self, counters: dict[str, int]) -> None:
        """Put back the counters :meth:`id_counters` gave, where they went lower."""


class SqliteMigrator(_Hooks, migrate.SqliteMigrator):
    stored_types = {"boolean": ("integer", None), "uuid": ("text", None)}
    length_function = "LENGTH"

    def drop_column_operations(
        self, table: str, column: str, indexes: Sequence[str], foreign_key: bool
    ) -> list[Any]:
        # SQLite's own DROP COLUMN refuses an indexed column and one a foreign key
        # names: the indexes go first, and a foreign key column by a rebuild.
        operations = [self.drop_index(table, name) for name in indexes]
        return [*operations, self.drop_column(table, column, legacy=foreign_key)]

    def id_counters(self) -> dict[str, int]:
        if "sqlite_sequence" not in self.database.get_tables():
            return {}
        rows = self.database.execute_sql("SELECT name, seq FROM sqlite_sequence").fetchall()
        return {name: seq for name, seq in rows}

    def restore_id_counters(self, counters: dict[str, int]) -> None:
        # A rebuilt table counts from its highest id: ids of rows deleted from
        # its end would be given again.
        tables = set(self.database.get_tables())
        for name, seq in counters.items():
            if name not in tables:
                continue
            self.database.execute_sql(
                "UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = ?", (seq, name)
            )
            self.database.execute_sql(
                "INSERT INTO sqlite_sequence (name, seq) SELECT ?, ? WHERE NOT EXISTS "
                "(SELECT 1 FROM sqlite_sequence WHERE name = ?)",
                (name, seq, name),
            )


class PostgresqlMigrator(_Hooks, migrate.PostgresqlMigrator):
    @migrate.operation
    def change_type(self, table: str, field: peewee.Field) -> Any:
        # peewee's ALTER COLUMN TYPE names no collation: the column would lose "C".
        ctx = self.make_context()
        self._alter_column(ctx, table, field.column_name).literal(" TYPE ")
        ctx.sql(field.ddl_datatype(ctx))
        if field.collation:
            ctx.literal(f" COLLATE {field.collation}")
        return ctx


class MysqlMigrator(_Hooks, migrate.MySQLMigrator):
    stored_types = {"uuid": ("text", 40)}

    def drop_column_operations(
        self, table: str, column: str, indexes: Sequence[str], foreign_key: bool
    ) -> list[Any]:
        # MySQL takes no CASCADE; peewee drops the foreign key constraint first.
        return [self.drop_column(table, column, cascade=False)]

    def replace_index(
        self, table: str, name: str, columns: Sequence[str], unique: bool
    ) -> list[Any]:
        # In one statement: the index of a foreign key column cannot be dropped
        # on its own (a relation becoming one-to-one, or no longer).
        return [self._replace_index(table, name, columns, unique)]

    @migrate.operation
    def _replace_index(self, table: str, name: str, columns: Sequence[str], unique: bool) -> Any:
        ctx = self._alter_table(self.make_context(), table)
        ctx.literal(" DROP INDEX ").sql(peewee.Entity(name))
        ctx.literal(", ADD UNIQUE INDEX " if unique else ", ADD INDEX ").sql(peewee.Entity(name))
        return ctx.literal(" ").sql(peewee.EnclosedNodeList([peewee.Entity(c) for c in columns]))

"""Migrations: bring the database's tables in line with the model.

The migrations layer of :class:`~backo_restful.storage.PeeweeStorage`.
:meth:`Migrations.plan` lists what differs (:mod:`.differences`, from what
:mod:`playhouse.reflection` reads); :meth:`Migrations.migrate` checks every change
against the rows there are, then applies them all with the database's
:mod:`playhouse.migrate` migrator (:mod:`.migrators`), in one transaction where
the database allows DDL in one (SQLite, PostgreSQL).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import peewee
from marshmallow import missing
from playhouse.reflection import Introspector

from ..exceptions import MigrationRefused, StorageError
from ..kinds import to_storable
from ..model import LinkStorage
from ..values import storable
from ._utils import attr
from .differences import Change, Comparison, Facts, Step
from .writes import Writes


@dataclass
class _Plan:
    """The steps of a migration, and what reflection read of the database."""

    steps: list[Step]
    metadata: Any


class Migrations(Writes):
    """Compare the model's tables with the database's, and migrate them."""

    def plan(self) -> list[Change]:
        """What differs between the model and the database, as :meth:`migrate`
        would apply it (nothing when they agree).

        :raises StorageError: if the storage serves no model yet.
        """
        with self._serialized(), self._translated(), self._connection():
            return [step.change for step in self._compare().steps]

    def migrate(self, *, allow_destructive: bool = False) -> list[Change]:
        """Apply the changes :meth:`plan` lists; the changes applied.

        Every change is checked before any is applied. Where the database runs
        DDL in a transaction (SQLite, PostgreSQL) they are applied in one; on
        MariaDB/MySQL each statement commits on its own, and a failure of the
        database midway leaves the changes before it applied.

        :param allow_destructive: apply the changes that lose data too (a
            column or a join table dropped, a type narrowed or changed).
        :raises MigrationRefused: naming every change refused (one that loses
            data, unless allowed; a new required field with no default on a table
            that has rows; a unique index on values that repeat; NOT NULL on a
            column with nulls; text that a shorter type cannot hold): nothing is
            applied.
        """
        with self._schema_lock, self._serialized():
            with self._translated(), self._connection():
                plan = self._compare()
                refused = list(self._refused(plan, allow_destructive))
                if refused:
                    raise MigrationRefused(refused)
                # Until the tables are learnt again (a failure midway on MariaDB
                # leaves some changes applied: the next use checks them).
                self._tables_ready = False
                if plan.steps:
                    self._apply(plan.steps)
            self._ready_tables()
        return [step.change for step in plan.steps]

    @contextlib.contextmanager
    def _serialized(self) -> Iterator[None]:
        """Hold the one connection of an in-memory database."""
        if self._serial is None:
            yield
            return
        with self._serial:
            yield

    # -- comparing ----------------------------------------------------------------

    def _compare(self) -> _Plan:
        if self._model is None:
            raise StorageError(message="The storage is not attached to a data model.")
        declared = self._models()
        names = {table._meta.table_name for table in declared}
        existing = self.db.get_tables()
        candidates = [name for name in existing if name not in names and self._joinlike(name)]
        kept = [name for name in existing if name in names]
        metadata = Introspector.from_database(self.db).introspect(
            table_names=kept + candidates, literal_column_names=True
        )
        orphans = [name for name in candidates if _links_of(metadata, name, names)]
        facts = self._facts()
        stored = self.dialect.migrator_class.stored_types
        steps = Comparison(declared, metadata, orphans, facts, stored).steps()
        return _Plan(steps, metadata)

    def _joinlike(self, table: str) -> bool:
        """Whether ``table`` is named as the join tables of the model's collections are."""
        collections = self._model.collections if self._model is not None else {}
        return "__" in table and any(table.startswith(f"{name}_") for name in collections)

    def _facts(self) -> dict[tuple[str, str], Facts]:
        """What the model says of each column besides its type."""
        facts: dict[tuple[str, str], Facts] = {}
        collections = self._model.collections.values() if self._model is not None else ()
        for collection in collections:
            table = self.table(collection)
            name = table._meta.table_name
            for field_name, field in collection.scalars.items():
                default = field.load_default
                if default is not missing:
                    default = default() if callable(default) else default
                    default = storable(to_storable(field, default))[0]
                column = table._meta.fields[attr(field_name)].column_name
                facts[(name, column)] = Facts(bool(field.required), default)
            for relation in collection.relations.values():
                if relation.storage is LinkStorage.FK_HERE:
                    column = self.column(collection, relation.name).column_name
                    facts[(name, column)] = Facts(relation.required)
        return facts

    # -- checking -----------------------------------------------------------------

    def _refused(self, plan: _Plan, allow_destructive: bool) -> Iterator[tuple[Change, str]]:
        for step in plan.steps:
            if step.change.destructive and not allow_destructive:
                yield step.change, "it loses data: pass allow_destructive=True to apply it"
                continue
            check = self._checks().get(step.change.kind)
            why = check(plan, step) if check is not None else None
            if why is not None:
                yield step.change, why

    def _checks(self) -> dict[str, Callable[[_Plan, Step], str | None]]:
        return {
            "add_column": self._check_added,
            "add_foreign_key": self._check_added,
            "add_unique": self._check_unique,
            "set_not_null": self._check_not_null,
            "change_type": self._check_length,
        }

    def _check_added(self, plan: _Plan, step: Step) -> str | None:
        column, facts = step.declared, step.facts
        needed = facts.required or not column.null
        if not needed or facts.default is not missing or not self._count(step.change.table):
            return None
        what = "relation" if isinstance(column, peewee.ForeignKeyField) else "field"
        return (
            f"the {what} is required and has no default (load_default), and "
            f"{step.change.table} has rows: they would hold no value"
        )

    def _check_unique(self, plan: _Plan, step: Step) -> str | None:
        table, (column, *_) = step.change.table, step.names
        if column in plan.metadata.columns.get(table, {}):
            source = peewee.Table(table)
            value = peewee.Column(source, column)
            repeated = (
                source.select(value)
                .where(value.is_null(False))
                .group_by(value)
                .having(peewee.fn.COUNT(peewee.SQL("*")) > 1)
                .alias("repeated")
            )
            count = self._scalar(peewee.Select([repeated], [peewee.fn.COUNT(peewee.SQL("*"))]))
            if count:
                return f"{count} values of {table}.{column} are held by more than one row"
            return None
        added = [s for s in plan.steps if (s.change.table, s.change.column) == (table, column)]
        if added and added[0].facts.default is not missing and self._count(table) > 1:
            return f"every row of {table} would get the same default value"
        return None

    def _check_not_null(self, plan: _Plan, step: Step) -> str | None:
        table, column = step.change.table, step.change.column or ""
        nulls = self._count(table, peewee.Column(peewee.Table(table), column).is_null())
        return f"{nulls} rows of {table} have no {column}" if nulls else None

    def _check_length(self, plan: _Plan, step: Step) -> str | None:
        limit = step.declared.max_length if isinstance(step.declared, peewee.CharField) else None
        if limit is None or step.type is None or step.type[0] != "text":
            return None
        table, column = step.change.table, step.change.column or ""
        length = getattr(peewee.fn, self.dialect.migrator_class.length_function)
        longer = self._count(table, length(peewee.Column(peewee.Table(table), column)) > limit)
        if longer:
            return f"{longer} values of {table}.{column} are longer than {limit} characters"
        return None

    def _count(self, table: str, condition: Any = None) -> int:
        """The rows of ``table`` (matching ``condition``)."""
        query = peewee.Table(table).select(peewee.fn.COUNT(peewee.SQL("*")))
        if condition is not None:
            query = query.where(condition)
        return int(self._scalar(query) or 0)

    def _scalar(self, query: Any) -> Any:
        row = self.db.execute(query).fetchone()
        return None if row is None else row[0]

    # -- applying -----------------------------------------------------------------

    def _apply(self, steps: list[Step]) -> None:
        migrator = self.dialect.migrator()
        counters = migrator.id_counters()
        actions = self._actions()
        replaced = _replaced(steps)
        with migrator.migration_context():
            self._create([step.declared for step in steps if step.change.kind == "add_table"])
            for step in steps:
                change = step.change
                if (change.table, change.index) in replaced:
                    if change.kind.startswith("add_"):
                        for operation in migrator.replace_index(
                            change.table, change.index, step.names, step.unique
                        ):
                            operation.run()
                elif change.kind in actions:
                    actions[change.kind](migrator, step)
            migrator.restore_id_counters(counters)

    def _actions(self) -> dict[str, Callable[[Any, Step], None]]:
        """What applies each kind of change but ``add_table``."""
        return {
            "add_column": self._add_column,
            "add_foreign_key": self._add_column,
            "change_type": lambda m, s: m.change_type(s.change.table, s.declared).run(),
            "drop_not_null": lambda m, s: m.drop_not_null(s.change.table, s.change.column).run(),
            "set_not_null": lambda m, s: m.add_not_null(s.change.table, s.change.column).run(),
            "drop_index": lambda m, s: m.drop_index(s.change.table, s.change.index).run(),
            "drop_unique": lambda m, s: m.drop_index(s.change.table, s.change.index).run(),
            "add_index": self._add_index,
            "add_unique": self._add_index,
            "drop_column": self._drop_column,
            "drop_table": lambda m, s: m.drop_table(s.change.table).run(),
        }

    def _add_column(self, migrator: Any, step: Step) -> None:
        table, column = step.change.table, step.declared.clone()
        name = column.column_name
        migrator.alter_add_column(table, name, column).run()
        if step.facts.default is not missing:
            target = peewee.Table(table)
            value = column.db_value(step.facts.default)
            self.db.execute(target.update({peewee.Column(target, name): value}))
        if not column.null:
            migrator.add_not_null(table, name).run()
        if isinstance(column, peewee.ForeignKeyField) and migrator.explicit_create_foreign_key:
            rel = column.rel_model._meta.table_name
            migrator.add_foreign_key_constraint(
                table, name, rel, "id", on_delete=column.on_delete
            ).run()

    def _add_index(self, migrator: Any, step: Step) -> None:
        table, name = step.change.table, step.change.index
        migrator.add_index(table, step.names, step.unique, name=name).run()

    def _drop_column(self, migrator: Any, step: Step) -> None:
        table, column = step.change.table, step.change.column
        for operation in migrator.drop_column_operations(
            table, column, step.names, step.foreign_key
        ):
            operation.run()


def _links_of(metadata: Any, table: str, names: set[str]) -> bool:
    """Whether ``table`` holds links between tables of the model, as a join table
    does: two columns, each a foreign key to one of them."""
    keys = metadata.foreign_keys.get(table, [])
    return (
        len(metadata.columns.get(table, {})) == 2
        and len(keys) == 2
        and all(key.dest_table in names for key in keys)
    )


def _replaced(steps: list[Step]) -> set[tuple[str, str | None]]:
    """``(table, name)`` of each index dropped and added again under its name
    (unique, or no longer): it is replaced at once."""
    kinds = {"drop_index": "drop", "drop_unique": "drop", "add_index": "add", "add_unique": "add"}
    seen: dict[str, set[tuple[str, str | None]]] = {"drop": set(), "add": set()}
    for step in steps:
        action = kinds.get(step.change.kind)
        if action is not None:
            seen[action].add((step.change.table, step.change.index))
    return seen["drop"] & seen["add"]

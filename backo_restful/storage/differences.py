"""What differs between the tables a model declares and the database's.

The storage's peewee tables say what the model declares; :mod:`playhouse.reflection`
reads what the database has. Each difference is a :class:`Change`, found by
:meth:`Comparison.steps` with what applying it needs (a :class:`Step`). Nothing
here runs a statement: :mod:`.migrations` reads the database and applies the steps.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import peewee
from marshmallow import missing

from .migrators import ColumnType


@dataclass(frozen=True)
class Change:
    """One difference between the model and the database, as a migration would
    apply it.

    ``kind`` is one of ``add_table``, ``add_column``, ``add_foreign_key`` (a
    column holding a relation, with its constraint), ``change_type``,
    ``drop_not_null``, ``set_not_null``, ``add_index``, ``add_unique``,
    ``drop_index``, ``drop_unique``, ``drop_column`` and ``drop_table``.
    ``destructive`` changes lose data (a column or a table dropped, a type
    narrowed or changed). ``str(change)`` is its ``description``.
    """

    kind: str
    table: str
    column: str | None = None
    index: str | None = None
    destructive: bool = False
    description: str = ""

    def __str__(self) -> str:
        return self.description


@dataclass(frozen=True)
class Facts:
    """What the model says of a column besides its type: whether it must hold a
    value (a required field, a required relation) and the value existing rows get
    when it is added (``missing``: none)."""

    required: bool = False
    default: Any = missing


@dataclass(frozen=True)
class Step:
    """A :class:`Change` and what applying it needs."""

    change: Change
    #: The declared table (``add_table``) or column.
    declared: Any = None
    facts: Facts = field(default_factory=Facts)
    #: An index's columns, or the indexes on a column to drop.
    names: tuple[str, ...] = ()
    unique: bool = False
    #: A column to drop holds a foreign key.
    foreign_key: bool = False
    #: The type a column has now (``change_type``).
    type: ColumnType | None = None


#: The order steps are applied in, by kind.
ORDER = (
    "add_table",
    "add_column",
    "add_foreign_key",
    "change_type",
    "drop_not_null",
    "set_not_null",
    "drop_index",
    "drop_unique",
    "add_index",
    "add_unique",
    "drop_column",
    "drop_table",
)

#: The family of a peewee column class (the first that matches).
_FAMILIES: tuple[tuple[type[peewee.Field], str], ...] = (
    (peewee.ForeignKeyField, "integer"),
    (peewee.BooleanField, "boolean"),
    (peewee.IntegerField, "integer"),
    (peewee.FloatField, "float"),
    (peewee.DecimalField, "float"),
    (peewee.CharField, "text"),
    (peewee.TextField, "text"),
    (peewee.UUIDField, "uuid"),
    (peewee.DateTimeField, "datetime"),
    (peewee.DateField, "date"),
    (peewee.TimeField, "time"),
)


def family(column_class: Any) -> str | None:
    """The family of a column of ``column_class`` (None: one we do not know)."""
    if isinstance(column_class, type):
        for base, name in _FAMILIES:
            if issubclass(column_class, base):
                return name
    return None


def label(column_type: ColumnType) -> str:
    """``text``, ``varchar(20)``, ``integer``..."""
    name, length = column_type
    return name if length is None else f"varchar({length})"


def declared_type(column: peewee.Field, stored: Mapping[str, ColumnType]) -> ColumnType | None:
    """The type the database gives ``column`` (as ``stored`` says it stores it)."""
    name = family(type(column))
    if name is None:
        return None
    length = column.max_length if isinstance(column, peewee.CharField) else None
    return stored.get(name, (name, length))


def reflected_type(column: Any) -> ColumnType | None:
    """The type of a column :mod:`playhouse.reflection` read."""
    name = family(column.field_class)
    if name is None:
        return None
    if issubclass(column.field_class, peewee.CharField):
        # reflection leaves out peewee's default length
        return (name, (column.extra_parameters or {}).get("max_length", 255))
    return (name, None)


def narrowing(old: ColumnType, new: ColumnType) -> bool:
    """Whether values of type ``old`` may not fit ``new``."""
    if old[0] != new[0]:
        return True
    if new[1] is None:
        return False
    return old[1] is None or old[1] > new[1]


@dataclass
class Comparison:
    """The model's tables against the database's."""

    #: Every table of the model, join tables last.
    declared: list[Any]
    #: What reflection read of the model's tables that exist, and of ``orphans``.
    metadata: Any
    #: Join tables of the model's collections that it no longer declares.
    orphans: list[str]
    #: ``(table, column)`` -> what the model says of it.
    facts: Mapping[tuple[str, str], Facts]
    #: How the database stores the families it has no type of its own for.
    stored: Mapping[str, ColumnType]

    def steps(self) -> list[Step]:
        """The steps bringing the database in line with the model, in the order
        they are applied (:data:`ORDER`)."""
        steps: list[Step] = []
        for table in self.declared:
            name = table._meta.table_name
            if name not in self.metadata.columns:
                change = Change("add_table", name, description=f"add table {name}")
                steps.append(Step(change, table))
            else:
                steps.extend(self._columns(table))
                steps.extend(self._indexes(table))
        for name in self.orphans:
            description = f"drop table {name} (its links are lost)"
            steps.append(Step(Change("drop_table", name, None, None, True, description)))
        return sorted(steps, key=lambda step: ORDER.index(step.change.kind))

    def _columns(self, table: Any) -> Iterator[Step]:
        name = table._meta.table_name
        present = self.metadata.columns[name]
        keys = set(self.metadata.primary_keys[name])
        declared = {column.column_name: column for column in table._meta.sorted_fields}
        for column_name, column in declared.items():
            if column_name not in present:
                yield self._added(name, column)
            elif column_name not in keys:
                yield from self._changed(name, column, present[column_name])
        for column_name in present:
            if column_name not in declared:
                yield self._dropped(name, column_name)

    def _added(self, table: str, column: peewee.Field) -> Step:
        facts = self.facts.get((table, column.column_name), Facts(required=not column.null))
        where = f"{table}.{column.column_name}"
        column_type = declared_type(column, self.stored)
        description = f"add column {where} ({label(column_type or ('?', None))})"
        kind = "add_column"
        if isinstance(column, peewee.ForeignKeyField):
            kind = "add_foreign_key"
            description += f", a foreign key to {column.rel_model._meta.table_name}.id"
        if not column.null:
            description += ", NOT NULL"
        if facts.default is not missing:
            description += f", existing rows get {facts.default!r}"
        change = Change(kind, table, column.column_name, description=description)
        return Step(change, column, facts, type=column_type)

    def _changed(self, table: str, column: peewee.Field, present: Any) -> Iterator[Step]:
        where = f"{table}.{column.column_name}"
        new, old = declared_type(column, self.stored), reflected_type(present)
        if new is not None and old is not None and new != old:
            # Shorter text loses nothing: migrate() refuses it while a value is longer.
            checked = old[0] == new[0] == "text" and narrowing(old, new)
            destructive = narrowing(old, new) and not checked
            description = f"change the type of {where} from {label(old)} to {label(new)}"
            if checked:
                description += " (every value must fit)"
            elif destructive:
                description += " (values may not fit)"
            kind, name = "change_type", column.column_name
            yield Step(Change(kind, table, name, None, destructive, description), column, type=old)
        if column.null and not present.nullable:
            description = f"make {where} nullable"
            yield Step(Change("drop_not_null", table, column.column_name, None, False, description))
        elif present.nullable and not column.null:
            description = f"make {where} NOT NULL"
            yield Step(Change("set_not_null", table, column.column_name, None, False, description))

    def _dropped(self, table: str, column: str) -> Step:
        description = f"drop column {table}.{column} (its values are lost)"
        change = Change("drop_column", table, column, None, True, description)
        indexes = tuple(
            index.name for index in self.metadata.indexes[table] if column in index.columns
        )
        foreign = any(key.column == column for key in self.metadata.foreign_keys[table])
        return Step(change, names=indexes, foreign_key=foreign)

    def _indexes(self, table: Any) -> Iterator[Step]:
        name = table._meta.table_name
        wanted = {}
        for index in table._meta.fields_to_index():
            columns = tuple(e.column_name for e in index._expressions)
            wanted[(columns, bool(index._unique))] = index._name
        present = self._present_indexes(table)
        for key, index_name in wanted.items():
            if key not in present:
                yield _index_step("add", name, index_name, *key)
        for key, index_name in present.items():
            if key not in wanted:
                yield _index_step("drop", name, index_name, *key)

    def _present_indexes(self, table: Any) -> dict[tuple[tuple[str, ...], bool], str]:
        """The indexes of ``table`` in the database of the shapes the storage makes
        (on a column, or on a column and the id), but the primary key and those on
        a column the model no longer declares (dropped with it)."""
        name = table._meta.table_name
        declared = {column.column_name for column in table._meta.sorted_fields}
        key = list(self.metadata.primary_keys[name])
        present: dict[tuple[tuple[str, ...], bool], str] = {}
        for index in self.metadata.indexes[name]:
            columns = tuple(index.columns)
            if list(columns) == key or not set(columns) <= declared:
                continue
            if len(columns) == 1 or (len(columns) == 2 and columns[1] == "id"):
                present[(columns, bool(index.unique))] = index.name
        return present


def _index_step(action: str, table: str, name: str, columns: tuple[str, ...], unique: bool) -> Step:
    what = "unique index" if unique else "index"
    description = f"{action} {what} {name} on {table} ({', '.join(columns)})"
    kind = f"{action}_{'unique' if unique else 'index'}"
    change = Change(kind, table, columns[0], name, False, description)
    return Step(change, names=columns, unique=unique)

"""Tables, columns, foreign keys and join tables of a data model.

The schema layer of :class:`~backo_restful.storage.PeeweeStorage`: each collection
becomes a peewee model (a table), each scalar field a column of the type its
kind gives (:mod:`backo_restful.kinds`), each relation a foreign key column or a
join table. The tables are created in the database on first use.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable
from typing import Any

import peewee
from marshmallow import fields as ma

from ..exceptions import DeclarationError, SchemaMismatch, StorageError
from ..kinds import SUPPORTED, kind_of, serializer
from ..model import Collection, DataModel, LinkStorage, RelationInfo
from ._utils import attr, field_name, foreign_key, identifier
from .connections import Connections


class _JSONField(peewee.TextField):
    """A marshmallow container field (Dict, List, Nested, ...) stored as JSON text."""

    def db_value(self, value: Any) -> Any:
        return None if value is None else json.dumps(value, separators=(",", ":"))

    def python_value(self, value: Any) -> Any:
        return None if value is None else json.loads(value)


class _DateTimeField(peewee.DateTimeField):
    """Stores aware datetimes as naive UTC, so every backend compares them alike."""

    def db_value(self, value: Any) -> Any:
        if isinstance(value, dt.datetime) and value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return super().db_value(value)


#: The peewee column of each column kind of :data:`backo_restful.kinds.KINDS`
#: (a ``string`` with a key length is a ``CharField`` of that length).
COLUMNS: dict[str, Callable[..., peewee.Field]] = {
    "json": _JSONField,
    "uuid": peewee.UUIDField,
    "string": peewee.TextField,
    "boolean": peewee.BooleanField,
    "integer": peewee.BigIntegerField,
    "float": peewee.DoubleField,
    "datetime": _DateTimeField,
    "date": peewee.DateField,
    "time": peewee.TimeField,
}

#: Column types whose values every driver gives as the Python value (int, str),
#: by exact type (a subclass may convert), besides the primary keys.
_AS_READ = (peewee.BigIntegerField, peewee.ForeignKeyField, peewee.TextField, peewee.CharField)


def converter(field: peewee.Field) -> Any:
    """What turns a value read from ``field``'s column into its Python value
    (None: the driver gives that already)."""
    if type(field) in _AS_READ or isinstance(field, peewee.AutoField):
        return None
    return field.python_value


class Schema(Connections):
    """The tables of one data model."""

    _model: DataModel | None
    _tables: dict[str, Any]
    _joins: dict[tuple[str, str], Any]
    _serializers: dict[str, list[tuple[str, Callable[[Any], Any] | None]]]
    #: (table, column) of the foreign keys the database enforces.
    _enforced: set[tuple[str, str]]
    _schema_lock: threading.Lock
    _tables_ready: bool
    #: The database was opened from a URL: ours to tune (:meth:`Dialect.tune`).
    _owned: bool

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
        relations = [r for c in model.collections.values() for r in c.relations.values()]
        for relation in relations:
            if relation.storage is LinkStorage.FK_HERE:
                self._add_foreign_key(tables, relation)
        joins: dict[tuple[str, str], Any] = {}
        for relation in relations:
            if relation.storage is LinkStorage.M2M:
                join = joins.get((relation.reverse.collection.name, relation.reverse.name))
                if join is None:
                    join = self._build_join(base, tables, relation)
                joins[(relation.collection.name, relation.name)] = join
        self._tables = tables
        self._joins = joins
        self._serializers = {
            c.name: [(name, serializer(field)) for name, field in c.scalars.items()]
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
                name = field_name(field.name)
                for key in (
                    index._name,
                    index._name[:63],
                    f"{table._meta.table_name}.{field.column_name}",
                ):
                    keys[key] = (collection, name)
        return keys

    def _build_table(self, base: type[peewee.Model], collection: Collection) -> Any:
        attrs: dict[str, Any] = {"id": self.dialect.primary_key()}
        for name, field in collection.scalars.items():
            attrs[attr(name)] = self._column(collection, name, field)
        meta: dict[str, Any] = {"table_name": collection.name}
        if self.dialect.id_suffixed_indexes:
            meta["indexes"] = [
                ((attr(name), "id"), False)
                for name, field in collection.scalars.items()
                if field.metadata.get("index") and not field.metadata.get("unique")
            ]
        attrs["Meta"] = type("Meta", (), meta)
        return type(f"Table_{collection.name}", (base,), attrs)

    def _column(self, collection: Collection, name: str, field: ma.Field) -> peewee.Field:
        kind = kind_of(field)
        if kind is None:
            raise DeclarationError(
                f"fields.{type(field).__name__} cannot be stored yet (supported: {SUPPORTED})",
                collection=collection.name,
                field=name,
            )
        options: dict[str, Any] = {"null": True, "column_name": name}
        length = collection.key_lengths.get(name) if kind.column == "string" else None
        if length is not None:
            column: peewee.Field = peewee.CharField(max_length=length, **options)
        else:
            column = COLUMNS[kind.column](**options)
        indexed = bool(field.metadata.get("index")) and not field.metadata.get("unique")
        # Where indexes end with the id, _build_table declares them.
        column.index = indexed and not self.dialect.id_suffixed_indexes
        column.unique = bool(field.metadata.get("unique"))
        self.dialect.adapt_column(column)
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
        key = foreign_key(
            tables[relation.target.name],
            column_name=column_name,
            null=not relation.required,
            unique=not relation.reverse.multi,
            backref="+",
            lazy_load=False,
            _deferred=self.dialect.deferred_foreign_keys,
        )
        table._meta.add_field(attr(relation.name), key)

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
        name = identifier(
            f"{first.collection.name}_{first.name}__{second.collection.name}_{second.name}"
        )

        def side(end: RelationInfo) -> peewee.ForeignKeyField:
            return foreign_key(
                tables[end.collection.name],
                column_name=identifier(f"{end.collection.name}_{end.name}"),
                backref="+",
                lazy_load=False,
                on_delete="CASCADE",
                _deferred=self.dialect.deferred_foreign_keys,
            )

        meta = {"table_name": name, "primary_key": peewee.CompositeKey("left", "right")}
        attrs = {"left": side(first), "right": side(second), "Meta": type("Meta", (), meta)}
        join = type(f"Join_{name}", (base,), attrs)
        join._backo_sides = (first, second)  # type: ignore[attr-defined]
        return join

    def _join_columns(self, relation: RelationInfo) -> tuple[peewee.Field, peewee.Field]:
        """The join table's (this side, other side) columns for ``relation``."""
        join = self._joins[(relation.collection.name, relation.name)]
        first = join._backo_sides[0]
        if (first.collection.name, first.name) == (relation.collection.name, relation.name):
            return join.left, join.right
        return join.right, join.left

    def _models(self) -> list[Any]:
        """Every table of the model, join tables last."""
        return list(self._tables.values()) + list(dict.fromkeys(self._joins.values()))

    def _ensure_tables(self) -> None:
        if self._tables_ready:
            return
        with self._schema_lock:
            if not self._tables_ready:
                self._ready_tables()

    def create_tables(self) -> list[str]:
        """Create the tables of the model the database lacks, as the first use of
        the storage does; the names of the tables created.

        :raises SchemaMismatch: if tables that exist lack columns the model
            declares (:meth:`migrate` adds them).
        """
        with self._schema_lock:
            return self._ready_tables()

    def _ready_tables(self) -> list[str]:
        if self._model is None:
            raise StorageError(message="The storage is not attached to a data model.")
        with self._translated(), self._connection():
            created = self._create_tables()
        self._tables_ready = True
        return created

    def _create_tables(self) -> list[str]:
        """Create the tables the database lacks, and learn which foreign keys it
        enforces; the names of the tables created.

        :raises SchemaMismatch: if tables that exist lack declared columns.
        """
        if self._owned:
            self.dialect.tune()
        existing = set(self.db.get_tables())
        models = self._models()
        kept = [m for m in models if m._meta.table_name in existing]
        self._check_columns(kept)
        created = [m for m in models if m not in kept]
        self._create(created)
        self._enforced = self._foreign_keys(kept)
        for table in created:
            for field in table._meta.refs:
                self._enforced.add((table._meta.table_name, field.column_name))
        return [table._meta.table_name for table in created]

    def _create(self, tables: list[Any]) -> None:
        """Create ``tables``, with their indexes and foreign keys."""
        settings = self.dialect.table_settings()
        for table in tables:
            table._meta.table_settings = settings
            table.create_table(safe=True)
        if self.dialect.deferred_foreign_keys:
            for table in tables:
                for field in table._meta.refs:
                    table._schema.create_foreign_key(field)

    def _check_columns(self, tables: list[Any]) -> None:
        """Refuse ``tables`` (which exist) if they lack columns the model declares:
        a statement would fail on each later, with the database's own words."""
        missing: dict[str, list[str]] = {}
        for table in tables:
            name = table._meta.table_name
            present = {column.name for column in self.db.get_columns(name)}
            lacking = [f.column_name for f in table._meta.sorted_fields]
            lacking = [column for column in lacking if column not in present]
            if lacking:
                missing[name] = lacking
        if missing:
            names = ", ".join(f"{t}.{c}" for t, columns in missing.items() for c in columns)
            raise SchemaMismatch(
                f"The database lacks columns the model declares: {names}. Run "
                "storage.migrate() (flask backo migrate) to add them.",
                missing=missing,
            )

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
            self.dialect.drop_tables(self._models())
        self._tables_ready = False

    def table(self, collection: Collection) -> Any:
        """The peewee model of ``collection``'s table."""
        return self._tables[collection.name]

    def column(self, collection: Collection, name: str) -> Any:
        """The peewee field storing field ``name`` (or ``"id"``) of ``collection``."""
        table = self.table(collection)
        return table.id if name == "id" else table._meta.fields[attr(name)]

    def _by_column(self, collection: Collection, values: dict[str, Any]) -> dict[Any, Any]:
        return {self.column(collection, name): value for name, value in values.items()}

    def _columns(self, collection: Collection) -> list[peewee.Field]:
        table = self.table(collection)
        # Select every column under its field's name (model attributes are prefixed).
        # Columns the driver reads as their Python value need no converter.
        return [
            (field if converter(field) else field.coerce(False)).alias(field_name(name))
            for name, field in table._meta.fields.items()
        ]

    def serializers(self, collection: Collection) -> list[tuple[str, Callable[[Any], Any] | None]]:
        """``(field name, value -> JSON value or None)`` for each scalar of ``collection``."""
        return self._serializers[collection.name]

"""Writing rows and links, and locking the rows a write changes.

The write layer of :class:`~backo_restful.storage.PeeweeStorage`. Where writes
lock rows, every write locks what its request names in one global order before
anything else, so two writes never wait for each other in opposite orders.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import peewee

from ..exceptions import StorageConflict, StorageError
from ..model import Collection, RelationInfo
from ._utils import CHUNK, chunks, reason
from .dialects import Failure
from .reads import Reads


class Writes(Reads):
    """Every write of the storage, and the row locks they take."""

    #: (collection, kind, columns) -> SQL of its INSERT or UPDATE ... RETURNING.
    _write_plans: dict[tuple[str, str, tuple[str, ...]], tuple[str, list[Any]]]

    # -- locks ----------------------------------------------------------------

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
            for chunk in chunks(todo):
                query = table.select(table.id).where(table.id.in_(chunk)).order_by(table.id)
                if self.row_locks:
                    query = query.for_update(nowait=state.ordered or None)
                try:
                    held.update(row for (row,) in query.tuples())
                except peewee.PeeweeException as exc:
                    if not state.ordered or self.dialect.failure(exc) is not Failure.CONFLICT:
                        raise
                    # Busy: the write runs again, locking these in order first.
                    raise StorageConflict(reason(exc), rows={collection.name: set(todo)}) from exc
        return wanted & held

    def _locked(self, collection: Collection, ids: Iterable[int]) -> None:
        """Make sure the rows a write changes are locked (without waiting, once the
        write's own rows are: see :meth:`lock`)."""
        if self.row_locks:
            self.lock(collection, ids)

    # -- rows -----------------------------------------------------------------

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
                raise StorageConflict(reason(exc)) from exc
            raise
        new_id = id_ if id_ is not None else int(new_id)
        if id_ is not None:
            self.dialect.after_explicit_id(table._meta.table_name, id_)
        self._state().held.setdefault(collection.name, set()).add(new_id)
        return new_id

    def insert_returning(self, collection: Collection, values: dict[str, Any]) -> dict[str, Any]:
        """Insert a row and return it as :meth:`fetch` would read it, in the same
        statement where the database can (``RETURNING``: PostgreSQL, SQLite 3.35+)."""
        if not self.dialect.returning:
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
        if not self.dialect.returning:
            if not self.lock(collection, [id_]):
                return None
            self.update(collection, id_, values)
            return self.fetch(collection, [id_])[0]
        return self._returned(collection, "update", values, id_)

    def update(self, collection: Collection, id_: int, values: dict[str, Any]) -> None:
        """Write ``values`` to row ``id_``."""
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
        for chunk in chunks(sorted(ids)):
            table.update(self._by_column(collection, values)).where(table.id.in_(chunk)).execute()

    def delete(self, collection: Collection, ids: Iterable[int]) -> None:
        """Delete rows ``ids``."""
        ids = set(ids)
        self._locked(collection, ids)
        table = self.table(collection)
        for chunk in chunks(sorted(ids)):
            table.delete().where(table.id.in_(chunk)).execute()
        self._state().held.get(collection.name, set()).difference_update(ids)

    # -- links ----------------------------------------------------------------

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
        for chunk in chunks(sorted(ids)):
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
        for chunk in chunks(sorted(set(target_ids))):
            query = table.select(table.id, fk).where(fk.in_(chunk)).order_by(table.id)
            result.extend((row_id, target) for row_id, target in query.tuples())
        return result

    def m2m_add(self, relation: RelationInfo, owner_id: int, other_ids: Iterable[int]) -> None:
        """Link ``owner_id`` to ``other_ids`` in ``relation``'s join table."""
        mine, theirs = self._join_columns(relation)
        rows = [{mine: owner_id, theirs: other} for other in sorted(set(other_ids))]
        # Two parameters a row: half as many rows as ids in a statement.
        for start in range(0, len(rows), CHUNK // 2):
            mine.model.insert_many(rows[start : start + CHUNK // 2]).execute()

    def m2m_remove(
        self, relation: RelationInfo, owner_ids: Iterable[int], other_ids: Iterable[int] | None
    ) -> None:
        """Remove links of ``owner_ids`` (to ``other_ids``, or to everything)."""
        mine, theirs = self._join_columns(relation)
        join = mine.model
        others_list = None if other_ids is None else sorted(set(other_ids))
        for chunk in chunks(sorted(set(owner_ids))):
            if others_list is None:
                join.delete().where(mine.in_(chunk)).execute()
                continue
            for others in chunks(others_list):
                join.delete().where(mine.in_(chunk) & theirs.in_(others)).execute()

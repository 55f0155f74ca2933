"""The one place every object write of the engine goes through.

Creates, updates, link changes from either side, unlinks, deletes and cascades
all reach the storage by the methods of :class:`Changes`, and by no other path:
the events of each changed object fire here (see :mod:`.events`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..model import Collection, LinkStorage, RelationInfo
from .events import Events, Linked


class Changes(Events):
    """The writes of one call, as the storage receives them."""

    @property
    def events_on(self) -> bool:
        """Whether the model declares any event handler."""
        return bool(self.model.lifecycle.handlers)

    def insert(self, collection: Collection, values: dict[str, Any], id_: int | None = None) -> int:
        """Create a row of ``collection`` (at ``id_`` when given); its id."""
        if not self.events_on:
            return self.storage.insert(collection, values, id_)
        values = self.before_write(collection, None, None, values)
        new_id = self.linked(
            _targets(collection, values), lambda: self.storage.insert(collection, values, id_)
        )
        if self.watching(collection, "created", "saved"):
            self.after_write(collection, new_id, None, created=True)
        return new_id

    def insert_returning(self, collection: Collection, values: dict[str, Any]) -> dict[str, Any]:
        """Create a row of ``collection``; the row as written."""
        if not self.events_on or not (
            self.watching(collection, "before_save", "created", "saved")
            or self._keys_in(values, collection)
        ):
            return self.storage.insert_returning(collection, values)
        new_id = self.insert(collection, values)
        row = self.storage.fetch_one(collection, new_id)
        return row if row is not None else {"id": new_id, **values}

    def update(self, collection: Collection, id_: int, values: dict[str, Any]) -> None:
        """Set ``values`` in the row of object ``id_``."""
        if not self.events_on:
            self.storage.update(collection, id_, values)
            return
        self._update_row(collection, id_, values, returning=False)

    def update_returning(
        self, collection: Collection, id_: int, values: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Set ``values`` in the row of object ``id_``; the row as written (None:
        there is no such row)."""
        if not self.events_on:
            return self.storage.update_returning(collection, id_, values)
        return self._update_row(collection, id_, values, returning=True)

    def update_rows(self, collection: Collection, ids: list[int], values: dict[str, Any]) -> None:
        """Set the same ``values`` (no key stored in the row) in the rows of
        objects ``ids``: one statement, unless handlers watch each row."""
        if not self.watching(collection, "before_save", "saved"):
            self.storage.update_many(collection, ids, values)
            return
        for id_ in ids:
            self._update_row(collection, id_, values, returning=False)

    def _update_row(
        self, collection: Collection, id_: int, values: dict[str, Any], *, returning: bool
    ) -> dict[str, Any] | None:
        watched = self.watching(collection, "before_save", "saved")
        old = self.values_of(collection, [id_]).get(id_) if watched else None
        if watched and old is None:
            return None  # no such object
        if old is not None:
            values = self.before_write(collection, id_, old, values)
        row = self.storage.fetch_one(collection, id_) if self._keys_in(values, collection) else None
        targets = _moved(collection, values, row)

        def write() -> dict[str, Any] | None:
            if returning:
                return self.storage.update_returning(collection, id_, values)
            self.storage.update(collection, id_, values)
            return None

        row = self.linked(targets, write)
        if old is not None:
            self.after_write(collection, id_, old, created=False)
            if returning:
                row = self.storage.fetch_one(collection, id_)
        return row

    def _keys_in(self, values: dict[str, Any], collection: Collection) -> bool:
        """Whether ``values`` set a key stored in the row, to a watched collection."""
        return any(
            relation.storage is LinkStorage.FK_HERE
            and relation.name in values
            and self.watching(relation.target, "before_save", "saved")
            for relation in collection.relations.values()
        )

    def touch(self, collection: Collection, ids: Iterable[int]) -> None:
        """Record in the audit fields of objects ``ids`` that a write changed them
        (a link of theirs, stored elsewhere: its own events fire with the link)."""
        if not collection.options.get("audit"):
            return
        self.storage.update_many(collection, ids, self._audit(collection, create=False))

    def set_link(
        self,
        relation: RelationInfo,
        ids: Iterable[int],
        target: int | None,
        *,
        linked_to: set[int] | None = None,
    ) -> None:
        """Point the key column of ``relation`` in rows ``ids`` at ``target``
        (only where it points into ``linked_to``, when given)."""
        ids = set(ids)
        if not self.events_on:
            self.storage.set_link(relation, ids, target, linked_to=linked_to)
            return
        targets: Linked = [(relation.collection, ids)]
        if self.watching(relation.target, "before_save", "saved"):
            rows = self.storage.fetch(relation.collection, ids)
            ends: set[int] = ({row[relation.name] for row in rows} | {target}) - {None}  # type: ignore[assignment]
            targets.append((relation.target, ends))
        self.linked(
            targets, lambda: self.storage.set_link(relation, ids, target, linked_to=linked_to)
        )

    def add_links(self, relation: RelationInfo, owner: int, others: Iterable[int]) -> None:
        """Link ``owner`` to ``others`` through the join table of ``relation``."""
        others = set(others)
        if not self.events_on:
            self.storage.m2m_add(relation, owner, others)
            return
        targets: Linked = [(relation.collection, {owner}), (relation.target, others)]
        self.linked(targets, lambda: self.storage.m2m_add(relation, owner, others))

    def remove_links(
        self, relation: RelationInfo, owners: Iterable[int], others: Iterable[int] | None
    ) -> None:
        """Unlink ``owners`` from ``others`` (None: from every object) in the join
        table of ``relation``."""
        owners = set(owners)
        others = set(others) if others is not None else None
        if not self.events_on:
            self.storage.m2m_remove(relation, owners, others)
            return
        targets: Linked = [(relation.collection, owners)]
        if self.watching(relation.target, "before_save", "saved"):
            ends = others
            if ends is None:
                ends = self.linked_ids(relation, owners)
            targets.append((relation.target, ends))
        self.linked(targets, lambda: self.storage.m2m_remove(relation, owners, others))

    def remove(self, collection: Collection, ids: Iterable[int]) -> None:
        """Delete the rows of objects ``ids`` (of a delete whose ``before_delete``
        events have fired, see :meth:`Events.before_delete`)."""
        ids = set(ids)
        if not self.events_on:
            self.storage.delete(collection, ids)
            return
        keys = [
            relation
            for relation in collection.relations.values()
            if relation.storage is LinkStorage.FK_HERE
            and self.watching(relation.target, "before_save", "saved")
        ]
        rows = self.storage.fetch(collection, ids) if keys else []
        targets: Linked = [
            (relation.target, {row[relation.name] for row in rows} - {None}) for relation in keys
        ]
        self.linked(targets, lambda: self.storage.delete(collection, ids))
        old = (self.leaving or {}).get(collection.name, {})
        for id_ in sorted(old):
            if id_ in ids:
                self.fire(self.event("deleted", collection, id_, old[id_], None))


def _targets(collection: Collection, values: dict[str, Any]) -> Linked:
    """The objects a new row's keys ``values`` link to."""
    return [
        (relation.target, {values[relation.name]})
        for relation in collection.relations.values()
        if relation.storage is LinkStorage.FK_HERE and values.get(relation.name) is not None
    ]


def _moved(collection: Collection, values: dict[str, Any], row: dict[str, Any] | None) -> Linked:
    """The objects an update of ``row`` with ``values`` links to or unlinks from."""
    if row is None:
        return []
    moved = []
    for relation in collection.relations.values():
        if relation.storage is LinkStorage.FK_HERE and relation.name in values:
            ends = {row[relation.name], values[relation.name]} - {None}
            if row[relation.name] != values[relation.name] and ends:
                moved.append((relation.target, ends))
    return moved

"""The one place every object write of the engine goes through.

Creates, updates, link changes from either side, unlinks, deletes and cascades
all reach the storage by the methods of :class:`Changes`, and by no other path:
what must happen at each change of an object happens here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..model import Collection, RelationInfo
from .guard import Guard


class Changes(Guard):
    """The writes of one call, as the storage receives them."""

    def insert(self, collection: Collection, values: dict[str, Any], id_: int | None = None) -> int:
        """Create a row of ``collection`` (at ``id_`` when given); its id."""
        return self.storage.insert(collection, values, id_)

    def insert_returning(self, collection: Collection, values: dict[str, Any]) -> dict[str, Any]:
        """Create a row of ``collection``; the row as written."""
        return self.storage.insert_returning(collection, values)

    def update(self, collection: Collection, id_: int, values: dict[str, Any]) -> None:
        """Set ``values`` in the row of object ``id_``."""
        self.storage.update(collection, id_, values)

    def update_returning(
        self, collection: Collection, id_: int, values: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Set ``values`` in the row of object ``id_``; the row as written (None:
        there is no such row)."""
        return self.storage.update_returning(collection, id_, values)

    def touch(self, collection: Collection, ids: Iterable[int]) -> None:
        """Record in the audit fields of objects ``ids`` that a write changed them
        (a link of theirs, stored elsewhere)."""
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
        self.storage.set_link(relation, ids, target, linked_to=linked_to)

    def add_links(self, relation: RelationInfo, owner: int, others: Iterable[int]) -> None:
        """Link ``owner`` to ``others`` through the join table of ``relation``."""
        self.storage.m2m_add(relation, owner, others)

    def remove_links(
        self, relation: RelationInfo, owners: Iterable[int], others: Iterable[int] | None
    ) -> None:
        """Unlink ``owners`` from ``others`` (None: from every object) in the join
        table of ``relation``."""
        self.storage.m2m_remove(relation, owners, others)

    def remove(self, collection: Collection, ids: Iterable[int]) -> None:
        """Delete the rows of objects ``ids``."""
        self.storage.delete(collection, ids)

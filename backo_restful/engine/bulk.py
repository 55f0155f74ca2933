"""Bulk writes: PATCH or DELETE every object a filter matches, all or nothing.

The calls :meth:`BulkWriting.patch_many` and :meth:`BulkWriting.delete_many` of
:class:`~backo_restful.engine.Engine` find the matches with the query language
of lists, within the caller's scope, lock them in id order, and change each as
its own PATCH or DELETE would (rights, field rights, events, delete
strategies), in one write transaction. Where nothing needs a look at each
object, the change is one statement for all of them.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from ..access import permission_of
from ..exceptions import InvalidBody, InvalidFilter, LimitExceeded
from ..model import Collection, NewObject
from ..query import And, Condition, Node, check_count
from ..storage import PeeweeStorage
from .arguments import load
from .call import Auth
from .logged import logged
from .options import ID_PATH, filter_node
from .writing import scalar_values

if TYPE_CHECKING:
    from .core import Operation

_T = TypeVar("_T")

#: Ids per statement that reads the locked matches again.
RECHECK = 5000

#: What a bulk write answers: how many objects it changed or deleted, and their ids.
Result = tuple[dict[str, Any], int]


class BulkWriting:
    """The bulk calls of :class:`~backo_restful.engine.Engine`."""

    storage: PeeweeStorage

    if TYPE_CHECKING:

        def _start(self, name: str, auth: Auth) -> tuple[Collection, Operation]: ...

        def _write(self, operation: Operation, work: Callable[[], _T]) -> _T: ...

    @logged("patch_many")
    def patch_many(
        self,
        name: str,
        data: Any,
        *,
        filter_: Mapping[str, Any] | Node | None,
        auth: Auth = None,
        max_affected: int | None = None,
    ) -> Result:
        """Change the given fields of every object of ``name`` that ``filter_``
        matches, as :meth:`Engine.patch` would change each, all or nothing.

        :param data: the fields to set (relations by id: no nested objects).
        :param filter_: a filter as :meth:`Engine.get` takes it; required.
        :param max_affected: refuse (400) a filter matching more objects than this.
        :returns: ``({"count": n, "ids": [...]}, 200)``, the ids in order.
        :raises InvalidFilter: if there is no filter, or it is empty.
        :raises LimitExceeded: if the filter matches more than ``max_affected``.
        :raises Forbidden: if the caller may not change one of the matches (or
            one of its fields): nothing is changed.
        """
        collection, operation = self._start(name, auth)
        operation.refuse_early(collection, "update")
        where = _where(collection, filter_, operation)
        limit = _limit(max_affected)
        loaded = load(collection, data, partial=True)
        _refuse_nested(collection, loaded)

        def work() -> Result:
            ids = _matches(operation, collection, where, limit, loaded)
            if ids and operation.plain_update(collection, loaded):
                # Plain values, nothing to check per object: one UPDATE of all.
                values = scalar_values(collection, loaded)
                for key, value in operation._audit(collection, create=False).items():
                    values.setdefault(key, value)  # trusted code only: guarded otherwise
                operation.update_rows(collection, ids, values)
            else:  # each as its own PATCH: rights, field rights, links, events
                for id_ in ids:
                    allowed = operation.allowed_update(collection, id_, loaded)
                    operation.update_object(collection, id_, allowed, replace=False)
            return {"count": len(ids), "ids": ids}, 200

        return self._write(operation, work)

    @logged("delete_many")
    def delete_many(
        self,
        name: str,
        *,
        filter_: Mapping[str, Any] | Node | None,
        auth: Auth = None,
        max_affected: int | None = None,
    ) -> Result:
        """Delete every object of ``name`` that ``filter_`` matches, applying the
        delete strategies of their relations as :meth:`Engine.delete` does, all
        or nothing.

        Takes the arguments of :meth:`patch_many` (without ``data``).

        :returns: ``({"count": n, "ids": [...]}, 200)``, the ids in order.
        :raises Conflict: if a strategy refuses the delete of one of them.
        """
        collection, operation = self._start(name, auth)
        operation.refuse_early(collection, "delete")
        where = _where(collection, filter_, operation)
        limit = _limit(max_affected)

        def work() -> Result:
            rows: list[dict[str, Any]] = []
            ids = _matches(operation, collection, where, limit, None, rows)
            access = operation.access
            if access is not None and permission_of(collection) is not None:
                for row in rows:
                    access.require(collection, "delete", row)
            if ids:
                operation.delete_objects(collection, set(ids))
            return {"count": len(ids), "ids": ids}, 200

        return self._write(operation, work)


def _where(collection: Collection, filter_: Any, operation: Operation) -> Node:
    """``filter_`` parsed, as the caller may give it.

    :raises InvalidFilter: if it is missing or empty: nobody changes or empties
        a whole collection by accident.
    """
    access = operation.access
    where = None
    if not isinstance(filter_, Mapping) or filter_:
        where = filter_node(collection, filter_, access.hidden if access is not None else None)
    if where is None:
        raise InvalidFilter(
            f"A bulk write needs a filter: it changes or deletes the {collection.name} "
            "objects the filter matches, and none was given.",
            {"parameter": "filter"},
        )
    return where


def _limit(max_affected: int | None) -> int | None:
    return None if max_affected is None else check_count("max_affected", max_affected)


def _refuse_nested(collection: Collection, data: dict[str, Any]) -> None:
    """Refuse a bulk PATCH nesting new objects: one would be created per match.

    :raises InvalidBody: naming the field.
    """
    for relation in collection.relations.values():
        value = data.get(relation.name)
        items = value if isinstance(value, list) else [value]
        if any(isinstance(item, NewObject) for item in items):
            key = collection.external_name(relation.name)
            raise InvalidBody(
                f"A bulk write links {key} by id: it creates no nested objects.",
                {"collection": collection.name, "field": key},
            )


def _matches(
    operation: Operation,
    collection: Collection,
    where: Node,
    limit: int | None,
    data: dict[str, Any] | None,
    rows: list[dict[str, Any]] | None = None,
) -> list[int]:
    """The ids of the objects ``where`` matches in the caller's scope, locked in
    id order with the objects a PATCH of ``data`` links or unlinks (fills
    ``rows`` with their rows, read once they are locked).

    :raises LimitExceeded: if there are more than ``limit`` (nothing is locked).
    """
    storage = operation.storage
    scope, scopes = operation.scopes(collection)
    room = None if limit is None else limit + 1  # one more tells there are more
    found = storage.select(collection, where, limit=room, scope=scope, scopes=scopes)
    if limit is not None and len(found) > limit:
        raise LimitExceeded(
            f"This filter matches more than {limit} {collection.name} objects, more than "
            f"a bulk write changes (BACKO_MAX_AFFECTED={limit}): narrow it.",
            {"parameter": "filter", "setting": "BACKO_MAX_AFFECTED", "maximum": limit},
        )
    ids = [row["id"] for row in found]
    if ids and storage.row_locks:
        operation.lock_plan(collection, ids, [] if data is None else [data])
        # Locked now: keep those that still exist and match (another write may
        # have changed them meanwhile), as read now.
        found = [
            row
            for start in range(0, len(ids), RECHECK)
            for row in storage.select(
                collection,
                And((where, Condition(ID_PATH, "in", ids[start : start + RECHECK]))),
                scope=scope,
                scopes=scopes,
            )
        ]
        ids = [row["id"] for row in found]
    if rows is not None:
        rows.extend(found)
    return ids

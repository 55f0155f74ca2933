"""One engine call: the caller's rights and the answer's budget, passed explicitly.

Every operation of an engine call is a method of one
:class:`~backo_restful.engine.core.Operation`, a :class:`Call` built by the
:class:`~backo_restful.engine.Engine` for that call and dropped after it. The
concerns of a call are subclasses of :class:`Call`, one per module (reading,
guarding, changes, writing, deleting), composed into ``Operation``, so the state
they share travels in ``self``, never in a global.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..access import Access, permission_of
from ..exceptions import BackoError, InternalError, LimitExceeded, NotFound
from ..model import Collection, DataModel, LinkStorage, NewObject, RelationInfo
from ..query import Node
from ..storage import PeeweeStorage, Scopes

if TYPE_CHECKING:
    from ..lifecycle import Event
    from .core import Engine

Auth = Mapping[str, Any] | None


def access_of(model: DataModel, auth: Auth) -> Access | None:
    """The rights of ``auth`` in ``model``: None for trusted code (``auth=None``).

    :raises TypeError: if ``auth`` is neither None nor a Mapping.
    """
    if auth is None:
        return None
    if not isinstance(auth, Mapping):
        raise TypeError(
            f"auth is None (trusted code) or a Mapping of verified claims, "
            f"not {type(auth).__name__}"
        )
    return Access(model, auth)


@contextmanager
def application_code(
    logger: logging.Logger | None = None,
    message: str = "",
    *args: Any,
    passing: tuple[type[BaseException], ...] = (),
) -> Iterator[None]:
    """Run code of the application (an event or action handler, a computed
    field's ``get`` or ``set``): a :class:`BackoError` (or one of ``passing``)
    leaves as it is; any other exception is the application's bug, an
    :class:`InternalError` whose cause it is, logged with its traceback as
    ``message % args`` on ``logger`` when one is given."""
    leaving: tuple[type[BaseException], ...] = (BackoError, *passing)
    try:
        yield
    except leaving:
        raise
    except Exception as exc:
        if logger is not None:
            logger.error(message, *args, exc_info=True)
        raise InternalError() from exc


class Budget:
    """Counts the objects and ids of one response against ``limit`` (None: no limit)."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int | None = None) -> None:
        self.limit = limit
        self.used = 0

    def room(self) -> int | None:
        """How many more rows to read: one over the limit shows it is exceeded."""
        return None if self.limit is None else self.limit - self.used + 1

    def take(self, count: int) -> None:
        """Count ``count`` objects or ids read."""
        self.used += count
        self.check(self.used)

    def check(self, shown: int) -> None:
        """Refuse an answer that shows ``shown`` objects and ids."""
        if self.limit is not None and shown > self.limit:
            raise LimitExceeded(
                f"The response would hold more than {self.limit} objects and ids "
                f"(BACKO_MAX_OBJECTS={self.limit}): ask for less depth, a smaller page "
                "or fewer fields.",
                {"setting": "BACKO_MAX_OBJECTS", "maximum": self.limit},
            )


class Call:
    """The state of one engine call.

    :param engine: the engine called.
    :param access: the caller's rights (None: trusted code, no checks).
    """

    #: How deep in a chain of events this call runs (0: called by the application).
    depth = 0
    #: Where the events for ``after_commit`` handlers queue until the outermost
    #: call commits (None: not running in a write).
    committed: list[Event] | None = None

    def __init__(self, engine: Engine, access: Access | None) -> None:
        self.engine = engine
        self.model: DataModel = engine.model
        self.storage: PeeweeStorage = engine.storage
        self.access = access
        #: The objects and ids the answer may still show (reset by each read attempt).
        self.budget = Budget()

    def scope(self, collection: Collection) -> Node | None:
        """The filter the caller's reads of ``collection`` get (None: every object)."""
        return self.access.scope(collection) if self.access is not None else None

    def scopes(self, collection: Collection) -> tuple[Node | None, Scopes | None]:
        """The caller's scope of ``collection``, and the scopes of every collection
        (for paths through relations); None, None for trusted code."""
        if self.access is None:
            return None, None
        return self.access.scope(collection), self.access.scopes()

    def refuse_early(self, collection: Collection, *actions: str) -> None:
        """Refuse a caller whom no object could allow any of ``actions`` (asked with
        ``obj=None``), before the request's body or its object are looked at."""
        access = self.access
        if access is None:
            return
        permission = permission_of(collection)
        if permission is not None and not any(permission.can(access.auth, a) for a in actions):
            raise access.refusal(collection, actions[0])

    def visible_ids(self, collection: Collection, ids: set[int]) -> set[int]:
        """Those of ``ids`` the caller may see."""
        scope = self.scope(collection)
        if scope is None or not ids:
            return ids
        return self.storage.existing_ids(collection, ids, scope=scope)

    def linked_ids(
        self, relation: RelationInfo, ids: Iterable[int], scope: Node | None = None
    ) -> set[int]:
        """The objects the links of ``relation`` from objects ``ids`` point at
        (within ``scope``, when given)."""
        return {rid for _, rid, _ in self.storage.links(relation, ids, scope=scope)}

    def lock_existing(self, collection: Collection, ids: list[int]) -> None:
        """Lock objects ``ids``, which must exist (and be visible to the caller).

        :raises NotFound: naming the missing ones.
        """
        if not ids:
            return
        scope = self.scope(collection)
        found = self.storage.lock(collection, ids)
        if scope is not None and found:
            found = self.storage.existing_ids(collection, found, scope=scope)
        missing = set(ids) - found
        if missing:
            raise missing_objects(collection, missing)

    def lock_plan(
        self,
        collection: Collection,
        id_: int | list[int] | None,
        items: list[dict[str, Any]],
        *,
        replace: bool = False,
    ) -> None:
        """Lock, before anything else and in one global order, the objects a write
        will change that its request tells: object ``id_`` (or objects, a list of
        ids), every object the ``items`` (with their nested objects) link to, and
        the objects linked to ``id_`` now through the relations it sets (all of
        them on ``replace``).

        Two writes crossing on the same objects then queue instead of deadlocking;
        rows found later are locked without waiting (see
        :meth:`PeeweeStorage.lock`). A link is part of both objects, so changing it
        locks both.
        """
        if not self.storage.row_locks:
            return  # one writer at a time
        ids = [id_] if isinstance(id_, int) else id_ or []
        wanted: dict[str, set[int]] = {}
        if ids:
            wanted[collection.name] = set(ids)
        for data in items:
            named_ids(collection, data, wanted)
        if ids:
            for relation in collection.relations.values():
                if relation.storage is LinkStorage.FK_HERE:
                    continue  # its target is named in the request, or is nulled
                if replace or any(relation.name in data for data in items):
                    current = self.linked_ids(relation, ids)
                    wanted.setdefault(relation.target.name, set()).update(current)
        self.storage.lock_in_order(
            {self.model.collections[name]: ids for name, ids in wanted.items() if ids}
        )

    def stored(self, collection: Collection, id_: int) -> dict[str, Any]:
        """The stored row of object ``id_``, which the call has locked.

        :raises NotFound: if it is gone after all.
        """
        row = self.storage.fetch_one(collection, id_)
        if row is None:
            raise missing_objects(collection, {id_})
        return row


def named_ids(collection: Collection, data: dict[str, Any], wanted: dict[str, set[int]]) -> None:
    """Add to ``wanted`` the ids of the objects ``data`` links to, in its nested
    objects too, by collection name."""
    for relation in collection.relations.values():
        value = data.get(relation.name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, NewObject):
                named_ids(relation.target, item.data, wanted)
            elif item is not None:
                wanted.setdefault(relation.target.name, set()).add(item)


def missing_objects(collection: Collection, ids: set[int]) -> NotFound:
    """The error for objects ``ids`` of ``collection`` that do not exist."""
    error = NotFound(collection.name, min(ids))
    error.details["ids"] = sorted(ids)
    return error

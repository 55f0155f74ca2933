"""Events: the handlers of an object's life, fired from the one path of writes.

For an object a statement writes (an insert, an update of its row, a delete),
``before_save`` or ``before_delete`` runs before the statement, with the values
it will write, which the handler may change; ``created``, ``saved`` or
``deleted`` after it. An object whose links change by another row's statement
(the other side of a link, a join table, a partner taken away, a delete) gets
``before_save`` once the statement has run, with its values read back, then
``saved``. Every value is as trusted code reads it at depth 1. ``after_commit``
handlers get the ``created``, ``saved`` and ``deleted`` events once the
transaction has committed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from marshmallow import ValidationError

from ..exceptions import EventDepthExceeded, InternalError, ValidationFailed
from ..lifecycle import COMMITTED, Event
from ..logs import events_logger as logger
from ..model import Collection, LinkStorage, NewObject
from ..storage import to_storable
from .call import Budget, application_code
from .guard import Guard
from .reading import Reading

_T = TypeVar("_T")

#: How deep events may fire events (a handler's write firing handlers...).
MAX_EVENT_DEPTH = 16

#: Objects by collection, and their values by id.
Snapshots = dict[int, dict[str, Any]]
#: The collections and ids a statement changes besides the rows it writes.
Linked = list[tuple[Collection, set[int]]]


class Events(Guard, Reading):
    """The events of one call's writes."""

    #: Objects a delete is removing: no events for their links on the way out.
    doomed: dict[str, set[int]] | None = None
    #: Their values before the delete wrote anything, by collection name.
    leaving: dict[str, Snapshots] | None = None

    def watching(self, collection: Collection, *names: str) -> bool:
        """Whether ``collection`` has a handler for one of events ``names``."""
        handlers = self.model.lifecycle.handlers.get(collection.name)
        if not handlers:
            return False
        return any(handlers.get(name) for name in (*names, "after_commit"))

    def values_of(self, collection: Collection, ids: Iterable[int]) -> Snapshots:
        """Objects ``ids`` as trusted code reads them at depth 1, by id."""
        ids = set(ids)
        if not ids:
            return {}
        trusted = type(self)(self.engine, None)
        trusted.budget = Budget()
        rows = self.storage.fetch(collection, ids)
        shown = trusted.render(collection, rows, 1, _stored_fields(collection))
        return {row["id"]: obj for row, obj in zip(rows, shown, strict=True)}

    def fire(self, event: Event) -> None:
        """Run ``event``'s handlers, in order; queue it for ``after_commit``.

        :raises EventDepthExceeded: if events fire too many levels deep.
        :raises InternalError: if a handler fails with an exception that is not
            a :class:`BackoError` (which passes unchanged).
        """
        lifecycle = self.model.lifecycle
        handlers = lifecycle.of(event.collection, event.name)
        later = event.name in COMMITTED and lifecycle.of(event.collection, "after_commit")
        if (handlers or later) and self.depth >= MAX_EVENT_DEPTH:
            raise EventDepthExceeded()
        for handler in handlers:
            name = getattr(handler, "__name__", repr(handler))
            message = "%s handler %s of %s %s failed"
            with application_code(logger, message, event.name, name, event.collection, event.id):
                handler(event)
        if later and self.committed is not None:
            self.committed.append(event)

    def event(
        self,
        name: str,
        collection: Collection,
        id_: int | None,
        old: dict[str, Any] | None,
        new: dict[str, Any] | None,
    ) -> Event:
        """The event ``name`` of object ``id_``, whose values go from ``old`` to ``new``."""
        if old is None or new is None:
            changes = frozenset(key for key in (new or old or {}) if key != "id")
        else:
            changes = frozenset(key for key in new if old.get(key) != new[key])
        return Event(
            name, collection.name, id_, old, new, changes,
            self.access.auth if self.access is not None else None,
            self.engine.bound(self.depth + 1, self.committed),
        )  # fmt: skip

    # -- the object a statement writes ---------------------------------------------

    def before_write(
        self, collection: Collection, id_: int | None, old: dict[str, Any] | None,
        values: dict[str, Any],
    ) -> dict[str, Any]:  # fmt: skip
        """Fire ``before_save`` for the row ``values`` will write (insert when
        ``id_`` is None); ``values`` with what the handlers changed."""
        if not self.model.lifecycle.of(collection.name, "before_save"):
            return values
        expected = self._expected(collection, old, values)
        event = self.event("before_save", collection, id_, old, dict(expected))
        self.fire(event)
        given = event.new if isinstance(event.new, dict) else {}
        changed = _changed(expected, given)
        if not changed:
            return values
        return {**values, **self._storable(collection, changed)}

    def after_write(
        self, collection: Collection, id_: int, old: dict[str, Any] | None, *, created: bool
    ) -> None:
        """Fire ``created`` (on insert) and ``saved`` for object ``id_``, read back."""
        new = self.values_of(collection, [id_]).get(id_)
        if new is None or new == old:
            return
        if created:
            self.fire(self.event("created", collection, id_, None, new))
        self.fire(self.event("saved", collection, id_, old, new))

    def _expected(
        self, collection: Collection, old: dict[str, Any] | None, values: dict[str, Any]
    ) -> dict[str, Any]:
        """The object as it will read once ``values`` are written over ``old``
        (None: a new object, its other fields empty)."""
        expected: dict[str, Any] = dict(old) if old is not None else {}
        for key, name, serialize in self._layout(collection):
            if name in collection.computed:
                continue  # not stored: not in event values
            if name in values:
                value = values[name]
                relation = collection.relations.get(name)
                expected[key] = value if relation or serialize is None else serialize(value)
            elif old is None:
                relation = collection.relations.get(name)
                expected[key] = [] if relation is not None and relation.multi else None
        return expected

    def _storable(self, collection: Collection, changed: dict[str, Any]) -> dict[str, Any]:
        """What ``before_save`` handlers changed, validated, as storage values.

        :raises ValidationFailed: naming every invalid field.
        :raises InternalError: for a change of a relation kept outside the row.
        """
        for key in changed:
            name = collection.by_key.get(key, "")
            relation = collection.relations.get(name)
            one_to_one = relation is not None and not relation.reverse.multi
            if name in collection.computed or (
                relation is not None and (relation.storage is not LinkStorage.FK_HERE or one_to_one)
            ):
                logger.error("a before_save handler of %s changed %s", collection.name, key)
                raise InternalError(
                    f"A before_save handler of {collection.name} changed {key}: it may "
                    "change stored fields and many-to-one Refs only."
                )
        try:
            loaded = collection.load(changed, partial=True)
        except ValidationError as exc:
            raise ValidationFailed(exc.normalized_messages()) from None
        values = {}
        for name, value in loaded.items():
            field = collection.scalars.get(name)
            if field is not None:
                values[name] = to_storable(field, value)
            elif isinstance(value, NewObject):
                raise InternalError(f"A before_save handler of {collection.name} nested an object.")
            else:
                values[name] = value  # a key stored in the row; its foreign key checks it
        return values

    def before_delete(self, doomed: dict[str, set[int]]) -> None:
        """Fire ``before_delete`` for every object of ``doomed`` a delete removes,
        before it writes anything; keep their values for ``deleted``."""
        self.doomed, self.leaving = doomed, {}
        for name, ids in doomed.items():
            collection = self.model.collections[name]
            if ids and self.watching(collection, "before_delete", "deleted"):
                old = self.values_of(collection, ids)
                self.leaving[name] = old
                for id_ in sorted(old):
                    self.fire(self.event("before_delete", collection, id_, old[id_], None))

    # -- objects whose links another row's statement changes -----------------------

    def linked(self, targets: Linked, write: Callable[[], _T]) -> _T:
        """Run ``write``, then fire ``before_save`` and ``saved`` for each object of
        ``targets`` whose values it changed."""
        watched = [
            (collection, ids - self._doomed(collection))
            for collection, ids in targets
            if ids and self.watching(collection, "before_save", "saved")
        ]
        watched = [(collection, ids) for collection, ids in watched if ids]
        if not watched:
            return write()
        before = [(collection, self.values_of(collection, ids)) for collection, ids in watched]
        result = write()
        for collection, old in before:
            new = self.values_of(collection, old)
            for id_, values in old.items():
                if id_ in new and new[id_] != values:
                    self._link_saved(collection, id_, values, new[id_])
        return result

    def _link_saved(
        self, collection: Collection, id_: int, old: dict[str, Any], new: dict[str, Any]
    ) -> None:
        if self.model.lifecycle.of(collection.name, "before_save"):
            event = self.event("before_save", collection, id_, old, dict(new))
            self.fire(event)
            changed = _changed(new, event.new or {})
            if changed:
                self.storage.update(collection, id_, self._storable(collection, changed))
                new = self.values_of(collection, [id_])[id_]
        self.fire(self.event("saved", collection, id_, old, new))

    def _doomed(self, collection: Collection) -> set[int]:
        return self.doomed.get(collection.name, set()) if self.doomed is not None else set()


def _changed(expected: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """The values of ``given`` (what handlers left) that differ from ``expected``."""
    return {k: v for k, v in given.items() if k != "id" and (k not in expected or expected[k] != v)}


def _stored_fields(collection: Collection) -> dict[str, Any]:
    """The selection of every field of ``collection`` but the computed ones."""
    return {name: None for name in collection.schema.fields if name not in collection.computed}

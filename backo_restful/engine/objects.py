"""Objects for Python code: :class:`Objects` (one collection) and :class:`Object`.

``engine.collection("product")`` gives the :class:`Objects` of a collection;
each of its objects reads like a dict of its fields (relations as ids) and
writes itself back with :meth:`Object.save`. Every step is one engine call made
with the ``auth`` of the :class:`Objects`, so the permissions, errors and
records of the engine apply unchanged.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..exceptions import NotFound, UnknownCollection
from ..model import Collection
from ..query import Node
from .call import Auth
from .transactions import run_read

if TYPE_CHECKING:
    from .core import Engine

#: The most objects :meth:`Objects.find` reads in one page.
FIND_PAGE_SIZE = 100

#: The states of an :class:`Object`.
UNSET = "UNSET"
UNSAVED = "UNSAVED"
SAVED = "SAVED"


class Objects:
    """The objects of collection ``name`` of ``engine``, read and written by ``auth``.

    :param engine: the engine serving the collection.
    :param name: the collection's name.
    :param auth: None for trusted code, else the caller's verified claims
        (passed to every engine call).
    :raises UnknownCollection: if there is no such collection.
    """

    def __init__(self, engine: Engine, name: str, auth: Auth = None) -> None:
        collection = engine.model.collections.get(name) if isinstance(name, str) else None
        if collection is None:
            raise UnknownCollection(name)
        self.engine = engine
        self.collection: Collection = collection
        self.name = name
        self.auth = auth

    def __repr__(self) -> str:
        return f"<Objects {self.name!r}>"

    def new(self, data: Mapping[str, Any] | None = None) -> Object:
        """An object not stored yet (``UNSAVED``): :meth:`Object.save` creates it."""
        return Object(self, dict(data or {}), UNSAVED)

    def create(self, data: Mapping[str, Any]) -> Object:
        """Store a new object now, and return it (``SAVED``).

        :raises ValidationFailed: naming every invalid field.
        """
        obj = self.new(data)
        obj.save()
        return obj

    def load(self, id_: Any) -> Object:
        """The stored object ``id_`` (``SAVED``).

        :raises NotFound: if there is no such object (or the caller may not see it).
        """
        obj = Object(self, {}, UNSET)
        obj._fill(self._read(id_), loaded=True)
        return obj

    def find(
        self,
        *,
        filter_: Mapping[str, Any] | Node | None = None,
        sort: list[str] | str | None = None,
        limit: int | None = None,
        depth: int = 1,
        fields: list[str] | str | None = None,
    ) -> Iterator[Object]:
        """Every object that matches ``filter_``, in the order of ``sort``, read
        lazily a page of at most :data:`FIND_PAGE_SIZE` objects at a time through
        cursors (one read per page; nothing is read before the first object is
        asked for).

        :param limit: the most objects to give, in all (None: every match).
        :param depth: as :meth:`Engine.get`; at 1 (the default) relations are ids.
        :param fields: the fields to read (the id always).
        :raises BadRequest: for a bad parameter.
        """
        left = limit
        after: str | None = None
        while left is None or left > 0:
            size = FIND_PAGE_SIZE if left is None else min(left, FIND_PAGE_SIZE)
            page = self.engine.page(
                self.name, filter_=filter_, sort=sort, limit=size, depth=depth,
                fields=fields, after=after, count="none", auth=self.auth,
            )  # fmt: skip
            objects = []
            for item in page.items:
                obj = Object(self, {}, UNSET)
                obj._fill(item, loaded=False)
                objects.append(obj)
            self._loaded(*objects)  # one read of their values for the whole page
            yield from objects
            if left is not None:
                left -= len(page.items)
            if page.next is None or not page.items:
                return
            after = page.next

    def _read(self, id_: Any) -> dict[str, Any]:
        body, _ = self.engine.get(self.name, id_, auth=self.auth)
        return body  # type: ignore[no-any-return]

    def _loaded(self, *objects: Object) -> None:
        """Fire the ``loaded`` event of each of ``objects``, read from the storage
        (by :meth:`load`, :meth:`find` and :meth:`Object.reload`; not after
        :meth:`Object.save`): ``new`` holds its values as trusted code reads
        them at depth 1, like every event's."""
        if not objects or not self.engine.model.lifecycle.of(self.name, "loaded"):
            return
        _, operation = self.engine._start(self.name, self.auth)
        ids = [obj.id for obj in objects if obj.id is not None]
        values = run_read(
            self.engine.storage, lambda: operation.values_of(self.collection, ids), snapshot=True
        )
        for id_ in ids:
            if id_ in values:
                event = operation.event("loaded", self.collection, id_, None, values[id_])
                event.changes = frozenset()  # nothing changes: it is read
                operation.fire(event)


class Object:
    """One object of a collection: its fields by name (``obj["price"]``; a
    relation as ids), its :attr:`id` and its :attr:`state`.

    Build it with :meth:`Objects.new`, :meth:`Objects.create`,
    :meth:`Objects.load` or :meth:`Objects.find`. Setting a field marks it
    ``UNSAVED`` until :meth:`save`; a field the collection does not declare is a
    ``KeyError`` at once.
    """

    def __init__(self, objects: Objects, data: dict[str, Any], state: str) -> None:
        self.objects = objects
        self._data = data
        self._state = state
        #: The fields set since the object was last read or saved.
        self._changed: set[str] = set()

    def __repr__(self) -> str:
        return f"<Object {self.objects.name} {self.id} {self._state}>"

    @property
    def id(self) -> int | None:
        """The object's id (None until it is saved)."""
        return self._data.get("id")

    @property
    def state(self) -> str:
        """``"SAVED"`` (as stored), ``"UNSAVED"`` (new, or with fields set since)
        or ``"UNSET"`` (deleted)."""
        return self._state

    def __getitem__(self, field: str) -> Any:
        return self._data[field]

    def __setitem__(self, field: str, value: Any) -> None:
        if field == "id" or field not in self.objects.collection.by_key:
            raise KeyError(f"{self.objects.name} has no field {field!r} to set")
        self._data[field] = value
        self._changed.add(field)
        self._state = UNSAVED

    def __contains__(self, field: object) -> bool:
        return field in self._data

    def get(self, field: str, default: Any = None) -> Any:
        """Field ``field``, or ``default`` if the object has none."""
        return self._data.get(field, default)

    def to_dict(self) -> dict[str, Any]:
        """A copy of the fields (the id included once saved)."""
        return dict(self._data)

    def save(self) -> None:
        """Store the object: create it if it is new (a POST of every field), else
        write the fields set since it was read (a PATCH of those only; nothing
        when none was). The object then holds what is stored.

        :raises ValidationFailed: naming every invalid field.
        :raises NotFound: if the object was deleted.
        """
        objects = self.objects
        if self.id is None:
            body, _ = objects.engine.post(objects.name, self._data, auth=objects.auth)
        elif self._changed or self._state != SAVED:
            changes = {field: self._data[field] for field in self._changed}
            body, _ = objects.engine.patch(objects.name, self.id, changes, auth=objects.auth)
        else:
            return
        self._fill(body, loaded=False)

    def reload(self) -> None:
        """Read the object again; the fields set since are forgotten.

        :raises NotFound: if it is not stored (any more), or was never saved.
        """
        self._fill(self.objects._read(self._stored_id("reload")), loaded=True)

    def delete(self) -> None:
        """Delete the object (it is then ``UNSET``; its fields stay readable).

        :raises NotFound: if it is not stored (any more), or was never saved.
        :raises Conflict: if a delete strategy refuses it.
        """
        objects = self.objects
        objects.engine.delete(objects.name, self._stored_id("delete"), auth=objects.auth)
        self._changed.clear()
        self._state = UNSET

    def related(self, field: str) -> Object | list[Object] | None:
        """The objects relation ``field`` links to: one :class:`Object` or None
        for a ``Ref``, a list for a ``RefsList`` (read in pages, by id).

        :raises KeyError: if ``field`` is not a relation the object shows.
        """
        collection = self.objects.collection
        relation = collection.relations.get(collection.by_key.get(field, ""))
        if relation is None:
            raise KeyError(f"{collection.name} has no relation {field!r}")
        target = Objects(self.objects.engine, relation.target.name, self.objects.auth)
        value = self._data[field]
        if not relation.multi:
            return None if value is None else target.load(value)
        ids = list(value)
        found: dict[Any, Object] = {}
        for start in range(0, len(ids), FIND_PAGE_SIZE):
            chunk = ids[start : start + FIND_PAGE_SIZE]
            found.update((obj.id, obj) for obj in target.find(filter_={"id": {"$in": chunk}}))
        return [found[id_] for id_ in ids if id_ in found]

    def _stored_id(self, action: str) -> int:
        id_ = self.id
        if id_ is None:
            name = self.objects.name
            raise NotFound(name, None, message=f"This {name} was never saved: nothing to {action}.")
        return id_

    def _fill(self, body: dict[str, Any], *, loaded: bool) -> None:
        """Hold ``body``, as stored: ``SAVED`` (``loaded``: read, not written)."""
        self._data = dict(body)
        self._changed.clear()
        self._state = SAVED
        if loaded:
            self.objects._loaded(self)

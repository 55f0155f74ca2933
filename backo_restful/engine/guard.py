"""The write guard: what a caller may change, field by field and object by object."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import marshmallow
from marshmallow import ValidationError

from ..access import Access, audit_values, managed_fields, unguarded
from ..exceptions import Forbidden
from ..model import Collection, LinkStorage, Loaded, NewObject
from ..storage import to_storable
from ..values import check_id, storable
from .computing import Computing


class Guard(Computing):
    """Checks of one call's writes against the caller's rights."""

    def allowed_update(
        self, collection: Collection, id_: int, data: dict[str, Any]
    ) -> dict[str, Any]:
        """``data`` for object ``id_`` as the caller may write it.

        :raises NotFound: if the object does not exist or is outside the scope.
        :raises Forbidden: (or Unauthorized) if the caller may not update it, or
            changes a field they may not change.
        """
        access = self.access
        if access is not None:
            access.require(collection, "update")  # before telling whether it exists
        self.lock_existing(collection, [id_])
        computed = any(name in collection.computed for name in data)
        if access is None or unguarded(collection):
            if not computed:
                return data
            return self.computed_writes(collection, data, self.stored(collection, id_))
        stored = self.stored(collection, id_)
        access.require(collection, "update", stored)
        self.guard_computed(collection, data, stored, stored, access)
        data = self.computed_writes(collection, data, stored)
        return self._guard(collection, data, stored, {}, access)

    def _guard(
        self,
        collection: Collection,
        data: dict[str, Any],
        stored: dict[str, Any] | None,
        server: dict[str, Any],
        access: Access,
        draft: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """``data`` without the server-set fields and those the caller may not
        modify, each of which must hold its stored value (on create: the value the
        server sets), or the write is refused. ``draft`` is the object created
        when ``data`` is only part of it."""
        managed = managed_fields(collection)
        given = data.given if isinstance(data, Loaded) else frozenset(data)
        kept = dict(data)
        obj = stored if stored is not None else draft or as_created(data, server)
        for name, value in data.items():
            allowed = access.can_modify(collection, name, obj)
            if name not in given:
                # A default the client did not send: it stands on create; an update
                # keeps the stored value of a field the caller may not set.
                if stored is not None and (name in managed or not allowed):
                    del kept[name]
                continue
            if name not in managed and allowed:
                continue
            if stored is None and name not in server and _same_as_default(collection, name, value):
                continue  # on create, the value the field gets anyway stands
            if not self._unchanged(collection, name, value, stored, server, access):
                key = collection.external_name(name)
                raise Forbidden(
                    f"{key} of {collection.name} "
                    + ("is set by the server." if name in managed else "is not yours to change."),
                    {"collection": collection.name, "field": key},
                )
            del kept[name]
        return kept

    def guard_computed(
        self,
        collection: Collection,
        data: dict[str, Any],
        stored: dict[str, Any] | None,
        obj: dict[str, Any],
        access: Access,
    ) -> None:
        """Refuse a computed field with a setter that ``data`` sends and the
        caller may not modify on ``obj`` (the stored object, or the one created),
        unless it sends back the value it reads: its setter's stored fields are
        guarded as if sent, but the field has rights of its own.

        :raises Forbidden: naming the field.
        """
        for name, value in data.items():
            field = collection.computed.get(name)
            if field is None or field.read_only or access.can_modify(collection, name, obj):
                continue
            if stored is not None and access.can_read(collection, name, stored):
                if field.dump(value) == field.value(self.stored_objects(collection, [stored])[0]):
                    continue
            raise _not_yours(collection, name, "is not yours to change.")

    def _unchanged(
        self,
        collection: Collection,
        name: str,
        value: Any,
        stored: dict[str, Any] | None,
        server: dict[str, Any],
        access: Access,
    ) -> bool:
        """Whether ``value`` of a field the caller may not set is the value it
        holds anyway: the stored one (on update), the server's (on create)."""
        if stored is None:
            return name in server and same_value(collection, name, value, server[name])
        # A value the caller cannot read is not compared: no answer may tell
        # whether a guess was right.
        if not access.can_read(collection, name, stored):
            return False
        return self._holds(collection, stored, name, value) or (
            # Their own id in their owner field, hidden target or not: it tells
            # them nothing.
            name in managed_fields(collection)
            and str(value) == access.user.id
            and same_value(collection, name, value, stored[name])
        )

    def _holds(self, collection: Collection, row: dict[str, Any], name: str, value: Any) -> bool:
        """Whether stored object ``row`` holds ``value`` in field ``name``."""
        relation = collection.relations.get(name)
        if relation is None:
            return same_value(collection, name, value, row[name])
        if relation.storage is LinkStorage.FK_HERE:
            stored = row[name]
            if stored is not None and not self.visible_ids(relation.target, {stored}):
                stored = None  # as the caller reads it
            return same_value(collection, name, value, stored)
        current = sorted(self.linked_ids(relation, [row["id"]], self.scope(relation.target)))
        items = value if relation.multi else ([] if value is None else [value])
        if any(isinstance(item, NewObject) for item in items):
            return False
        return sorted(items) == current

    def _owner_values(self, collection: Collection, access: Access) -> dict[str, Any]:
        """The owner fields a create by this caller sets, typed for storage."""
        values = {}
        for name, user_id in access.owner_values(collection).items():
            field = collection.scalars.get(name)
            try:
                if field is not None:
                    value = to_storable(field, field.deserialize(user_id))
                else:  # a Ref to the users' collection
                    value = check_id(int(user_id or ""))
                # Only the id itself: "03" or " 3" would own user 3's objects.
                if str(value) != user_id or storable(value)[1] is not None:
                    raise ValueError(user_id)
                values[name] = value
            except (ValidationError, ValueError, OverflowError):
                raise Forbidden(
                    f"Your id cannot own a {collection.name}.",
                    {"collection": collection.name, "field": collection.external_name(name)},
                ) from None
        return values

    def may_change(
        self, collection: Collection, ids: Iterable[int], action: str, field: str | None = None
    ) -> None:
        """Refuse a write that also changes (``update``, in ``field``) or deletes
        other objects, unless the caller may do that to each of them.

        Objects outside the caller's scope are refused without a word on which
        they are: the write is refused as a whole (403).
        """
        access = self.access
        ids = set(ids)
        if access is None or unguarded(collection) or not ids:
            return
        rows = self.storage.fetch(collection, ids, scope=access.scope(collection))
        if len(rows) < len(ids):
            raise Forbidden(
                f"This would {'delete' if action == 'delete' else 'change'} "
                f"{collection.name} objects you may not {action}.",
                {"collection": collection.name, "action": action},
            )
        if field is not None and field in managed_fields(collection):
            raise _not_yours(collection, field, "is set by the server.")
        for row in rows:
            access.require(collection, action, row)
            if field is not None and not access.can_modify(collection, field, row):
                raise _not_yours(collection, field, "is not yours to change.")

    def _audit(self, collection: Collection, *, create: bool) -> dict[str, Any]:
        """The audit fields a write by this caller sets."""
        user_id = self.access.user.id if self.access is not None else None
        return audit_values(collection, user_id, create=create)


def _not_yours(collection: Collection, field: str, why: str) -> Forbidden:
    key = collection.external_name(field)
    return Forbidden(
        f"{key} of {collection.name} {why}", {"collection": collection.name, "field": key}
    )


def same_value(collection: Collection, name: str, value: Any, stored: Any) -> bool:
    """Whether ``value`` of field ``name`` (as loaded) is ``stored`` (as stored)."""
    if isinstance(value, NewObject):
        return False
    field = collection.scalars.get(name)
    return (to_storable(field, value) if field is not None else value) == stored


def _same_as_default(collection: Collection, name: str, value: Any) -> bool:
    """Whether ``value`` is what field ``name`` takes on create when not given."""
    field = collection.schema.fields[name]
    default = field.load_default
    if default is marshmallow.missing:
        relation = collection.relations.get(name)
        default = [] if relation is not None and relation.multi else None
    elif callable(default):
        default = default()
    return same_value(collection, name, value, default)


class _Pending:
    """The id of an object being created, not known yet: a nested object linked
    to it compares unequal to every value."""

    def __repr__(self) -> str:
        return "<the id of the object being created>"


PENDING: Any = _Pending()


def as_created(data: dict[str, Any], server: dict[str, Any]) -> dict[str, Any]:
    """The object permission and rights functions see on create: ``data`` with
    the values the server sets, without a link to an id not known yet."""
    obj = {**data, **server}
    return {k: v for k, v in obj.items() if v is not PENDING and v != [PENDING]}

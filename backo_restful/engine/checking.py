"""Checks of a draft without writing it: the answer of :meth:`Engine.check`.

A draft is checked as the write it stands for would be (a create, or with an
id a PATCH of that object): field validation, values a unique field holds
already, links to objects that are missing or hidden from the caller, and the
caller's right to set each field. Every problem is collected, by field, and
nothing is written or locked.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError

from ..access import unguarded
from ..exceptions import BackoError, Forbidden, InvalidBody, UnknownField, ValidationFailed
from ..model import Collection, LinkStorage, RelationInfo
from .call import missing_objects, named_ids
from .guard import Guard, as_created

#: Field name (as clients name it) -> its messages (or, for nested objects,
#: their messages by field).
Errors = dict[str, Any]


def check_request(collection: Collection, item: Any, path: Any) -> None:
    """Refuse a malformed check: a draft that is not an object, or a ``path``
    that names no field of the collection.

    :raises InvalidBody: for a draft that is not an object.
    :raises UnknownField: for an unknown ``path``.
    """
    if not isinstance(item, Mapping):
        raise InvalidBody(f"The item to check is a JSON object of {collection.name} fields.")
    if path is None:
        return
    name = collection.by_key.get(path) if isinstance(path, str) else None
    if name is None:
        raise UnknownField(
            f"Unknown field {path!r}: {collection.name} has no such field.", {"field": path}
        )


class Checking(Guard):
    """The checks of one :meth:`Engine.check` call."""

    def check_draft(
        self, collection: Collection, item: Mapping[str, Any], path: str | None, id_: int | None
    ) -> Errors:
        """Every problem of ``item`` (limited to field ``path`` when given), by
        field: as a create, or with ``id_`` as a PATCH of that object.

        :raises NotFound: if object ``id_`` is missing or outside the scope.
        :raises Unauthorized: (anonymous caller) or :class:`Forbidden`, if the
            caller may not update object ``id_``.
        """
        stored = None
        if id_ is not None:
            stored = self._checked_object(collection, id_)
        errors = self._invalid(collection, item, path, partial=id_ is not None)
        wanted = {key: value for key, value in item.items() if key not in errors}
        if path is not None:
            wanted = {key: value for key, value in wanted.items() if key == path}
        try:
            loaded = collection.load(wanted, partial=True)
        except ValidationError as exc:  # a schema validator, on part of the draft
            errors.update(_only(exc.normalized_messages(), path))
            return errors
        self._check_computed(collection, loaded, stored, errors)
        self._check_links(collection, loaded, stored, errors)
        self._check_rights(collection, loaded, stored, errors, whole=path is None)
        self._check_unique_values(collection, loaded, id_, errors)
        return errors

    def visible_object(self, collection: Collection, id_: int) -> dict[str, Any]:
        """Object ``id_`` as stored (every field), if the caller may see it.

        :raises NotFound: if it is missing or outside the caller's scope.
        """
        scope = self.scope(collection)
        if scope is None:
            row = self.storage.fetch_one(collection, id_)
        else:  # one statement: the row, if the scope holds it
            row = next(iter(self.storage.fetch(collection, [id_], scope=scope)), None)
        if row is None:
            raise missing_objects(collection, {id_})
        return row

    def draft_values(self, collection: Collection, item: Any) -> dict[str, Any]:
        """The values of draft ``item`` that are valid, with those the server
        sets on create: the object that rights are evaluated on.

        :raises InvalidBody: if the draft is not an object.
        """
        if not isinstance(item, Mapping):
            raise InvalidBody(f"The draft is a JSON object of {collection.name} fields.")
        errors = self._invalid(collection, item, None, partial=True)
        valid = {key: value for key, value in item.items() if key not in errors}
        try:
            loaded = collection.load(valid, partial=True)
        except ValidationError:
            loaded = {}
        server: dict[str, Any] = {}
        if self.access is not None:
            try:
                server = self._owner_values(collection, self.access)
            except Forbidden:
                server = {}
        return as_created(loaded, server)

    def _checked_object(self, collection: Collection, id_: int) -> dict[str, Any]:
        """Object ``id_`` as stored, if the caller may update it."""
        stored = self.visible_object(collection, id_)
        if self.access is not None:
            self.access.require(collection, "update", stored)
        return stored

    def _invalid(
        self, collection: Collection, item: Mapping[str, Any], path: str | None, *, partial: bool
    ) -> Errors:
        """What field validation says of ``item`` (of field ``path`` only, when
        given: the other fields may be missing or wrong)."""
        names: bool | tuple[str, ...] = partial
        if path is not None and not partial:
            wanted = collection.by_key[path]
            names = tuple(name for name in collection.schema.fields if name != wanted)
        try:
            collection.load(item, partial=names)
        except ValidationError as exc:
            return _only(exc.normalized_messages(), path)
        return {}

    def _check_computed(
        self,
        collection: Collection,
        loaded: dict[str, Any],
        stored: dict[str, Any] | None,
        errors: Errors,
    ) -> None:
        """Computed fields sent as the write refuses them: a setter's values that
        their stored fields refuse or that contradict a value sent, a read-only
        field sent with another value than it reads."""
        if not any(name in collection.computed for name in loaded):
            return
        try:
            self.computed_writes(collection, loaded, stored)
        except ValidationFailed as refusal:
            for key, messages in refusal.messages.items():
                errors.setdefault(key, messages)

    def _check_links(
        self,
        collection: Collection,
        loaded: dict[str, Any],
        stored: dict[str, Any] | None,
        errors: Errors,
    ) -> None:
        """Links to objects that do not exist or that the caller cannot see, and
        links that change objects the caller may not change."""
        for name, relation in collection.relations.items():
            if name not in loaded:
                continue
            value = loaded[name]
            wanted: dict[str, set[int]] = {}
            named_ids(collection, {name: value}, wanted)
            messages = [
                f"There is no {target} with id {missing}."
                for target, ids in wanted.items()
                for missing in sorted(ids - self._visible(self.model.collections[target], ids))
            ]
            fk_there = relation.storage is LinkStorage.FK_THERE
            if not messages and (self.access is not None or fk_there):
                current = self._linked_now(relation, stored)
                messages = _released(relation, value, current if fk_there else set())
                if not messages and self.access is not None:
                    messages = self._link_changes(relation, value, current)
            if messages:
                errors[collection.external_name(name)] = messages

    def _visible(self, collection: Collection, ids: set[int]) -> set[int]:
        """Those of ``ids`` that exist and the caller may see."""
        return self.storage.existing_ids(collection, ids, scope=self.scope(collection))

    def _linked_now(self, relation: RelationInfo, stored: dict[str, Any] | None) -> set[int]:
        """The objects stored object ``stored`` links to through ``relation``, as
        far as the caller sees them (none on create)."""
        if stored is None:
            return set()
        if relation.storage is LinkStorage.FK_HERE:
            old = stored[relation.name]
            return self.visible_ids(relation.target, {old}) if old is not None else set()
        return self.linked_ids(relation, [stored["id"]], self.scope(relation.target))

    def _link_changes(self, relation: RelationInfo, value: Any, current: set[int]) -> list[str]:
        """The refusal of a link that changes objects the caller may not change:
        those it links or unlinks (``current``: those linked now)."""
        new = {v for v in (value if relation.multi else [value]) if isinstance(v, int)}
        try:
            self.may_change(relation.target, new ^ current, "update", relation.reverse.name)
        except Forbidden as refusal:
            return [refusal.message]
        return []

    def _check_rights(
        self,
        collection: Collection,
        loaded: dict[str, Any],
        stored: dict[str, Any] | None,
        errors: Errors,
        *,
        whole: bool,
    ) -> None:
        """Fields the caller may not set, and (for a ``whole`` draft to create)
        an object the caller may not create."""
        access = self.access
        if access is None or unguarded(collection):
            return
        server = {} if stored is not None else self._owner_values(collection, access)
        # The object the rights are evaluated on: the stored one, or the whole
        # draft as its create writes it.
        obj = stored
        if obj is None:
            try:
                obj = as_created(self.computed_writes(collection, loaded, None), server)
            except BackoError:  # reported by _check_computed
                obj = as_created(loaded, server)
        for name, value in loaded.items():
            key = collection.external_name(name)
            if key in errors:
                continue
            try:
                self.guard_computed(collection, {name: value}, stored, obj, access)
                data = self.computed_writes(collection, {name: value}, stored)
                self._guard(collection, data, stored, server, access, obj)
            except BackoError as refusal:
                errors[key] = [refusal.message]
        if stored is None and whole and not errors:
            try:
                access.require(collection, "create", obj)
            except BackoError as refusal:
                errors["_schema"] = [refusal.message]

    def _check_unique_values(
        self, collection: Collection, loaded: dict[str, Any], id_: int | None, errors: Errors
    ) -> None:
        """Values of unique fields that another object holds already."""
        for name in collection.unique:
            key = collection.external_name(name)
            if loaded.get(name) is None or key in errors:
                continue
            other = self.storage.taken(collection, name, loaded[name], id_)
            if other is None:
                continue
            visible = self.visible_ids(collection, {other})
            holder = f"{collection.name} {other}" if visible else f"Another {collection.name}"
            errors[key] = [f"{holder} already has this {key}: it must be unique."]


def _released(relation: RelationInfo, value: Any, current: set[int]) -> list[str]:
    """The refusal of a link removed from objects that require it (those of
    ``current`` that ``value`` no longer links to)."""
    back = relation.reverse
    if not back.required or not current:
        return []
    kept = {v for v in (value if relation.multi else [value]) if isinstance(v, int)}
    removed = sorted(current - kept)
    if not removed:
        return []
    ids = ", ".join(map(str, removed))
    return [f"{back.collection.name} {ids} would lose its required {back.key}."]


def _only(messages: Errors, path: str | None) -> Errors:
    """``messages`` about field ``path`` (all of them when it is None)."""
    if path is None:
        return dict(messages)
    return {key: value for key, value in messages.items() if key == path}

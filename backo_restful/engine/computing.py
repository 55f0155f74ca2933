"""Computed fields in one call: their values in the answers, their setters in writes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from marshmallow import ValidationError

from ..computed import set_values
from ..exceptions import DeclarationError, ValidationFailed
from ..model import Collection, LinkStorage, Loaded
from .call import Call, application_code


def stored_names(collection: Collection) -> list[str]:
    """The names of a stored row a computed field's ``get`` finds as they are:
    the id, every stored field, and the relations whose key the row holds."""
    relations = [
        name
        for name, relation in collection.relations.items()
        if relation.storage is LinkStorage.FK_HERE
    ]
    return ["id", *collection.scalars, *relations]


class Computing(Call):
    """The computed fields of one call."""

    def add_computed(
        self, collection: Collection, rows: list[dict[str, Any]], names: Iterable[str]
    ) -> None:
        """Set in each of ``rows`` (stored rows) the JSON value of each computed
        field ``names``: worked out in Python, no statement is run."""
        fields = [(name, collection.computed[name]) for name in names]
        if not fields:
            return
        objects = self.stored_objects(collection, rows)
        with application_code():  # the application's get=: a bug of its own is a 500
            for row, obj in zip(rows, objects, strict=True):
                for name, field in fields:
                    row[name] = field.value(obj)

    def stored_objects(
        self, collection: Collection, rows: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        """What a computed field's ``get`` receives for each stored row: the id
        and every stored field, relations as ids as trusted code reads them at
        depth 1 (one statement per relation kept outside the rows)."""
        names = stored_names(collection)
        objects = [{name: row[name] for name in names} for row in rows]
        ids = [row["id"] for row in rows]
        for relation in collection.relations.values():
            if relation.storage is LinkStorage.FK_HERE:
                continue
            linked: dict[int, Any] = (
                {id_: [] for id_ in ids} if relation.multi else dict.fromkeys(ids)
            )
            for owner, rid, _ in self.storage.links(relation, ids):
                if relation.multi:
                    linked[owner].append(rid)
                else:
                    linked[owner] = rid
            for obj in objects:
                obj[relation.name] = linked[obj["id"]]
        return objects

    def computed_writes(
        self, collection: Collection, data: dict[str, Any], stored: dict[str, Any] | None
    ) -> dict[str, Any]:
        """``data`` without its computed fields, with what their setters make of
        them: stored values, given as if the client sent them. ``stored`` is the
        object updated (None on create).

        A read-only field may send back the value it reads (left out); any other
        value of it is refused.

        :raises ValidationFailed: naming the computed fields refused.
        """
        sent = [name for name in data if name in collection.computed]
        if not sent:
            return data
        given = data.given if isinstance(data, Loaded) else frozenset(data)
        result = Loaded({k: v for k, v in data.items() if k not in collection.computed})
        obj = self.stored_objects(collection, [stored])[0] if stored is not None else dict(result)
        messages: dict[str, Any] = {}
        added: dict[str, Any] = {}
        for name in sent:
            try:
                values = _written(collection, name, data[name], stored, obj)
            except ValidationError as exc:
                messages[collection.external_name(name)] = exc.messages
                continue
            for target, value in values.items():
                if target in given and result[target] != value:
                    messages[collection.external_name(name)] = [
                        f"Gives {collection.external_name(target)} another value "
                        "than the one sent: send one of them."
                    ]
            added.update(values)
        result.update(added)
        for target in getattr(data, "pending", ()):
            if target not in result:
                messages[collection.external_name(target)] = ["Missing data for required field."]
        if messages:
            raise ValidationFailed(messages)
        result.given = (given - set(sent)) | set(added)
        return result


def _written(
    collection: Collection,
    name: str,
    value: Any,
    stored: dict[str, Any] | None,
    obj: dict[str, Any],
) -> dict[str, Any]:
    """The stored values computed field ``name`` sent as ``value`` writes:
    its setter's, none for a read-only field sent back as it reads.

    :raises ValidationError: for a value refused.
    """
    field = collection.computed[name]
    if not field.read_only:
        with application_code(passing=(ValidationError,)):  # the application's set=
            values = set_values(collection.name, name, field, obj, value)
        return _load_stored(collection, name, values)
    if stored is None or field.dump(value) != field.value(obj):
        raise ValidationError(["Read-only field: computed from the object's other fields."])
    return {}


def _load_stored(collection: Collection, name: str, values: dict[str, Any]) -> dict[str, Any]:
    """The values a setter gives, validated as the stored fields they are.

    :raises ValidationError: for a value its field refuses.
    :raises DeclarationError: for a name that is no stored field.
    """
    dumped = {}
    for target in values:
        field = collection.scalars.get(target)
        if field is None:
            raise DeclarationError(
                f"set= gave {target!r}, which is not a stored field of the collection",
                collection=collection.name,
                field=name,
            )
        dumped[collection.external_name(target)] = field.serialize(target, values)
    return dict(collection.load(dumped, partial=True))

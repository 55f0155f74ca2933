"""The arguments of engine calls, checked before any work starts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError

from ..exceptions import BadRequest, InvalidBody, InvalidId, LimitExceeded, ValidationFailed
from ..model import Collection
from ..query import check_count
from ..values import parse_id


def object_id(collection: Collection, id_: Any) -> int:
    """``id_`` (an int, or its digits as text) as an id of ``collection``.

    :raises InvalidId: if it is no id.
    """
    try:
        return parse_id(id_)
    except ValueError as exc:
        raise InvalidId(
            f"Invalid id {id_!r} for {collection.name}: {exc}.",
            {
                "collection": collection.name,
                "id": id_ if isinstance(id_, (int, str)) else repr(id_),
            },
        ) from None


def load(collection: Collection, data: Any, partial: bool = False) -> dict[str, Any]:
    """``data`` validated as an object of ``collection`` (``partial``: for PATCH).

    :raises InvalidBody: if it is not a Mapping.
    :raises ValidationFailed: naming every invalid field.
    """
    if not isinstance(data, Mapping):
        raise InvalidBody(f"The body must be a JSON object of {collection.name} fields.")
    try:
        return collection.load(data, partial=partial)
    except ValidationError as exc:
        raise ValidationFailed(exc.normalized_messages()) from None


def load_many(collection: Collection, data: list[Any]) -> list[dict[str, Any]]:
    """Every item of ``data`` validated; their errors by index.

    :raises ValidationFailed: naming every invalid item and field.
    """
    loaded: list[dict[str, Any]] = []
    errors: dict[str, Any] = {}
    for index, item in enumerate(data):
        try:
            loaded.append(load(collection, item))
        except ValidationFailed as exc:
            errors[str(index)] = exc.messages
        except BadRequest:
            errors[str(index)] = {"_schema": ["Expected an object."]}
    if errors:
        raise ValidationFailed(errors, f"Invalid objects at index {', '.join(errors)}.")
    return loaded


def check_batch(
    collection: Collection, items: list[Any], maximum: int | None, *, existing: bool = False
) -> None:
    """Refuse a write whose ``items`` (as sent) would create more than ``maximum``
    objects: themselves (unless ``existing``) and every object nested in their
    relations, counted before any is validated.

    :raises LimitExceeded: if it would.
    """
    if maximum is None:
        return
    check_count("max_batch", maximum)
    count = 0 if existing else len(items)
    pending = [(collection, item) for item in items]
    while pending and count <= maximum:
        current, data = pending.pop()
        if not isinstance(data, Mapping):
            continue
        for key, value in data.items():
            relation = current.relations.get(current.by_key.get(key, ""))
            if relation is None:
                continue
            values = value if isinstance(value, list) else [value]
            nested = [v for v in values if isinstance(v, Mapping)]
            count += len(nested)
            pending.extend((relation.target, item) for item in nested)
    if count > maximum:
        raise LimitExceeded(
            f"A write creates at most {maximum} objects, nested ones included "
            f"(BACKO_MAX_BATCH={maximum}); this one would create more.",
            {"setting": "BACKO_MAX_BATCH", "maximum": maximum},
        )

"""Small helpers shared by the modules of the storage."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import peewee

from ..query import Node

#: Collection name -> the filter that limits which of its objects a caller sees,
#: for the collections that have one (see :mod:`backo_restful.auth`).
Scopes = Mapping[str, Node]

#: Ids per ``IN (...)`` list: below every backend's limit on bound parameters.
CHUNK = 5000


def chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    """``ids`` in lists of at most :data:`CHUNK`."""
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def identifier(name: str, limit: int = 60) -> str:
    """``name``, shortened with a hash suffix to fit every backend's identifiers."""
    if len(name) <= limit:
        return name
    return f"{name[: limit - 9]}_{hashlib.sha1(name.encode()).hexdigest()[:8]}"


def attr(name: str) -> str:
    """The model attribute of field ``name``: prefixed, so no field name can shadow
    a peewee ``Model`` attribute (``select``, ``save``, ``delete`` ...)."""
    return f"f_{name}"


def field_name(attribute: str) -> str:
    """The field stored under model attribute ``attribute`` (the reverse of :func:`attr`)."""
    return attribute if attribute == "id" else attribute.removeprefix("f_")


def foreign_key(target: Any, **options: Any) -> peewee.ForeignKeyField:
    # peewee's stubs do not know ``_deferred`` (create the constraint later).
    return peewee.ForeignKeyField(target, **options)


def scope_of(collection: Any, scopes: Scopes | None) -> Node | None:
    """The scope ``scopes`` gives ``collection``, if any."""
    return None if scopes is None else scopes.get(collection.name)


def reason(exc: BaseException) -> str:
    """The first line of a database error, for logs."""
    return str(exc).splitlines()[0][:300] if str(exc) else type(exc).__name__

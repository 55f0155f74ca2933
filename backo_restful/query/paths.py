"""Field paths: a field reached from a collection through relations.

Paths name a field through relations: ``jar.name`` (through a ``Ref``),
``cookies.type`` (through a ``RefsList``: at least one related object matches).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from marshmallow import fields as ma

from ..exceptions import InvalidFilter, InvalidSort, UnknownField
from ..kinds import stored_as_json
from ..model import Collection, RelationInfo
from ._utils import details

#: The most fields one path names (``jar.name`` names two).
MAX_PATH = 8


#: ``hidden(collection, name)``: the caller may not read field ``name``, so for
#: them it does not exist (see :mod:`backo_restful.auth`).
Hidden = Callable[[Collection, str], bool]


@dataclass(frozen=True, eq=False)
class Path:
    """A field reached from a collection through zero or more relations.

    ``field`` is ``"id"`` or a scalar field name of the last collection reached,
    or the name of one of its computed fields (``computed``), which have SQL.
    """

    steps: tuple[RelationInfo, ...]
    field: str
    text: str
    computed: bool = False

    @property
    def multi(self) -> bool:
        """Does the path go through a ``RefsList`` (many values per object)?"""
        return any(step.multi for step in self.steps)


def resolve_path(
    collection: Collection, text: Any, *, purpose: str = "filter", hidden: Hidden | None = None
) -> Path:
    """The :class:`Path` written ``text`` (external names joined by dots).

    :raises UnknownField: for an unknown (or ``hidden``) field.
    :raises InvalidSort: (``purpose="sort"``) or :class:`InvalidFilter` for a
        path that cannot serve ``purpose``.
    """
    error: type[InvalidFilter | InvalidSort] = InvalidSort if purpose == "sort" else InvalidFilter
    if not isinstance(text, str) or not text:
        raise error(f"Invalid field path {text!r}.", details(field=text))
    segments = text.split(".")
    if len(segments) > MAX_PATH:
        raise error(f"Path {text!r} is longer than {MAX_PATH} fields.", details(field=text))
    steps, field = _walk(collection, text, segments, purpose, hidden, error)
    owner = steps[-1].target if steps else collection
    path = Path(tuple(steps), field, text, field in owner.computed)
    if purpose == "sort" and path.multi:
        raise error(
            f"Cannot sort on {text!r}: it goes through a list of objects.", details(field=text)
        )
    return path


def _walk(
    collection: Collection,
    text: str,
    segments: list[str],
    purpose: str,
    hidden: Hidden | None,
    error: type[InvalidFilter | InvalidSort],
) -> tuple[list[RelationInfo], str]:
    """The relations ``segments`` go through, and the field they end on."""
    current = collection
    steps: list[RelationInfo] = []
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "id":
            if not last:
                raise error(f"{text!r}: 'id' has no fields.", details(field=text))
            break
        name = _field_name(current, segment, text, hidden, many=len(segments) > 1)
        relation = current.relations.get(name)
        if relation is not None:
            steps.append(relation)
            current = relation.target
            continue
        if not last:
            raise error(f"{text!r}: {segment!r} is not a relation.", details(field=text))
        computed = current.computed.get(name)
        if computed is not None and computed.sql is None:
            raise error(
                f"Cannot {purpose} on {text!r}: it is computed, and declares no sql=.",
                details(field=text),
            )
        if stored_as_json(computed.field if computed is not None else current.scalars[name]):
            raise error(
                f"Cannot {purpose} on {text!r}: it is stored as a JSON document.",
                details(field=text),
            )
        return steps, name
    return steps, "id"


def _field_name(
    collection: Collection, segment: str, text: str, hidden: Hidden | None, *, many: bool
) -> str:
    """The internal name of the field ``segment`` of ``text`` names in ``collection``.

    :raises UnknownField: if there is none, or the caller may not read it.
    """
    name = collection.by_key.get(segment)
    if name is None or (hidden is not None and hidden(collection, name)):
        where = f" in {text!r}" if many else ""
        raise UnknownField(
            f"Unknown field {segment!r}{where}: {collection.name} has no such field.",
            details(field=text, collection=collection.name),
        )
    return name


def field_of(collection: Collection, path: Path) -> ma.Field | None:
    """The marshmallow field at the end of ``path`` (None for an id)."""
    if path.field == "id":
        return None
    owner = path.steps[-1].target if path.steps else collection
    computed = owner.computed.get(path.field)
    return computed.field if computed is not None else owner.scalars[path.field]

"""Sort keys (``sort``) and sparse-fields selections (``fields``)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ..exceptions import InvalidParameter, InvalidSort, UnknownField
from ..model import Collection
from ._utils import details
from .paths import MAX_PATH, Hidden, Path, resolve_path


@dataclass(frozen=True, eq=False)
class SortKey:
    """Order by ``path`` (through ``Ref`` fields only), descending if asked."""

    path: Path
    descending: bool = False


def parse_sort(
    collection: Collection, sort: Iterable[str] | str | None, *, hidden: Hidden | None = None
) -> list[SortKey]:
    """Sort keys from field paths, ``-path`` for descending (``jar.name``, ``-id``).

    :raises UnknownField: for an unknown (or ``hidden``) field.
    :raises InvalidSort: for a malformed sort, or a field that cannot be sorted on.
    """
    if sort is None:
        return []
    if isinstance(sort, str):
        sort = sort.split(",")
    if not isinstance(sort, list | tuple):
        raise InvalidSort("The sort must be a list of field paths.", details(sort=sort))
    keys: list[SortKey] = []
    seen: set[str] = set()
    for item in sort:
        if not isinstance(item, str) or not item.lstrip("-"):
            raise InvalidSort(
                f"Invalid sort key {item!r}: expected a field path, '-' for descending.",
                details(sort=item),
            )
        descending = item.startswith("-")
        text = item[1:] if descending else item
        path = resolve_path(collection, text, purpose="sort", hidden=hidden)
        key = ".".join(step.name for step in path.steps) + "." + path.field
        if key in seen:
            raise InvalidSort(f"{path.text!r} is sorted on twice.", details(field=path.text))
        seen.add(key)
        keys.append(SortKey(path, descending))
    return keys


Selection = dict[str, "Selection | None"]


def parse_fields(
    collection: Collection, fields: Iterable[str] | str | None, *, hidden: Hidden | None = None
) -> Selection | None:
    """The sparse-fields selection of ``fields`` (``type``, ``jar.name``), or None for all.

    A path through a relation selects the relation and, inside its expansion,
    the named fields. The id is always shown.
    :raises UnknownField: for an unknown (or ``hidden``) field.
    :raises InvalidParameter: for malformed ``fields``.
    """
    if fields is None:
        return None
    if isinstance(fields, str):
        fields = [part for part in fields.split(",") if part]
    if not isinstance(fields, list | tuple) or not all(isinstance(f, str) for f in fields):
        raise InvalidParameter(
            "'fields' must be a list of field paths.", details(parameter="fields")
        )
    selection: Selection = {}
    for text in fields:
        _select(collection, selection, text, hidden)
    return selection


def _select(collection: Collection, selection: Selection, text: str, hidden: Hidden | None) -> None:
    """Add the path ``text`` to ``selection``."""
    current, node = collection, selection
    segments = text.split(".")
    if len(segments) > MAX_PATH:
        raise InvalidParameter(f"Path {text!r} is too long.", details(parameter="fields"))
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "id" and last:
            return
        name = _selected_name(current, segment, text, hidden)
        relation = current.relations.get(name)
        if relation is None:
            if not last:
                raise InvalidParameter(
                    f"fields={text!r}: {segment!r} is not a relation.",
                    details(parameter="fields"),
                )
            node[name] = None
            return
        if last:
            node.setdefault(name, None)
            return
        child = node.get(name)
        if child is None:
            child = node[name] = {}
        current, node = relation.target, child


def _selected_name(collection: Collection, segment: str, text: str, hidden: Hidden | None) -> str:
    """The internal name of field ``segment`` of ``fields=text``.

    :raises UnknownField: if there is none, or the caller may not read it.
    """
    name = collection.by_key.get(segment)
    if name is None or (hidden is not None and hidden(collection, name)):
        raise UnknownField(
            f"Unknown field {segment!r} in fields={text!r}.",
            details(field=text, collection=collection.name),
        )
    return name

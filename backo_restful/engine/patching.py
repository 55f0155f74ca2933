"""JSON Patch (RFC 6902): a PATCH given as a list of operations.

The operations apply to the object as its caller reads it at depth 1 (relations
as ids, computed fields as shown, the fields the caller may not read left out),
read in the write transaction once the object is locked: a ``test`` sees what
the write changes. What they change becomes a write, as a PATCH would send it; a
field they remove is left as a PUT without it would leave it (its
``load_default``, else null; an empty list for a ``RefsList``). The write then
runs as any PATCH does (validation, field rights, links, events), in the same
transaction.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import marshmallow
from jsonpatch import JsonPatch, JsonPatchException
from jsonpointer import EndOfList, JsonPointer, JsonPointerException

from ..access import permission_of
from ..exceptions import InvalidPatch, PatchTestFailed, ValidationFailed
from ..model import Collection, Loaded
from ..storage import PeeweeStorage
from .arguments import check_batch, load, object_id
from .call import Auth

if TYPE_CHECKING:
    from ..model import DataModel
    from .core import Operation

_T = TypeVar("_T")

#: The media type of a JSON Patch document (RFC 6902).
MEDIA_TYPE = "application/json-patch+json"

#: The members each operation needs besides ``op`` and ``path``.
MEMBERS: dict[str, tuple[str, ...]] = {
    "add": ("value",),
    "remove": (),
    "replace": ("value",),
    "move": ("from",),
    "copy": ("from",),
    "test": ("value",),
}


class Step:
    """One operation of a JSON Patch document, checked."""

    __slots__ = ("index", "op", "path", "pointer", "source", "patch", "value")

    patch: JsonPatch | None

    def __init__(self, index: int, operation: Any) -> None:
        self.index = index
        if not isinstance(operation, Mapping):
            raise InvalidPatch(f"Operation {index} is not an object.", {"index": index})
        op = operation.get("op")
        if not isinstance(op, str) or op not in MEMBERS:
            raise InvalidPatch(
                f"Operation {index} has no op among {', '.join(MEMBERS)}.", {"index": index}
            )
        self.op = op
        self.path = operation.get("path")
        self.pointer = _pointer(index, op, "path", self.path)
        for member in MEMBERS[op]:
            if member not in operation:
                raise self.invalid(f"it has no {member!r}")
        self.source = None
        if "from" in MEMBERS[op]:
            self.source = _pointer(index, op, "from", operation["from"])
        self.value = operation.get("value")
        self.patch = None
        if op != "test":
            try:
                self.patch = JsonPatch([dict(operation)])
            except JsonPatchException as exc:
                raise self.invalid(str(exc).rstrip(".")) from None

    def invalid(self, why: str) -> InvalidPatch:
        """The error of this operation, for reason ``why``."""
        return InvalidPatch(
            f"Operation {self.index} ({self.op} {self.path!r}) is invalid: {why}.",
            {"index": self.index, "op": self.op, "path": self.path},
        )

    def apply(self, document: Any) -> Any:
        """Apply this operation to ``document`` (changed in place); the result.

        :raises InvalidPatch: if a location it needs does not exist, or it conflicts.
        :raises PatchTestFailed: if it is a ``test`` whose value differs.
        """
        self._check_locations(document)
        if self.patch is None:  # a test: compared here, as RFC 6902 compares
            if not same_json(self.pointer.resolve(document), self.value):
                raise PatchTestFailed(
                    f"Operation {self.index} (test {self.path!r}) failed: the object holds "
                    "another value there. Nothing was changed.",
                    {"index": self.index, "op": "test", "path": self.path},
                )
            return document
        try:
            document = self.patch.apply(document, in_place=True)
        except (JsonPatchException, JsonPointerException) as exc:
            raise self.invalid(str(exc).rstrip(".")) from None
        if not isinstance(document, dict):
            raise self.invalid("the object would no longer be an object")
        return document

    def _check_locations(self, document: Any) -> None:
        """Refuse an operation whose locations do not exist in ``document``: its
        ``path`` (for ``add``, ``move`` and ``copy``: the location that would hold
        the value), its ``from``."""
        if self.op in ("add", "move", "copy"):
            if _missing(document, _parent(self.pointer)):
                raise self.invalid("the location that would hold it does not exist")
        elif _missing(document, self.pointer):
            raise self.invalid("there is no such location in the object")
        if self.source is not None and _missing(document, self.source):
            raise self.invalid("there is no 'from' location in the object")


def parse_patch(document: Any) -> list[Step]:
    """The operations of JSON Patch ``document``, checked.

    :raises InvalidPatch: naming the first invalid operation (its ``index``).
    """
    if not isinstance(document, list):
        raise InvalidPatch("A JSON Patch document is an array of operations.")
    return [Step(index, operation) for index, operation in enumerate(document)]


def same_json(first: Any, second: Any) -> bool:
    """Whether two JSON values are equal as RFC 6902 compares them: numbers by
    value, ``true`` only to itself, arrays and objects member by member."""
    if isinstance(first, bool) or isinstance(second, bool):
        return type(first) is type(second) and first == second
    if isinstance(first, dict) and isinstance(second, dict):
        return first.keys() == second.keys() and all(same_json(first[k], second[k]) for k in first)
    if isinstance(first, list) and isinstance(second, list):
        return len(first) == len(second) and all(map(same_json, first, second))
    if isinstance(first, dict | list) or isinstance(second, dict | list):
        return False
    return bool(first == second)


def patched_object(before: dict[str, Any], steps: list[Step]) -> Any:
    """The object ``before`` (as the caller reads it) once ``steps`` apply."""
    document: Any = copy.deepcopy(before)
    for step in steps:
        document = step.apply(document)
    return document


def changes_of(
    collection: Collection, before: dict[str, Any], after: dict[str, Any]
) -> tuple[dict[str, Any], list[str]]:
    """What a patch changed: the fields whose values differ (as a PATCH body,
    by the names clients use), and the fields it removed."""
    changed = {
        key: value
        for key, value in after.items()
        if key not in before or not same_json(before[key], value)
    }
    return changed, [key for key in before if key not in after]


def load_changes(
    collection: Collection, before: dict[str, Any], changed: dict[str, Any], removed: list[str]
) -> Loaded:
    """The changes of a patch as validated write data: ``changed`` as a PATCH
    loads it, ``removed`` fields as a PUT without them leaves them.

    A field the caller may not read is not in ``before``: setting it is an
    unknown field, as it is for a field that does not exist.

    :raises ValidationFailed: naming every invalid field.
    """
    messages: dict[str, Any] = {}
    data = dict(changed)
    for key in changed:
        name = collection.by_key.get(key)
        if key not in before and name is not None and not collection.schema.fields[name].load_only:
            messages[key] = ["Unknown field."]
            del data[key]
    defaults = {}
    for key in removed:
        name = collection.by_key.get(key)
        if name is None:  # the id: removing it is changing it
            data[key] = None
        else:
            defaults[name] = _removed_value(collection, name, key, messages)
    try:
        loaded = load(collection, data, partial=True)
    except ValidationFailed as exc:
        raise ValidationFailed({**exc.messages, **messages}) from None
    if messages:
        raise ValidationFailed(messages)
    result = Loaded({**loaded, **defaults})
    result.given = frozenset(getattr(loaded, "given", ())) | frozenset(defaults)
    return result


def _removed_value(collection: Collection, name: str, key: str, messages: dict[str, Any]) -> Any:
    """The value of field ``name`` that a patch removes: the one it takes when a
    PUT leaves it out (a message in ``messages`` when there is none)."""
    field = collection.schema.fields[name]
    if name in collection.computed:
        messages[key] = ["A computed field cannot be removed: replace its value."]
    elif field.required:
        messages[key] = [field.error_messages["required"]]
    default = field.load_default
    if default is marshmallow.missing:
        relation = collection.relations.get(name)
        return [] if relation is not None and relation.multi else None
    return default() if callable(default) else default


def apply_patch(
    operation: Operation,
    collection: Collection,
    id_: int,
    steps: list[Step],
    max_batch: int | None,
) -> tuple[Any, int]:
    """Run the patch ``steps`` on object ``id_`` in the call's write transaction.

    :raises NotFound: if there is no such object (or the caller cannot see it).
    """
    operation.lock_plan(collection, id_, [])
    operation.lock_existing(collection, [id_])
    access = operation.access
    if access is not None and permission_of(collection) is not None:
        access.require(collection, "update", operation.stored(collection, id_))
    # The object is locked: a precondition on it holds until the commit.
    operation.check_preconditions(collection, id_)
    before = operation.reread(collection, [id_])[0]
    changed, removed = changes_of(collection, before, patched_object(before, steps))
    check_batch(collection, [changed], max_batch, existing=True)
    loaded = load_changes(collection, before, changed, removed)
    operation.lock_plan(collection, id_, [loaded])
    allowed = operation.allowed_update(collection, id_, loaded)
    operation.update_object(collection, id_, allowed, replace=False)
    return operation.reread(collection, [id_])[0], 200


class JsonPatching:
    """The JSON Patch call of :class:`~backo_restful.engine.Engine` (see
    :meth:`~backo_restful.engine.Engine.patch`)."""

    model: DataModel
    storage: PeeweeStorage

    if TYPE_CHECKING:

        def _start(self, name: str, auth: Auth) -> tuple[Collection, Operation]: ...

        def _write(self, operation: Operation, work: Callable[[], _T]) -> _T: ...

    def _json_patch(
        self,
        name: str,
        id_: Any,
        document: list[Any],
        max_batch: int | None,
        if_match: Any,
        auth: Auth,
    ) -> tuple[Any, int]:
        """:meth:`Engine.patch` of a list of JSON Patch operations.

        :raises InvalidPatch: for an invalid document, or an operation that does
            not apply to the object.
        :raises PatchTestFailed: if a ``test`` operation fails (nothing changes).
        """
        collection, operation = self._start(name, auth)
        operation.refuse_early(collection, "update")
        id_ = object_id(collection, id_)
        steps = parse_patch(document)
        operation.if_match = if_match
        return self._write(
            operation, lambda: apply_patch(operation, collection, id_, steps, max_batch)
        )


def _pointer(index: int, op: str, member: str, value: Any) -> JsonPointer:
    """The JSON pointer ``member`` of operation ``index``.

    :raises InvalidPatch: if it is not one.
    """
    if isinstance(value, str):
        try:
            return JsonPointer(value)
        except JsonPointerException:
            pass
    raise InvalidPatch(
        f'Operation {index} ({op}): {member!r} is not a JSON pointer ("/field/0").',
        {"index": index, "op": op, "member": member},
    )


def _parent(pointer: JsonPointer) -> JsonPointer:
    return JsonPointer.from_parts(pointer.parts[:-1]) if pointer.parts else pointer


def _missing(document: Any, pointer: JsonPointer) -> bool:
    """Whether ``pointer`` names no value of ``document``."""
    try:
        found = pointer.resolve(document)
    except JsonPointerException:
        return True
    return isinstance(found, EndOfList)

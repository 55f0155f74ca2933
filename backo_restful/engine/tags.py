"""Entity tags: the ``ETag`` of each answer, and the ``If-Match`` check of writes.

A strong tag names one representation of one object: a hash of the object as
the answer shows it to its caller (their field rights, the ``depth``,
``fields`` and ``view`` of the read), followed, when those read options are not
those of a plain read (``GET /<collection>/<id>``), by a compact encoding of
them. A write given ``if_match`` decodes the options of each tag, shows the
object as it is now with them, in the write's transaction and once the write
has locked it, and compares the hashes: a tag from any read can guard a write,
and two writes holding the same tag cannot both pass. A page's tag is weak: a
hash of its objects, its total and its cursors.

The tag holds no secret: its options are the read's own, and its hash says
only whether two representations are the same.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..exceptions import ClientError, NotFound, PreconditionFailed, UnknownCollection
from ..model import Collection, DataModel
from ..paging import Page
from .call import missing_objects
from .options import ReadOptions
from .reading import Reading

#: How many base64url characters of the SHA-256 of a representation a tag keeps (132 bits).
HASH_LENGTH = 22
#: The deepest representation a tag's options may ask for (deeper: no match).
MAX_TAG_DEPTH = 16
#: The most objects and ids the representation of a tag may show (more: no match).
MAX_TAG_OBJECTS = 10_000
#: The most tags one ``if_match`` may list (more: :class:`PreconditionFailed`).
MAX_TAGS = 20
#: The longest tag checked (longer: no match).
MAX_TAG_LENGTH = 2000

#: What ``if_match`` takes: a tag, a list of tags, ``"*"``, or None (no condition).
Tags = str | Sequence[str] | None

_KEYS = frozenset({"depth", "fields", "view"})


def digest(value: Any) -> str:
    """A short hash of the JSON value ``value`` (the body of an answer)."""
    raw = json.dumps(value, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(hashlib.sha256(raw).digest()).decode()[:HASH_LENGTH]


def etag_of(body: Any, options: Mapping[str, Any] | None = None) -> str:
    """The strong entity tag (quotes included) of ``body``, an object as an
    answer shows it with read ``options``: those of :func:`tag_options`."""
    if not options:
        return f'"{digest(body)}"'
    encoded = json.dumps(options, separators=(",", ":"), sort_keys=True).encode()
    return f'"{digest(body)}.{base64.urlsafe_b64encode(encoded).decode().rstrip("=")}"'


def page_etag(page: Page) -> str:
    """The weak entity tag of ``page``: of its objects, total and cursors."""
    shown = [page.items, page.total, page.total_method, page.next, page.previous]
    return f'W/"{digest(shown)}"'


def tag_options(
    collection: Collection,
    depth: int = 1,
    fields: list[str] | str | None = None,
    view: str | None = None,
) -> dict[str, Any]:
    """The read options (of :meth:`Engine.get`) of an object's representation
    that differ from a plain read's: depth 1, every field, or the collection's
    ``default`` view when it has one (as :func:`api.basic.get` shows it)."""
    options: dict[str, Any] = {}
    if depth != 1:
        options["depth"] = depth
    if fields is not None:
        names = fields.split(",") if isinstance(fields, str) else fields
        options["fields"] = sorted({name.strip() for name in names})
    elif view != _plain_view(collection):
        options["view"] = view
    return options


def _plain_view(collection: Collection) -> str | None:
    return "default" if "default" in collection.views else None


def parse_tag(collection: Collection, tag: Any) -> tuple[str, ReadOptions] | None:
    """The hash and the read options a strong tag names (None: not a tag this
    engine makes, or options out of limits)."""
    if not isinstance(tag, str) or len(tag) > MAX_TAG_LENGTH:
        return None
    if len(tag) < 2 or tag[0] != '"' or tag[-1] != '"':
        return None
    hashed, _, encoded = tag[1:-1].partition(".")
    if len(hashed) != HASH_LENGTH:
        return None
    options: Any = {}
    if encoded:
        try:
            options = json.loads(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
        except (ValueError, binascii.Error, RecursionError):
            return None
    read = _read_options(collection, options)
    return None if read is None else (hashed, read)


def _read_options(collection: Collection, options: Any) -> ReadOptions | None:
    """The :class:`ReadOptions` of decoded tag ``options`` (None: malformed)."""
    if not isinstance(options, dict) or not set(options) <= _KEYS:
        return None
    depth = options.get("depth", 1)
    fields = options.get("fields")
    view = options.get("view", _plain_view(collection) if fields is None else None)
    if type(depth) is not int or not 0 <= depth <= MAX_TAG_DEPTH:
        return None
    if fields is not None and not (
        isinstance(fields, list) and fields and all(isinstance(f, str) for f in fields)
    ):
        return None
    if view is not None and not isinstance(view, str):
        return None
    return ReadOptions(depth=depth, fields=fields, view=view, max_objects=MAX_TAG_OBJECTS)


def _tags(if_match: Any) -> list[Any] | None:
    """The tags ``if_match`` lists (None: ``*``, any)."""
    if if_match == "*":
        return None
    tags = [if_match] if isinstance(if_match, str) else list(if_match)
    if "*" in tags:
        return None
    if len(tags) > MAX_TAGS:
        raise PreconditionFailed(
            f"If-Match lists more than {MAX_TAGS} tags.", {"maximum": MAX_TAGS}
        )
    return tags


class Tagging:
    """The calls of :class:`~backo_restful.engine.Engine` about entity tags."""

    model: DataModel

    def etag(
        self,
        name: str,
        body: Any,
        *,
        depth: int = 1,
        fields: list[str] | str | None = None,
        view: str | None = None,
    ) -> str:
        """The strong ``ETag`` of ``body``, an object of collection ``name`` as
        :meth:`get` answered it with these options (the defaults: as a write
        answers it); a write's ``if_match`` accepts it while the object shows
        the same.

        :raises UnknownCollection: if there is no such collection.
        """
        collection = self.model.collections.get(name) if isinstance(name, str) else None
        if collection is None:
            raise UnknownCollection(name)
        return etag_of(body, tag_options(collection, depth, fields, view))

    @staticmethod
    def page_etag(page: Page) -> str:
        """The weak ``ETag`` of a :class:`Page` (see :meth:`page`)."""
        return page_etag(page)


class Conditional(Reading):
    """The preconditions of one write: ``if_match`` and ``if_none_match``."""

    #: The tags the object must show one of: a tag, a list of tags, or ``"*"``
    #: (any existing object); None: no condition.
    if_match: Tags = None
    #: ``"*"``: the write (a PUT) may only create.
    if_none_match: str | None = None

    def check_creation(self, collection: Collection, id_: int) -> None:
        """Refuse to create object ``id_`` (a PUT on a free id) under ``if_match``."""
        if self.if_match is not None:
            raise PreconditionFailed(
                f"There is no {collection.name} {id_} to match If-Match: nothing was created.",
                {"collection": collection.name, "id": id_},
            )

    def check_preconditions(self, collection: Collection, id_: int) -> None:
        """Refuse a write to object ``id_`` (locked by the write, visible to the
        caller) unless it shows one of the ``if_match`` tags now.

        :raises PreconditionFailed: with nothing changed.
        """
        if self.if_none_match is not None:
            raise PreconditionFailed(
                f"{collection.name} {id_} exists (If-None-Match: *): nothing was changed.",
                {"collection": collection.name, "id": id_},
            )
        if self.if_match is None:
            return
        tags = _tags(self.if_match)
        if tags is None:
            return
        shown: dict[str, str | None] = {}  # the options' JSON -> the hash shown with them
        for tag in tags:
            parsed = parse_tag(collection, tag)
            if parsed is None:
                continue
            hashed, options = parsed
            key = json.dumps([options.depth, options.fields, options.view])
            if key not in shown:
                shown[key] = self._tag_hash(collection, id_, options)
            if shown[key] == hashed:
                return
        raise PreconditionFailed(
            f"{collection.name} {id_} does not match If-Match: it changed since it was "
            "read (or the tag is not one of its): nothing was changed.",
            {"collection": collection.name, "id": id_},
        )

    def _tag_hash(self, collection: Collection, id_: int, options: ReadOptions) -> str | None:
        """The hash of object ``id_`` as the caller sees it now with ``options``
        (None: options this caller may not read with)."""
        try:
            if self.access is not None:
                self.access.require(collection, "read")
            plan = options.plan(collection, self.access, item=True)
            options.limit_objects(plan)
            return digest(self.read_one(plan, id_))
        except NotFound:
            raise missing_objects(collection, {id_}) from None
        except ClientError:  # a right, view, field or depth refused, too many objects
            return None

"""Read options as one value: what a read asks for, checked once.

:class:`ReadOptions` holds the arguments of a read as the caller gives them
(``Engine.get``, ``Engine.page``, ``api.basic.get`` and the query string of
``api.flask`` all build one); :meth:`ReadOptions.plan` checks them against a
collection and a caller, giving the :class:`ReadPlan` the engine reads with.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from .. import paging
from ..access import Access
from ..exceptions import BadRequest, DeclarationError, InvalidCursor, InvalidParameter, UnknownView
from ..model import Collection, DataModel
from ..query import (
    COUNT_MODES,
    And,
    Condition,
    Hidden,
    Node,
    Not,
    Or,
    Path,
    Selection,
    SortKey,
    check_count,
    parse_fields,
    parse_filter,
    parse_sort,
    paths_of,
    resolve_path,
)
from ..storage import Scopes

#: How many matches ``count="estimate"`` counts before it stops (``BACKO_COUNT_LIMIT``).
DEFAULT_COUNT_LIMIT = 10_000

ID_PATH = Path((), "id", "id")


@dataclasses.dataclass(frozen=True)
class ReadOptions:
    """The options of a read, as given (see :meth:`Engine.get` and :meth:`Engine.page`).

    :param depth: 0 gives ids only; n gives fields, related objects at n-1.
    :param filter_: field paths to values or operators, or a parsed filter.
    :param sort: field paths, ``-path`` for descending.
    :param limit: the most objects of a page.
    :param offset: how many matches to skip.
    :param fields: the fields to show.
    :param after: a cursor: the objects after it.
    :param before: a cursor: the objects before it.
    :param count: ``"exact"``, ``"estimate"`` or ``"none"``.
    :param count_limit: how many matches ``"estimate"`` counts.
    :param max_objects: the most objects and ids the answer may show.
    :param view: the name of a view of the collection: its fields (not with ``fields``).
    """

    depth: int = 1
    filter_: Mapping[str, Any] | Node | None = None
    sort: list[str] | str | None = None
    limit: int | None = None
    offset: int | None = None
    fields: list[str] | str | None = None
    after: str | None = None
    before: str | None = None
    count: str = "exact"
    count_limit: int = DEFAULT_COUNT_LIMIT
    max_objects: int | None = None
    view: str | None = None

    def replace(self, **changes: Any) -> ReadOptions:
        """These options with ``changes``."""
        return dataclasses.replace(self, **changes)

    def plan(self, collection: Collection, access: Access | None, *, item: bool) -> ReadPlan:
        """Check the options for a read of ``collection`` by ``access``: of one
        object (``item``; the options of a page are then ignored, and
        :meth:`limit_objects` is left to the caller) or of a page.

        :raises BadRequest: for a bad option (its most precise class).
        """
        hidden = access.hidden if access is not None else None
        depth = check_count("depth", self.depth)
        where = filter_node(collection, self.filter_, hidden)
        keys = [] if item else parse_sort(collection, self.sort, hidden=hidden)
        selection = self._selection(collection, hidden)
        plan = ReadPlan(collection, depth, where, keys, selection)
        if access is not None:
            plan.scope, plan.scopes = access.scope(collection), access.scopes()
        if not item:
            self._page(plan)
            self.limit_objects(plan)
        return plan

    def _selection(self, collection: Collection, hidden: Hidden | None) -> Selection | None:
        """The fields to show: ``fields``, or those of the view ``view``.

        :raises UnknownView: for a view the collection does not declare.
        """
        if self.view is None:
            return parse_fields(collection, self.fields, hidden=hidden)
        if self.fields is not None:
            raise InvalidParameter("Give view or fields, not both.", {"parameter": "view"})
        views = collection.views
        if not isinstance(self.view, str) or self.view not in views:
            known = ", ".join(views) or "none"
            raise UnknownView(
                f"Unknown view {str(self.view)[:50]!r} of {collection.name} (views: {known}).",
                {"parameter": "view", "collection": collection.name, "view": str(self.view)[:100]},
            )
        # The server's own selection: a field the caller may not read is left
        # out of the objects, as without fields=.
        return parse_fields(collection, list(views[self.view]))

    def limit_objects(self, plan: ReadPlan) -> None:
        """Check ``max_objects`` into ``plan`` (last: a read of one object checks
        its id first)."""
        if self.max_objects is not None:
            plan.max_objects = check_count("max_objects", self.max_objects)

    def _page(self, plan: ReadPlan) -> None:
        """Check the options only a page takes, into ``plan``."""
        if self.limit is not None:
            plan.limit = check_count("limit", self.limit)
        if self.offset is not None:
            plan.offset = check_count("offset", self.offset)
        plan.count_limit = check_count("count_limit", self.count_limit)
        if self.count not in COUNT_MODES:
            raise InvalidParameter(
                f"count must be one of {', '.join(COUNT_MODES)}.", {"parameter": "count"}
            )
        plan.count = self.count
        if sum(x is not None for x in (self.after, self.before, self.offset)) > 1:
            raise InvalidParameter(
                "Give at most one of after, before and offset.",
                {"parameter": "after" if self.after is not None else "before"},
            )
        plan.after, plan.before = self.after, self.before
        cursor = self.after if self.after is not None else self.before
        if cursor is not None:
            parameter = "after" if self.after is not None else "before"
            paths = [key.path for key in plan.keys]
            if not any(path.field == "id" and not path.steps for path in paths):
                paths.append(ID_PATH)
            plan.position = paging.decode(plan.collection, plan.keys, paths, cursor, parameter)
            if self.after is not None and plan.position is None:
                raise InvalidCursor("after= takes the cursor of a row.", {"parameter": "after"})


@dataclasses.dataclass
class ReadPlan:
    """A read's options, checked for one collection and caller."""

    collection: Collection
    depth: int
    where: Node | None
    keys: list[SortKey]
    selection: Selection | None
    scope: Node | None = None
    scopes: Scopes | None = None
    limit: int | None = None
    offset: int | None = None
    count: str = "none"
    count_limit: int = DEFAULT_COUNT_LIMIT
    max_objects: int | None = None
    after: str | None = None
    before: str | None = None
    #: The sort-key values of the cursor row (None: from the first or the last).
    position: list[Any] | None = None

    @property
    def reverse(self) -> bool:
        """Whether the page is read backwards (``before=``)."""
        return self.before is not None


def check_views(model: DataModel) -> None:
    """Check the fields of every view of ``model``.

    :raises DeclarationError: naming the collection and the view, for a field
        path its collection does not have.
    """
    for collection in model.collections.values():
        views = collection.options.get("views") or {}
        if not isinstance(views, Mapping):
            raise DeclarationError(
                'views= takes a dict of view names to lists of fields ({"card": ["name"]})',
                collection=collection.name,
            )
        for view, fields in views.items():
            if not isinstance(view, str) or not isinstance(fields, list | tuple):
                raise DeclarationError(
                    f"view {view!r}: a view name maps to a list of field paths",
                    collection=collection.name,
                )
            try:
                parse_fields(collection, list(fields))
            except BadRequest as exc:
                raise DeclarationError(
                    f"view {view!r}: {exc.message}", collection=collection.name
                ) from None


def filter_node(collection: Collection, filter_: Any, hidden: Hidden | None) -> Node | None:
    """``filter_`` parsed (a parsed one is checked against ``hidden`` as parsing
    would check it)."""
    if isinstance(filter_, Condition | And | Or | Not):
        if hidden is not None:
            for path in paths_of(filter_):
                resolve_path(collection, path.text, hidden=hidden)
        return filter_
    return parse_filter(collection, filter_, hidden=hidden)

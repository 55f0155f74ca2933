"""The columns of an export: :meth:`Exporting.columns`, for a flat (CSV) export
of a list, whose header names every field its objects may show before any of
them is read."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..access import right
from .call import Auth
from .options import ReadOptions

if TYPE_CHECKING:
    from ..model import Collection
    from .core import Operation


class Exporting:
    """The :class:`~backo_restful.Engine`'s :meth:`columns`."""

    if TYPE_CHECKING:

        def _start(self, name: str, auth: Auth) -> tuple[Collection, Operation]: ...

    def columns(
        self, name: str, *, options: ReadOptions | None = None, auth: Auth = None
    ) -> list[str]:
        """The keys the objects of a read of collection ``name`` may show, in
        the order they show them: the id, then each field the read selects
        (``fields`` or ``view`` of ``options``) that the caller may read on some
        object (a field whose read right depends on the object is a column; the
        objects that hide it leave it empty). ``["id"]`` at depth 0.

        :raises BadRequest: for a bad option, as the read itself would raise.
        :raises Unauthorized: (anonymous caller) or :class:`Forbidden`.
        """
        collection, operation = self._start(name, auth)
        if operation.access is not None:
            operation.access.require(collection, "read")
        plan = (options or ReadOptions()).plan(collection, operation.access, item=False)
        if plan.depth == 0:
            return ["id"]
        layout = operation._layout(collection)
        selection = plan.selection
        keys = ["id"]
        for key, field, _ in layout:
            if selection is not None and field not in selection:
                continue
            if operation.access is not None and right(collection, field, "can_read") is False:
                continue
            keys.append(key)
        return keys

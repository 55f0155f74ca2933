"""The :class:`Engine`: the public calls, each one :class:`Operation` in a transaction."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ..access import permission_of
from ..exceptions import InvalidId, ReferenceViolation, UnknownCollection
from ..lifecycle import Event
from ..logs import events_logger
from ..model import Collection, DataModel
from ..paging import Page
from ..query import Node
from ..storage import PeeweeStorage
from .actions import Acting, action_args, find_action
from .arguments import check_batch, load, load_many, object_id
from .bulk import BulkWriting
from .call import Auth, access_of, missing_objects
from .checking import Checking
from .deleting import Deleting, delete_order
from .describing import SelfDescribing
from .exporting import Exporting
from .logged import logged
from .objects import Objects
from .options import DEFAULT_COUNT_LIMIT, ReadOptions, check_views
from .patching import JsonPatching
from .reading import Layout
from .tags import Tagging, Tags
from .transactions import run_read, run_write

_T = TypeVar("_T")

#: The largest id PUT may create: the id counters keep room above it, and every id
#: stays exact in JavaScript clients.
MAX_CREATED_ID = 2**53 - 1


class Operation(Deleting, Acting, Checking):
    """Everything one engine call may do: read, guard, write, delete."""

    def replace(self, collection: Collection, id_: int, data: dict[str, Any]) -> tuple[Any, int]:
        """PUT ``data`` at ``id_``: replace the object, or create it there (201).

        :raises InvalidId: if it would create an object above :data:`MAX_CREATED_ID`.
        """
        self.lock_plan(collection, id_, [data], replace=True)
        if self.scope(collection) is not None and not self.visible_ids(collection, {id_}):
            # A caller who sees only part of the collection cannot tell a free
            # id from a hidden one: for them PUT neither creates nor reveals.
            raise missing_objects(collection, {id_})
        if self.storage.lock(collection, [id_]):
            allowed = self.allowed_update(collection, id_, data)
            self.check_preconditions(collection, id_)
            self.update_object(collection, id_, allowed, replace=True)
            return self.reread(collection, [id_])[0], 200
        if id_ > MAX_CREATED_ID:
            raise InvalidId(
                f"PUT creates objects with ids up to {MAX_CREATED_ID} only; "
                f"there is no {collection.name} {id_}.",
                {"collection": collection.name, "id": id_, "maximum": MAX_CREATED_ID},
            )
        self.check_creation(collection, id_)
        self.create(collection, data, id_=id_)
        return self.reread(collection, [id_])[0], 201


class Engine(SelfDescribing, Exporting, Tagging, BulkWriting, JsonPatching):
    """Serve a :class:`DataModel` from a storage.

    :param model: the declared data model (checked here).
    :param storage: where the collections live, e.g. a :class:`PeeweeStorage`.
    :raises DeclarationError: if the model is declared wrongly.

    Every call takes ``auth``: None for trusted code (no checks), else the
    caller's verified claims (a Mapping; empty for an anonymous caller), whose
    permissions and field rights the call enforces. A refused caller gets
    :class:`~backo_restful.exceptions.Unauthorized` when anonymous, else
    :class:`~backo_restful.exceptions.Forbidden`; an object outside the caller's
    scope is :class:`NotFound`, for every method. Writes of one object take
    ``if_match`` (see :meth:`etag`): else :class:`PreconditionFailed`.
    """

    def __init__(self, model: DataModel, storage: PeeweeStorage) -> None:
        model.resolve()
        check_views(model)
        storage.attach(model)
        self.model = model
        self.storage = storage
        model.freeze()
        #: Collections in the order a delete removes their rows.
        self.delete_order = delete_order(model)
        #: How each collection's objects are shown (see :meth:`Reading._layout`).
        self.layouts: dict[str, Layout] = {}

    #: How deep in a chain of events this engine's calls run (see :meth:`bound`).
    _event_depth = 0
    #: Where its calls queue events for ``after_commit`` (None: their own queue).
    _event_queue: list[Event] | None = None

    def __repr__(self) -> str:
        return f"<Engine {self.model.name!r} on {self.storage!r}>"

    def bound(self, depth: int, queue: list[Event] | None) -> Engine:
        """This engine as event handlers ``depth`` levels deep get it: its calls
        queue their events for ``after_commit`` in ``queue``, the outermost
        call's (None: they run them once their own transaction commits)."""
        engine = copy.copy(self)
        engine._event_depth = depth
        engine._event_queue = queue
        return engine

    def collection(self, name: str, auth: Auth = None) -> Objects:
        """The objects of collection ``name``, for Python code: create, load and
        find them, as ``auth`` (see :class:`~backo_restful.engine.objects.Objects`).

        :raises UnknownCollection: if there is no such collection.
        """
        return Objects(self, name, auth)

    def _start(self, name: str, auth: Auth) -> tuple[Collection, Operation]:
        """The collection named ``name`` and the operation of a call by ``auth``.

        :raises UnknownCollection: if there is no such collection.
        """
        access = access_of(self.model, auth)
        collection = self.model.collections.get(name) if isinstance(name, str) else None
        if collection is None:
            raise UnknownCollection(name)
        operation = Operation(self, access)
        operation.depth, operation.committed = self._event_depth, self._event_queue
        return collection, operation

    # -- reading ---------------------------------------------------------------------

    @logged("get")
    def get(
        self,
        name: str,
        id_: Any = None,
        *,
        depth: int = 1,
        filter_: Mapping[str, Any] | Node | None = None,
        sort: list[str] | str | None = None,
        limit: int | None = None,
        offset: int | None = None,
        fields: list[str] | str | None = None,
        view: str | None = None,
        after: str | None = None,
        before: str | None = None,
        max_objects: int | None = None,
        options: ReadOptions | None = None,
        auth: Auth = None,
    ) -> tuple[Any, int]:
        """Read one object (``id_``) or a list, expanded to ``depth``.

        :param depth: 0 gives ids only; n gives fields, related objects at n-1.
        :param filter_: field paths to values or operators (``{"year": {"$gte":
            2000}}``), with ``$and``, ``$or`` and ``$not`` groups; all must match.
        :param sort: field paths, ``-path`` for descending; the id breaks ties.
        :param fields: the fields to show (``["type", "jar.name"]``); the id always.
        :param view: a view of the collection: the fields it declares (not with ``fields``).
        :param after: a cursor from :meth:`page`: the objects after it.
        :param before: a cursor from :meth:`page`: the objects before it.
        :param max_objects: refuse (400) a response holding more objects than this.
        :param options: all of the above as one :class:`ReadOptions`, instead.
        :raises NotFound: if ``id_`` matches no object.
        :raises BadRequest: for a bad parameter.
        """
        given = dict(
            depth=depth, filter_=filter_, sort=sort, limit=limit, offset=offset, fields=fields,
            view=view, after=after, before=before, max_objects=max_objects,
        )  # fmt: skip
        options = _options(options, given, count="none")
        if id_ is None:
            return self._page(name, options, auth).items, 200
        collection, operation = self._start(name, auth)
        if operation.access is not None:
            operation.access.require(collection, "read")
        plan = options.plan(collection, operation.access, item=True)
        id_ = object_id(collection, id_)
        options.limit_objects(plan)
        snapshot = operation.reads_more(collection, plan.depth, plan.selection)
        return run_read(self.storage, lambda: operation.read_one(plan, id_), snapshot=snapshot), 200

    @logged("page")
    def page(
        self,
        name: str,
        *,
        depth: int = 1,
        filter_: Mapping[str, Any] | Node | None = None,
        sort: list[str] | str | None = None,
        limit: int | None = None,
        offset: int | None = None,
        fields: list[str] | str | None = None,
        view: str | None = None,
        after: str | None = None,
        before: str | None = None,
        count: str = "exact",
        count_limit: int = DEFAULT_COUNT_LIMIT,
        max_objects: int | None = None,
        options: ReadOptions | None = None,
        auth: Auth = None,
    ) -> Page:
        """Read one page of a collection, with its total and the cursors around it.

        Takes the arguments of :meth:`get` (without ``id_``), and:

        :param count: ``"exact"`` (a ``COUNT`` of every match), ``"estimate"`` or
            ``"none"``. ``"estimate"`` counts up to ``count_limit`` matches, so its
            cost is bounded: up to there the total is exact; beyond, it is the
            database's estimate where it has one (PostgreSQL, MariaDB without a
            filter), else ``count_limit`` as a lower bound (``total_method``
            ``"at-least"``).
        :raises BadRequest: for a bad parameter or cursor.
        """
        given = dict(
            depth=depth, filter_=filter_, sort=sort, limit=limit, offset=offset, fields=fields,
            view=view, after=after, before=before, count=count, count_limit=count_limit,
            max_objects=max_objects,
        )  # fmt: skip
        return self._page(name, _options(options, given), auth)

    def _page(self, name: str, options: ReadOptions, auth: Auth) -> Page:
        """:meth:`page` with its options as one value (unlogged: :meth:`get` of a
        list is one call)."""
        collection, operation = self._start(name, auth)
        if operation.access is not None:
            operation.access.require(collection, "read")
        plan = options.plan(collection, operation.access, item=False)
        found = run_read(
            self.storage, lambda: operation.read_page(plan), snapshot=operation.snapshot(plan)
        )
        return operation.page_of(plan, found)

    def authorize(self, name: str, *actions: str, auth: Auth = None) -> None:
        """Refuse a caller whom the permissions of collection ``name`` let do none
        of ``actions`` (``"read"``, ``"create"``, ``"update"``, ``"delete"``) to
        any object, before anything else of a request is looked at.

        :raises NotFound: if there is no such collection.
        :raises Unauthorized: (anonymous caller) or :class:`Forbidden`.
        """
        collection, operation = self._start(name, auth)
        operation.refuse_early(collection, *actions)

    # -- actions ---------------------------------------------------------------------

    def authorize_action(self, name: str, action: str, *, item: bool, auth: Auth = None) -> None:
        """Refuse, before anything else of a request is looked at, a caller whom
        action ``action`` of collection ``name`` allows on no object.

        :param item: the action of an object (True) or of the collection.
        :raises UnknownAction: if there is no such action.
        :raises Unauthorized: (anonymous caller) or :class:`Forbidden`.
        """
        collection, operation = self._start(name, auth)
        declared = find_action(self.model, collection, action, item=item)
        operation.refuse_action_early(declared, collection)

    @logged("act")
    def act(
        self, name: str, action: str, *, id_: Any = None, args: Any = None,
        if_match: Tags = None, auth: Auth = None,
    ) -> tuple[Any, int]:  # fmt: skip
        """Run action ``action`` of collection ``name`` (see :meth:`DataModel.action`):
        on object ``id_``, or on the collection when ``id_`` is None.

        The handler and everything it writes run in one transaction: an error
        rolls it all back.

        :param args: the action's arguments, checked by its ``args`` Schema.
        :returns: ``(result, 200)``, the handler's result.
        :raises UnknownAction: if the collection has no such action (for an
            object, or for the collection).
        :raises ValidationFailed: naming every invalid or unknown argument.
        :raises NotFound: if the object is missing or outside the caller's scope.
        :raises InternalError: if the handler fails with an exception that is not
            a :class:`BackoError` (its ``__cause__``).
        """
        collection, operation = self._start(name, auth)
        declared = find_action(self.model, collection, action, item=id_ is not None)
        operation.refuse_action_early(declared, collection)
        if id_ is not None:
            id_ = object_id(collection, id_)
        loaded = action_args(declared, args)
        operation.if_match = if_match

        def work() -> Any:
            return operation.perform(declared, collection, id_, loaded)

        return self._write(operation, work), 200

    # -- writing ---------------------------------------------------------------------

    @logged("post")
    def post(
        self, name: str, data: Any, *, max_batch: int | None = None, auth: Auth = None
    ) -> tuple[Any, int]:
        """Create an object from a dict, or several from a list (all or nothing).

        :param max_batch: refuse (400) a write creating more objects than this, the
            objects nested in relations included.
        :raises ValidationFailed: naming every invalid field.
        :raises NotFound: if a relation names an object that does not exist.
        """
        collection, operation = self._start(name, auth)
        operation.refuse_early(collection, "create")
        many = isinstance(data, list)
        check_batch(collection, data if many else [data], max_batch)
        loaded = load_many(collection, data) if many else [load(collection, data)]

        def work(trusted: bool) -> list[Any]:
            if many:
                operation.lock_plan(collection, None, loaded)
                ids = [operation.create(collection, item)[0] for item in loaded]
                return operation.reread(collection, ids)
            if not trusted:
                operation.lock_plan(collection, None, loaded)
            new_id, row = operation.create(
                collection, loaded[0], returning=True, check_links=not trusted
            )
            if row is None:
                return operation.reread(collection, [new_id])
            return operation.render(collection, [row], 1)

        trusted = not many and operation.foreign_keys_check(collection, loaded[0])
        try:
            rendered = self._write(operation, lambda: work(trusted))
        except ReferenceViolation:
            if not trusted:
                raise
            # Again, checking each link, to name the object that is missing.
            rendered = self._write(operation, lambda: work(False))
        return (rendered if many else rendered[0]), 201

    @logged("put")
    def put(
        self, name: str, id_: Any, data: Any, *, max_batch: int | None = None,
        if_match: Tags = None, if_none_match: str | None = None, auth: Auth = None,
    ) -> tuple[Any, int]:  # fmt: skip
        """Replace object ``id_`` whole (unset fields go back to defaults or null).

        Creates it at that id (status 201) when the id is free (not with
        ``if_match``; only then with ``if_none_match="*"``).

        :param max_batch: refuse (400) a write creating more objects than this.
        """
        collection, operation = self._start(name, auth)
        operation.refuse_early(collection, "update", "create")
        id_ = object_id(collection, id_)
        check_batch(collection, [data], max_batch)
        loaded = load(collection, data)
        operation.if_match, operation.if_none_match = if_match, if_none_match
        return self._write(operation, lambda: operation.replace(collection, id_, loaded))

    @logged("patch")
    def patch(
        self, name: str, id_: Any, data: Any, *, max_batch: int | None = None,
        if_match: Tags = None, auth: Auth = None,
    ) -> tuple[Any, int]:  # fmt: skip
        """Change the given fields of object ``id_``: ``data`` maps them to their
        values, or is a list of JSON Patch operations (see :mod:`.patching`).

        :param max_batch: refuse (400) a write creating more objects than this.
        :raises NotFound: if there is no such object.
        """
        if isinstance(data, list):
            return self._json_patch(name, id_, data, max_batch, if_match, auth)
        collection, operation = self._start(name, auth)
        operation.refuse_early(collection, "update")
        id_ = object_id(collection, id_)
        check_batch(collection, [data], max_batch, existing=True)
        loaded = load(collection, data, partial=True)
        operation.if_match = if_match

        def work() -> tuple[Any, int]:
            if if_match is None and operation.plain_update(collection, loaded):
                # Plain values only: one UPDATE that gives the row back, or finds none.
                row = operation.patch_row(collection, id_, loaded)
                return operation.render(collection, [row], 1)[0], 200
            operation.lock_plan(collection, id_, [loaded])
            allowed = operation.allowed_update(collection, id_, loaded)
            operation.check_preconditions(collection, id_)
            operation.update_object(collection, id_, allowed, replace=False)
            return operation.reread(collection, [id_])[0], 200

        return self._write(operation, work)

    @logged("delete")
    def delete(
        self, name: str, id_: Any, *, if_match: Tags = None, auth: Auth = None
    ) -> tuple[None, int]:
        """Delete object ``id_``, applying the delete strategies of its relations.

        :raises NotFound: if there is no such object.
        :raises Conflict: if a strategy refuses the delete.
        """
        collection, operation = self._start(name, auth)
        operation.refuse_early(collection, "delete")  # before telling whether it exists
        id_ = object_id(collection, id_)
        operation.if_match = if_match

        def work() -> tuple[None, int]:
            operation.lock_plan(collection, id_, [])
            operation.lock_existing(collection, [id_])
            if operation.access is not None and permission_of(collection) is not None:
                row = operation.stored(collection, id_)
                operation.access.require(collection, "delete", row)
            operation.check_preconditions(collection, id_)
            operation.delete_object(collection, id_)
            return None, 204

        return self._write(operation, work)

    def _write(self, operation: Operation, work: Callable[[], _T]) -> _T:
        """Run ``work`` in a write transaction (see :func:`run_write`), then the
        ``after_commit`` handlers of the events it queued."""
        if not self.model.lifecycle.handlers:
            return run_write(self.storage, work)
        queue = self._event_queue
        if queue is not None:  # a call of an event handler or an action: it joins
            mark = len(queue)
            try:
                return run_write(self.storage, work)
            except BaseException:
                del queue[mark:]  # undone with the call's savepoint
                raise
        committed: list[Event] = []
        operation.committed = committed

        def attempt() -> _T:
            committed.clear()  # each attempt queues its own
            return work()

        result = run_write(self.storage, attempt)
        if committed:
            if self.storage.db.in_transaction():  # the caller's: at its commit
                self.storage.db.after_commit(lambda: self._committed(committed))
            else:
                self._committed(committed)
        return result

    def _committed(self, events: list[Event]) -> None:
        """Run the ``after_commit`` handlers of ``events``: each in its own
        transaction; a failure is logged and stops nothing."""
        for event in events:
            for handler in self.model.lifecycle.of(event.collection, "after_commit"):
                engine = self.bound(event.engine._event_depth, None)
                # Past MAX_EVENT_DEPTH, the handler's writes are refused (EventDepthExceeded).
                try:
                    handler(dataclasses.replace(event, engine=engine))
                except Exception:
                    name = getattr(handler, "__name__", repr(handler))
                    events_logger.error(
                        "after_commit handler %s of %s %s (%s) failed", name,
                        event.collection, event.id, event.name, exc_info=True,
                    )  # fmt: skip


def _options(options: ReadOptions | None, given: dict[str, Any], **defaults: Any) -> ReadOptions:
    """``options`` with ``defaults`` (``get`` never counts), or the options the
    keyword arguments ``given`` make.

    :raises TypeError: if ``options`` comes with a keyword that differs from its
        default (one equal to its default cannot be told from no keyword).
    """
    if options is None:
        return ReadOptions(**{**given, **defaults})
    changed = [
        name
        for name, value in given.items()
        if value != ReadOptions.__dataclass_fields__[name].default
    ]
    if changed:
        raise TypeError(f"give either options= or {', '.join(changed)}, not both")
    return options.replace(**defaults)

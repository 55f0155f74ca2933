"""The engine: reads and writes collections, raising typed exceptions.

Every read of a collection is selected with its caller's scope and expanded by
:meth:`Engine._render`; every write goes through :meth:`Engine._write`. Each public
write runs in one storage transaction, so a call that raises changes nothing; a
read runs in one too, unless it is one statement (see :meth:`Engine._read`).

``auth`` is None for trusted code (no checks at all), else the caller's verified
claims: the engine then enforces the permissions and field rights the model
declares (see :mod:`backo_restful.auth`), the same way on every path.

A module-level default engine, installed by :func:`setup`, serves the functions
:func:`get`, :func:`post`, :func:`put`, :func:`patch` and :func:`delete`.
"""

from __future__ import annotations

import contextvars
import functools
import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import marshmallow
from marshmallow import ValidationError

from . import paging
from .access import Access, audit_values, managed_fields, permission_of, right, unguarded
from .exceptions import (
    BadRequest,
    Conflict,
    ConnectionLost,
    Forbidden,
    NoEngine,
    NotFound,
    ReferenceViolation,
    StorageConflict,
    ValidationFailed,
)
from .model import (
    Collection,
    DataModel,
    DeleteStrategy,
    Loaded,
    NewObject,
    RelationInfo,
    check_id,
    storable,
)
from .paging import Page
from .query import (
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
from .storage import PeeweeStorage, Scopes, to_storable

Auth = Mapping[str, Any] | None
_T = TypeVar("_T")

_ID = Path((), "id", "id")
#: The rights of the caller of the engine call running in this context (None:
#: trusted code).
_ACCESS: contextvars.ContextVar[Access | None] = contextvars.ContextVar(
    "backo_restful_access", default=None
)
#: Marks a relation in an output layout.
_RELATION = object()

#: How many times a write runs when the database keeps aborting it for conflicts.
WRITE_ATTEMPTS = 5
#: The longest pause, in seconds, before a write's second attempt (doubled for each next).
RETRY_PAUSE = 0.01
#: How many matches ``count="estimate"`` counts before it stops (``BACKO_COUNT_LIMIT``).
DEFAULT_COUNT_LIMIT = 10_000

#: The largest id PUT may create: the id counters keep room above it, and every id
#: stays exact in JavaScript clients.
MAX_CREATED_ID = 2**53 - 1


_F = TypeVar("_F", bound=Callable[..., Any])


def _with_auth(method: _F) -> _F:
    """Run an engine call with the rights of its ``auth`` (see :class:`Access`)."""

    @functools.wraps(method)
    def call(self: Engine, *args: Any, auth: Auth = None, **kwargs: Any) -> Any:
        if auth is not None and not isinstance(auth, Mapping):
            raise TypeError(
                f"auth is None (trusted code) or a Mapping of verified claims, "
                f"not {type(auth).__name__}"
            )
        token = _ACCESS.set(None if auth is None else Access(self.model, auth))
        try:
            return method(self, *args, auth=auth, **kwargs)
        finally:
            _ACCESS.reset(token)

    return call  # type: ignore[return-value]


class Engine:
    """Serve a :class:`DataModel` from a storage.

    :param model: the declared data model (checked here).
    :param storage: where the collections live, e.g. a :class:`PeeweeStorage`.
    :raises DeclarationError: if the model is declared wrongly.

    Every call takes ``auth``: None for trusted code (no checks), else the
    caller's verified claims (a Mapping; empty for an anonymous caller), whose
    permissions and field rights the call enforces. A refused caller gets
    :class:`~backo_restful.exceptions.Unauthorized` when anonymous, else
    :class:`~backo_restful.exceptions.Forbidden`; an object outside the caller's
    scope is :class:`NotFound`, for every method.
    """

    def __init__(self, model: DataModel, storage: PeeweeStorage) -> None:
        model.resolve()
        storage.attach(model)
        self.model = model
        self.storage = storage
        model.freeze()
        self._delete_order = _delete_order(model)
        self._layouts: dict[str, list[tuple[str, str, Any]]] = {}

    def __repr__(self) -> str:
        return f"<Engine {self.model.name!r} on {self.storage!r}>"

    # -- public calls -----------------------------------------------------------

    @_with_auth
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
        after: str | None = None,
        before: str | None = None,
        max_objects: int | None = None,
        auth: Auth = None,
    ) -> tuple[Any, int]:
        """Read one object (``id_``) or a list, expanded to ``depth``.

        :param depth: 0 gives ids only; n gives fields, related objects at n-1.
        :param filter_: field paths to values or operators (``{"year": {"$gte":
            2000}}``), with ``$and``, ``$or`` and ``$not`` groups; all must match.
        :param sort: field paths, ``-path`` for descending; the id breaks ties.
        :param fields: the fields to show (``["type", "jar.name"]``); the id always.
        :param after: a cursor from :meth:`page`: the objects after it.
        :param before: a cursor from :meth:`page`: the objects before it.
        :param max_objects: refuse (400) a response holding more objects than this.
        :raises NotFound: if ``id_`` matches no object.
        :raises BadRequest: for a bad parameter.
        """
        collection = self._collection(name)
        if id_ is None:
            page = self.page(
                name, depth=depth, filter_=filter_, sort=sort, limit=limit, offset=offset,
                fields=fields, after=after, before=before, count="none",
                max_objects=max_objects, auth=auth,
            )  # fmt: skip
            return page.items, 200
        access = _ACCESS.get()
        if access is not None:
            access.require(collection, "read")
        depth = check_count("depth", depth)
        hidden = access.hidden if access is not None else None
        where = self._filter(collection, filter_, hidden)
        selection = parse_fields(collection, fields, hidden=hidden)
        id_ = self._id(collection, id_)
        scope, scopes = _scopes(collection)
        if max_objects is not None:
            max_objects = check_count("max_objects", max_objects)

        def work() -> tuple[Any, int]:
            budget = _Budget(max_objects)
            if where is None and scope is None:
                row = self.storage.fetch_one(collection, id_)
                rows = [] if row is None else [row]
            else:
                by_id: Node = Condition(_ID, "eq", id_)
                by_id = by_id if where is None else And((by_id, where))
                rows = self.storage.select(collection, by_id, scope=scope, scopes=scopes)
            if not rows:
                raise NotFound(collection.name, id_)
            return self._render(collection, rows, depth, budget, selection)[0], 200

        return self._read(work, snapshot=self._reads_more(collection, depth, selection))

    @_with_auth
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
        after: str | None = None,
        before: str | None = None,
        count: str = "exact",
        count_limit: int = DEFAULT_COUNT_LIMIT,
        max_objects: int | None = None,
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
        collection = self._collection(name)
        access = _ACCESS.get()
        if access is not None:
            access.require(collection, "read")
        depth = check_count("depth", depth)
        hidden = access.hidden if access is not None else None
        where = self._filter(collection, filter_, hidden)
        keys = parse_sort(collection, sort, hidden=hidden)
        selection = parse_fields(collection, fields, hidden=hidden)
        scope, scopes = _scopes(collection)
        if limit is not None:
            limit = check_count("limit", limit)
        if offset is not None:
            offset = check_count("offset", offset)
        count_limit = check_count("count_limit", count_limit)
        if count not in COUNT_MODES:
            raise BadRequest(
                f"count must be one of {', '.join(COUNT_MODES)}.",
                {"parameter": "count"},
                code="INVALID_PARAMETER",
            )
        if sum(x is not None for x in (after, before, offset)) > 1:
            raise BadRequest(
                "Give at most one of after, before and offset.",
                {"parameter": "after" if after is not None else "before"},
                code="INVALID_PARAMETER",
            )
        paths = [key.path for key in keys]
        if not any(path.field == "id" and not path.steps for path in paths):
            paths.append(_ID)
        cursor = after if after is not None else before
        position = None
        if cursor is not None:
            parameter = "after" if after is not None else "before"
            position = paging.decode(collection, keys, paths, cursor, parameter)
            if after is not None and position is None:
                raise BadRequest(
                    "after= takes the cursor of a row.", {"parameter": "after"},
                    code="INVALID_CURSOR",
                )  # fmt: skip
        reverse = before is not None
        if max_objects is not None:
            max_objects = check_count("max_objects", max_objects)

        def work() -> tuple[list[Any], bool, list[Any], int | None, str | None]:
            budget = _Budget(max_objects)  # each attempt counts from zero
            end = None if limit is None else limit + 1  # one row more: is there a next page?
            if count == "none":
                rows = self.storage.select(
                    collection, where, keys, end, offset,
                    after=position, reverse=reverse, scope=scope, scopes=scopes,
                )  # fmt: skip
                counted = None
            else:
                rows, counted = self.storage.select_counted(
                    collection, where, keys, end, offset,
                    after=position, reverse=reverse, scope=scope, scopes=scopes,
                    count_limit=None if count == "exact" else count_limit,
                )  # fmt: skip
            more = limit is not None and len(rows) > limit
            rows = rows[:limit] if limit is not None else rows
            if reverse:
                rows.reverse()
            total: int | None
            method: str | None
            if count != "none" and position is None and not more and (rows or not offset):
                # The page holds every match from the first (or the last) one on.
                total, method = (offset or 0) + len(rows), "exact"
            else:
                total, method = self._total(
                    collection, where, count, count_limit, scope, scopes, counted
                )
            items = self._render(collection, rows, depth, budget, selection)
            return rows, more, items, total, method

        # The page and its count are one statement, unless the sort joins.
        joins = count != "none" and any(key.path.steps for key in keys)
        snapshot = joins or self._reads_more(collection, depth, selection)
        rows, more, items, total, method = self._read(work, snapshot=snapshot)
        if before is not None:
            has_previous, has_next = more, before != paging.END
        else:
            has_previous = after is not None or bool(offset)
            has_next = more
        return Page(
            items=items,
            total=total,
            total_method=method,
            next=self._cursor(collection, keys, rows[-1], scopes) if has_next and rows else None,
            previous=(
                self._cursor(collection, keys, rows[0], scopes) if has_previous and rows else None
            ),
            limit=limit,
            offset=offset,
        )

    def _total(
        self,
        collection: Collection,
        where: Node | None,
        count: str,
        limit: int,
        scope: Node | None,
        scopes: Scopes | None,
        counted: int | None = None,
    ) -> tuple[int | None, str | None]:
        """The ``(total, method)`` of a page (see :meth:`page`), from ``counted``
        when the page's statement counted already."""
        if count == "none":
            return None, None
        if counted is None:
            bound = None if count == "exact" else limit
            counted = self.storage.count(collection, where, limit=bound, scope=scope, scopes=scopes)
        if count == "exact" or counted <= limit:
            return counted, "exact"
        estimate = self.storage.estimate(collection, where, scope, scopes)
        if estimate is not None and estimate > limit:
            return estimate, "estimate"
        return limit, "at-least"

    def _cursor(
        self,
        collection: Collection,
        keys: list[SortKey],
        row: dict[str, Any],
        scopes: Scopes | None,
    ) -> str:
        values = [row[name] for name in self.storage.sort_row_keys(keys, scopes)]
        return paging.encode(collection, keys, values)

    @staticmethod
    def _filter(collection: Collection, filter_: Any, hidden: Hidden | None) -> Node | None:
        if isinstance(filter_, Condition | And | Or | Not):
            if hidden is not None:
                for path in paths_of(filter_):  # refused as parsing would refuse them
                    resolve_path(collection, path.text, hidden=hidden)
            return filter_
        return parse_filter(collection, filter_, hidden=hidden)

    @_with_auth
    def authorize(self, name: str, *actions: str, auth: Auth = None) -> None:
        """Refuse a caller whom the permissions of collection ``name`` let do none
        of ``actions`` (``"read"``, ``"create"``, ``"update"``, ``"delete"``) to
        any object, before anything else of a request is looked at.

        :raises NotFound: if there is no such collection.
        :raises Unauthorized: (anonymous caller) or :class:`Forbidden`.
        """
        collection = self._collection(name)
        access = _ACCESS.get()
        if access is not None:
            _refuse_early(access, collection, *actions)

    @_with_auth
    def post(
        self, name: str, data: Any, *, max_batch: int | None = None, auth: Auth = None
    ) -> tuple[Any, int]:
        """Create an object from a dict, or several from a list (all or nothing).

        :param max_batch: refuse (400) a write creating more objects than this, the
            objects nested in relations included.
        :raises ValidationFailed: naming every invalid field.
        :raises NotFound: if a relation names an object that does not exist.
        """
        collection = self._collection(name)
        access = _ACCESS.get()
        if access is not None:
            _refuse_early(access, collection, "create")
        many = isinstance(data, list)
        _check_batch(collection, data if many else [data], max_batch)
        loaded = self._load_many(collection, data) if many else [self._load(collection, data)]

        def work(trusted: bool) -> list[Any]:
            if not many:
                if not trusted:
                    self._lock_plan(collection, None, loaded)
                new_id, row = self._create_row(
                    collection, loaded[0], returning=True, check_links=not trusted
                )
                if row is not None:
                    return self._render(collection, [row], 1, _Budget(None))
                return self._reread(collection, [new_id])
            self._lock_plan(collection, None, loaded)
            ids = [self._create(collection, item) for item in loaded]
            return self._reread(collection, ids)

        trusted = not many and self._foreign_keys_check(collection, loaded[0])
        try:
            rendered = self._write(lambda: work(trusted))
        except ReferenceViolation:
            if not trusted:
                raise
            # Again, checking each link, to name the object that is missing.
            rendered = self._write(lambda: work(False))
        return (rendered if many else rendered[0]), 201

    def _foreign_keys_check(self, collection: Collection, data: dict[str, Any]) -> bool:
        """Whether creating ``data`` may leave the check of its links to the
        database's foreign keys, without reading the objects it links to first.

        So it may when ``data`` only sets links stored in its own row, to objects
        that any number of others may link to, which the caller may all see, and
        the database enforces those keys. Where writes lock rows, one link at
        most: the foreign key then locks one row, which cannot deadlock.
        """
        access = _ACCESS.get()
        named = 0
        for relation in collection.relations.values():
            value = data.get(relation.name)
            if value is None:
                continue
            if (
                relation.storage != "fk_here"
                or not relation.reverse.multi
                or isinstance(value, NewObject)
                or not self.storage.enforces(relation)
                or (access is not None and access.scope(relation.target) is not None)
            ):
                return False
            named += 1
        return named <= 1 or not self.storage.row_locks

    @_with_auth
    def put(
        self, name: str, id_: Any, data: Any, *, max_batch: int | None = None, auth: Auth = None
    ) -> tuple[Any, int]:
        """Replace object ``id_`` whole (unset fields go back to defaults or null).

        Creates it at that id (status 201) when the id is free.

        :param max_batch: refuse (400) a write creating more objects than this.
        """
        collection = self._collection(name)
        access = _ACCESS.get()
        if access is not None:
            _refuse_early(access, collection, "update", "create")
        id_ = self._id(collection, id_)
        _check_batch(collection, [data], max_batch)
        loaded = self._load(collection, data)

        def work() -> tuple[Any, int]:
            self._lock_plan(collection, id_, [loaded], replace=True)
            scope = access.scope(collection) if access is not None else None
            if scope is not None and not self._visible_ids(collection, {id_}):
                # A caller who sees only part of the collection cannot tell a free
                # id from a hidden one: for them PUT neither creates nor reveals.
                raise _missing(collection, {id_})
            if self.storage.lock(collection, [id_]):
                data = self._allowed_update(collection, id_, loaded)
                self._update(collection, id_, data, replace=True)
                return self._reread(collection, [id_])[0], 200
            if id_ > MAX_CREATED_ID:
                raise BadRequest(
                    f"PUT creates objects with ids up to {MAX_CREATED_ID} only; "
                    f"there is no {collection.name} {id_}.",
                    {"collection": collection.name, "id": id_, "maximum": MAX_CREATED_ID},
                    code="INVALID_ID",
                )
            self._create(collection, loaded, id_=id_)
            return self._reread(collection, [id_])[0], 201

        return self._write(work)

    @_with_auth
    def patch(
        self, name: str, id_: Any, data: Any, *, max_batch: int | None = None, auth: Auth = None
    ) -> tuple[Any, int]:
        """Change the given fields of object ``id_``.

        :param max_batch: refuse (400) a write creating more objects than this.
        :raises NotFound: if there is no such object.
        """
        collection = self._collection(name)
        access = _ACCESS.get()
        if access is not None:
            _refuse_early(access, collection, "update")
        id_ = self._id(collection, id_)
        _check_batch(collection, [data], max_batch, existing=True)
        loaded = self._load(collection, data, partial=True)

        def work() -> tuple[Any, int]:
            access = _ACCESS.get()
            if (
                (access is None or unguarded(collection))
                and loaded
                and all(
                    name in collection.scalars
                    and not collection.scalars[name].metadata.get("unique")
                    for name in loaded
                )
            ):
                # Plain values only: one UPDATE that gives the row back, or finds none.
                values = _scalar_values(collection, loaded)
                for name, value in audit_values(collection, None, create=False).items():
                    values.setdefault(name, value)  # trusted code only: guarded otherwise
                row = self.storage.update_returning(collection, id_, values)
                if row is None:
                    raise _missing(collection, {id_})
                return self._render(collection, [row], 1, _Budget(None))[0], 200
            self._lock_plan(collection, id_, [loaded])
            data = self._allowed_update(collection, id_, loaded)
            self._update(collection, id_, data, replace=False)
            return self._reread(collection, [id_])[0], 200

        return self._write(work)

    @_with_auth
    def delete(self, name: str, id_: Any, *, auth: Auth = None) -> tuple[None, int]:
        """Delete object ``id_``, applying the delete strategies of its relations.

        :raises NotFound: if there is no such object.
        :raises Conflict: if a strategy refuses the delete.
        """
        collection = self._collection(name)
        access = _ACCESS.get()
        if access is not None:
            _refuse_early(access, collection, "delete")  # before telling whether it exists
        id_ = self._id(collection, id_)

        def work() -> tuple[None, int]:
            self._lock_plan(collection, id_, [])
            self._require(collection, [id_])
            if access is not None and permission_of(collection) is not None:
                access.require(collection, "delete", self.storage.fetch_one(collection, id_))
            self._delete(collection, id_)
            return None, 204

        return self._write(work)

    # -- helpers for the public calls -------------------------------------------

    def _collection(self, name: str) -> Collection:
        collection = self.model.collections.get(name) if isinstance(name, str) else None
        if collection is None:
            raise NotFound(
                message=f"There is no collection named {name!r}.",
                details={"collection": name if isinstance(name, str) else repr(name)},
                code="UNKNOWN_COLLECTION",
            )
        return collection

    @staticmethod
    def _id(collection: Collection, id_: Any) -> int:
        if isinstance(id_, str) and id_.isascii() and id_.isdigit() and len(id_) < 20:
            id_ = int(id_)
        try:
            return check_id(id_)
        except ValueError as exc:
            raise BadRequest(
                f"Invalid id {id_!r} for {collection.name}: {exc}.",
                {
                    "collection": collection.name,
                    "id": id_ if isinstance(id_, (int, str)) else repr(id_),
                },
                code="INVALID_ID",
            ) from None

    @staticmethod
    def _load(collection: Collection, data: Any, partial: bool = False) -> dict[str, Any]:
        if not isinstance(data, Mapping):
            raise BadRequest(
                f"The body must be a JSON object of {collection.name} fields.",
                code="INVALID_BODY",
            )
        try:
            return collection.load(data, partial=partial)
        except ValidationError as exc:
            raise ValidationFailed(exc.normalized_messages()) from None

    def _load_many(self, collection: Collection, data: list[Any]) -> list[dict[str, Any]]:
        loaded: list[dict[str, Any]] = []
        errors: dict[str, Any] = {}
        for index, item in enumerate(data):
            try:
                loaded.append(self._load(collection, item))
            except ValidationFailed as exc:
                errors[str(index)] = exc.messages
            except BadRequest:
                errors[str(index)] = {"_schema": ["Expected an object."]}
        if errors:
            raise ValidationFailed(errors, f"Invalid objects at index {', '.join(errors)}.")
        return loaded

    def _read(self, work: Callable[[], _T], *, snapshot: bool) -> _T:
        """Run ``work`` in a read transaction (``snapshot``: False for a read of
        one statement, which needs none); again, once, on a new connection if
        the database lost this one."""
        try:
            with self.storage.transaction(write=False, snapshot=snapshot):
                return work()
        except ConnectionLost:
            if self.storage.db.in_transaction():
                raise  # the caller's transaction is lost with it
        with self.storage.transaction(write=False, snapshot=snapshot):
            return work()

    def _reads_more(self, collection: Collection, depth: int, selection: Selection | None) -> bool:
        """Whether showing objects of ``collection`` at ``depth`` reads more than
        their rows (related objects, links stored elsewhere, scopes)."""
        if depth == 0:
            return False
        access = _ACCESS.get()
        for relation in collection.relations.values():
            if selection is not None and relation.name not in selection:
                continue
            if depth > 1 or relation.storage != "fk_here":
                return True
            if access is not None and access.scope(relation.target) is not None:
                return True
        return False

    def _write(self, work: Callable[[], _T]) -> _T:
        """Run ``work`` in a write transaction, again if the database aborted it.

        A transaction aborted for a conflict with another (a deadlock, a row it
        would not wait for, an id another write created first) runs again from the
        start, on the data as the other left it, after a random pause that doubles
        with each attempt.
        """
        busy: dict[str, set[int]] = {}
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                with self.storage.transaction(write=True):
                    # Rows an attempt would not wait for: the next waits for them, in order.
                    self.storage.expect(busy)
                    return work()
            except StorageConflict as conflict:
                if attempt == WRITE_ATTEMPTS:
                    raise
                for name, ids in conflict.rows.items():
                    busy.setdefault(name, set()).update(ids)
                time.sleep(random.uniform(0, RETRY_PAUSE * 2 ** (attempt - 1)))
            except RecursionError:
                raise BadRequest(
                    "Objects are nested too deeply.", code="NESTING_TOO_DEEP"
                ) from None
        raise AssertionError("unreachable")

    def _lock_plan(
        self,
        collection: Collection,
        id_: int | None,
        items: list[dict[str, Any]],
        *,
        replace: bool = False,
    ) -> None:
        """Lock, before anything else and in one global order, the objects a write
        will change that its request tells: object ``id_``, every object the
        ``items`` (with their nested objects) link to, and the objects linked to
        ``id_`` now through the relations it sets (all of them on ``replace``).

        Two writes crossing on the same objects then queue instead of deadlocking;
        rows found later are locked without waiting (see
        :meth:`PeeweeStorage.lock`). A link is part of both objects, so changing it
        locks both.
        """
        if not self.storage.row_locks:
            return  # one writer at a time
        wanted: dict[str, set[int]] = {}
        if id_ is not None:
            wanted[collection.name] = {id_}
        for data in items:
            _named(collection, data, wanted)
        if id_ is not None:
            for relation in collection.relations.values():
                if relation.storage == "fk_here":
                    continue  # its target is named in the request, or is nulled
                if replace or any(relation.name in data for data in items):
                    current = self.storage.links(relation, [id_])
                    wanted.setdefault(relation.target.name, set()).update(r for _, r, _ in current)
        self.storage.lock_in_order(
            {self.model.collections[name]: ids for name, ids in wanted.items() if ids}
        )

    def _require(self, collection: Collection, ids: list[int]) -> None:
        """Lock objects ``ids``, which must exist (and be visible to the caller).

        :raises NotFound: naming the missing ones.
        """
        if not ids:
            return
        access = _ACCESS.get()
        scope = access.scope(collection) if access is not None else None
        found = self.storage.lock(collection, ids)
        if scope is not None and found:
            found = self.storage.existing_ids(collection, found, scope=scope)
        missing = set(ids) - found
        if missing:
            raise _missing(collection, missing)

    # -- reading -----------------------------------------------------------------

    def _reread(self, collection: Collection, ids: list[int]) -> list[Any]:
        rows = {row["id"]: row for row in self.storage.fetch(collection, ids)}
        shown = self._render(collection, list(rows.values()), 1, _Budget(None))
        rendered = dict(zip(rows, shown, strict=True))
        return [rendered[id_] for id_ in ids]

    def _render(
        self,
        collection: Collection,
        rows: list[dict[str, Any]],
        depth: int,
        budget: _Budget,
        selection: Selection | None = None,
    ) -> list[Any]:
        """Expand ``rows`` to ``depth``: one statement per relation per level.

        ``selection`` (from ``fields=``) names the fields to show, and inside the
        relations it names, theirs; relations it leaves out are not read at all.

        :raises BadRequest: (``LIMIT_EXCEEDED``) if the answer would show more
            objects than ``budget`` allows, counting every object and every id of
            a relation as many times as it is shown; found before the answer is
            built, reading at most one row more than the budget.
        """
        objects, sizes = self._expand(collection, rows, depth, budget, selection)
        budget.check(sum(sizes))
        return objects

    def _expand(
        self,
        collection: Collection,
        rows: list[dict[str, Any]],
        depth: int,
        budget: _Budget,
        selection: Selection | None,
    ) -> tuple[list[Any], list[int]]:
        """:meth:`_render` without the final check: the objects, and how many
        objects and ids each one shows (itself included)."""
        budget.take(len(rows))
        if depth == 0 or not rows:
            return [row["id"] for row in rows], [1] * len(rows)
        ids = [row["id"] for row in rows]
        plan = self._layout(collection)
        if selection is not None:
            plan = [step for step in plan if step[1] in selection]
        access = _ACCESS.get()
        checks: dict[str, Any] = {}
        if access is not None:
            # Fields the caller may never read are left out; the others that
            # depend on the object are checked on each object.
            rules = {name: right(collection, name, "can_read") for _, name, _ in plan}
            plan = [step for step in plan if rules[step[1]] is not False]
            checks = {name: rule for name, rule in rules.items() if callable(rule)}
        shown = {name for _, name, _ in plan}
        related: dict[str, tuple[dict[int, Any], dict[int, int]]] = {}
        for relation in collection.relations.values():
            if relation.name in shown:
                inner = None if selection is None else selection[relation.name]
                # Only the objects whose relation the caller may read are expanded
                # (and counted against the budget).
                rule = checks.get(relation.name)
                owners = rows if rule is None else [row for row in rows if rule(access.auth, row)]  # type: ignore[union-attr]
                owner_ids = ids if rule is None else [row["id"] for row in owners]
                related[relation.name] = self._related(
                    relation, owners, owner_ids, depth, budget, inner
                )
        if not checks:
            return self._assemble(rows, ids, plan, related)
        result = []
        sizes = []
        for row in rows:
            id_ = row["id"]
            obj = {"id": id_}
            size = 1
            for key, name, serialize in plan:
                if name in checks and not checks[name](access.auth, row):  # type: ignore[union-attr]
                    continue
                if serialize is _RELATION:
                    values, counts = related[name]
                    obj[key] = values[id_]
                    size += counts.get(id_, 0)
                elif serialize is None:
                    obj[key] = row[name]
                else:
                    obj[key] = serialize(row[name])
            result.append(obj)
            sizes.append(size)
        return result, sizes

    @staticmethod
    def _assemble(
        rows: list[dict[str, Any]],
        ids: list[int],
        plan: list[tuple[str, str, Any]],
        related: dict[str, tuple[dict[int, Any], dict[int, int]]],
    ) -> tuple[list[Any], list[int]]:
        """:meth:`_expand`'s objects when every object shows the same fields:
        built column by column."""
        keys = ["id"]
        columns: list[list[Any]] = [ids]
        sizes = [1] * len(rows)
        for key, name, serialize in plan:
            keys.append(key)
            if serialize is _RELATION:
                values, counts = related[name]
                columns.append([values[id_] for id_ in ids])
                sizes = [size + counts.get(id_, 0) for size, id_ in zip(sizes, ids, strict=True)]
            elif serialize is None:
                columns.append([row[name] for row in rows])
            else:
                columns.append([serialize(row[name]) for row in rows])
        return [
            dict(zip(keys, values, strict=True)) for values in zip(*columns, strict=True)
        ], sizes

    def _layout(self, collection: Collection) -> list[tuple[str, str, Any]]:
        """``(output key, field name, serializer)`` of each shown field, in order.

        The serializer is None where the stored value is already the JSON value,
        and :data:`_RELATION` for relations.
        """
        layout = self._layouts.get(collection.name)
        if layout is None:
            serializers = dict(self.storage.serializers(collection))
            layout = []
            for name, field in collection.schema.fields.items():
                if field.load_only:
                    continue
                if name in collection.relations:
                    serialize: Any = _RELATION
                else:
                    serialize = serializers[name]
                layout.append((collection.external_name(name), name, serialize))
            self._layouts[collection.name] = layout
        return layout

    def _related(
        self,
        relation: RelationInfo,
        rows: list[dict[str, Any]],
        ids: list[int],
        depth: int,
        budget: _Budget,
        selection: Selection | None,
    ) -> tuple[dict[int, Any], dict[int, int]]:
        """Owner id -> the relation's value (ids, or objects at ``depth - 1``), and
        owner id -> how many objects and ids that value shows.

        A related object outside the caller's scope is no related object.
        """
        target = relation.target
        access = _ACCESS.get()
        scope = access.scope(target) if access is not None else None
        if relation.storage == "fk_here":
            links = {row["id"]: row[relation.name] for row in rows}
            wanted = {v for v in links.values() if v is not None}
            if depth == 1:
                if scope is not None and wanted:
                    visible = self.storage.existing_ids(target, wanted, scope=scope)
                    links = {owner: (v if v in visible else None) for owner, v in links.items()}
                counts = {owner: 1 for owner, value in links.items() if value is not None}
                budget.take(len(counts))
                return links, counts
            targets = self.storage.fetch(target, wanted, limit=budget.room(), scope=scope)
            objects, sizes = self._expand(target, targets, depth - 1, budget, selection)
            expanded, weight = _by_id(targets, objects), _by_id(targets, sizes)
            values = {owner: expanded.get(value) for owner, value in links.items()}
            return values, {owner: weight.get(value, 0) for owner, value in links.items()}
        # Read at most one link more than the budget: enough to know it is exceeded.
        triples = self.storage.links(
            relation, ids, with_rows=depth > 1, limit=budget.room(), scope=scope
        )
        if depth == 1:
            budget.take(len(triples))
            shown: dict[int, Any] = {rid: rid for _, rid, _ in triples}
            size = dict.fromkeys(shown, 1)
        else:
            unique = [row for row in {rid: row for _, rid, row in triples}.values() if row]
            objects, sizes = self._expand(target, unique, depth - 1, budget, selection)
            shown, size = _by_id(unique, objects), _by_id(unique, sizes)
        related: dict[int, Any]
        related = {id_: [] for id_ in ids} if relation.multi else dict.fromkeys(ids)
        counts = dict.fromkeys(ids, 0)
        for owner, rid, _ in triples:
            if relation.multi:
                related[owner].append(shown[rid])
            else:
                related[owner] = shown[rid]
            counts[owner] += size[rid]
        return related, counts

    # -- writing -----------------------------------------------------------------

    def _create(
        self,
        collection: Collection,
        data: dict[str, Any],
        *,
        id_: int | None = None,
        link: tuple[str, Any] | None = None,
    ) -> int:
        """Insert one object with its relations; ``link`` sets a key from the enclosing object."""
        return self._create_row(collection, data, id_=id_, link=link)[0]

    def _create_row(
        self,
        collection: Collection,
        data: dict[str, Any],
        *,
        id_: int | None = None,
        link: tuple[str, Any] | None = None,
        returning: bool = False,
        check_links: bool = True,
    ) -> tuple[int, dict[str, Any] | None]:
        """:meth:`_create`, giving back the row as written when ``returning`` asks
        and nothing is written after the INSERT (no relation stored elsewhere is
        set): the row the INSERT returns is then the one a read would find.

        ``check_links=False`` leaves the check that linked objects exist to the
        database's foreign keys (see :meth:`_foreign_keys_check`)."""
        access = _ACCESS.get()
        server: dict[str, Any] = {}
        if access is not None and not unguarded(collection):
            _refuse_early(access, collection, "create")  # nested objects too
            server = self._owner_values(collection, access)
            if link is not None:
                # The enclosing object sets the link: checked as if the data gave it.
                data = _given(data, link[0], link[1], collection.relations[link[0]].multi)
            access.require(collection, "create", _as_created(data, server))
            data = self._guard(collection, data, None, server, access)
        values = _scalar_values(collection, data)
        later = []
        fresh: set[int] = set()
        for relation in collection.relations.values():
            if link is not None and relation.name == link[0]:
                if relation.storage == "fk_here":
                    values[relation.name] = link[1]
                # Otherwise the enclosing object stores the link.
            elif relation.name not in data:
                continue
            elif relation.storage == "fk_here":
                value = data[relation.name]
                if check_links or value is None:
                    values[relation.name] = self._target_for(relation, value, None)
                else:
                    values[relation.name] = value
                if isinstance(value, NewObject):
                    fresh.add(values[relation.name])
            else:
                later.append((relation, data[relation.name]))
        # Keys the caller sets (not the server's, not the enclosing object's).
        own_keys = {k: v for k, v in values.items() if link is None or k != link[0]}
        self._relink(collection, None, own_keys, fresh)
        values.update(server)
        user_id = access.user.id if access is not None else None
        for name, value in audit_values(collection, user_id, create=True).items():
            values.setdefault(name, value)
        self._check_unique(collection, values, id_)
        if returning and not later and id_ is None:
            row = self.storage.insert_returning(collection, values)
            return row["id"], row
        new_id = self.storage.insert(collection, values, id_)
        for relation, value in later:
            self._assign(relation, new_id, value, creating=True)
        return new_id, None

    def _update(
        self, collection: Collection, id_: int, data: dict[str, Any], *, replace: bool
    ) -> None:
        """Write ``data`` to object ``id_``; ``replace`` resets the fields it does
        not give, except those the server sets or the caller may not change."""
        access = _ACCESS.get()
        keep = managed_fields(collection)
        if replace and access is not None and not unguarded(collection):
            stored = self.storage.fetch_one(collection, id_)
            keep |= {
                name
                for name in collection.schema.fields
                if not (
                    access.can_read(collection, name, stored)
                    and access.can_modify(collection, name, stored)
                )
            }
        values = {}
        for name, field in collection.scalars.items():
            if name in data:
                values[name] = to_storable(field, data[name])
            elif replace and name not in keep:
                values[name] = None
        user_id = access.user.id if access is not None else None
        for name, value in audit_values(collection, user_id, create=False).items():
            values.setdefault(name, value)
        later = []
        fresh: set[int] = set()
        for relation in collection.relations.values():
            if relation.name in data:
                value = data[relation.name]
            elif replace and relation.name not in keep:
                value = [] if relation.multi else None
                if relation.target is collection and _holds(data.get(relation.reverse.name), id_):
                    # The request links the object to itself from the other side:
                    # this side holds that link too.
                    value = [id_] if relation.multi else id_
            else:
                continue
            if relation.storage == "fk_here":
                values[relation.name] = self._target_for(relation, value, id_)
                if isinstance(value, NewObject):
                    fresh.add(values[relation.name])
            else:
                later.append((relation, value))
        self._relink(collection, id_, values, fresh)
        self._check_unique(collection, values, id_)
        self.storage.update(collection, id_, values)
        for relation, value in later:
            self._assign(relation, id_, value, creating=False)

    def _relink(
        self,
        collection: Collection,
        id_: int | None,
        values: dict[str, Any],
        fresh: set[int],
    ) -> None:
        """Check the keys a write sets: a link is part of both objects, so the
        objects a key pointed at and will point at change too (except ``fresh``
        ones, created by this write and checked as they were).

        A key that points at an object the caller cannot see is left as it is
        where the write would null it (to the caller it was null already), and
        cannot be pointed elsewhere.
        """
        changed = [
            relation
            for relation in collection.relations.values()
            if relation.storage == "fk_here" and relation.name in values
        ]
        if _ACCESS.get() is None or not changed:
            return
        stored = self.storage.fetch_one(collection, id_) or {} if id_ is not None else {}
        for relation in changed:
            old, new = stored.get(relation.name), values[relation.name]
            if old == new:
                continue
            if old is not None and not self._visible_ids(relation.target, {old}):
                if new is None:
                    del values[relation.name]
                    continue
                key = collection.external_name(relation.name)
                raise Forbidden(
                    f"{key} of this {collection.name} links to an object you may not change.",
                    {"collection": collection.name, "field": key},
                )
            touched = {target for target in (old, new) if target is not None} - fresh
            self._may_change(relation.target, touched, "update", relation.reverse.name)
            self._touch(relation.target, touched)

    def _allowed_update(
        self, collection: Collection, id_: int, data: dict[str, Any]
    ) -> dict[str, Any]:
        """``data`` for object ``id_`` as the caller may write it.

        :raises NotFound: if the object does not exist or is outside the scope.
        :raises Forbidden: (or Unauthorized) if the caller may not update it, or
            changes a field they may not change.
        """
        access = _ACCESS.get()
        if access is not None:
            access.require(collection, "update")  # before telling whether it exists
        self._require(collection, [id_])
        if access is None or unguarded(collection):
            return data
        stored = self.storage.fetch_one(collection, id_)
        assert stored is not None  # locked by _require
        access.require(collection, "update", stored)
        return self._guard(collection, data, stored, {}, access)

    def _guard(
        self,
        collection: Collection,
        data: dict[str, Any],
        stored: dict[str, Any] | None,
        server: dict[str, Any],
        access: Access,
    ) -> dict[str, Any]:
        """``data`` without the server-set fields and those the caller may not
        modify, each of which must hold its stored value (on create: the value the
        server sets), or the write is refused."""
        managed = managed_fields(collection)
        given = data.given if isinstance(data, Loaded) else frozenset(data)
        kept = dict(data)
        obj = stored if stored is not None else _as_created(data, server)
        for name, value in data.items():
            allowed = access.can_modify(collection, name, obj)
            if name not in given:
                # A default the client did not send: it stands on create; an update
                # keeps the stored value of a field the caller may not set.
                if stored is not None and (name in managed or not allowed):
                    del kept[name]
                continue
            if name not in managed and allowed:
                continue
            if stored is not None:
                # A value the caller cannot read is not compared: no answer may
                # tell whether a guess was right.
                readable = access.can_read(collection, name, stored)
                same = readable and (
                    self._holds(collection, stored, name, value)
                    # Their own id in their owner field, hidden target or not:
                    # it tells them nothing.
                    or (
                        name in managed
                        and str(value) == access.user.id
                        and self._same(collection, name, value, stored[name])
                    )
                )
            elif name in server:
                same = self._same(collection, name, value, server[name])
            else:
                # On create, the value the field gets anyway (its default) stands.
                if self._same(collection, name, value, _load_default(collection, name)):
                    continue
                same = False
            if not same:
                key = collection.external_name(name)
                raise Forbidden(
                    f"{key} of {collection.name} "
                    + ("is set by the server." if name in managed else "is not yours to change."),
                    {"collection": collection.name, "field": key},
                )
            del kept[name]
        return kept

    def _holds(self, collection: Collection, row: dict[str, Any], name: str, value: Any) -> bool:
        """Whether stored object ``row`` holds ``value`` in field ``name``."""
        relation = collection.relations.get(name)
        if relation is None:
            return self._same(collection, name, value, row[name])
        if relation.storage == "fk_here":
            stored = row[name]
            if stored is not None and not self._visible_ids(relation.target, {stored}):
                stored = None  # as the caller reads it
            return self._same(collection, name, value, stored)
        access = _ACCESS.get()
        scope = access.scope(relation.target) if access is not None else None
        links = self.storage.links(relation, [row["id"]], scope=scope)
        current = sorted(rid for _, rid, _ in links)
        items = value if relation.multi else ([] if value is None else [value])
        if any(isinstance(item, NewObject) for item in items):
            return False
        return sorted(items) == current

    @staticmethod
    def _same(collection: Collection, name: str, value: Any, stored: Any) -> bool:
        if isinstance(value, NewObject):
            return False
        field = collection.scalars.get(name)
        return (to_storable(field, value) if field is not None else value) == stored

    @staticmethod
    def _owner_values(collection: Collection, access: Access) -> dict[str, Any]:
        """The owner fields a create by this caller sets, typed for storage."""
        values = {}
        for name, user_id in access.owner_values(collection).items():
            field = collection.scalars.get(name)
            try:
                if field is not None:
                    value = to_storable(field, field.deserialize(user_id))
                else:  # a Ref to the users' collection
                    value = check_id(int(user_id or ""))
                # Only the id itself: "03" or " 3" would own user 3's objects.
                if str(value) != user_id or storable(value)[1] is not None:
                    raise ValueError(user_id)
                values[name] = value
            except (ValidationError, ValueError, OverflowError):
                raise Forbidden(
                    f"Your id cannot own a {collection.name}.",
                    {"collection": collection.name, "field": collection.external_name(name)},
                ) from None
        return values

    def _check_unique(
        self, collection: Collection, values: dict[str, Any], id_: int | None
    ) -> None:
        """Refuse a value a unique field already holds elsewhere, naming the field.

        The database's unique index still decides under concurrency (also a 409).
        """
        for name in collection.unique:
            value = values.get(name)
            if value is None:
                continue
            other = self.storage.taken(collection, name, value, id_)
            if other is not None:
                key = collection.external_name(name)
                details = {"collection": collection.name, "field": key, "id": other}
                holder = f"{collection.name} {other}"
                if not self._visible_ids(collection, {other}):  # not named to the caller
                    del details["id"]
                    holder = f"Another {collection.name}"
                raise Conflict(
                    f"{holder} already has this {key}: it must be unique.",
                    details,
                    code="UNIQUE_VIOLATION",
                )

    def _target_for(self, relation: RelationInfo, value: Any, owner: int | None) -> int | None:
        """The id an ``fk_here`` column takes for ``value`` (creating or stealing as needed)."""
        if value is None:
            return None
        if isinstance(value, NewObject):
            # Created linked to ``owner``: checked as if it gave the link itself.
            back = (relation.reverse.name, _PENDING if owner is None else owner)
            return self._create(relation.target, value.data, link=back)
        self._require(relation.target, [value])
        if not relation.reverse.multi:
            # One-to-one: the target leaves its previous partner.
            previous = [
                row for row, _ in self.storage.rows_linked_to(relation, [value]) if row != owner
            ]
            if previous:
                self._release(relation, previous, value)
        return value

    def _release(self, relation: RelationInfo, ids: list[int], target: int) -> None:
        """Null the ``fk_here`` column of rows ``ids`` where it still points at
        ``target``, unless the relation is required.

        Those objects change: the caller must be allowed to update each of them.
        """
        self._may_change(relation.collection, ids, "update", relation.name)
        self._touch(relation.collection, ids)
        if relation.required:
            raise Conflict(
                f"{relation.collection.name} {', '.join(map(str, sorted(ids)))} "
                f"would lose its required {relation.key}.",
                {
                    "collection": relation.collection.name,
                    "field": relation.key,
                    "ids": sorted(ids),
                },
                code="REQUIRED_RELATION",
            )
        # Read before they were locked: one may have moved on since, and keeps its link.
        self.storage.set_link(relation, ids, None, linked_to={target})

    def _assign(self, relation: RelationInfo, owner: int, value: Any, *, creating: bool) -> None:
        """Set a relation whose link is not a column of the owner's table."""
        items = value if relation.multi else ([] if value is None else [value])
        ids = [item for item in items if not isinstance(item, NewObject)]
        new = [item for item in items if isinstance(item, NewObject)]
        self._require(relation.target, ids)
        back = relation.reverse
        # Links to objects the caller cannot see are neither shown nor changed.
        access = _ACCESS.get()
        scope = access.scope(relation.target) if access is not None else None
        if relation.storage == "m2m":
            current = set()
            if not creating:
                links = self.storage.links(relation, [owner], scope=scope)
                current = {rid for _, rid, _ in links}
            changed = (current - set(ids)) | (set(ids) - current)
            # A link is part of both objects: the others change too.
            self._may_change(relation.target, changed, "update", back.name)
            self._touch(relation.target, changed)
            created = {
                self._create(relation.target, item.data, link=(back.name, owner)) for item in new
            }
            wanted = set(ids) | created
            if current - wanted:
                self.storage.m2m_remove(relation, [owner], current - wanted)
            if wanted - current:
                self.storage.m2m_add(relation, owner, wanted - current)
            return
        current = set()
        if not creating:
            current = {row for row, _ in self.storage.rows_linked_to(back, [owner])}
            if scope is not None and current:
                linked, current = current, self._visible_ids(relation.target, current)
                if linked - current and not relation.multi and items:
                    key = relation.collection.external_name(relation.name)
                    raise Forbidden(
                        f"{key} of this {relation.collection.name} links to an object "
                        "you may not change.",
                        {"collection": relation.collection.name, "field": key},
                    )
        removed = current - set(ids)
        if removed:
            self._release(back, sorted(removed), owner)
        added = set(ids) - current
        if added:
            if not relation.multi and relation.required:
                taken = [row for row, target in self._partners(back, added) if target != owner]
                if taken:
                    raise Conflict(
                        f"{relation.target.name} {taken[0]} belongs to another "
                        f"{relation.collection.name}, which requires its {relation.key}.",
                        {"collection": relation.target.name, "id": taken[0]},
                        code="REQUIRED_RELATION",
                    )
            self._may_change(relation.target, added, "update", back.name)
            if not relation.multi:
                # One-to-one: the added object leaves its previous holder.
                holders = {held for _, held in self._partners(back, added) if held != owner}
                self._may_change(relation.collection, holders, "update", relation.name)
                self._touch(relation.collection, holders)
            self._touch(relation.target, added)
            self.storage.set_link(back, added, owner)
        for item in new:
            self._create(relation.target, item.data, link=(back.name, owner))

    def _partners(self, relation: RelationInfo, ids: set[int]) -> list[tuple[int, int]]:
        """``(row, target)`` for rows ``ids`` whose ``fk_here`` column is set."""
        return [(owner, rid) for owner, rid, _ in self.storage.links(relation, ids)]

    def _delete(self, collection: Collection, id_: int) -> None:
        doomed: dict[str, set[int]] = {collection.name: {id_}}
        pending = [(collection, {id_})]
        unlinks: list[tuple[RelationInfo, set[int]]] = []
        losing: list[tuple[Collection, set[int]]] = []
        while pending:
            current, ids = pending.pop()
            for relation in current.relations.values():
                gone = doomed.setdefault(relation.target.name, set())
                if relation.storage == "fk_here":
                    if relation.reverse.multi or not relation.reverse.required:
                        # The other side simply loses a link.
                        if relation.target.options.get("audit"):
                            partners = {rid for _, rid in self._partners(relation, ids)}
                            losing.append((relation.target, partners))
                        continue
                    partners = {rid for _, rid in self._partners(relation, ids)} - gone
                    if partners:
                        raise self._refused(current, ids, relation, partners, "REQUIRED_RELATION")
                    continue
                linked = {rid for _, rid, _ in self.storage.links(relation, ids)} - gone
                if not linked:
                    continue
                strategy = relation.on_delete or DeleteStrategy.UNLINK_REFERENCED_ITEMS
                if strategy is DeleteStrategy.MUST_BE_EMPTY:
                    raise self._refused(current, ids, relation, linked, "NOT_EMPTY")
                if strategy is DeleteStrategy.DELETE_REFERENCED_ITEMS:
                    # Locked before their own links are read: none can be added after.
                    linked = self.storage.lock(relation.target, linked)
                    self._may_change(relation.target, linked, "delete")
                    gone |= linked
                    pending.append((relation.target, linked))
                    continue
                if relation.storage == "fk_there":
                    if relation.reverse.required:
                        raise self._refused(current, ids, relation, linked, "REQUIRED_RELATION")
                    unlinks.append((relation.reverse, linked))
                losing.append((relation.target, linked))
        self._leave_behind(doomed, unlinks, losing)
        for name, ids in doomed.items():
            if not ids:
                continue
            for relation in self.model.collections[name].relations.values():
                if relation.storage == "m2m":
                    self.storage.m2m_remove(relation, ids, None)
                elif (
                    relation.storage == "fk_here"
                    and not relation.required
                    and doomed.get(relation.target.name)
                ):
                    self.storage.set_link(relation, ids, None)
        for name in self._delete_order:
            if doomed.get(name):
                self.storage.delete(self.model.collections[name], doomed[name])

    def _leave_behind(
        self,
        doomed: dict[str, set[int]],
        unlinks: list[tuple[RelationInfo, set[int]]],
        losing: list[tuple[Collection, set[int]]],
    ) -> None:
        """Unlink the objects a delete leaves (``unlinks``: their keys to deleted
        objects), and record in the audit fields of those that lose a link
        (``losing``) that it changed them."""
        for back, ids in unlinks:
            survivors = ids - doomed.get(back.collection.name, set())
            if survivors:
                # Where they still point at a deleted object: one may have moved on.
                doomed_targets = doomed.get(back.target.name, set())
                self.storage.set_link(back, survivors, None, linked_to=doomed_targets)
        for target, ids in losing:
            self._touch(target, ids - doomed.get(target.name, set()))

    def _may_change(
        self, collection: Collection, ids: Iterable[int], action: str, field: str | None = None
    ) -> None:
        """Refuse a write that also changes (``update``, in ``field``) or deletes
        other objects, unless the caller may do that to each of them.

        Objects outside the caller's scope are refused without a word on which
        they are: the write is refused as a whole (403).
        """
        access = _ACCESS.get()
        ids = set(ids)
        if access is None or unguarded(collection) or not ids:
            return
        rows = self.storage.fetch(collection, ids, scope=access.scope(collection))
        if len(rows) < len(ids):
            raise Forbidden(
                f"This would {'delete' if action == 'delete' else 'change'} "
                f"{collection.name} objects you may not {action}.",
                {"collection": collection.name, "action": action},
            )
        if field is not None and field in managed_fields(collection):
            key = collection.external_name(field)
            raise Forbidden(
                f"{key} of {collection.name} is set by the server.",
                {"collection": collection.name, "field": key},
            )
        for row in rows:
            access.require(collection, action, row)
            if field is not None and not access.can_modify(collection, field, row):
                key = collection.external_name(field)
                raise Forbidden(
                    f"{key} of {collection.name} is not yours to change.",
                    {"collection": collection.name, "field": key},
                )

    def _touch(self, collection: Collection, ids: Iterable[int]) -> None:
        """Record in the audit fields of objects ``ids`` that a write changed them."""
        if not collection.options.get("audit"):
            return
        access = _ACCESS.get()
        values = audit_values(collection, access.user.id if access else None, create=False)
        self.storage.update_many(collection, ids, values)

    def _refused(
        self,
        collection: Collection,
        ids: set[int],
        relation: RelationInfo,
        linked: set[int],
        code: str,
    ) -> Conflict:
        which = ", ".join(map(str, sorted(ids)))
        shown = self._visible_ids(relation.target, linked)  # hidden ones are not named
        others = ", ".join(map(str, sorted(shown)))
        if len(shown) < len(linked):
            others = f"{others} and others" if shown else "objects"
        if code == "NOT_EMPTY":
            reason = (
                f"{relation.target.name} {others} still linked through {relation.key} "
                "(delete strategy MUST_BE_EMPTY)"
            )
        else:
            reason = f"{relation.target.name} {others} requires a {relation.reverse.key}"
        return Conflict(
            f"Cannot delete {collection.name} {which}: {reason}.",
            {
                "collection": collection.name,
                "ids": sorted(ids),
                "field": relation.key,
                "linked": {"collection": relation.target.name, "ids": sorted(shown)},
            },
            code=code,
        )

    def _visible_ids(self, collection: Collection, ids: set[int]) -> set[int]:
        """Those of ``ids`` the caller may see."""
        access = _ACCESS.get()
        scope = access.scope(collection) if access is not None else None
        if scope is None or not ids:
            return ids
        return self.storage.existing_ids(collection, ids, scope=scope)


def _scopes(collection: Collection) -> tuple[Node | None, Scopes | None]:
    """The caller's scope of ``collection``, and the scopes of every collection
    (for paths through relations); None, None for trusted code."""
    access = _ACCESS.get()
    if access is None:
        return None, None
    return access.scope(collection), access.scopes()


class _Pending:
    """The id of an object being created, not known yet: a nested object linked
    to it compares unequal to every value."""

    def __repr__(self) -> str:
        return "<the id of the object being created>"


_PENDING: Any = _Pending()


def _as_created(data: dict[str, Any], server: dict[str, Any]) -> dict[str, Any]:
    """The object permission and rights functions see on create: ``data`` with
    the values the server sets, without a link to an id not known yet."""
    obj = {**data, **server}
    return {k: v for k, v in obj.items() if v is not _PENDING and v != [_PENDING]}


def _given(data: dict[str, Any], name: str, value: Any, multi: bool) -> Loaded:
    """``data`` with field ``name`` set to ``value`` (the only item of a list
    field), as given by the client."""
    given = data.given if isinstance(data, Loaded) else frozenset(data)
    loaded = Loaded({**data, name: [value] if multi else value})
    loaded.given = given | {name}
    return loaded


def _check_batch(
    collection: Collection, items: list[Any], maximum: int | None, *, existing: bool = False
) -> None:
    """Refuse a write whose ``items`` (as sent) would create more than ``maximum``
    objects: themselves (unless ``existing``) and every object nested in their
    relations, counted before any is validated."""
    if maximum is None:
        return
    check_count("max_batch", maximum)
    count = 0 if existing else len(items)
    if count <= maximum:
        pending = [(collection, item) for item in items]
        while pending and count <= maximum:
            current, data = pending.pop()
            if not isinstance(data, Mapping):
                continue
            for key, value in data.items():
                relation = current.relations.get(current.by_key.get(key, ""))
                if relation is None:
                    continue
                nested = [
                    v
                    for v in (value if isinstance(value, list) else [value])
                    if isinstance(v, Mapping)
                ]
                count += len(nested)
                pending.extend((relation.target, item) for item in nested)
    if count > maximum:
        raise BadRequest(
            f"A write creates at most {maximum} objects, nested ones included "
            f"(BACKO_MAX_BATCH={maximum}); this one would create more.",
            {"setting": "BACKO_MAX_BATCH", "maximum": maximum},
            code="LIMIT_EXCEEDED",
        )


def _holds(value: Any, id_: int) -> bool:
    """Whether a relation's ``value`` (an id, or a list) links to object ``id_``."""
    return value == id_ or (isinstance(value, list) and id_ in value)


def _named(collection: Collection, data: dict[str, Any], wanted: dict[str, set[int]]) -> None:
    """Add to ``wanted`` the ids of the objects ``data`` links to, in its nested
    objects too, by collection name."""
    for relation in collection.relations.values():
        value = data.get(relation.name)
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, NewObject):
                _named(relation.target, item.data, wanted)
            elif item is not None:
                wanted.setdefault(relation.target.name, set()).add(item)


def _refuse_early(access: Access, collection: Collection, *actions: str) -> None:
    """Refuse a caller whom no object could allow any of ``actions`` (asked with
    ``obj=None``), before the request's body or its object are looked at."""
    permission = permission_of(collection)
    if permission is not None and not any(permission.can(access.auth, a) for a in actions):
        raise access.refusal(collection, actions[0])


def _load_default(collection: Collection, name: str) -> Any:
    """The value field ``name`` takes on create when the client gives none."""
    field = collection.schema.fields[name]
    default = field.load_default
    if default is marshmallow.missing:
        return [] if name in collection.relations and collection.relations[name].multi else None
    return default() if callable(default) else default


def _missing(collection: Collection, ids: set[int]) -> NotFound:
    """The error for objects ``ids`` of ``collection`` that do not exist."""
    error = NotFound(collection.name, min(ids))
    error.details["ids"] = sorted(ids)
    return error


def _scalar_values(collection: Collection, data: dict[str, Any]) -> dict[str, Any]:
    """The storable values of the scalar fields ``data`` gives."""
    return {
        name: to_storable(field, data[name])
        for name, field in collection.scalars.items()
        if name in data
    }


class _Budget:
    """Counts the objects and ids of one response against ``limit`` (None: no limit)."""

    __slots__ = ("limit", "used")

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.used = 0

    def room(self) -> int | None:
        """How many more rows to read: one over the limit shows it is exceeded."""
        return None if self.limit is None else self.limit - self.used + 1

    def take(self, count: int) -> None:
        """Count ``count`` objects or ids read."""
        self.used += count
        self.check(self.used)

    def check(self, shown: int) -> None:
        """Refuse an answer that shows ``shown`` objects and ids."""
        if self.limit is not None and shown > self.limit:
            raise BadRequest(
                f"The response would hold more than {self.limit} objects and ids "
                f"(BACKO_MAX_OBJECTS={self.limit}): ask for less depth, a smaller page "
                "or fewer fields.",
                {"setting": "BACKO_MAX_OBJECTS", "maximum": self.limit},
                code="LIMIT_EXCEEDED",
            )


def _by_id(rows: list[dict[str, Any]], rendered: list[Any]) -> dict[int, Any]:
    return {row["id"]: shown for row, shown in zip(rows, rendered, strict=True)}


def _delete_order(model: DataModel) -> list[str]:
    """Collections ordered so rows holding a required key go before their targets."""
    order: list[str] = []
    state: dict[str, int] = {}

    def visit(name: str) -> None:
        if state.get(name):
            return  # done, or a cycle of required keys (impossible to fill anyway)
        state[name] = 1
        # Whoever holds a required key to ``name`` must be deleted first.
        for other in model.collections.values():
            for relation in other.relations.values():
                if (
                    relation.storage == "fk_here"
                    and relation.required
                    and relation.target.name == name
                    and other.name != name
                ):
                    visit(other.name)
        order.append(name)
        state[name] = 2

    for name in model.collections:
        visit(name)
    return order


# -- the module-level default engine --------------------------------------------

_default: Engine | None = None
_default_lock = threading.Lock()


def setup(model: DataModel, storage: PeeweeStorage) -> Engine:
    """Build an :class:`Engine` and install it as the default one.

    :raises DeclarationError: if the model is declared wrongly.
    """
    global _default
    engine = Engine(model, storage)
    with _default_lock:
        _default = engine
    return engine


def default_engine() -> Engine:
    """The engine installed by :func:`setup`."""
    if _default is None:
        raise NoEngine()
    return _default


def get(name: str, id_: Any = None, **kwargs: Any) -> tuple[Any, int]:
    """:meth:`Engine.get` on the default engine."""
    return default_engine().get(name, id_, **kwargs)


def page(name: str, **kwargs: Any) -> Page:
    """:meth:`Engine.page` on the default engine."""
    return default_engine().page(name, **kwargs)


def post(name: str, data: Any, **kwargs: Any) -> tuple[Any, int]:
    """:meth:`Engine.post` on the default engine."""
    return default_engine().post(name, data, **kwargs)


def put(name: str, id_: Any, data: Any, **kwargs: Any) -> tuple[Any, int]:
    """:meth:`Engine.put` on the default engine."""
    return default_engine().put(name, id_, data, **kwargs)


def patch(name: str, id_: Any, data: Any, **kwargs: Any) -> tuple[Any, int]:
    """:meth:`Engine.patch` on the default engine."""
    return default_engine().patch(name, id_, data, **kwargs)


def delete(name: str, id_: Any, **kwargs: Any) -> tuple[None, int]:
    """:meth:`Engine.delete` on the default engine."""
    return default_engine().delete(name, id_, **kwargs)

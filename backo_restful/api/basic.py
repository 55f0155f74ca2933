"""Engine calls that return ``(body, status, headers)`` instead of raising.

Each function takes the engine's arguments plus ``engine=`` (the default engine
installed by :func:`backo_restful.setup` when omitted). A
:class:`~backo_restful.exceptions.BackoError` becomes the shared error body
``{"error": {"code", "message", "details"}}`` with its status.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ..engine import DEFAULT_COUNT_LIMIT, Engine, ReadOptions, default_engine
from ..exceptions import BackoError, MethodNotAllowed, StorageUnavailable, Unauthorized
from ..paging import link_header
from ..query import Node, check_count

Response = tuple[Any, int, dict[str, str]]

#: The deepest expansion a caller of this layer may ask for (``BACKO_MAX_DEPTH``).
DEFAULT_MAX_DEPTH = 5
#: The largest page of this layer, and its size when none is asked (``BACKO_MAX_LIMIT``).
DEFAULT_MAX_LIMIT = 1000
#: The most objects and ids one response of this layer may show (``BACKO_MAX_OBJECTS``).
DEFAULT_MAX_OBJECTS = 10_000
#: The most objects one write of this layer may create, nested ones included
#: (``BACKO_MAX_BATCH``).
DEFAULT_MAX_BATCH = 1000


def error_response(error: BackoError) -> Response:
    """The ``(body, status, headers)`` of an error."""
    headers: dict[str, str] = {}
    if isinstance(error, MethodNotAllowed):
        headers["Allow"] = ", ".join(error.allowed)
    if isinstance(error, Unauthorized):
        headers["WWW-Authenticate"] = error.challenge
    if isinstance(error, StorageUnavailable):
        headers["Retry-After"] = str(error.retry_after)
    return error.to_dict(), error.status, headers


def _call(engine: Engine | None, method: str, *args: Any, **kwargs: Any) -> Response:
    try:
        call: Callable[..., tuple[Any, int]] = getattr(engine or default_engine(), method)
        body, status = call(*args, **kwargs)
    except BackoError as error:
        return error_response(error)
    return body, status, {}


def get(
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
    count: str = "estimate",
    auth: Mapping[str, Any] | None = None,
    engine: Engine | None = None,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_limit: int = DEFAULT_MAX_LIMIT,
    max_objects: int = DEFAULT_MAX_OBJECTS,
    count_limit: int = DEFAULT_COUNT_LIMIT,
    url: str = "",
    query: Mapping[str, Any] | None = None,
) -> Response:
    """:meth:`Engine.get` within the server limits, with paging headers on lists.

    A list is one page: ``limit`` defaults to ``max_limit``; the headers carry
    ``X-Total-Count`` and ``X-Total-Count-Method`` (unless ``count="none"``) and a
    ``Link`` to the first, previous, next and last pages. By default the count
    stops at ``count_limit`` matches (see :meth:`Engine.page`).

    A collection's view named ``default`` applies when neither ``view`` nor
    ``fields`` is given.

    :param url: the collection's URL, for the links (relative links if empty).
    :param query: the request's other parameters, for the links (built from the
        arguments if None).
    """
    try:
        check_count("depth", depth, maximum=max_depth, setting="BACKO_MAX_DEPTH")
        if limit is None and id_ is None:
            limit = max_limit
        options = ReadOptions(
            depth=depth, filter_=filter_, sort=sort, limit=limit, offset=offset, fields=fields,
            after=after, before=before, count=count, count_limit=count_limit,
            max_objects=max_objects, view=_view(engine, name, view, fields),
        )  # fmt: skip
        if id_ is not None:
            return _call(engine, "get", name, id_, options=options, auth=auth)
        check_count("limit", limit, maximum=max_limit, setting="BACKO_MAX_LIMIT")
        page = (engine or default_engine()).page(name, options=options, auth=auth)
    except BackoError as error:
        return error_response(error)
    headers: dict[str, str] = {}
    if page.total is not None:
        headers["X-Total-Count"] = str(page.total)
        headers["X-Total-Count-Method"] = page.total_method or "exact"
    if query is None:
        query = _query(depth, filter_, sort, fields, view, count)
    headers["Link"] = link_header(url, query, page, cursor_mode=offset is None)
    return page.items, 200, headers


def _view(engine: Engine | None, name: str, view: str | None, fields: Any) -> str | None:
    """The view a read shows: ``view``, else the collection's ``default`` view
    when ``fields`` is not given either."""
    if view is not None or fields is not None:
        return view
    collection = (engine or default_engine()).model.collections.get(name)
    return "default" if collection is not None and "default" in collection.views else None


def _query(
    depth: int, filter_: Any, sort: Any, fields: Any, view: str | None, count: str
) -> dict[str, Any]:
    """The query parameters that ask again for what these arguments asked."""
    query: dict[str, Any] = {}
    if depth != 1:
        query["depth"] = depth
    if isinstance(filter_, Mapping):
        query["filter"] = json.dumps(filter_, separators=(",", ":"), default=str)
    for name, value in (("sort", sort), ("fields", fields)):
        if value is not None:
            query[name] = value if isinstance(value, str) else ",".join(value)
    if view is not None:
        query["view"] = view
    if count != "estimate":
        query["count"] = count
    return query


def post(
    name: str,
    data: Any,
    *,
    auth: Mapping[str, Any] | None = None,
    engine: Engine | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> Response:
    """:meth:`Engine.post`, creating at most ``max_batch`` objects (nested ones included)."""
    return _call(engine, "post", name, data, auth=auth, max_batch=max_batch)


def put(
    name: str,
    id_: Any,
    data: Any,
    *,
    auth: Mapping[str, Any] | None = None,
    engine: Engine | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> Response:
    """:meth:`Engine.put`, creating at most ``max_batch`` objects (nested ones included)."""
    return _call(engine, "put", name, id_, data, auth=auth, max_batch=max_batch)


def patch(
    name: str,
    id_: Any,
    data: Any,
    *,
    auth: Mapping[str, Any] | None = None,
    engine: Engine | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
) -> Response:
    """:meth:`Engine.patch`, creating at most ``max_batch`` nested objects:
    ``data`` is the fields to change, or a list of JSON Patch operations."""
    return _call(engine, "patch", name, id_, data, auth=auth, max_batch=max_batch)


def delete(
    name: str, id_: Any, *, auth: Mapping[str, Any] | None = None, engine: Engine | None = None
) -> Response:
    """:meth:`Engine.delete`."""
    return _call(engine, "delete", name, id_, auth=auth)


def act(
    name: str,
    action: str,
    *,
    id_: Any = None,
    args: Any = None,
    auth: Mapping[str, Any] | None = None,
    engine: Engine | None = None,
) -> Response:
    """:meth:`Engine.act`: action ``action`` of ``name``, on object ``id_`` or the collection."""
    return _call(engine, "act", name, action, id_=id_, args=args, auth=auth)


def describe(
    name: str | None = None,
    *,
    obj: Any = None,
    id_: Any = None,
    auth: Mapping[str, Any] | None = None,
    engine: Engine | None = None,
) -> Response:
    """:meth:`Engine.describe`: the model, or collection ``name`` (on object
    ``id_`` or the draft ``obj``), as the caller ``auth`` sees it."""
    return _call(engine, "describe", name, obj=obj, id_=id_, auth=auth)


def check(
    name: str,
    item: Any,
    *,
    path: str | None = None,
    id_: Any = None,
    auth: Mapping[str, Any] | None = None,
    engine: Engine | None = None,
) -> Response:
    """:meth:`Engine.check`: whether draft ``item`` would be accepted (as a
    create, or a PATCH of object ``id_``), without writing anything."""
    return _call(engine, "check", name, item, path=path, id_=id_, auth=auth)

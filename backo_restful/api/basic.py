"""Engine calls that return ``(body, status, headers)`` instead of raising.

Each function takes the engine's arguments plus ``engine=`` (the default engine
installed by :func:`backo_restful.setup` when omitted). A
:class:`~backo_restful.exceptions.BackoError` becomes the shared error body
``{"error": {"code", "message", "details"}}`` with its status.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..engine import DEFAULT_COUNT_LIMIT, Engine, ReadOptions, default_engine
from ..engine.tags import Tags, page_etag
from ..exceptions import (
    BackoError,
    MethodNotAllowed,
    StorageUnavailable,
    Unauthorized,
)
from ..paging import Page, link_header
from ..query import Node, check_count
from .conditional import check_required, weak_match

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
#: The seconds the database has to answer the health check (``BACKO_HEALTH_TIMEOUT``).
DEFAULT_HEALTH_TIMEOUT = 2.0

#: The most objects one bulk write of this layer may change or delete
#: (``BACKO_MAX_AFFECTED``).
DEFAULT_MAX_AFFECTED = 1000


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
    if_none_match: str | Sequence[str] | None = None,
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
    :param if_none_match: tags or ``"*"``: a ``304`` when one is the ``ETag``.
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
            return _item(engine, name, id_, options, auth, if_none_match)
        check_count("limit", limit, maximum=max_limit, setting="BACKO_MAX_LIMIT")
        page = (engine or default_engine()).page(name, options=options, auth=auth)
    except BackoError as error:
        return error_response(error)
    tag = page_etag(page)
    if weak_match(if_none_match, tag):
        return None, 304, {"ETag": tag}
    if query is None:
        query = _query(depth, filter_, sort, fields, view, count)
    return page.items, 200, _page_headers(page, tag, url, query, cursor_mode=offset is None)


def _page_headers(
    page: Page, tag: str, url: str, query: Mapping[str, Any], *, cursor_mode: bool
) -> dict[str, str]:
    """The headers of the answer of ``page``: its ``ETag``, total and links."""
    headers: dict[str, str] = {"ETag": tag}
    if page.total is not None:
        headers["X-Total-Count"] = str(page.total)
        headers["X-Total-Count-Method"] = page.total_method or "exact"
    headers["Link"] = link_header(url, query, page, cursor_mode=cursor_mode)
    return headers


def _item(
    engine: Engine | None,
    name: str,
    id_: Any,
    options: ReadOptions,
    auth: Mapping[str, Any] | None,
    if_none_match: Any,
) -> Response:
    """The answer of a read of object ``id_``, with its ``ETag``: ``304`` when
    ``if_none_match`` holds it."""
    body, status, headers = _call(engine, "get", name, id_, options=options, auth=auth)
    if status != 200:
        return body, status, headers
    tag = (engine or default_engine()).etag(
        name, body, depth=options.depth, fields=options.fields, view=options.view
    )
    if weak_match(if_none_match, tag):
        return None, 304, {"ETag": tag}
    return body, 200, {"ETag": tag}


def _tagged(engine: Engine | None, name: str, response: Response) -> Response:
    """``response`` of a write, with the ``ETag`` of the object it answers."""
    body, status, headers = response
    if status in (200, 201) and isinstance(body, dict):
        headers["ETag"] = (engine or default_engine()).etag(name, body)
    return response


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
    """:meth:`Engine.post`, creating at most ``max_batch`` objects (nested ones
    included); the answer of one object carries its ``ETag``."""
    return _tagged(engine, name, _call(engine, "post", name, data, auth=auth, max_batch=max_batch))


def put(
    name: str,
    id_: Any,
    data: Any,
    *,
    auth: Mapping[str, Any] | None = None,
    engine: Engine | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    if_match: Tags = None,
    if_none_match: str | None = None,
    require_if_match: bool = False,
) -> Response:
    """:meth:`Engine.put`, creating at most ``max_batch`` objects (nested ones
    included); the answer carries the object's ``ETag``.

    :param require_if_match: refuse (428) a call without ``if_match`` or
        ``if_none_match`` (``BACKO_REQUIRE_IF_MATCH``).
    """
    try:
        check_required(if_match if if_none_match is None else if_none_match, require_if_match)
    except BackoError as error:
        return error_response(error)
    conditions = {"if_match": if_match, "if_none_match": if_none_match}
    response = _call(engine, "put", name, id_, data, auth=auth, max_batch=max_batch, **conditions)
    return _tagged(engine, name, response)


def patch(
    name: str,
    id_: Any,
    data: Any,
    *,
    auth: Mapping[str, Any] | None = None,
    engine: Engine | None = None,
    max_batch: int = DEFAULT_MAX_BATCH,
    if_match: Tags = None,
    require_if_match: bool = False,
) -> Response:
    """:meth:`Engine.patch`, creating at most ``max_batch`` nested objects:
    ``data`` is the fields to change, or a list of JSON Patch operations. The
    answer carries the object's ``ETag``.

    :param require_if_match: refuse (428) a call without ``if_match``.
    """
    try:
        check_required(if_match, require_if_match)
    except BackoError as error:
        return error_response(error)
    response = _call(
        engine, "patch", name, id_, data, auth=auth, max_batch=max_batch, if_match=if_match
    )
    return _tagged(engine, name, response)


def delete(
    name: str,
    id_: Any,
    *,
    auth: Mapping[str, Any] | None = None,
    engine: Engine | None = None,
    if_match: Tags = None,
    require_if_match: bool = False,
) -> Response:
    """:meth:`Engine.delete`.

    :param require_if_match: refuse (428) a call without ``if_match``.
    """
    try:
        check_required(if_match, require_if_match)
    except BackoError as error:
        return error_response(error)
    return _call(engine, "delete", name, id_, auth=auth, if_match=if_match)


def patch_many(
    name: str,
    data: Any,
    *,
    filter_: Mapping[str, Any] | Node | None,
    auth: Mapping[str, Any] | None = None,
    engine: Engine | None = None,
    max_affected: int = DEFAULT_MAX_AFFECTED,
) -> Response:
    """:meth:`Engine.patch_many`: change every object ``filter_`` matches, at most
    ``max_affected`` of them."""
    kwargs = dict(filter_=filter_, auth=auth, max_affected=max_affected)
    return _call(engine, "patch_many", name, data, **kwargs)


def delete_many(
    name: str,
    *,
    filter_: Mapping[str, Any] | Node | None,
    auth: Mapping[str, Any] | None = None,
    engine: Engine | None = None,
    max_affected: int = DEFAULT_MAX_AFFECTED,
) -> Response:
    """:meth:`Engine.delete_many`: delete every object ``filter_`` matches, at most
    ``max_affected`` of them."""
    kwargs = dict(filter_=filter_, auth=auth, max_affected=max_affected)
    return _call(engine, "delete_many", name, **kwargs)


def act(
    name: str,
    action: str,
    *,
    id_: Any = None,
    args: Any = None,
    auth: Mapping[str, Any] | None = None,
    engine: Engine | None = None,
    if_match: Tags = None,
    require_if_match: bool = False,
) -> Response:
    """:meth:`Engine.act`: action ``action`` of ``name``, on object ``id_`` or the collection.

    :param require_if_match: refuse (428) an action of an object without ``if_match``.
    """
    try:
        check_required(if_match, require_if_match and id_ is not None)
    except BackoError as error:
        return error_response(error)
    return _call(engine, "act", name, action, id_=id_, args=args, auth=auth, if_match=if_match)


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


def health(*, engine: Engine | None = None, timeout: float = DEFAULT_HEALTH_TIMEOUT) -> Response:
    """``({"status": "ok"}, 200, {})`` when the engine's database answers a
    trivial query within ``timeout`` seconds, else the error (503
    ``STORAGE_UNAVAILABLE``, with ``Retry-After``)."""
    try:
        (engine or default_engine()).storage.ping(timeout)
    except BackoError as error:
        return error_response(error)
    return {"status": "ok"}, 200, {}

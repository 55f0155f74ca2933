"""Engine calls that return ``(body, status, headers)`` instead of raising.

Each function takes the engine's arguments plus ``engine=`` (the default engine
installed by :func:`backo_restful.setup` when omitted). A
:class:`~backo_restful.exceptions.BackoError` becomes the shared error body
``{"error": {"code", "message", "details"}}`` with its status.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..engine import Engine, default_engine
from ..exceptions import BackoError, MethodNotAllowed
from ..query import check_count

Response = tuple[Any, int, dict[str, str]]

#: The deepest expansion a caller of this layer may ask for (``BACKO_MAX_DEPTH``).
DEFAULT_MAX_DEPTH = 5
#: The most objects one response of this layer may hold (``BACKO_MAX_OBJECTS``).
DEFAULT_MAX_OBJECTS = 10_000


def error_response(error: BackoError) -> Response:
    """The ``(body, status, headers)`` of an error."""
    headers: dict[str, str] = {}
    if isinstance(error, MethodNotAllowed):
        headers["Allow"] = ", ".join(error.allowed)
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
    filter_: Mapping[str, Any] | None = None,
    sort: list[str] | str | None = None,
    limit: int | None = None,
    offset: int | None = None,
    auth: Mapping[str, Any] | None = None,
    engine: Engine | None = None,
    max_depth: int = DEFAULT_MAX_DEPTH,
    max_objects: int = DEFAULT_MAX_OBJECTS,
) -> Response:
    """:meth:`Engine.get`, with ``depth`` at most ``max_depth`` and at most
    ``max_objects`` objects in the response."""
    try:
        check_count("depth", depth, maximum=max_depth, setting="BACKO_MAX_DEPTH")
    except BackoError as error:
        return error_response(error)
    return _call(
        engine,
        "get",
        name,
        id_,
        depth=depth,
        filter_=filter_,
        sort=sort,
        limit=limit,
        offset=offset,
        max_objects=max_objects,
        auth=auth,
    )


def post(
    name: str, data: Any, *, auth: Mapping[str, Any] | None = None, engine: Engine | None = None
) -> Response:
    """:meth:`Engine.post`."""
    return _call(engine, "post", name, data, auth=auth)


def put(
    name: str,
    id_: Any,
    data: Any,
    *,
    auth: Mapping[str, Any] | None = None,
    engine: Engine | None = None,
) -> Response:
    """:meth:`Engine.put`."""
    return _call(engine, "put", name, id_, data, auth=auth)


def patch(
    name: str,
    id_: Any,
    data: Any,
    *,
    auth: Mapping[str, Any] | None = None,
    engine: Engine | None = None,
) -> Response:
    """:meth:`Engine.patch`."""
    return _call(engine, "patch", name, id_, data, auth=auth)


def delete(
    name: str, id_: Any, *, auth: Mapping[str, Any] | None = None, engine: Engine | None = None
) -> Response:
    """:meth:`Engine.delete`."""
    return _call(engine, "delete", name, id_, auth=auth)

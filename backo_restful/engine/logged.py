"""One record per engine data call on the ``backo_restful.engine`` logger.

:func:`logged` wraps each of ``Engine.get``, ``page``, ``post``, ``put``,
``patch`` and ``delete``. When the logger does not take INFO records (the
default), the wrapper only asks it so; else the record names the call, the
collection, the id, the caller and the outcome, and carries them as attributes
with the duration in milliseconds and the number of SQL statements the call ran.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from ..exceptions import BackoError
from ..logs import caller_label, engine_logger

_F = TypeVar("_F", bound=Callable[..., Any])

#: The calls whose second argument (after the collection's name) is an id.
_WITH_ID = frozenset({"get", "put", "patch", "delete"})


def logged(call: str) -> Callable[[_F], _F]:
    """Log each run of the engine method ``call`` (see the module's docstring)."""

    def decorate(method: _F) -> _F:
        @functools.wraps(method)
        def wrapper(engine: Any, name: Any, *args: Any, **kwargs: Any) -> Any:
            if not engine_logger.isEnabledFor(logging.INFO):
                return method(engine, name, *args, **kwargs)
            if call == "act":  # act(name, action, *, id_=None, ...)
                id_ = kwargs.get("id_")
            else:
                id_ = (args[0] if args else kwargs.get("id_")) if call in _WITH_ID else None
            return _run(call, method, engine, name, id_, args, kwargs)

        return cast(_F, wrapper)

    return decorate


def _run(
    call: str,
    method: Callable[..., Any],
    engine: Any,
    name: Any,
    id_: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """Run ``method`` and log its outcome: its status, or its error's status and code."""
    before = engine.storage.statements()
    start = time.perf_counter()
    status: int = 500
    code: str | None = "INTERNAL_ERROR"
    try:
        result = method(engine, name, *args, **kwargs)
    except BackoError as error:
        status, code = error.status, error.code
        raise
    else:
        status, code = (result[1] if isinstance(result, tuple) else 200), None
        return result
    finally:
        _record(call, name, id_, kwargs.get("auth"), status, code, start, engine, before)


def _record(
    call: str,
    name: Any,
    id_: Any,
    auth: Any,
    status: int,
    code: str | None,
    start: float,
    engine: Any,
    before: int | None,
) -> None:
    duration_ms = round((time.perf_counter() - start) * 1000, 3)
    after = engine.storage.statements()
    statements = None if before is None or after is None else after - before
    caller = caller_label(auth)
    outcome = str(status) if code is None else f"{status} {code}"
    target = str(name) if id_ is None else f"{name} {id_}"
    engine_logger.info(
        "%s %s by %s: %s (%.1f ms, %s statements)",
        call,
        target,
        caller,
        outcome,
        duration_ms,
        "?" if statements is None else statements,
        extra={
            "call": call,
            "collection": name,
            "id": id_,
            "caller": caller,
            "status": status,
            "code": code,
            "duration_ms": duration_ms,
            "statements": statements,
        },
    )

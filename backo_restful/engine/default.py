"""The module-level default engine, installed by :func:`setup`, and the
functions that call it."""

from __future__ import annotations

import threading
from typing import Any

from ..exceptions import NoEngine
from ..model import DataModel
from ..paging import Page
from ..storage import PeeweeStorage
from .core import Engine

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


def install(engine: Engine | None) -> Engine | None:
    """Make ``engine`` the default one (None: no default); the previous one."""
    global _default
    with _default_lock:
        previous, _default = _default, engine
    return previous


def default_engine() -> Engine:
    """The engine installed by :func:`setup`.

    :raises NoEngine: if none is.
    """
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

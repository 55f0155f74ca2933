"""backo_restful: a model-driven REST layer for Flask over a relational database.

Importing it needs no Flask: :data:`current_user`, the one name that does, is
imported from :mod:`backo_restful.api.flask_auth` when first asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .computed import Computed as Computed
from .engine import Engine as Engine
from .engine import setup as setup
from .model import DataModel as DataModel
from .model import DeleteStrategy as DeleteStrategy
from .model import Ref as Ref
from .model import RefsList as RefsList
from .model import Schema as Schema

if TYPE_CHECKING:
    from .api.flask_auth import current_user as current_user

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """``current_user``, imported with Flask when first asked for."""
    if name == "current_user":
        from .api.flask_auth import current_user

        return current_user
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), "current_user"])

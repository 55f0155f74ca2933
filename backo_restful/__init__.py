"""backo_restful: a model-driven REST layer for Flask over a relational database."""

from __future__ import annotations

from .auth import current_user as current_user
from .engine import Engine as Engine
from .engine import setup as setup
from .model import DataModel as DataModel
from .model import DeleteStrategy as DeleteStrategy
from .model import Ref as Ref
from .model import RefsList as RefsList
from .model import Schema as Schema

__version__ = "0.1.0"

"""Relational storage through Peewee (SQLite, PostgreSQL, MariaDB/MySQL).

:class:`PeeweeStorage` maps each collection of a resolved data model to a table:
scalar fields become columns, a one-to-many or one-to-one relation a foreign-key
column, a many-to-many relation a join table. The engine decides *what* to read
and write; this package only turns those decisions into SQL. When the model
changes, :meth:`PeeweeStorage.plan` and :meth:`PeeweeStorage.migrate` bring the
tables in line with it (each difference a :class:`Change`).
"""

from __future__ import annotations

from ..kinds import to_storable as to_storable
from ._utils import Scopes as Scopes
from .connections import PATTERN_TIMEOUT as PATTERN_TIMEOUT
from .connections import POOL_SETTINGS as POOL_SETTINGS
from .core import PeeweeStorage as PeeweeStorage
from .differences import Change as Change

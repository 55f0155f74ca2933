"""The storage the engine uses: :class:`PeeweeStorage`, composed of its layers."""

from __future__ import annotations

import threading

import peewee
from playhouse.pool import PooledDatabase

from ..exceptions import DeclarationError, StorageUnavailable
from .connections import PATTERN_TIMEOUT, database_from_url
from .dialects import dialect_of
from .migrations import Migrations


class PeeweeStorage(Migrations):
    """Store collections in a relational database through Peewee.

    Built in layers, each in its own module: connections and transactions
    (:mod:`.connections`), tables (:mod:`.schema`), filter and sort compilation
    (:mod:`.compiler`), reads (:mod:`.reads`), writes (:mod:`.writes`) and
    migrations (:mod:`.migrations`, comparing with :mod:`.differences`); what
    differs between databases is in :mod:`.dialects` (and, for migrations,
    :mod:`.migrators`).

    :param db: a peewee ``Database`` or a URL (``sqlite:///path.db``,
        ``postgresql://user@host/db``, ``mysql://user@host/db``).
    :param pattern_timeout: the seconds a statement that filters with ``$re``
        may run before it is stopped (:class:`PatternTooSlow`).
    :param persistent: keep each thread's connection open from one call to the
        next, instead of opening and closing one per call. The default: yes for
        a SQLite file given by URL, no for a ``Database`` given (used as given).
        A PostgreSQL or MariaDB/MySQL URL gives a pooled database, whose
        connections go back to their pool after each call.
    """

    def __init__(
        self,
        db: peewee.Database | str,
        *,
        pattern_timeout: float = PATTERN_TIMEOUT,
        persistent: bool | None = None,
    ) -> None:
        from_url = isinstance(db, str)
        if isinstance(db, str):
            db = database_from_url(db)
        if not isinstance(db, peewee.Database):
            raise TypeError("PeeweeStorage takes a peewee Database or a database URL")
        if not pattern_timeout > 0:
            raise DeclarationError("pattern_timeout must be a number of seconds above 0")
        pooled = isinstance(db, PooledDatabase)
        if persistent and pooled:
            raise DeclarationError(
                "a pooled database gives its connections back to the pool after each "
                "call: persistent=True does not apply to it"
            )
        self.db = db
        self.dialect = dialect_of(db)
        #: The database's name (``sqlite``, ``postgresql``, ``mysql``), for information.
        self.backend = self.dialect.name
        self.pattern_timeout = float(pattern_timeout)
        self._memory = self.dialect.in_memory
        if self._memory and db.thread_safe:
            raise DeclarationError(
                "an in-memory SQLite Database is private to each thread: use the URL "
                "'sqlite:///:memory:', or SqliteDatabase(':memory:', thread_safe=False, "
                "check_same_thread=False)"
            )
        self._keep = self._memory or (
            persistent if persistent is not None else from_url and not pooled
        )
        self._serial = threading.RLock() if self._memory else None
        self._local = threading.local()
        self._owned = from_url
        self._watch_statements()
        self._init_state()
        self.dialect.prepare()

    def _init_state(self) -> None:
        """The state of each layer, empty until :meth:`attach` and first use."""
        self._model = None
        self._tables = {}
        self._joins = {}
        self._serializers = {}
        self._uniques = {}
        self._enforced = set()
        self._schema_lock = threading.Lock()
        self._tables_ready = False
        self._statements = {}
        self._id_plans = {}
        self._orders = {}
        self._write_plans = {}

    def __repr__(self) -> str:
        return f"<PeeweeStorage {self.backend} {self.db.database!r}>"

    def ping(self, timeout: float) -> None:
        """Check that the database answers a trivial query within ``timeout``
        seconds (the statement's time is bounded; getting a connection is as
        bounded as the storage's own settings make it: a pool's wait, the URL's
        ``connect_timeout``). Nothing is read or written.

        :raises StorageUnavailable: if it cannot be reached or does not answer in time.
        """
        serial = self._serial
        if serial is not None and not serial.acquire(timeout=timeout):
            raise StorageUnavailable(message="The database is busy: try again shortly.")
        try:
            with self._translated():
                opened = self._connect()
                try:
                    self.dialect.ping(timeout)
                except peewee.PeeweeException as exc:
                    if self._lost(exc):
                        self._discard()
                    raise
                finally:
                    if opened and not self._keep:
                        self._close()
        finally:
            if serial is not None:
                serial.release()

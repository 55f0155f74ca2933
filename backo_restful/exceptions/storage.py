"""The errors of the database: unreachable, busy, or out of step with the model."""

from __future__ import annotations

from typing import Any

from .base import BackoError


class StorageError(BackoError):
    """The database failed in a way the client could not have caused.

    :param reason: what the database said (for logs; never shown to clients).
    """

    code = "STORAGE_ERROR"

    def __init__(self, reason: str | None = None, *, message: str | None = None) -> None:
        self.reason = reason
        super().__init__(message)

    def default_message(self) -> str:
        return "The database could not complete the request."


class SchemaMismatch(StorageError):
    """Tables of the database lack columns the model declares (``missing``: table
    -> columns); :meth:`PeeweeStorage.migrate` adds them."""

    code = "SCHEMA_MISMATCH"

    def __init__(
        self, message: str | None = None, *, missing: dict[str, list[str]] | None = None
    ) -> None:
        self.missing: dict[str, list[str]] = missing or {}
        super().__init__(message=message)
        self.details = {"missing": self.missing}

    def default_message(self) -> str:
        return "The database's tables do not match the model: run storage.migrate()."


class MigrationRefused(SchemaMismatch):
    """:meth:`PeeweeStorage.migrate` refused changes and applied nothing
    (``refused``: each change and why)."""

    code = "MIGRATION_REFUSED"

    def __init__(self, refused: list[tuple[Any, str]]) -> None:
        self.refused = refused
        lines = "".join(f"\n- {change}: {why}" for change, why in refused)
        super().__init__(f"Migration refused, nothing was applied:{lines}")
        self.details = {"refused": [{**vars(change), "reason": why} for change, why in refused]}


class StorageUnavailable(StorageError):
    """The database cannot be reached, lost the connection, or is too busy: the
    request may be sent again (after :attr:`retry_after` seconds, the
    ``Retry-After`` of the answer).
    """

    code = "STORAGE_UNAVAILABLE"
    status = 503
    retry_after = 1

    def default_message(self) -> str:
        return "The database is unavailable: try again shortly."


class ConnectionLost(StorageUnavailable):
    """The connection to the database was lost during the call (the server
    restarted, a proxy or an operator ended the session).

    The connection is discarded; the engine reads again once on a new one.
    """


class StorageConflict(StorageUnavailable):
    """The database aborted the transaction to resolve a conflict with another one.

    The engine runs such a write again before giving up with this error.

    :param rows: the rows (collection name -> ids) the transaction would not wait
        for, which the next attempt locks first.
    """

    code = "TRANSACTION_CONFLICT"

    def __init__(
        self,
        reason: str | None = None,
        *,
        message: str | None = None,
        rows: dict[str, set[int]] | None = None,
    ) -> None:
        self.rows: dict[str, set[int]] = rows or {}
        super().__init__(reason, message=message)

    def default_message(self) -> str:
        return "The database kept aborting this write for conflicts with others: send it again."

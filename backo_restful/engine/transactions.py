"""Running a call's work in a transaction: reads again once on a lost
connection, writes again on conflicts with other writes."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from ..exceptions import ConnectionLost, NestingTooDeep, StorageConflict
from ..storage import PeeweeStorage

_T = TypeVar("_T")

#: How many times a write runs when the database keeps aborting it for conflicts.
WRITE_ATTEMPTS = 5
#: The longest pause, in seconds, before a write's second attempt (doubled for each next).
RETRY_PAUSE = 0.01


def run_read(storage: PeeweeStorage, work: Callable[[], _T], *, snapshot: bool) -> _T:
    """Run ``work`` in a read transaction (``snapshot``: False for a read of one
    statement, which needs none); again, once, on a new connection if the
    database lost this one."""
    try:
        with storage.transaction(write=False, snapshot=snapshot):
            return work()
    except ConnectionLost:
        if storage.db.in_transaction():
            raise  # the caller's transaction is lost with it
    with storage.transaction(write=False, snapshot=snapshot):
        return work()


def run_write(storage: PeeweeStorage, work: Callable[[], _T]) -> _T:
    """Run ``work`` in a write transaction, again if the database aborted it.

    A transaction aborted for a conflict with another (a deadlock, a row it
    would not wait for, an id another write created first) runs again from the
    start, on the data as the other left it, after a random pause that doubles
    with each attempt.
    """
    busy: dict[str, set[int]] = {}
    attempt = 1
    while True:
        try:
            with storage.transaction(write=True):
                # Rows an attempt would not wait for: the next waits for them, in order.
                storage.expect(busy)
                return work()
        except StorageConflict as conflict:
            if attempt == WRITE_ATTEMPTS:
                raise
            for name, ids in conflict.rows.items():
                busy.setdefault(name, set()).update(ids)
            time.sleep(random.uniform(0, RETRY_PAUSE * 2 ** (attempt - 1)))
            attempt += 1
        except RecursionError:
            raise NestingTooDeep() from None

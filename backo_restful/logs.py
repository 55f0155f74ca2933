"""The library's named loggers, and what their records may say.

Six loggers, each with a ``NullHandler`` only (the application decides where
records go and at which level):

- ``backo_restful.engine``: one INFO record per engine data call (see
  :mod:`backo_restful.engine.logged`);
- ``backo_restful.storage``: one DEBUG record per SQL statement, its text with
  placeholders and its duration; the parameter values only when the environment
  variable ``BACKO_LOG_SQL_PARAMS`` is on;
- ``backo_restful.http``: one INFO record per request served by
  :class:`backo_restful.api.flask.Api`;
- ``backo_restful.auth``: one INFO record per refused token, with the reason;
- ``backo_restful.events``: an ERROR record, with the traceback, for each event
  handler that fails (``after_commit`` handlers included);
- ``backo_restful.actions``: an ERROR record, with the traceback, for each action
  handler that fails or returns a value that is not JSON.

No record holds a token, a password, a request body or a value of a field: the
values the records carry are listed here and in docs/logging.md.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from typing import Any

engine_logger = logging.getLogger("backo_restful.engine")
storage_logger = logging.getLogger("backo_restful.storage")
http_logger = logging.getLogger("backo_restful.http")
auth_logger = logging.getLogger("backo_restful.auth")
events_logger = logging.getLogger("backo_restful.events")
actions_logger = logging.getLogger("backo_restful.actions")

_LOGGERS = (engine_logger, storage_logger, http_logger, auth_logger, events_logger, actions_logger)
for _logger in _LOGGERS:
    _logger.addHandler(logging.NullHandler())

#: The environment variable that adds parameter values to the SQL records.
SQL_PARAMS_VARIABLE = "BACKO_LOG_SQL_PARAMS"

#: A request id a client may choose (``X-Request-Id``).
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")


def sql_params_enabled() -> bool:
    """Whether ``BACKO_LOG_SQL_PARAMS`` asks for the parameter values of SQL
    statements (``1``, ``true``, ``yes`` or ``on``; off when unset)."""
    value = os.environ.get(SQL_PARAMS_VARIABLE, "")
    return value.strip().lower() in ("1", "true", "yes", "on")


def caller_label(auth: Any) -> str:
    """How the records name the caller ``auth``: ``system`` for trusted code
    (None), ``anonymous`` for no claims, else the caller's id (claim ``sub``)."""
    if auth is None:
        return "system"
    if not isinstance(auth, Mapping):
        return "invalid"
    from .auth import user_of  # auth imports this module

    user = user_of(auth)
    if user.is_anonymous:
        return "anonymous"
    return user.id if user.id is not None else "unidentified"


def request_id(given: str | None) -> str:
    """``given`` if it is a well-formed request id (1 to 128 letters, digits,
    ``-``, ``_`` and ``.``), else a new one."""
    if given is not None and _REQUEST_ID.fullmatch(given):
        return given
    return os.urandom(16).hex()  # 128 random bits, as a uuid4's hex

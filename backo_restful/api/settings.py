"""The ``BACKO_*`` settings of an :class:`~backo_restful.api.flask.Api`, and their defaults."""

from __future__ import annotations

from . import basic

#: The largest request body a write takes, in bytes (``BACKO_MAX_BODY``).
DEFAULT_MAX_BODY = 10 * 2**20

#: Flask config keys read by :meth:`Api.init_app`, with their defaults.
CONFIG_DEFAULTS = {
    "BACKO_MAX_DEPTH": basic.DEFAULT_MAX_DEPTH,
    "BACKO_MAX_LIMIT": basic.DEFAULT_MAX_LIMIT,
    "BACKO_MAX_OBJECTS": basic.DEFAULT_MAX_OBJECTS,
    "BACKO_COUNT_LIMIT": basic.DEFAULT_COUNT_LIMIT,
    "BACKO_COUNT": "estimate",
    "BACKO_MAX_BATCH": basic.DEFAULT_MAX_BATCH,
    "BACKO_MAX_AFFECTED": basic.DEFAULT_MAX_AFFECTED,
    "BACKO_MAX_BODY": DEFAULT_MAX_BODY,
    "BACKO_REQUIRE_IF_MATCH": False,
    "BACKO_OPENAPI": False,
    "BACKO_OPENAPI_TITLE": None,
    "BACKO_OPENAPI_VERSION": "1.0.0",
    "BACKO_OPENAPI_SERVERS": (),
    "BACKO_HEALTH_TIMEOUT": basic.DEFAULT_HEALTH_TIMEOUT,
    "BACKO_CORS_ORIGINS": (),
}

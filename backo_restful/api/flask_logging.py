"""Request ids and the ``backo_restful.http`` log of the apps that serve an
:class:`~backo_restful.api.flask.Api`: one record per request."""

from __future__ import annotations

import logging
import time
import weakref
from typing import Any

from flask import Blueprint, Flask, Response, g, request

from ..logs import http_logger, request_id

#: The apps and blueprints whose requests are logged (each once, whatever its APIs).
_LOGGED: weakref.WeakSet[Any] = weakref.WeakSet()


def log_requests(app: Flask | Blueprint) -> None:
    """Give each request of ``app`` an id (``X-Request-Id``) and, on the
    ``backo_restful.http`` logger, one record."""
    if app in _LOGGED:
        return
    _LOGGED.add(app)
    app.before_request(_request_started)
    app.after_request(_request_finished)


def _request_started() -> None:
    g._backo_started = time.perf_counter()


def _request_finished(response: Response) -> Response:
    """Send the request id back, and log the request (method, path, status, time)."""
    rid = request_id(request.headers.get("X-Request-Id"))
    response.headers["X-Request-Id"] = rid
    if http_logger.isEnabledFor(logging.INFO):
        # Another before_request may have answered before ours ran.
        start = g.get("_backo_started") or time.perf_counter()
        duration_ms = round((time.perf_counter() - start) * 1000, 3)
        http_logger.info(
            "%s %s %s %.1f ms [%s]",
            request.method,
            request.path,
            response.status_code,
            duration_ms,
            rid,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": duration_ms,
                "request_id": rid,
            },
        )
    return response

"""CORS on the routes of an :class:`~backo_restful.api.flask.Api`, with flask-cors.

``Api(app, cors=True)`` lets browser code of any origin call the API; a dict
gives flask-cors options instead (``{"origins": ["https://app.example.com"]}``);
without ``cors=``, the ``BACKO_CORS_ORIGINS`` setting (a list of origins) turns
it on for those origins. The API then answers preflights (``OPTIONS`` with
``Access-Control-Request-Method``, which never needs a token), lets requests
send :data:`ALLOWED_HEADERS` and lets browser code read :data:`EXPOSED_HEADERS`.
Only the API's own routes get CORS headers: not the app's other routes, nor
another API's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from flask import Flask, Response, request
from flask_cors.core import get_cors_options, set_cors_headers

#: The response headers browser code may read, besides the CORS-safelisted ones.
EXPOSED_HEADERS = (
    "Link",
    "X-Total-Count",
    "X-Total-Count-Method",
    "ETag",
    "Location",
    "X-Request-Id",
)
#: The request headers browser code may send, besides the CORS-safelisted ones.
ALLOWED_HEADERS = ("Authorization", "Content-Type", "If-Match", "If-None-Match")


def cors_options(
    cors: bool | Mapping[str, Any] | None, origins: Sequence[str]
) -> dict[str, Any] | None:
    """The flask-cors options of an API: from its ``cors`` argument, else from
    ``origins`` (``BACKO_CORS_ORIGINS``); None: no CORS.

    :raises TypeError: for a ``cors`` that is not a bool, a dict or None.
    """
    if cors is None:
        cors = {"origins": list(origins)} if origins else False
    if cors is False:
        return None
    if cors is not True and not isinstance(cors, Mapping):
        raise TypeError("cors= takes True, False, None or a dict of flask-cors options")
    options = {} if cors is True else dict(cors)
    options.setdefault("origins", "*")
    # Any origin: "*" rather than the request's Origin echoed, which a cache
    # could hand to another origin (no credentials: tokens go in a header).
    options.setdefault("send_wildcard", True)
    options.setdefault("expose_headers", list(EXPOSED_HEADERS))
    options.setdefault("allow_headers", list(ALLOWED_HEADERS))
    return options


def serve_cors(app: Flask, options: Mapping[str, Any], owns: Callable[[str], bool]) -> None:
    """Add the CORS headers of ``options`` to every answer of ``app`` whose
    endpoint ``owns`` says is the API's (errors included)."""
    computed = get_cors_options(app, options)

    def add_cors_headers(response: Response) -> Response:
        endpoint = request.endpoint
        if endpoint is not None and owns(endpoint):
            set_cors_headers(response, computed)
        return response

    app.after_request(add_cors_headers)

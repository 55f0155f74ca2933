"""The docs page: Swagger UI 5 showing the API's OpenAPI document, served by the app.

``register(target, prefix)`` adds two routes to a Flask app or blueprint:
``<prefix>/docs``, a small HTML page, and ``<prefix>/docs/<token>/<name>``, the few
files of Swagger UI it loads. The files come from the swagger-ui-py package
(Swagger UI 5, the first version that renders OpenAPI 3.1), so the page needs no CDN
and works offline. The page reads ``openapi.json`` next to it (``<prefix>/openapi.json``)
by a URL relative to its own, so it works under any prefix or proxy.

The page holds no inline script (its settings are in ``docs-page.js``, served with
the others), so it keeps a strict Content-Security-Policy. ``<token>`` is a hash of
the files' content: they are cached for a year and a new release changes the URLs.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Response, request
from werkzeug.exceptions import NotFound

from ..exceptions import DeclarationError

#: The files of swagger-ui-py's ``static`` folder the page loads.
SWAGGER_UI_FILES = (
    "swagger-ui-bundle.js",
    "swagger-ui.css",
    "index.css",
    "favicon-32x32.png",
    "favicon-16x16.png",
)

#: The endpoint names of the page and of its files (under a blueprint's name on a blueprint).
ENDPOINTS = ("backo_docs", "backo_docs_file")

#: Seconds a browser keeps the files: their URLs change with their content.
FILE_MAX_AGE = 365 * 24 * 3600

_INITIALIZER = "docs-page.js"

# Swagger UI's settings. BaseLayout has no top bar where a visitor could load
# another document; validatorUrl null sends the document to no online validator.
_INITIALIZER_JS = """\
window.addEventListener("load", function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-url"),
    domNode: root,
    layout: "BaseLayout",
    deepLinking: true,
    displayRequestDuration: true,
    tryItOutEnabled: false,
    persistAuthorization: false,
    validatorUrl: null,
    onComplete: function () {
      var title = window.ui.specSelectors.info().get("title");
      if (title) {
        document.title = title + " - docs";
      }
    }
  });
});
"""

_PAGE = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>API docs</title>
<link rel="stylesheet" href="docs/{token}/swagger-ui.css">
<link rel="stylesheet" href="docs/{token}/index.css">
<link rel="icon" type="image/png" href="docs/{token}/favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="docs/{token}/favicon-16x16.png" sizes="16x16">
</head>
<body>
<div id="swagger-ui" data-url="openapi.json"></div>
<script src="docs/{token}/swagger-ui-bundle.js"></script>
<script src="docs/{token}/docs-page.js"></script>
</body>
</html>
"""

# Swagger UI styles elements from its script (allowed) and draws icons from data: URLs;
# "Try it out" may call the document's servers, which need not be this origin.
_PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src *; object-src 'none'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'self'"
)

_MIMETYPES = {
    ".js": "text/javascript",
    ".css": "text/css",
    ".png": "image/png",
}


@dataclass(frozen=True)
class _File:
    """One file of the page, as sent: its body, and a gzipped copy for text."""

    body: bytes
    mimetype: str
    gzipped: bytes | None


@dataclass(frozen=True)
class _Files:
    token: str
    files: dict[str, _File]


def register(target: Any, prefix: str = "") -> tuple[str, ...]:
    """Serve the docs page at ``<prefix>/docs`` on ``target``, and its files.

    The page shows the OpenAPI document at ``<prefix>/openapi.json``, which the
    caller serves. Neither the page nor its files ask for a token.

    :param target: a Flask app, a blueprint, or a blueprint's setup state.
    :param prefix: the path before ``/docs`` (a blueprint adds its own).
    :return: the endpoint names, without a blueprint's name.
    :raises DeclarationError: if swagger-ui-py is not installed or lacks a file.
    """
    _files()  # fail now, not at the first visit
    target.add_url_rule(f"{prefix}/docs", ENDPOINTS[0], _page, methods=["GET"])
    target.add_url_rule(
        f"{prefix}/docs/<token>/<path:name>", ENDPOINTS[1], _page_file, methods=["GET"]
    )
    return ENDPOINTS


def _page() -> Response:
    """The HTML page: never cached without a check, so it always names the current files."""
    response = Response(_PAGE.format(token=_files().token), mimetype="text/html")
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Content-Security-Policy"] = _PAGE_POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


def _page_file(token: str, name: str) -> Response:
    """One file of the page, gzipped when the browser takes it.

    :raises NotFound: for a file the page does not load, or a token of other files.
    """
    files = _files()
    file = files.files.get(name)
    if token != files.token or file is None:
        raise NotFound(f"The docs page has no file {token}/{name}.")
    gzipped = file.gzipped is not None and request.accept_encodings["gzip"] > 0
    response = Response(file.gzipped if gzipped else file.body, mimetype=file.mimetype)
    if gzipped:
        response.headers["Content-Encoding"] = "gzip"
    if file.gzipped is not None:
        response.vary.add("Accept-Encoding")
    response.headers["Cache-Control"] = f"public, max-age={FILE_MAX_AGE}, immutable"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.set_etag(f"{files.token}-{'gz' if gzipped else 'id'}")
    response.make_conditional(request)  # a 304 for a browser that has it
    return response


def swagger_ui_folder() -> Path:
    """The folder of Swagger UI's files in the swagger-ui-py package.

    :raises DeclarationError: if the package is not installed.
    """
    # find_spec does not run the package's __init__, which imports its own
    # handlers and PyYAML: only its files are used.
    spec = importlib.util.find_spec("swagger_ui")
    if spec is None or not spec.submodule_search_locations:
        raise DeclarationError(
            "The docs page needs the swagger-ui-py package (a dependency of "
            "backo_restful): pip install swagger-ui-py"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "static"


@functools.cache
def _files() -> _Files:
    """The page's files, read once, and the token of their content."""
    folder = swagger_ui_folder()
    missing = [name for name in SWAGGER_UI_FILES if not (folder / name).is_file()]
    if missing:
        raise DeclarationError(
            f"The docs page needs {', '.join(missing)} in {folder}: "
            "reinstall swagger-ui-py (version 25.7 or later)"
        )
    bodies = {name: (folder / name).read_bytes() for name in SWAGGER_UI_FILES}
    bodies[_INITIALIZER] = _INITIALIZER_JS.encode()
    digest = hashlib.sha256()
    for name, body in sorted(bodies.items()):
        digest.update(f"{name}\0{len(body)}\0".encode())
        digest.update(body)
    return _Files(
        digest.hexdigest()[:16], {name: _file(name, body) for name, body in bodies.items()}
    )


def _file(name: str, body: bytes) -> _File:
    mimetype = _MIMETYPES[Path(name).suffix]
    # Werkzeug adds "; charset=utf-8" to a text type.
    gzipped = gzip.compress(body, mtime=0) if mimetype.startswith("text/") else None
    return _File(body, mimetype, gzipped)

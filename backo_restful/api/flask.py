"""Flask-RESTful integration: drop-in :class:`Api` and :class:`Resource`.

Replace ``flask_restful.Api`` and ``flask_restful.Resource`` with these and give a
resource a ``model``; ``api.add_resource(CookieResource, "/cookie")`` then serves
``/cookie`` (GET, POST) and ``/cookie/<id>`` (GET, PUT, PATCH, DELETE). Every error
on the API's routes, in debug and production alike, is the shared JSON body.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import flask_restful
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    got_request_exception,
    request,
)
from flask.blueprints import BlueprintSetupState
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from ..auth import JWTAuth
from ..engine import Engine
from ..exceptions import (
    BackoError,
    BodyTooLarge,
    ClientError,
    DeclarationError,
    Unauthorized,
)
from ..query import COUNT_MODES
from . import basic, docs_page
from .cli import APIS_KEY
from .cli import backo as backo_commands
from .cors import cors_options, serve_cors
from .flask_logging import log_requests
from .health import Health
from .openapi import Route, openapi_document
from .resource import (
    IdConverter,
    ModelDescription,
    Resource,
    allowed_methods,
    special_resources,
)
from .settings import CONFIG_DEFAULTS, DEFAULT_MAX_BODY

__all__ = ["CONFIG_DEFAULTS", "DEFAULT_MAX_BODY", "Api", "Resource", "allowed_methods"]


class Api(flask_restful.Api):
    """A ``flask_restful.Api`` that serves :class:`Resource` classes with a ``model``.

    :param app: the Flask app or blueprint, or None to call :meth:`init_app` later.
    :param engine: the engine serving the models (the default engine if None).
    :param auth: how callers authenticate, e.g. a :class:`~backo_restful.auth.JWTAuth`.
        Each request's caller (a :class:`~backo_restful.auth.User`, anonymous
        without a token or without ``auth``) is the ``auth`` of the engine calls,
        so the model's permissions always apply over HTTP.
    :param openapi: serve the API's OpenAPI document at ``<prefix>/openapi.json``
        (see :func:`~backo_restful.api.openapi.openapi_document`) and the docs
        page at ``<prefix>/docs``; None: as the ``BACKO_OPENAPI`` setting says.
    :param cors: answer browser code of other origins (see :mod:`.cors`): True
        for any origin, a dict of flask-cors options, False for none; None: as
        the ``BACKO_CORS_ORIGINS`` setting says.
    :param kwargs: passed to ``flask_restful.Api``. ``catch_all_404s`` defaults to
        True, so unknown routes get the JSON error body too.
    """

    def __init__(
        self,
        app: Any = None,
        *,
        engine: Engine | None = None,
        auth: JWTAuth | None = None,
        openapi: bool | None = None,
        cors: bool | Mapping[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("catch_all_404s", True)
        self.engine = engine
        self.auth = auth
        self.openapi = openapi
        self.cors = cors
        super().__init__(app, **kwargs)
        for resource, path, name in (
            (ModelDescription, "/_meta", "meta"),
            (Health, "/_health", "health"),
        ):
            self.add_resource(
                resource,
                path,
                endpoint=f"backo_{name}_{id(self)}",
                resource_class_kwargs={"backo_api": self},
            )

    def init_app(self, app: Flask | Blueprint) -> None:
        """Register the API on ``app`` (or a blueprint) and read its ``BACKO_*`` settings."""
        if isinstance(app, Blueprint):
            app.record_once(lambda state: self._configure(state.app, state))
        else:
            self._configure(app, app)
        log_requests(app)
        super().init_app(app)

    def _configure(self, app: Any, target: Any) -> None:
        app.url_map.converters.setdefault("backo_id", IdConverter)
        apis = app.extensions.setdefault(APIS_KEY, [])
        if self not in apis:
            apis.append(self)
        if "backo" not in app.cli.commands:
            app.cli.add_command(backo_commands)
        if self.auth is not None:
            self.auth.init_app(app)
            # current_user in the app's own views: a bad token is a JSON 401 there too.
            app.register_error_handler(Unauthorized, _unauthorized)
        settings = {key: app.config.get(key, default) for key, default in CONFIG_DEFAULTS.items()}
        if settings["BACKO_COUNT"] not in COUNT_MODES:
            raise DeclarationError(f"BACKO_COUNT is one of {', '.join(COUNT_MODES)}")
        if self.openapi is not None:
            settings["BACKO_OPENAPI"] = self.openapi
        app.extensions.setdefault("backo_restful", {})[id(self)] = settings
        if settings["BACKO_OPENAPI"]:
            self._serve_openapi(target)
        cors = cors_options(self.cors, settings["BACKO_CORS_ORIGINS"])
        if cors is not None:
            serve_cors(app, cors, self._owner(target))

    def _owner(self, target: Any) -> Callable[[str], bool]:
        """Whether an endpoint of the app is one of this API's routes (on
        ``target``, the app or a blueprint's setup state)."""
        if not isinstance(target, BlueprintSetupState):
            return self.endpoints.__contains__
        prefix = f"{target.name_prefix}.{target.name}".lstrip(".") + "."
        return lambda endpoint: (
            endpoint.startswith(prefix) and endpoint[len(prefix) :] in self.endpoints
        )

    def _serve_openapi(self, target: Any) -> None:
        """Add ``openapi.json`` and the docs page to ``target`` (an app or a
        blueprint's setup state), as routes of this API: their errors get the
        JSON error body."""
        endpoint = f"backo_openapi{self.prefix}"
        target.add_url_rule(
            f"{self.prefix}/openapi.json", endpoint, self._openapi_json, methods=["GET"]
        )
        self.endpoints.update((endpoint, *docs_page.register(target, self.prefix)))

    def settings(self) -> dict[str, Any]:
        """This API's ``BACKO_*`` settings, as read from the current app."""
        state = current_app.extensions.get("backo_restful", {}).get(id(self))
        return state if state is not None else dict(CONFIG_DEFAULTS)

    def routes(self) -> list[Route]:
        """The URL rules of the current app by which this API serves collections,
        sorted by rule."""
        result = []
        for rule, view_class in self._rules():
            if not (isinstance(view_class, type) and issubclass(view_class, Resource)):
                continue
            if view_class.model:
                kind = "item" if "id_" in rule.arguments else "collection"
                if view_class.route != "model":
                    kind += f"_{view_class.route}"
                result.append(Route(rule.rule, view_class.model, kind))
        return sorted(result, key=lambda route: route.rule)

    def description_rules(self) -> list[str]:
        """The URL rules of the current app by which this API serves the model's
        description (``/_meta`` on its prefix)."""
        return [rule.rule for rule, view_class in self._rules() if view_class is ModelDescription]

    def health_rules(self) -> list[str]:
        """The URL rules of the current app by which this API serves its health
        check (``/_health`` on its prefix)."""
        return [rule.rule for rule, view_class in self._rules() if view_class is Health]

    def _rules(self) -> Iterator[tuple[Any, Any]]:
        """The current app's URL rules of this API, with their view classes."""
        for rule in current_app.url_map.iter_rules():
            if rule.endpoint.rpartition(".")[2] in self.endpoints:
                view = current_app.view_functions.get(rule.endpoint)
                yield rule, getattr(view, "view_class", None)

    def _openapi_json(self) -> Response:
        return Response(json.dumps(openapi_document(self)) + "\n", mimetype="application/json")

    def add_resource(self, resource: type, *urls: str, **kwargs: Any) -> None:
        """Add ``resource``; a :class:`Resource` with a ``model`` also gets
        ``<url>/<id_>``, the routes of its model's actions
        (``<url>[/<id_>]/_actions/<action>``) and of its self-description
        (``<url>[/<id_>]/_meta`` and ``<url>[/<id_>]/_check``)."""
        if not (isinstance(resource, type) and issubclass(resource, Resource) and resource.model):
            super().add_resource(resource, *urls, **kwargs)
            return
        resource_kwargs = dict(kwargs.get("resource_class_kwargs") or {})
        resource_kwargs["backo_api"] = self
        kwargs["resource_class_kwargs"] = resource_kwargs
        bases = [url.rstrip("/") for url in urls]
        routes = [
            u
            for url, base in zip(urls, bases, strict=True)
            for u in (url, f"{base}/<backo_id:id_>")
        ]
        super().add_resource(resource, *routes, **kwargs)
        endpoint = kwargs.get("endpoint") or resource.__name__.lower()
        for route, suffix, special in special_resources(resource):
            kwargs["endpoint"] = f"{endpoint}_{route}"
            items = ("", "/<backo_id:id_>")
            paths = (f"{base}{item}/{suffix}" for base in bases for item in items)
            super().add_resource(special, *paths, **kwargs)

    def handle_error(self, e: Exception) -> Response:
        """Turn any exception on the API's routes into the shared JSON error body.

        The server's own failures are sent to Flask's ``got_request_exception``
        (error trackers listen there), as Flask does: the client's errors are not.
        """
        if not isinstance(e, (ClientError, HTTPException)):
            got_request_exception.send(current_app._get_current_object(), exception=e)  # type: ignore[attr-defined]
        if not isinstance(e, (BackoError, HTTPException)) and current_app.config.get(
            "PROPAGATE_EXCEPTIONS"
        ):
            raise e
        headers: dict[str, str] = {}
        if isinstance(e, BackoError):
            body, status, headers = basic.error_response(e)
        elif isinstance(e, HTTPException):
            status = e.code or 500
            body = {
                "error": {
                    "code": _http_code(e),
                    "message": e.description or e.name,
                    "details": {},
                }
            }
            allow = _allowed_here(e)
            if allow:
                headers["Allow"] = allow
                body["error"]["details"]["allowed"] = [m.strip() for m in allow.split(",")]
        else:
            current_app.log_exception((type(e), e, e.__traceback__))  # type: ignore[arg-type]
            status = 500
            body = {
                "error": {
                    "code": "INTERNAL_ERROR",
                    "message": "The server failed to handle the request.",
                    "details": {},
                }
            }
        if isinstance(e, BackoError) and e.status >= 500:
            current_app.log_exception((type(e), e, e.__traceback__))  # type: ignore[arg-type]
        response = self.make_response(body, status, headers, fallback_mediatype="application/json")
        if status == 401:
            response = self.unauthorized(response)
        return response


def _allowed_here(error: HTTPException) -> str | None:
    """The ``Allow`` header of a 405: what the matched route really serves."""
    allow = error.get_response().headers.get("Allow")
    if not allow:
        return None
    try:
        adapter = current_app.create_url_adapter(request)
        rule, args = adapter.match(  # type: ignore[union-attr]
            method=allow.split(",")[0].strip(), return_rule=True
        )
    except HTTPException:
        return allow
    view_class = getattr(current_app.view_functions.get(rule.endpoint), "view_class", None)
    methods = allowed_methods(view_class, "id_" in args)
    return ", ".join(methods) if methods else allow


def _unauthorized(error: Unauthorized) -> Response:
    body, status, headers = basic.error_response(error)
    return Response(json.dumps(body) + "\n", status, headers, mimetype="application/json")


def _http_code(error: HTTPException) -> str:
    name = error.name or "Error"
    if error.code == 404:
        return "NOT_FOUND"
    if isinstance(error, RequestEntityTooLarge):  # Flask's MAX_CONTENT_LENGTH
        return BodyTooLarge.code
    return re.sub(r"[^A-Z0-9]+", "_", name.upper()).strip("_")

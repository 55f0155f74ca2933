"""Flask-RESTful integration: drop-in :class:`Api` and :class:`Resource`.

Replace ``flask_restful.Api`` and ``flask_restful.Resource`` with these and give a
resource a ``model``; ``api.add_resource(CookieResource, "/cookie")`` then serves
``/cookie`` (GET, POST) and ``/cookie/<id>`` (GET, PUT, PATCH, DELETE). Every error
on the API's routes, in debug and production alike, is the shared JSON body.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import flask_restful
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    got_request_exception,
    request,
    url_for,
)
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.routing import BaseConverter

from ..access import Access
from ..auth import JWTAuth, User
from ..engine import Engine, default_engine
from ..exceptions import (
    BackoError,
    BodyTooLarge,
    ClientError,
    DeclarationError,
    InvalidBody,
    InvalidJSON,
    MethodNotAllowed,
    Unauthorized,
    UnknownParameter,
    UnsupportedMediaType,
)
from ..model import Collection
from ..query import COUNT_MODES, parse_args, parse_json
from . import basic, docs_page
from .cli import APIS_KEY
from .cli import backo as backo_commands
from .flask_auth import caller_of
from .flask_logging import log_requests
from .openapi import Route, openapi_document

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
    "BACKO_MAX_BODY": DEFAULT_MAX_BODY,
    "BACKO_OPENAPI": False,
    "BACKO_OPENAPI_TITLE": None,
    "BACKO_OPENAPI_VERSION": "1.0.0",
    "BACKO_OPENAPI_SERVERS": (),
}

_COLLECTION_METHODS = ["GET", "HEAD", "OPTIONS", "POST"]
_ITEM_METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "PUT"]

#: The routes each model resource gets besides its own: (kind, URL suffix,
#: methods). Each is served by a subclass of the resource (see ``_HANDLERS``).
_SPECIAL_ROUTES = (
    ("actions", "_actions/<action>", ("OPTIONS", "POST")),
    ("meta", "_meta", ("GET", "HEAD", "OPTIONS", "POST")),
    ("check", "_check", ("OPTIONS", "POST")),
)

#: (route kind, item route) -> the methods it serves, for ``Allow``.
_ALLOWED = {
    ("model", False): _COLLECTION_METHODS,
    ("model", True): _ITEM_METHODS,
    ("actions", False): ["OPTIONS", "POST"],
    ("actions", True): ["OPTIONS", "POST"],
    ("meta", False): ["GET", "HEAD", "OPTIONS", "POST"],
    ("meta", True): ["GET", "HEAD", "OPTIONS"],
    ("check", False): ["OPTIONS", "POST"],
    ("check", True): ["OPTIONS", "POST"],
}


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
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("catch_all_404s", True)
        self.engine = engine
        self.auth = auth
        self.openapi = openapi
        super().__init__(app, **kwargs)
        self.add_resource(
            ModelDescription,
            "/_meta",
            endpoint=f"backo_meta_{id(self)}",
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
        for route, suffix, methods in _SPECIAL_ROUTES:
            special = type(
                f"{resource.__name__}_{route}",
                (resource,),
                {"methods": set(methods), "route": route, **_HANDLERS[route]},
            )
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


def allowed_methods(view_class: Any, item: bool) -> list[str] | None:
    """The methods a route of this API serves (None: not one of its own), for
    ``Allow``: ``item`` for an item route."""
    if view_class is ModelDescription:
        return _MODEL_META_ALLOW.split(", ")
    if isinstance(view_class, type) and issubclass(view_class, Resource) and view_class.model:
        return _ALLOWED[view_class.route, item]
    return None


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


class Resource(flask_restful.Resource):
    """A ``flask_restful.Resource`` serving the collection named by ``model``.

    Subclasses may add or override methods like any Flask-RESTful resource.
    """

    #: The collection served, from ``DataModel.object(name)``.
    model: Collection | None = None
    #: What the route serves: ``model`` (the collection and its objects),
    #: ``actions`` (``<url>[/<id_>]/_actions/<action>``), ``meta`` or ``check``.
    route = "model"

    def __init__(self, *args: Any, backo_api: Api | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.backo_api = backo_api

    @property
    def engine(self) -> Engine:
        """The engine serving this resource."""
        engine = self.backo_api.engine if self.backo_api else None
        return engine or default_engine()

    def caller(self) -> User:
        """The caller of this request (authenticated once per request).

        :raises Unauthorized: for a bad token, or none when the API requires one.
        """
        return caller_of(self.backo_api.auth if self.backo_api else None)

    def _allowed(self, *actions: str) -> User:
        """The caller, once the collection's permissions let them do one of
        ``actions`` to some object: a refusal comes before any parameter, the
        body's type or the body is looked at, so none of them tells a refused
        caller anything.

        :raises Unauthorized: (anonymous caller) or :class:`Forbidden`.
        """
        auth = self.caller()
        self.engine.authorize(self._collection().name, *actions, auth=auth)
        return auth

    def _settings(self) -> dict[str, Any]:
        return self.backo_api.settings() if self.backo_api else dict(CONFIG_DEFAULTS)

    def _collection(self) -> Collection:
        if self.model is None:
            raise TypeError(f"{type(self).__name__}.model is not set")
        return self.model

    def get(self, id_: str | None = None) -> Any:
        collection = self._collection()
        auth = self._allowed("read")
        settings = self._settings()
        max_depth = settings["BACKO_MAX_DEPTH"]
        # Fields the caller may not read do not exist for them, as parameters too.
        hidden = Access(self.engine.model, auth).hidden
        params = parse_args(collection, request.args.lists(), max_depth=max_depth, hidden=hidden)
        params.setdefault("count", settings["BACKO_COUNT"])
        return basic.get(
            collection.name,
            id_,
            engine=self.engine,
            max_depth=max_depth,
            max_limit=settings["BACKO_MAX_LIMIT"],
            max_objects=settings["BACKO_MAX_OBJECTS"],
            count_limit=settings["BACKO_COUNT_LIMIT"],
            url=request.script_root + request.path,
            query={key: value for key, value in request.args.items()},
            auth=auth,
            **params,
        )

    def post(self, id_: str | None = None) -> Any:
        if id_ is not None:
            raise MethodNotAllowed("POST", _ITEM_METHODS)
        collection = self._collection()
        auth = self._allowed("create")
        self._no_query_parameters()
        settings = self._settings()
        body, status, headers = basic.post(
            collection.name,
            _json_body(settings["BACKO_MAX_BODY"]),
            engine=self.engine,
            auth=auth,
            max_batch=settings["BACKO_MAX_BATCH"],
        )
        if status == 201 and isinstance(body, dict):
            # The item route is always the collection's URL + "/<id_>".
            headers["Location"] = f"{request.script_root}{request.path.rstrip('/')}/{body['id']}"
        return body, status, headers

    def put(self, id_: str | None = None) -> Any:
        return self._write("PUT", id_)

    def patch(self, id_: str | None = None) -> Any:
        return self._write("PATCH", id_)

    def delete(self, id_: str | None = None) -> Any:
        if id_ is None:
            raise MethodNotAllowed("DELETE", _COLLECTION_METHODS)
        auth = self._allowed("delete")
        self._no_query_parameters()
        body, status, headers = basic.delete(
            self._collection().name, id_, engine=self.engine, auth=auth
        )
        if status == 204:
            return Response(status=204)
        return body, status, headers

    def act(self, action: str, id_: str | None = None) -> Any:
        """``POST <url>[/<id_>]/_actions/<action>``: run an action of the model,
        its arguments the JSON body (none without a body)."""
        collection = self._collection()
        auth = self.caller()
        self.engine.authorize_action(collection.name, action, item=id_ is not None, auth=auth)
        self._no_query_parameters()
        args = None
        if request.is_json or request.content_length or "Transfer-Encoding" in request.headers:
            args = _json_body(self._settings()["BACKO_MAX_BODY"])
        return basic.act(collection.name, action, id_=id_, args=args, engine=self.engine, auth=auth)

    def describe(self, id_: str | None = None) -> Any:
        """``GET <url>[/<id_>]/_meta``: the collection as the caller sees it,
        with their rights (on object ``id_``); ``POST <url>/_meta``: on the
        draft object the JSON body holds."""
        auth = self.caller()
        self._no_query_parameters()
        draft = None
        if request.method == "POST":
            if id_ is not None:
                raise MethodNotAllowed("POST", _ALLOWED["meta", True])
            draft = _json_body(self._settings()["BACKO_MAX_BODY"])
            if draft is None:
                draft = {}
        name = self._collection().name
        return basic.describe(name, obj=draft, id_=id_, engine=self.engine, auth=auth)

    def check(self, id_: str | None = None) -> Any:
        """``POST <url>[/<id_>]/_check`` with ``{"item": {...}, "path": "field"}``:
        whether the draft would be accepted (as a create, or a PATCH of ``id_``)."""
        collection = self._collection()
        auth = self._allowed("create") if id_ is None else self._allowed("update")
        self._no_query_parameters()
        body = _json_body(self._settings()["BACKO_MAX_BODY"])
        item, path = _check_body(body)
        return basic.check(collection.name, item, path=path, id_=id_, engine=self.engine, auth=auth)

    def options(self, id_: str | None = None, action: str | None = None) -> Response:
        """Answer with the methods this route serves (they differ for collection and item)."""
        allowed = _ALLOWED[self.route, id_ is not None]
        return Response(status=200, headers={"Allow": ", ".join(allowed)})

    def _write(self, method: str, id_: str | None) -> Any:
        if id_ is None:
            raise MethodNotAllowed(method, _COLLECTION_METHODS)
        auth = self._allowed("update", "create") if method == "PUT" else self._allowed("update")
        self._no_query_parameters()
        call = basic.put if method == "PUT" else basic.patch
        settings = self._settings()
        data = _json_body(settings["BACKO_MAX_BODY"])
        body, status, headers = call(
            self._collection().name,
            id_,
            data,
            engine=self.engine,
            auth=auth,
            max_batch=settings["BACKO_MAX_BATCH"],
        )
        if status == 201 and isinstance(body, dict):
            headers["Location"] = self._location(body["id"])
        return body, status, headers

    def _location(self, id_: int) -> str:
        values = dict(request.view_args or {})
        values["id_"] = id_
        return url_for(request.endpoint, **values)  # type: ignore[arg-type]

    @staticmethod
    def _no_query_parameters() -> None:
        if request.args:
            name = next(iter(request.args))
            raise UnknownParameter(
                f"Unknown query parameter {name!r}: writes take none.", {"parameter": name}
            )


class IdConverter(BaseConverter):
    """The ``<id_>`` of an item route: any segment but those starting with
    ``_``, which name the routes of the collection (``_meta``, ``_check``,
    ``_actions``), so a method they do not serve is a 405 there."""

    regex = "[^/_][^/]*"


class ModelDescription(flask_restful.Resource):
    """``GET /_meta`` on the API's prefix: the model as the caller sees it."""

    def __init__(self, *, backo_api: Api) -> None:
        super().__init__()
        self.backo_api = backo_api

    def get(self) -> Any:
        auth = caller_of(self.backo_api.auth)
        Resource._no_query_parameters()
        return basic.describe(engine=self.backo_api.engine or default_engine(), auth=auth)

    def options(self) -> Response:
        return Response(status=200, headers={"Allow": _MODEL_META_ALLOW})


_MODEL_META_ALLOW = "GET, HEAD, OPTIONS"


#: The methods of the resource subclasses serving each special route.
_HANDLERS: dict[str, dict[str, Any]] = {
    "actions": {"post": Resource.act},
    "meta": {"get": Resource.describe, "post": Resource.describe},
    "check": {"post": Resource.check},
}


def _check_body(body: Any) -> tuple[Any, Any]:
    """The draft and the path of a ``_check`` request's body.

    :raises InvalidBody: for a body that is not ``{"item": {...}, "path": ...}``.
    """
    if not isinstance(body, dict) or "item" not in body:
        raise InvalidBody('The body of _check is {"item": {...}, "path": "field"}.')
    unknown = sorted(set(body) - {"item", "path"})
    if unknown:
        raise InvalidBody(
            f"Unknown key {unknown[0]!r} in the body of _check: it takes item and path.",
            {"key": unknown[0]},
        )
    path = body.get("path")
    if path is not None and not isinstance(path, str):
        raise InvalidBody("path is the name of a field.", {"key": "path"})
    return body["item"], path


def _json_body(max_body: int) -> Any:
    """The request's JSON body, of at most ``max_body`` bytes."""
    if not request.is_json:
        raise UnsupportedMediaType()
    length = request.content_length
    if length is not None and length > max_body:
        raise BodyTooLarge(max_body)
    if length is None:  # a chunked body: read no more than allowed, plus one byte
        raw = request.stream.read(max_body + 1)
        if len(raw) > max_body:
            raise BodyTooLarge(max_body)
    else:
        raw = request.get_data(cache=True)
    try:
        return parse_json(raw)
    except (ValueError, RecursionError):
        raise InvalidJSON("The request body is not valid JSON.") from None

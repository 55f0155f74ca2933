"""The :class:`Resource` serving one collection over Flask-RESTful, and the
routes each gets besides its own: actions, ``_meta`` and ``_check``."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import flask_restful
from flask import Response, request, stream_with_context, url_for
from werkzeug.routing import BaseConverter

from ..access import Access
from ..auth import User
from ..engine import Engine, default_engine
from ..engine.patching import MEDIA_TYPE as JSON_PATCH
from ..exceptions import (
    BodyTooLarge,
    InvalidBody,
    InvalidJSON,
    InvalidPatch,
    MethodNotAllowed,
    UnknownParameter,
    UnsupportedMediaType,
)
from ..model import Collection
from ..query import RESERVED, parse_args, parse_json
from . import basic, exports
from .conditional import parse_tags, write_conditions
from .flask_auth import caller_of
from .health import HEALTH_ALLOW, Health
from .settings import CONFIG_DEFAULTS

if TYPE_CHECKING:
    from .flask import Api

_COLLECTION_METHODS = ["DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST"]
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


def allowed_methods(view_class: Any, item: bool) -> list[str] | None:
    """The methods a route of this API serves (None: not one of its own), for
    ``Allow``: ``item`` for an item route."""
    if view_class is ModelDescription:
        return _MODEL_META_ALLOW.split(", ")
    if view_class is Health:
        return HEALTH_ALLOW.split(", ")
    if isinstance(view_class, type) and issubclass(view_class, Resource) and view_class.model:
        return _ALLOWED[view_class.route, item]
    return None


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
        if id_ is None and _may_export(request.environ.get("HTTP_ACCEPT")):
            media_type = exports.negotiate(request.accept_mimetypes)
            if media_type is not None:
                return self._export(media_type, auth, settings, params)
        params.setdefault("count", settings["BACKO_COUNT"])
        body, status, headers = basic.get(
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
            if_none_match=parse_tags(request.headers.get("If-None-Match")),
            **params,
        )
        if id_ is None:  # a list's answer depends on Accept (JSON or an export)
            headers["Vary"] = "Accept"
        if status == 304:
            return Response(status=304, headers=headers)
        return body, status, headers

    def _export(
        self, media_type: str, auth: User, settings: dict[str, Any], params: dict[str, Any]
    ) -> Any:
        """The list as an export of ``media_type`` (see :mod:`.exports`), streamed."""
        params.pop("count", None)  # an export counts nothing
        body, status, headers = exports.export(
            self._collection().name,
            media_type,
            engine=self.engine,
            max_depth=settings["BACKO_MAX_DEPTH"],
            page_size=settings["BACKO_MAX_LIMIT"],
            max_objects=settings["BACKO_MAX_OBJECTS"],
            auth=auth,
            **params,
        )
        if status != 200:
            return body, status, headers
        headers["Vary"] = "Accept"
        if request.method == "HEAD":
            return Response(iter(()), status=200, headers=headers)  # no Content-Length
        return Response(stream_with_context(body), status=200, headers=headers)

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
        if id_ is None:
            return self._bulk("PATCH")
        return self._write("PATCH", id_)

    def delete(self, id_: str | None = None) -> Any:
        if id_ is None:
            return self._bulk("DELETE")
        auth = self._allowed("delete")
        self._no_query_parameters()
        conditions = write_conditions(request.headers, required=self._if_match_required())
        body, status, headers = basic.delete(
            self._collection().name, id_, engine=self.engine, auth=auth, **conditions
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
        conditions = {}
        if id_ is not None:
            conditions = write_conditions(request.headers, required=self._if_match_required())
        args = None
        if request.is_json or request.content_length or "Transfer-Encoding" in request.headers:
            args = _json_body(self._settings()["BACKO_MAX_BODY"])
        return basic.act(
            collection.name, action, id_=id_, args=args, engine=self.engine, auth=auth, **conditions
        )

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
        call: Any = basic.put if method == "PUT" else basic.patch
        settings = self._settings()
        conditions = write_conditions(
            request.headers, required=settings["BACKO_REQUIRE_IF_MATCH"], put=method == "PUT"
        )
        data = _json_body(settings["BACKO_MAX_BODY"], patch=method == "PATCH")
        if method == "PATCH":
            _check_patch_body(self._collection(), data)
        body, status, headers = call(
            self._collection().name,
            id_,
            data,
            engine=self.engine,
            auth=auth,
            max_batch=settings["BACKO_MAX_BATCH"],
            **conditions,
        )
        if status == 201 and isinstance(body, dict):
            headers["Location"] = self._location(body["id"])
        return body, status, headers

    def _if_match_required(self) -> bool:
        return bool(self._settings()["BACKO_REQUIRE_IF_MATCH"])

    def _bulk(self, method: str) -> Any:
        """``PATCH <url>?<filters>`` (a JSON object of fields) or ``DELETE
        <url>?<filters>``: change or delete every object the filters match."""
        collection = self._collection()
        auth = self._allowed("update" if method == "PATCH" else "delete")
        for name in request.args:
            if name in RESERVED and name != "filter":
                raise UnknownParameter(
                    f"Query parameter {name!r} is not a filter: a bulk {method} takes "
                    "filters only.",
                    {"parameter": name},
                )
        hidden = Access(self.engine.model, auth).hidden
        filter_ = parse_args(collection, request.args.lists(), hidden=hidden).get("filter_")
        settings = self._settings()
        kwargs = dict(engine=self.engine, auth=auth, max_affected=settings["BACKO_MAX_AFFECTED"])
        if method == "DELETE":
            return basic.delete_many(collection.name, filter_=filter_, **kwargs)
        if request.mimetype == "application/json-patch+json":
            raise UnsupportedMediaType(
                "A bulk PATCH takes a JSON object of fields (Content-Type: application/json), "
                "not a JSON Patch."
            )
        data = _json_body(settings["BACKO_MAX_BODY"])
        return basic.patch_many(collection.name, data, filter_=filter_, **kwargs)

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
_PATCH_MEDIA_TYPES = (
    f"The request body must be JSON (Content-Type: application/json, or {JSON_PATCH} "
    "for a list of JSON Patch operations)."
)


#: The methods of the resource subclasses serving each special route.
_HANDLERS: dict[str, dict[str, Any]] = {
    "actions": {"post": Resource.act},
    "meta": {"get": Resource.describe, "post": Resource.describe},
    "check": {"post": Resource.check},
}


def special_resources(resource: type[Resource]) -> Iterator[tuple[str, str, type[Resource]]]:
    """The subclasses of ``resource`` serving its special routes: ``(kind, URL
    suffix, class)`` for its actions, ``_meta`` and ``_check``."""
    for route, suffix, methods in _SPECIAL_ROUTES:
        handlers = {"methods": set(methods), "route": route, **_HANDLERS[route]}
        yield route, suffix, type(f"{resource.__name__}_{route}", (resource,), handlers)


def _may_export(accept: str | None) -> bool:
    """Whether an ``Accept`` header names an export type (a cheap look before
    the q-values are weighed)."""
    return accept is not None and ("csv" in accept or "ndjson" in accept)


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


def _check_patch_body(collection: Collection, body: Any) -> None:
    """Refuse a PATCH body that its media type does not take: a JSON Patch
    document is an array of operations; an ``application/json`` body, an object."""
    if request.mimetype == JSON_PATCH:
        if not isinstance(body, list):
            raise InvalidPatch(f"A JSON Patch document ({JSON_PATCH}) is an array of operations.")
    elif isinstance(body, list):
        raise InvalidBody(
            f"The body must be a JSON object of {collection.name} fields "
            f"(a list of JSON Patch operations is sent as {JSON_PATCH})."
        )


def _json_body(max_body: int, *, patch: bool = False) -> Any:
    """The request's JSON body, of at most ``max_body`` bytes; ``patch``: the
    body of a PATCH, which may be a JSON Patch document too."""
    if not request.is_json:
        raise UnsupportedMediaType(_PATCH_MEDIA_TYPES if patch else None)
    if request.mimetype == JSON_PATCH and not patch:
        raise UnsupportedMediaType(f"{JSON_PATCH} is for PATCH only: send this body as JSON.")
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

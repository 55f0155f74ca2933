"""The OpenAPI 3.1 document of an :class:`~backo_restful.api.flask.Api`.

:func:`openapi_document` describes every route the API serves: each
collection's list and item routes with every method (``HEAD`` and ``OPTIONS``
too), its actions, the query parameters of reads (flat filters per field and
operator, ``filter``, ``sort``, ``fields``, paging, ``count``, ``view``), the
bodies of writes, the headers, the error responses with the codes each status
carries, and the bearer-JWT security scheme of an API with ``auth``. The model's
schemas come from :mod:`.openapi_schemas` through apispec's marshmallow plugin.

A new kind of route is one more entry of
:data:`~.openapi_operations.ROUTE_KINDS`: a function that yields the operations
of its paths, built with :class:`Builder`'s helpers.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin

from ..access import unguarded
from ..engine import default_engine
from ..exceptions import (
    BackoError,
    EventDepthExceeded,
    Forbidden,
    InternalError,
    InvalidToken,
    StorageConflict,
    StorageError,
    StorageUnavailable,
    Unauthorized,
)
from ..lifecycle import Action
from ..model import Collection
from . import openapi_schemas as schemas
from .openapi_describe import DESCRIBE_KINDS, health_description, model_description
from .openapi_operations import ROUTE_KINDS

if TYPE_CHECKING:
    from .flask import Api

#: The OpenAPI version of the document.
OPENAPI_VERSION = "3.1.0"

_ERRORS_SERVER = {
    500: (BackoError, InternalError, EventDepthExceeded, StorageError),
    503: (StorageUnavailable, StorageConflict),
}
_REASONS = {
    400: "Bad request", 401: "Unauthorized", 403: "Forbidden", 404: "Not found",
    409: "Conflict", 412: "Precondition failed", 413: "Body too large",
    415: "Unsupported media type", 422: "Validation failed", 428: "Precondition required",
    500: "Server error", 503: "Storage unavailable",
}  # fmt: skip

#: Headers of the document: name -> (description, schema).
HEADERS: dict[str, tuple[str, dict[str, Any]]] = {
    "X-Request-Id": ("The request's id, as logged (the client's own, if it sent one).", {}),
    "Location": ("The URL of the object created.", {"type": "string"}),
    "ETag": (
        "The entity tag of the answer: strong for an object (send it in If-Match "
        "to write it, in If-None-Match to read it again), weak for a page.",
        {"type": "string"},
    ),
    "Link": (
        "RFC 8288 links to the first, prev, next and last pages; follow them "
        "rather than building them.",
        {"type": "string"},
    ),
    "X-Total-Count": (
        "How many objects match (absent with count=none).",
        {"type": "integer", "minimum": 0},
    ),
    "X-Total-Count-Method": (
        "How X-Total-Count was found.",
        {"type": "string", "enum": ["exact", "estimate", "at-least"]},
    ),
    "Allow": ("The methods this route serves.", {"type": "string"}),
    "WWW-Authenticate": ("The Bearer challenge.", {"type": "string"}),
    "Retry-After": ("Seconds to wait before trying again.", {"type": "integer", "minimum": 0}),
}

_JSON = "application/json"
_RULE_PART = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


@dataclass(frozen=True)
class Route:
    """One URL rule of an API that serves a collection.

    :param rule: the rule as Flask has it (``/v1/cookie/<id_>``).
    :param kind: ``collection`` (``/cookie``) or ``item`` (``/cookie/<id_>``),
        each alone or followed by ``_actions``, ``_meta`` or ``_check``.
    """

    rule: str
    collection: Collection
    kind: str


def openapi_document(api: Api, app: Any = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``api``, as served at ``<prefix>/openapi.json``.

    :param app: the Flask app to describe ``api`` on; None: the current app
        (in an app context).
    """
    if app is not None:
        with app.app_context():
            return openapi_document(api)
    settings = api.settings()
    engine = api.engine or default_engine()
    info: dict[str, Any] = {}
    servers = settings["BACKO_OPENAPI_SERVERS"]
    if servers:
        info["servers"] = [{"url": url} if isinstance(url, str) else url for url in servers]
    plugin = MarshmallowPlugin()
    spec = APISpec(
        title=settings["BACKO_OPENAPI_TITLE"] or engine.model.name,
        version=settings["BACKO_OPENAPI_VERSION"],
        openapi_version=OPENAPI_VERSION,
        plugins=[plugin],
        **info,
    )
    for function in schemas.CONVERTER_FUNCTIONS:
        plugin.converter.add_attribute_function(function)  # type: ignore[union-attr]
    builder = Builder(spec, plugin.converter, settings, api.auth)
    for rule in api.description_rules():
        model_description(builder, rule)
    for rule in api.health_rules():
        health_description(builder, rule)
    for route in api.routes():
        builder.add(route)
    document = spec.to_dict()
    # The usual order: what it is, then the paths, then what they refer to.
    order = ("openapi", "info", "servers", "security", "tags", "paths", "components")
    return {key: document[key] for key in order if key in document} | document


#: Every kind of route: kind -> ``function(builder, route)`` yielding ``(path, operations)``.
_KINDS = {**ROUTE_KINDS, **DESCRIBE_KINDS}


class Builder:
    """Adds the schemas, paths and operations of an API's routes to ``spec``."""

    def __init__(self, spec: APISpec, converter: Any, settings: dict[str, Any], auth: Any):
        self.spec = spec
        self.converter = converter
        self.settings = settings
        self.auth = auth
        self.collections: set[str] = set()
        self.operation_ids: set[str] = set()
        spec.components.schema("Error", schema=schemas.Error)
        spec.components.schema("JSONPatch", schemas.JSON_PATCH)
        for name, (description, schema) in HEADERS.items():
            spec.components.header(name, {"description": description, "schema": schema})
        if auth is not None:
            self._security(auth)

    def _security(self, auth: Any) -> None:
        bearer = {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
        self.spec.components.security_scheme("bearer", bearer)
        requirements: list[dict[str, list[str]]] = [{"bearer": []}]
        if auth.cookie:
            cookie = {"type": "apiKey", "in": "cookie", "name": auth.cookie}
            self.spec.components.security_scheme("cookie", cookie)
            requirements.append({"cookie": []})
        if not auth.required:
            requirements.append({})  # anonymous callers: the permissions decide
        self.spec.options["security"] = requirements

    # -- routes -----------------------------------------------------------------

    def add(self, route: Route) -> None:
        """Add ``route``'s path (or paths: one per action) and operations."""
        self._collection(route.collection)
        for path, operations in _KINDS[route.kind](self, route):
            self.spec.path(path=path, operations=operations)

    def _collection(self, collection: Collection) -> None:
        """Add the schemas of ``collection`` (once), and those of the
        collections its relations reach."""
        if collection.name in self.collections:
            return
        self.collections.add(collection.name)
        names = schemas.Names.of(collection)
        components = self.spec.components
        components.schema(names.read, schema=schemas.read_schema(collection))
        create = schemas.create_schema(collection, name=names.create)
        components.schema(names.create, schema=create)
        components.schema(names.patch, schema=create(partial=True))
        components.schema(names.filter, schema=schemas.filter_schema(collection))
        for relation in collection.relations.values():
            self._collection(relation.target)
            nested = schemas.create_schema(
                relation.target, name=schemas.nested_name(relation), leave_out=relation.reverse.name
            )
            components.schema(schemas.nested_name(relation), schema=nested)
        self.spec.tag({"name": collection.name, "description": f"The {collection.name} objects."})

    def path(self, route: Route, **values: str) -> str:
        """The OpenAPI path of ``route``'s rule (see :meth:`rule_path`)."""
        return self.rule_path(route.rule, **values)

    @staticmethod
    def rule_path(rule: str, **values: str) -> str:
        """The OpenAPI path of a Flask rule: ``<id_>`` is ``{id}``, other
        variables are given in ``values`` or stay variables."""

        def part(match: re.Match[str]) -> str:
            name = match.group(1)
            return values.get(name, "{id}" if name == "id_" else "{" + name + "}")

        return _RULE_PART.sub(part, rule)

    def path_parameters(self, route: Route) -> list[dict[str, Any]]:
        """The parameters of ``route``'s rule: the id, and any of the app's own."""
        result = []
        for name in _RULE_PART.findall(route.rule):
            if name == "action":
                continue
            if name == "id_":
                result.append(
                    {
                        "name": "id",
                        "in": "path",
                        "required": True,
                        "description": f"The id of a {route.collection.name}.",
                        "schema": schemas.id_schema(),
                    }
                )
            else:
                result.append(
                    {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
                )
        return result

    def operation_id(self, verb: str, route: Route) -> str:
        """A unique id: ``list_cookie``, then ``list_cookie_2`` for a second URL."""
        return self.unique_id(f"{verb}_{route.collection.name}")

    def unique_id(self, base: str) -> str:
        """``base``, or ``base_2``... when the document has it already."""
        name, count = base, 1
        while name in self.operation_ids:
            count += 1
            name = f"{base}_{count}"
        self.operation_ids.add(name)
        return name

    def operation(self, verb: str, route: Route, summary: str, **rest: Any) -> dict[str, Any]:
        """An operation on ``route``'s path: its id, summary, tag and path
        parameters (``rest`` adds to them or replaces them)."""
        return {
            "operationId": self.operation_id(verb, route),
            "summary": summary,
            "tags": [route.collection.name],
            "parameters": self.path_parameters(route),
            **rest,
        }

    def guarded(self, collection: Collection | None, action: Action | None = None) -> bool:
        """Whether a caller may be refused (401, 403) on ``collection`` (None:
        on the model's description, for a bad token only)."""
        declared = action is not None and action.permission is not None
        guarded = collection is not None and not unguarded(collection)
        return self.auth is not None or declared or guarded

    # -- responses --------------------------------------------------------------

    def responses(
        self,
        collection: Collection | None,
        success: dict[str, Any],
        errors: dict[int, Iterable[type[BackoError]]],
        *,
        body: bool = True,
        action: Action | None = None,
    ) -> dict[str, Any]:
        """``success`` (status -> response) and the error responses: ``errors``,
        401 and 403 where a caller may be refused, 500 and 503 (no body for HEAD)."""
        result = dict(success)
        table = dict(errors)
        if self.guarded(collection, action):
            table[401] = (Unauthorized, InvalidToken)
            table[403] = (Forbidden,)
        table.update(_ERRORS_SERVER)
        for status in sorted(table):
            result[str(status)] = self.error(status, table[status], body=body)
        return result

    def error(
        self, status: int, classes: Iterable[type[BackoError]], *, body: bool = True
    ) -> dict[str, Any]:
        """The response of an error ``status`` whose code is one of ``classes``'."""
        codes = list(dict.fromkeys(error.code for error in classes))
        headers = {"X-Request-Id": self.header("X-Request-Id", required=True)}
        if status == 401:
            headers["WWW-Authenticate"] = self.header("WWW-Authenticate", required=True)
        if status == 503:
            headers["Retry-After"] = self.header("Retry-After", required=True)
        response: dict[str, Any] = {
            "description": f"{_REASONS[status]}: `error.code` is "
            + ", ".join(f"`{code}`" for code in codes)
            + " (or a code of the application's own).",
            "headers": headers,
            "x-error-codes": codes,
        }
        if body:
            response["content"] = {_JSON: {"schema": self.ref("Error")}}
        return response

    def ok(
        self,
        description: str,
        schema: dict[str, Any] | None,
        *,
        headers: Iterable[str] = (),
        required: Iterable[str] = (),
        links: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A success response (``schema`` None: no body)."""
        all_headers = {"X-Request-Id": self.header("X-Request-Id", required=True)}
        for name in headers:
            all_headers[name] = self.header(name, required=name in required)
        response: dict[str, Any] = {"description": description, "headers": all_headers}
        if schema is not None:
            response["content"] = {_JSON: {"schema": schema}}
        if links:
            response["links"] = links
        return response

    def header(self, name: str, *, required: bool) -> dict[str, Any]:
        reference = self.spec.components.get_ref("header", name)
        # A reference cannot say "required": only an inline header can.
        return {**self.spec.components.headers[name], "required": True} if required else reference

    def ref(self, name: str) -> dict[str, Any]:
        return dict(self.spec.components.get_ref("schema", name))

    def shown(self, collection: Collection) -> dict[str, Any]:
        """An object of ``collection`` as a read shows it: an id at depth 0."""
        return {"oneOf": [schemas.id_schema(), self.ref(schemas.Names.of(collection).read)]}

    def body(self, schema: dict[str, Any], *, required: bool = True) -> dict[str, Any]:
        return {"required": required, "content": {_JSON: {"schema": schema}}}

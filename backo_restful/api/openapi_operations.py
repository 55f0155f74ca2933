"""The operations of each kind of route in the OpenAPI document (see :mod:`.openapi`).

Each function of :data:`ROUTE_KINDS` yields ``(path, operations)`` for one
:class:`~.openapi.Route`, with the helpers of :class:`~.openapi.Builder`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from ..engine.patching import MEDIA_TYPE
from ..exceptions import (
    BackoError,
    BodyTooLarge,
    Conflict,
    ConstraintViolation,
    InvalidBody,
    InvalidCursor,
    InvalidFilter,
    InvalidId,
    InvalidJSON,
    InvalidParameter,
    InvalidPatch,
    InvalidPattern,
    InvalidSort,
    InvalidValue,
    LimitExceeded,
    NestingTooDeep,
    NotEmpty,
    NotFound,
    PatchTestFailed,
    PatternTooSlow,
    PreconditionFailed,
    PreconditionRequired,
    RequiredRelation,
    UniqueViolation,
    UnknownField,
    UnknownOperator,
    UnknownParameter,
    UnknownView,
    UnsupportedMediaType,
    ValidationFailed,
)
from ..lifecycle import Action
from ..model import Collection
from ..query import COUNT_MODES
from . import openapi_schemas as schemas

if TYPE_CHECKING:
    from .openapi import Builder, Route


Errors = dict[int, Iterable[type[BackoError]]]
Paths = Iterable[tuple[str, dict[str, Any]]]

_READ = (
    InvalidParameter, LimitExceeded, UnknownParameter, UnknownView, UnknownField,
    InvalidFilter, UnknownOperator, InvalidPattern, PatternTooSlow, InvalidSort, InvalidCursor,
)  # fmt: skip
_BODY = (InvalidJSON, InvalidBody, NestingTooDeep, InvalidValue, UnknownParameter)
_CONFLICT = (Conflict, UniqueViolation, NotEmpty, RequiredRelation, ConstraintViolation)
_WRITE: Errors = {
    409: _CONFLICT,
    413: (BodyTooLarge,),
    415: (UnsupportedMediaType,),
    422: (ValidationFailed,),
}

_COLLECTION_ALLOW = "DELETE, GET, HEAD, OPTIONS, PATCH, POST"
_ITEM_ALLOW = "DELETE, GET, HEAD, OPTIONS, PATCH, PUT"
_ACTION_ALLOW = "OPTIONS, POST"


def collection_operations(builder: Builder, route: Route) -> dict[str, Any]:
    """``GET``, ``HEAD``, ``POST``, ``PATCH``, ``DELETE`` and ``OPTIONS`` on
    ``/<collection>``."""
    collection = route.collection
    parameters = builder.path_parameters(route) + read_parameters(builder, collection, True)
    parameters.append(_IF_NONE_MATCH)
    page = builder.ok(
        f"A page of {collection.name} objects (ids at depth=0); with `Accept: text/csv` "
        "or `application/x-ndjson`, every match, streamed (no paging headers then).",
        {"type": "array", "items": builder.shown(collection)},
        headers=("ETag", "Link", "X-Total-Count", "X-Total-Count-Method"),
        required=("ETag", "Link"),
    )
    page["content"].update(EXPORT_CONTENT)
    errors: Errors = {400: _READ}
    tags = [collection.name]
    return {
        "get": {
            "operationId": builder.operation_id("list", route),
            "summary": f"List {collection.name} objects",
            "tags": tags,
            "parameters": parameters,
            "responses": builder.responses(
                collection, {"200": page, "304": _not_modified(builder)}, errors
            ),
        },
        "head": {
            "operationId": builder.operation_id("head_list", route),
            "summary": f"The headers of a page of {collection.name} objects",
            "tags": tags,
            "parameters": parameters,
            "responses": builder.responses(
                collection,
                {"200": _headless(page), "304": _not_modified(builder)},
                errors,
                body=False,
            ),
        },
        "post": _create(builder, route),
        **bulk_writes(builder, route),
        "options": _options(builder, route, _COLLECTION_ALLOW),
    }


def _create(builder: Builder, route: Route) -> dict[str, Any]:
    """``POST`` on ``/<collection>``: one object, or several from a list."""
    collection = route.collection
    names = schemas.Names.of(collection)
    create = builder.ref(names.create)
    item_path = _pointer(builder.path(route).rstrip("/") + "/{id}")
    created = builder.ok(
        "The object created (the objects, for a list), at depth 1.",
        {"oneOf": [builder.ref(names.read), {"type": "array", "items": builder.ref(names.read)}]},
        headers=("Location", "ETag"),
        links=_links(item_path, collection),
    )
    return {
        "operationId": builder.operation_id("create", route),
        "summary": f"Create a {collection.name} (or several, from a list)",
        "tags": [collection.name],
        "parameters": builder.path_parameters(route),
        "requestBody": builder.body({"oneOf": [create, {"type": "array", "items": create}]}),
        "responses": builder.responses(
            collection,
            {"201": created},
            {400: (*_BODY, LimitExceeded), 404: (NotFound,), **_WRITE},
        ),
    }


#: The exports a list GET answers (see :mod:`.exports`).
EXPORT_CONTENT = {
    "text/csv": {
        "schema": {"type": "string", "description": "A header row, then a row an object."}
    },
    "application/x-ndjson": {
        "schema": {"type": "string", "description": "One JSON object (an id at depth=0) a line."}
    },
}


def bulk_writes(builder: Builder, route: Route) -> dict[str, Any]:
    """``PATCH`` and ``DELETE`` on ``/<collection>?<filters>``: every match."""
    collection = route.collection
    names = schemas.Names.of(collection)
    filters = {**_filter_parameter(builder, collection)}
    # What "Try it out" fills in: a filter no object matches (that every
    # object matches would change them all).
    filters["content"] = {"application/json": {**filters["content"]["application/json"]}}
    filters["content"]["application/json"]["example"] = {"id": {"$in": []}}
    parameters = [*builder.path_parameters(route), filters, *flat_filters(builder, collection)]
    result = {
        "type": "object",
        "required": ["count", "ids"],
        "properties": {
            "count": {"type": "integer", "minimum": 0},
            "ids": {"type": "array", "items": schemas.id_schema()},
        },
        "additionalProperties": False,
    }
    limit = builder.settings["BACKO_MAX_AFFECTED"]
    done = builder.ok("How many objects matched, and their ids, in order.", result)
    refused = (*_READ, LimitExceeded, UnknownParameter)
    return {
        "patch": builder.operation(
            "update_many",
            route,
            f"Change the fields given of every {collection.name} the filters match",
            description=f"All or nothing; a filter is required, and matches at most {limit} "
            "objects (`BACKO_MAX_AFFECTED`).",
            parameters=parameters,
            requestBody=builder.body(builder.ref(names.patch)),
            responses=builder.responses(
                collection, {"200": done}, {400: (*refused, *_BODY), 404: (NotFound,), **_WRITE}
            ),
        ),
        "delete": builder.operation(
            "delete_many",
            route,
            f"Delete every {collection.name} the filters match",
            description=f"All or nothing, with the delete strategies of each; a filter is "
            f"required, and matches at most {limit} objects (`BACKO_MAX_AFFECTED`).",
            parameters=parameters,
            responses=builder.responses(collection, {"200": done}, {400: refused, 409: _CONFLICT}),
        ),
    }


def item_operations(builder: Builder, route: Route) -> dict[str, Any]:
    """``GET``, ``HEAD``, ``PUT``, ``PATCH``, ``DELETE`` and ``OPTIONS`` on
    ``/<collection>/<id>``."""
    collection = route.collection
    parameters = [
        *builder.path_parameters(route),
        *read_parameters(builder, collection, False),
        _IF_NONE_MATCH,
    ]
    shown = builder.ok(
        f"The {collection.name} (its id at depth=0).",
        builder.shown(collection),
        headers=("ETag",),
        required=("ETag",),
    )
    unchanged = _not_modified(builder)
    errors: Errors = {400: (*_READ, InvalidId), 404: (NotFound,)}
    return {
        "get": builder.operation(
            "get",
            route,
            f"Read a {collection.name}",
            parameters=parameters,
            responses=builder.responses(collection, {"200": shown, "304": unchanged}, errors),
        ),
        "head": builder.operation(
            "head",
            route,
            f"The headers of a {collection.name}",
            parameters=parameters,
            responses=builder.responses(
                collection, {"200": _headless(shown), "304": unchanged}, errors, body=False
            ),
        ),
        **item_writes(builder, route),
        "options": _options(builder, route, _ITEM_ALLOW),
    }


def item_writes(builder: Builder, route: Route) -> dict[str, Any]:
    """``PUT``, ``PATCH`` and ``DELETE`` on ``/<collection>/<id>``."""
    collection = route.collection
    names = schemas.Names.of(collection)
    written = builder.ok(
        "The object, as written, at depth 1.",
        builder.ref(names.read),
        headers=("ETag",),
        required=("ETag",),
    )
    created = builder.ok(
        "The object, created at this id, at depth 1.",
        builder.ref(names.read),
        headers=("Location", "ETag"),
        required=("Location", "ETag"),
    )
    conditions = conditional_errors(builder)
    errors: Errors = {
        400: (*_BODY, InvalidId, LimitExceeded),
        404: (NotFound,),
        **_WRITE,
        **conditions,
    }
    if_match = [*builder.path_parameters(route), _IF_MATCH]
    return {
        "put": builder.operation(
            "replace",
            route,
            f"Replace a {collection.name}, or create it at this id",
            parameters=[*if_match, _IF_NONE_MATCH_STAR],
            requestBody=builder.body(builder.ref(names.create)),
            responses=builder.responses(collection, {"200": written, "201": created}, errors),
        ),
        "patch": builder.operation(
            "update",
            route,
            f"Change the fields given of a {collection.name}",
            parameters=if_match,
            description=f"Or, as {MEDIA_TYPE}, apply JSON Patch operations (RFC 6902).",
            requestBody=_patch_body(builder, names.patch),
            responses=builder.responses(collection, {"200": written}, _patch_errors(errors)),
        ),
        "delete": builder.operation(
            "delete",
            route,
            f"Delete a {collection.name}",
            parameters=if_match,
            responses=builder.responses(
                collection,
                {"204": builder.ok("Deleted.", None)},
                {
                    400: (UnknownParameter, InvalidId),
                    404: (NotFound,),
                    409: _CONFLICT,
                    **conditions,
                },
            ),
        ),
    }


def _patch_body(builder: Builder, schema: str) -> dict[str, Any]:
    """The body of PATCH: the fields to change, or a JSON Patch document."""
    body = builder.body(builder.ref(schema))
    body["content"][MEDIA_TYPE] = {"schema": builder.ref("JSONPatch")}
    return body


def _patch_errors(errors: Errors) -> Errors:
    """The errors of PUT, and those of a JSON Patch."""
    return {**errors, 400: (*errors[400], InvalidPatch), 409: (*_CONFLICT, PatchTestFailed)}


def action_operations(builder: Builder, route: Route, action: Action) -> dict[str, Any]:
    """``POST`` and ``OPTIONS`` on ``/<collection>[/<id>]/_actions/<action>``."""
    collection = route.collection
    item = action.on == "item"
    args = _args_schema(builder, collection, action)
    errors: Errors = {
        400: (InvalidJSON, InvalidBody, UnknownParameter, *((InvalidId,) if item else ())),
        **({404: (NotFound,)} if item else {}),
        **_WRITE,
        **(conditional_errors(builder) if item else {}),
    }
    target = f"the {collection.name}" if item else f"the {collection.name} collection"
    return {
        "post": {
            "operationId": builder.operation_id(f"{action.name}_action", route),
            "summary": f"Action {action.name} on {target}",
            "description": (action.handler.__doc__ or "").strip(),
            "tags": [collection.name],
            "parameters": [*builder.path_parameters(route), *([_IF_MATCH] if item else [])],
            "requestBody": builder.body(args, required=False),
            "responses": builder.responses(
                collection,
                {"200": builder.ok("What the action returns.", {})},
                errors,
                action=action,
            ),
        },
        "options": _options(builder, route, _ACTION_ALLOW),
    }


def _args_schema(builder: Builder, collection: Collection, action: Action) -> dict[str, Any]:
    """The schema of an action's arguments (an empty object without ``args``)."""
    if action.args is None:
        name = "NoArgs"
    else:
        name = f"{schemas.camel(collection.name)}{schemas.camel(action.name)}Args"
        name = name.replace("-", "_")
    if name not in builder.spec.components.schemas:
        builder.spec.components.schema(name, schema=action.args or schemas.NoArgs)
    return builder.ref(name)


def allow_response(builder: Builder, allow: str) -> dict[str, Any]:
    """The answer of ``OPTIONS`` on a route that serves the methods ``allow``."""
    allowed = {"type": "string", "enum": [allow]}
    response = builder.ok("The methods this route serves, in `Allow`.", None)
    response["headers"]["Allow"] = {"description": "The methods served.", "schema": allowed}
    response["headers"]["Allow"]["required"] = True
    return response


def _options(builder: Builder, route: Route, allow: str) -> dict[str, Any]:
    response = allow_response(builder, allow)
    return {
        "operationId": builder.operation_id(f"options_{route.kind}", route),
        "summary": "The methods this route serves",
        "tags": [route.collection.name],
        "parameters": builder.path_parameters(route),
        "responses": {"200": response},
    }


def _header_parameter(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "header", "description": description, "schema": {"type": "string"}}


_IF_NONE_MATCH = _header_parameter(
    "If-None-Match",
    "Entity tags (or `*`): when one is the answer's `ETag`, the answer is 304 with no body.",
)
_IF_NONE_MATCH_STAR = _header_parameter(
    "If-None-Match", "`*`: create the object only; 412 if it exists (other values are ignored)."
)
_IF_MATCH = _header_parameter(
    "If-Match",
    "Entity tags (from `ETag`), or `*`: unless the object shows one of them now, "
    "the answer is 412 with nothing changed.",
)


def _not_modified(builder: Builder) -> dict[str, Any]:
    return builder.ok(
        "Not modified: `If-None-Match` holds the `ETag`.",
        None,
        headers=("ETag",),
        required=("ETag",),
    )


def conditional_errors(builder: Builder) -> Errors:
    """The errors of ``If-Match``: 412, and 428 where the API requires it."""
    errors: Errors = {412: (PreconditionFailed,)}
    if builder.settings.get("BACKO_REQUIRE_IF_MATCH"):
        errors[428] = (PreconditionRequired,)
    return errors


def _headless(response: dict[str, Any]) -> dict[str, Any]:
    """``response`` to a ``HEAD``: the headers of the ``GET``, no body."""
    return {key: value for key, value in response.items() if key != "content"}


def _pointer(path: str) -> str:
    """The JSON pointer of ``path``'s item in ``paths``."""
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1")


def _links(item_path: str, collection: Collection) -> dict[str, Any]:
    """Links from a created object to the operations on it."""
    parameters = {"id": "$response.body#/id"}
    return {
        verb.capitalize(): {
            "operationRef": f"{item_path}/{method}",
            "parameters": parameters,
            "description": f"{verb.capitalize()} the {collection.name} created.",
        }
        for verb, method in (("read", "get"), ("update", "patch"), ("delete", "delete"))
    }


def read_parameters(builder: Builder, collection: Collection, many: bool) -> list[dict[str, Any]]:
    """The query parameters of a read: of a list when ``many``, else of one object."""
    settings = builder.settings
    views = list(collection.views)
    parameters = [
        _query(
            "depth",
            "How far relations are expanded: 0 shows ids, 1 related ids, n related "
            "objects at depth n - 1.",
            {"type": "integer", "minimum": 0, "maximum": settings["BACKO_MAX_DEPTH"], "default": 1},
        ),
        _list_query(
            "fields",
            "The fields to show, comma-separated; `relation.field` inside related "
            "objects (deeper paths too). The id always comes back. Not with `view`.",
            schemas.selectable(collection),
        ),
    ]
    if views:
        parameters.append(
            _query(
                "view",
                "A view of the collection: the fields it declares. Not with `fields`.",
                {"type": "string", "enum": views},
            )
        )
    parameters.append(_filter_parameter(builder, collection))
    if many:
        parameters.extend(_page_parameters(collection, settings))
    parameters.extend(flat_filters(builder, collection))
    return parameters


def _page_parameters(collection: Collection, settings: dict[str, Any]) -> list[dict[str, Any]]:
    keys = schemas.sortable(collection)
    return [
        _list_query(
            "sort",
            "Sort keys in order of priority, comma-separated; `-key` descends. "
            "Paths through `Ref` fields go deeper than shown. The id breaks ties.",
            [*keys, *(f"-{key}" for key in keys)],
        ),
        _query(
            "limit",
            f"At most this many objects (the default and maximum: {settings['BACKO_MAX_LIMIT']}).",
            {"type": "integer", "minimum": 0, "maximum": settings["BACKO_MAX_LIMIT"]},
        ),
        _query(
            "offset",
            "Skip this many objects first. Not with `after` or `before`.",
            {"type": "integer", "minimum": 0},
        ),
        _query(
            "after",
            "A cursor from a `Link` header: the objects after it.",
            {"type": "string"},
        ),
        _query(
            "before",
            "A cursor from a `Link` header: the objects before it; `end` for the last page.",
            {"type": "string"},
        ),
        _query(
            "count",
            "How `X-Total-Count` is found: `exact`, `estimate` (bounded), or `none`.",
            {"type": "string", "enum": list(COUNT_MODES)},
        ),
    ]


def _filter_parameter(builder: Builder, collection: Collection) -> dict[str, Any]:
    return {
        "name": "filter",
        "in": "query",
        "required": False,
        "description": "A JSON filter: field paths to values or operators "
        '(`{"$gte": 2}`), `$and`, `$or` and `$not` groups. Flat filters and '
        "`filter` must all match.",
        "content": {
            "application/json": {
                "schema": builder.ref(schemas.Names.of(collection).filter),
                # What "Try it out" fills in: a filter every object matches.
                "example": {"id": {"$gte": 1}},
            }
        },
    }


def flat_filters(builder: Builder, collection: Collection) -> list[dict[str, Any]]:
    """A parameter per field and operator: ``type``, ``type.$ne``, ``year.$gte``...
    (``path.$eq`` is ``path``; paths through relations, like ``jar.name``, work too)."""
    result = []
    for key, value, operators in schemas.filterable(collection):
        for op in operators:
            if op == "$eq":
                name, description = key, f"Keeps the objects whose {key} is this."
            else:
                name, description = f"{key}.{op}", f"Keeps the objects whose {key} is {op}."
            result.append(_flat(builder, name, description, value, op))
    return result


def _flat(builder: Builder, name: str, description: str, value: Any, op: str) -> dict[str, Any]:
    if op in ("$in", "$nin"):
        items = schemas.value_schema(builder.converter, value)
        return _list_query(name, description + " Comma-separated.", items=items)
    schema = schemas.operator_schema(builder.converter, value, op)
    if "anyOf" in schema:  # $eq, $ne: "null" matches an empty link, on ids and relations
        schema = schema["anyOf"][0]
        if value is None:
            schema = {"anyOf": [schema, {"type": "string", "enum": ["null"]}]}
    return _query(name, description, schema)


def _query(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


def _list_query(
    name: str, description: str, values: list[str] | None = None, *, items: Any = None
) -> dict[str, Any]:
    """A comma-separated list: of ``values``, or of ``items``."""
    parameter = _query(
        name,
        description,
        {"type": "array", "items": items if items is not None else {"enum": values}},
    )
    parameter.update(style="form", explode=False)
    return parameter


#: The kinds of routes: kind -> ``function(builder, route)`` yielding
#: ``(path, operations)``.
ROUTE_KINDS: dict[str, Callable[[Builder, Route], Paths]] = {}


def _collection_route(builder: Builder, route: Route) -> Paths:
    yield builder.path(route), collection_operations(builder, route)


def _item_route(builder: Builder, route: Route) -> Paths:
    yield builder.path(route), item_operations(builder, route)


def _action_routes(builder: Builder, route: Route) -> Paths:
    collection = route.collection
    on = "item" if route.kind == "item_actions" else "collection"
    for (name, action_name), action in collection.model.lifecycle.actions.items():
        if name == collection.name and action.on == on:
            yield builder.path(route, action=action_name), action_operations(builder, route, action)


ROUTE_KINDS.update(
    collection=_collection_route,
    item=_item_route,
    collection_actions=_action_routes,
    item_actions=_action_routes,
)

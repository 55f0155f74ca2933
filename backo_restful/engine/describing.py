"""What a model holds and what one caller may do with it: the answer of
:meth:`Engine.describe`, built from the declarations and the caller's rights.

Only plain data comes out (JSON-ready): field types, validators, defaults,
relations, filter operators, views, actions, and the rights of the caller,
evaluated on one object when one is given. Fields the caller cannot read are
left out, as everywhere else.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import marshmallow
from marshmallow import fields as ma
from marshmallow import validate

from ..access import Access, managed_fields, permission_of
from ..computed import Computed
from ..kinds import stored_as_json
from ..lifecycle import Action
from ..model import Collection, DataModel, RelationInfo
from ..query import operators_of
from ..storage import PeeweeStorage
from .arguments import object_id
from .call import Auth, access_of
from .checking import check_request
from .transactions import run_read

if TYPE_CHECKING:
    from .core import Operation

#: The type each field class is described as, a subclass before its base.
FIELD_TYPES: tuple[tuple[type[ma.Field], str], ...] = (
    (ma.Email, "email"),
    (ma.Url, "url"),
    (ma.UUID, "uuid"),
    (ma.String, "string"),
    (ma.Boolean, "boolean"),
    (ma.Integer, "integer"),
    (ma.Float, "number"),
    (ma.Decimal, "number"),
    (ma.DateTime, "datetime"),
    (ma.Date, "date"),
    (ma.Time, "time"),
    (ma.Enum, "enum"),
    (ma.List, "list"),
    (ma.Tuple, "tuple"),
    (ma.Dict, "dict"),
    (ma.Nested, "object"),
)

#: The collection-wide rights, in the order they are shown.
RIGHTS = ("list", "create", "read", "update", "delete")


def type_of(field: ma.Field) -> str:
    """The type name of ``field`` (``any`` for a ``Raw`` or an unknown field)."""
    if isinstance(field, Computed):
        return type_of(field.field)
    for cls, name in FIELD_TYPES:
        if isinstance(field, cls):
            return "list" if name == "object" and getattr(field, "many", False) else name
    return "any"


def plain(value: Any) -> Any:
    """``value`` as JSON data (dates as ISO text, enums by value, sets as lists)."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, (uuid.UUID, decimal.Decimal)):
        return str(value)
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(item) for item in value]
    return str(value)


def validators_of(field: ma.Field) -> list[dict[str, Any]]:
    """``field``'s validators as plain data: ``length``, ``range``, ``choices``,
    ``regexp``..., and ``custom`` (with its name) for the application's own."""
    found = list(field.validators)
    if isinstance(field, ma.Enum):
        members = list(field.enum.__members__.values())
        choices = [m.value if field.by_value else m.name for m in members]
        found.insert(0, validate.OneOf(plain(choices)))
    described = []
    while found:
        validator = found.pop(0)
        if isinstance(validator, validate.And):
            found[:0] = validator.validators
            continue
        described.append(_validator(validator))
    return described


def _validator(validator: Any) -> dict[str, Any]:
    for cls, describe in _VALIDATORS:
        if isinstance(validator, cls):
            return describe(validator)
    name = getattr(validator, "__name__", None) or type(validator).__name__
    return {"type": "custom", "name": name}


def _bounds(**bounds: Any) -> dict[str, Any]:
    return {key: plain(value) for key, value in bounds.items() if value is not None}


#: How each marshmallow validator is described, a subclass before its base.
_VALIDATORS: tuple[tuple[type, Any], ...] = (
    (
        validate.Length,
        lambda v: {"type": "length", **_bounds(min=v.min, max=v.max, equal=v.equal)},
    ),
    (
        validate.Range,
        lambda v: {
            "type": "range",
            **_bounds(min=v.min, max=v.max),
            "min_inclusive": v.min_inclusive,
            "max_inclusive": v.max_inclusive,
        },
    ),
    (validate.OneOf, lambda v: {"type": "choices", "choices": plain(list(v.choices))}),
    (validate.NoneOf, lambda v: {"type": "none_of", "values": plain(list(v.iterable))}),
    (
        validate.ContainsOnly,
        lambda v: {"type": "contains_only", "choices": plain(list(v.choices))},
    ),
    (
        validate.ContainsNoneOf,
        lambda v: {"type": "contains_none_of", "values": plain(list(v.iterable))},
    ),
    (validate.Regexp, lambda v: {"type": "regexp", "pattern": v.regex.pattern}),
    (validate.Equal, lambda v: {"type": "equal", "value": plain(v.comparable)}),
    (validate.Email, lambda v: {"type": "email"}),
    (validate.URL, lambda v: {"type": "url", "schemes": sorted(v.schemes or ())}),
)


def field_shape(field: ma.Field) -> dict[str, Any]:
    """What any field is: type, required, nullable, default, validators,
    read-only and write-only (the rest is added for collection fields)."""
    shape: dict[str, Any] = {
        "type": type_of(field),
        "required": bool(field.required),
        "nullable": bool(field.allow_none),
    }
    default = field.load_default
    if default is not marshmallow.missing and not callable(default):
        shape["default"] = plain(default)
    shape["validators"] = validators_of(field)
    shape["read_only"] = bool(field.dump_only)
    shape["write_only"] = bool(field.load_only)
    return shape


#: The filter operators of an id, and of a relation (the ids it links to).
_ID_OPERATORS = operators_of(None)


class Description:
    """The description of a model for one caller (``access`` None: trusted code)."""

    def __init__(self, model: DataModel, access: Access | None) -> None:
        self.model = model
        self.access = access

    def model_body(self) -> dict[str, Any]:
        """The model's name and every collection, described for the caller."""
        return {
            "name": self.model.name,
            "collections": {
                name: self.collection_body(collection)
                for name, collection in self.model.collections.items()
            },
        }

    def collection_body(
        self, collection: Collection, obj: Mapping[str, Any] | None = None
    ) -> dict[str, Any]:
        """``collection``'s fields, views and actions, and the caller's rights on
        ``obj`` (the stored object, or a draft's values) or on any object."""
        fields: dict[str, Any] = {"id": self._id_field(collection)}
        for name, field in collection.schema.fields.items():
            if self.access is None or self.access.can_read(collection, name, obj):
                fields[collection.external_name(name)] = self._field(collection, name, field, obj)
        return {
            "name": collection.name,
            "rights": self.rights(collection, obj),
            "fields": fields,
            "views": {
                view: [key for key in names if key in fields]
                for view, names in collection.views.items()
            },
            "actions": {
                action.name: self._action(collection, action, obj)
                for (owner, _), action in self.model.lifecycle.actions.items()
                if owner == collection.name
            },
        }

    def rights(self, collection: Collection, obj: Mapping[str, Any] | None) -> dict[str, bool]:
        """Whether the caller may list, create, read, update and delete (on ``obj``,
        or on some object when it is None)."""
        permission = permission_of(collection)
        if self.access is None or permission is None:
            return dict.fromkeys(RIGHTS, True)
        auth = self.access.auth
        can_read = permission.can(auth, "read")
        return {
            "list": can_read,
            "create": permission.can(auth, "create", obj),
            "read": can_read,
            "update": permission.can(auth, "update", obj),
            "delete": permission.can(auth, "delete", obj),
        }

    def _id_field(self, collection: Collection) -> dict[str, Any]:
        return {
            "type": "integer",
            "required": False,
            "nullable": False,
            "validators": [],
            "read_only": True,
            "write_only": False,
            "computed": False,
            "index": True,
            "unique": True,
            "filters": list(_ID_OPERATORS),
            "sortable": True,
            "rights": {"read": True, "modify": False},
        }

    def _field(
        self, collection: Collection, name: str, field: ma.Field, obj: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        shape = field_shape(field)
        relation = collection.relations.get(name)
        computed = collection.computed.get(name)
        read_only = (
            shape["read_only"]
            or name in managed_fields(collection)
            or (computed is not None and computed.read_only)
        )
        shape["read_only"] = read_only
        shape["computed"] = computed is not None
        shape["index"] = bool(field.metadata.get("index") or field.metadata.get("unique"))
        shape["unique"] = bool(field.metadata.get("unique"))
        if relation is not None:
            shape.update(_relation(relation))
            shape["filters"] = list(_ID_OPERATORS)
            shape["sortable"] = not relation.multi
        elif computed is not None:
            usable = computed.sql is not None and not stored_as_json(computed.field)
            shape["filters"] = list(operators_of(computed.field)) if usable else []
            shape["sortable"] = usable
        else:
            shape["filters"] = list(operators_of(field))
            shape["sortable"] = not stored_as_json(field)
        modify = not read_only and (
            self.access is None or self.access.can_modify(collection, name, obj)
        )
        shape["rights"] = {"read": True, "modify": modify}
        return shape

    def _action(
        self, collection: Collection, action: Action, obj: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        args = action.args() if action.args is not None else None
        return {
            "on": action.on,
            "args": {
                (field.data_key or name): field_shape(field)
                for name, field in (args.fields.items() if args is not None else ())
                if not field.dump_only
            },
            "allowed": self._may_act(collection, action, obj),
        }

    def _may_act(
        self, collection: Collection, action: Action, obj: Mapping[str, Any] | None
    ) -> bool:
        """Whether the caller may run ``action`` (on ``obj`` for an item action)."""
        if self.access is None:
            return True
        row = obj if action.on == "item" else None
        if action.permission is not None:
            return bool(action.permission.can(self.access.auth, action.name, row))
        permission = permission_of(collection)
        right = "update" if action.on == "item" else "create"
        return permission is None or bool(permission.can(self.access.auth, right, row))


def _relation(relation: RelationInfo) -> dict[str, Any]:
    """What a relation field links to: target, reverse field, kind, delete strategy."""
    ends = ("many" if relation.reverse.multi else "one", "many" if relation.multi else "one")
    return {
        "type": "relation",
        "target": relation.target.name,
        "reverse": relation.reverse.key,
        "kind": "-to-".join(ends),
        "many": relation.multi,
        "on_delete": relation.on_delete.value if relation.on_delete is not None else None,
    }


class SelfDescribing:
    """The calls of :class:`~backo_restful.engine.Engine` that describe it: what
    its model holds and what a caller may do (:meth:`describe`), and whether a
    draft would be accepted (:meth:`check`)."""

    model: DataModel
    storage: PeeweeStorage

    if TYPE_CHECKING:

        def _start(self, name: str, auth: Auth) -> tuple[Collection, Operation]: ...

    def describe(
        self,
        name: str | None = None,
        *,
        obj: Any = None,
        id_: Any = None,
        auth: Auth = None,
    ) -> tuple[dict[str, Any], int]:
        """Describe the model (``name`` None) or collection ``name`` as the
        caller ``auth`` sees it: fields, relations, filter operators, views,
        actions, and the caller's rights, on object ``id_`` or on the draft
        ``obj`` when one is given. Fields the caller cannot read are left out.

        :raises UnknownCollection: if there is no such collection.
        :raises NotFound: if object ``id_`` is missing or outside the caller's scope.
        :raises Unauthorized: (anonymous caller) or :class:`Forbidden`, for an
            object ``id_`` of a collection the caller may not read.
        :raises InvalidBody: if ``obj`` is not a Mapping.
        """
        if obj is not None and id_ is not None:
            raise TypeError("describe takes obj= or id_=, not both")
        if name is None:
            if obj is not None or id_ is not None:
                raise TypeError("obj= and id_= describe an object of a collection: give its name")
            return Description(self.model, access_of(self.model, auth)).model_body(), 200
        collection, operation = self._start(name, auth)
        target = None
        if id_ is not None:
            if operation.access is not None:
                operation.access.require(collection, "read")
            id_ = object_id(collection, id_)
            target = run_read(
                self.storage, lambda: operation.visible_object(collection, id_), snapshot=True
            )
        elif obj is not None:
            target = run_read(
                self.storage, lambda: operation.draft_values(collection, obj), snapshot=False
            )
        body = Description(self.model, operation.access).collection_body(collection, target)
        return body, 200

    def check(
        self,
        name: str,
        item: Any,
        *,
        path: str | None = None,
        id_: Any = None,
        auth: Auth = None,
    ) -> tuple[dict[str, Any], int]:
        """Check draft ``item`` of collection ``name`` without writing anything:
        as a create, or with ``id_`` as a PATCH of that object (the fields it
        does not give keep their stored values).

        The answer is ``{"valid": bool, "errors": {field: [messages]}}``: field
        validation, values of unique fields that another object holds, links to
        objects that are missing or hidden from the caller, and fields the
        caller may not set. With ``path``, only that field is checked (the
        others may be missing or wrong).

        :raises UnknownCollection: if there is no such collection.
        :raises InvalidBody: if ``item`` is not a Mapping.
        :raises UnknownField: if ``path`` names no field of the collection.
        :raises NotFound: if object ``id_`` is missing or outside the caller's scope.
        :raises Unauthorized: (anonymous caller) or :class:`Forbidden`, if the
            caller may not create in the collection (update object ``id_``).
        """
        collection, operation = self._start(name, auth)
        operation.refuse_early(collection, "create" if id_ is None else "update")
        if id_ is not None:
            id_ = object_id(collection, id_)
        check_request(collection, item, path)
        errors = run_read(
            self.storage,
            lambda: operation.check_draft(collection, item, path, id_),
            snapshot=True,
        )
        return {"valid": not errors, "errors": errors}, 200

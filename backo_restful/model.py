"""Declaring a data model: collections, relation fields and delete strategies.

A :class:`DataModel` holds collections, each a marshmallow :class:`Schema`. Relation
fields (:class:`Ref`, :class:`RefsList`) name their target collection and the reverse
field there; :meth:`DataModel.resolve` checks every declaration and pairs each relation
with its reverse side. Nothing here knows about storage or HTTP.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import marshmallow
from marshmallow import ValidationError, fields, validate

from .auth import Permission
from .computed import Computed, check_computed, with_defaults
from .exceptions import DeclarationError
from .kinds import indexable
from .lifecycle import Declarations, Lifecycle
from .values import MAX_ID as MAX_ID
from .values import check_id, storable

#: Query parameters of collection reads; no field may be named like them.
RESERVED_NAMES = (
    "depth", "sort", "limit", "offset", "filter", "fields", "count", "after", "before",
    "view",
)  # fmt: skip
#: The fields ``audit=True`` adds to a collection, set by the server on each write.
AUDIT_FIELDS = ("created_at", "updated_at", "created_by", "updated_by")
#: The options ``DataModel.collection`` takes.
COLLECTION_OPTIONS = ("permissions", "audit", "views")
#: The longest collection or field name (every backend accepts it in identifiers).
MAX_NAME = 50

_SchemaT = TypeVar("_SchemaT", bound=type["Schema"])


class DeleteStrategy(enum.Enum):
    """What deleting an object does to the objects a :class:`RefsList` links it to."""

    #: Refuse the delete (409) while the list is not empty. The default.
    MUST_BE_EMPTY = "must_be_empty"
    #: Delete the linked objects too (their own strategies apply in turn).
    DELETE_REFERENCED_ITEMS = "delete_referenced_items"
    #: Keep the linked objects and remove their link; refused (409) where the
    #: reverse ``Ref`` is required.
    UNLINK_REFERENCED_ITEMS = "unlink_referenced_items"


class LinkStorage(enum.StrEnum):
    """Where the links of one side of a relation are stored."""

    #: A column of this collection's table, holding the target's id.
    FK_HERE = "fk_here"
    #: A column of the target's table, holding this object's id.
    FK_THERE = "fk_there"
    #: A join table of its own (many-to-many).
    M2M = "m2m"


class Schema(marshmallow.Schema):
    """Base class for collection schemas. Unknown fields are rejected."""

    class Meta:
        unknown = marshmallow.RAISE

    #: Set when the schema is registered as a collection.
    __backo_collection__: Collection | None = None


class Loaded(dict[str, Any]):
    """Validated write data (field name -> value), knowing which fields the
    client gave (``given``); the others hold their ``load_default``."""

    given: frozenset[str] = frozenset()
    #: Required fields left for the setters of computed fields to give.
    pending: frozenset[str] = frozenset()


class NewObject:
    """A dict given inside a relation field: an object to create (validated data)."""

    __slots__ = ("data",)

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def __repr__(self) -> str:
        return f"NewObject({self.data!r})"


class Relation(fields.Field):
    """Base of :class:`Ref` and :class:`RefsList` (not used directly)."""

    multi = False

    def __init__(
        self,
        target: str,
        *,
        reverse: str,
        required: bool = False,
        **kwargs: Any,
    ) -> None:
        for forbidden in ("attribute", "allow_none", "load_default", "dump_default"):
            if forbidden in kwargs:
                raise TypeError(f"{type(self).__name__}() does not take {forbidden}=")
        super().__init__(required=required, allow_none=not required and not self.multi, **kwargs)
        self.target = target
        self.reverse = reverse

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value

    def _deserialize_one(self, value: Any) -> int | NewObject:
        if isinstance(value, Mapping):
            return self._deserialize_nested(value)
        try:
            return check_id(value)
        except ValueError:
            raise ValidationError(
                f"Expected the id of a {self.target} (an integer) or an object to create."
            ) from None

    def _deserialize_nested(self, value: Mapping[str, Any]) -> NewObject:
        collection = getattr(type(self.root), "__backo_collection__", None)
        if collection is None:  # used outside a collection schema
            raise ValidationError("Nested objects need a schema registered in a DataModel.")
        target = collection.model.get(self.target)
        if self.reverse in value or target.external_name(self.reverse) in value:
            raise ValidationError(
                {target.external_name(self.reverse): ["Set by the enclosing object; leave it out."]}
            )
        return NewObject(target.load(value, partial=(self.reverse,)))


class Ref(Relation):
    """A link to zero or one object of ``target`` (exactly one when ``required``).

    :param target: the name of the target collection.
    :param reverse: the name of the relation field on the target that points back.
    :param required: the link must always be set.
    """

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        return self._deserialize_one(value)


class RefsList(Relation):
    """Links to zero or more objects of ``target``.

    :param target: the name of the target collection.
    :param reverse: the name of the relation field on the target that points back.
    :param on_delete: what deleting this object does to the linked ones.
    """

    multi = True

    def __init__(
        self,
        target: str,
        *,
        reverse: str,
        on_delete: DeleteStrategy = DeleteStrategy.MUST_BE_EMPTY,
        **kwargs: Any,
    ) -> None:
        if not isinstance(on_delete, DeleteStrategy):
            raise TypeError("on_delete must be a DeleteStrategy")
        super().__init__(target, reverse=reverse, **kwargs)
        self.on_delete = on_delete

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if not isinstance(value, list):
            raise ValidationError("Expected a list of ids or objects to create.")
        result: list[int | NewObject] = []
        errors: dict[int, Any] = {}
        seen: set[int] = set()
        for index, item in enumerate(value):
            try:
                loaded = self._deserialize_one(item)
            except ValidationError as exc:
                errors[index] = exc.messages
                continue
            if isinstance(loaded, int):
                if loaded in seen:
                    errors[index] = [f"Duplicate id {loaded}."]
                    continue
                seen.add(loaded)
            result.append(loaded)
        if errors:
            raise ValidationError(errors)
        return result


class RelationInfo:
    """One side of a resolved relation (filled in by :meth:`DataModel.resolve`).

    ``storage`` says where the link lives (a :class:`LinkStorage`).
    """

    reverse: RelationInfo

    def __init__(self, collection: Collection, name: str, field: Relation) -> None:
        self.collection = collection
        self.name = name
        self.key = field.data_key or name
        self.field = field
        self.multi = field.multi
        self.required = bool(field.required)
        self.on_delete: DeleteStrategy | None = getattr(field, "on_delete", None)
        self.target: Collection = collection  # replaced in resolve()
        self.storage = LinkStorage.FK_HERE  # decided in resolve()

    def __repr__(self) -> str:
        return f"<RelationInfo {self.collection.name}.{self.name} -> {self.target.name}>"


def _with_options(name: str, schema_class: type[Schema], options: dict[str, Any]) -> type[Schema]:
    """Check a collection's options; the schema it stores (with the audit fields)."""
    unknown = sorted(set(options) - set(COLLECTION_OPTIONS))
    if unknown:
        raise DeclarationError(
            f"unknown option {unknown[0]!r} (options: {', '.join(COLLECTION_OPTIONS)})",
            collection=name,
        )
    for field_name, declared in schema_class._declared_fields.items():
        if isinstance(declared, Computed):
            check_computed(name, field_name, declared)
    permissions = options.get("permissions")
    if permissions is not None and not isinstance(permissions, Permission):
        raise DeclarationError(
            "permissions= takes a backo_restful.auth.Permission (Anyone(), Owner() ...)",
            collection=name,
        )
    for owner in sorted(permissions.owner_fields() if permissions is not None else ()):
        field = schema_class._declared_fields.get(owner)
        if not isinstance(field, fields.String | fields.Integer | Ref):
            raise DeclarationError(
                f"the owner field {owner!r} of {permissions!r} must be a String, an "
                "Integer or a Ref of the collection (it holds the caller's id)",
                collection=name,
                field=owner,
            )
        if field.data_key is not None and field.data_key != owner:
            # The scope filters on the field as clients name it.
            raise DeclarationError(
                f"the owner field {owner!r} cannot take another name in JSON "
                f"(data_key={field.data_key!r})",
                collection=name,
                field=owner,
            )
    if not options.get("audit"):
        return schema_class
    taken = [field for field in AUDIT_FIELDS if field in schema_class._declared_fields]
    if taken:
        raise DeclarationError(
            f"audit=True adds {taken[0]!r}: the schema declares it already",
            collection=name,
            field=taken[0],
        )
    audit: dict[str, Any] = {
        "created_at": fields.DateTime(allow_none=True),
        "updated_at": fields.DateTime(allow_none=True),
        "created_by": fields.String(allow_none=True),
        "updated_by": fields.String(allow_none=True),
    }
    return type(schema_class.__name__, (schema_class,), audit)


class Collection:
    """A named collection of a :class:`DataModel`: what ``Resource.model`` takes."""

    def __init__(
        self, model: DataModel, name: str, schema_class: type[Schema], options: dict[str, Any]
    ) -> None:
        self.model = model
        self.name = name
        self.schema_class = schema_class
        self.options = options
        self._schema: Schema | None = None
        #: scalar field name -> marshmallow field (declaration order)
        self.scalars: dict[str, fields.Field] = {}
        #: relation field name -> RelationInfo (declaration order)
        self.relations: dict[str, RelationInfo] = {}
        #: computed field name -> its :class:`Computed` field (never stored)
        self.computed: dict[str, Computed] = {}
        #: external (JSON) name -> internal field name
        self.by_key: dict[str, str] = {}
        #: indexed string field -> the length its column holds
        self.key_lengths: dict[str, int] = {}
        #: fields whose values are unique (``metadata={"unique": True}``)
        self.unique: list[str] = []

    def __repr__(self) -> str:
        return f"<Collection {self.model.name}.{self.name}>"

    @property
    def schema(self) -> Schema:
        """A shared instance of the collection's schema."""
        if self._schema is None:
            self._schema = self.schema_class()
        return self._schema

    @property
    def views(self) -> Mapping[str, list[str]]:
        """The collection's views (``views=``): name -> the fields it shows."""
        views: Mapping[str, list[str]] = self.options.get("views") or {}
        return views

    def external_name(self, name: str) -> str:
        field = self.schema.fields.get(name)
        return (field.data_key or name) if field is not None else name

    def load(self, data: Any, *, partial: bool | tuple[str, ...] = False) -> dict[str, Any]:
        """Validate write data with the schema.

        :raises marshmallow.ValidationError: listing every failing field.
        """
        if not isinstance(data, Mapping):
            raise ValidationError({"_schema": ["Expected an object."]})
        messages: dict[str, Any] = {}
        if "id" in data:
            messages["id"] = ["Read-only field: the database chooses ids."]
            data = {key: value for key, value in data.items() if key != "id"}
        # Stored fields a computed field's setter may give are checked after it.
        deferred = partial is not True and any(
            not self.computed[self.by_key[key]].read_only
            for key in data
            if self.by_key.get(key) in self.computed
        )
        try:
            loaded = self.schema.load(data, partial=True if deferred else partial)
        except ValidationError as exc:
            messages.update(exc.normalized_messages())
            raise ValidationError(messages) from None
        except RecursionError:
            raise ValidationError({"_schema": ["Objects are nested too deeply."]}) from None
        self._store_scalars(loaded, messages)
        for name, relation in self.relations.items():
            other = relation.reverse
            if other.collection is self and other.name in loaded and name in loaded:
                if other.name != name and name < other.name:
                    messages[self.external_name(name)] = [
                        f"Give only one side of this relation, not also {other.key!r}."
                    ]
        if messages:
            raise ValidationError(messages)
        result = Loaded(loaded)
        result.given = frozenset(self.by_key[key] for key in data if key in self.by_key)
        if deferred:
            result.pending = with_defaults(self.schema, result, partial)
        return result

    def _store_scalars(self, loaded: dict[str, Any], messages: dict[str, Any]) -> None:
        """Give the scalars of ``loaded`` their stored values; add to ``messages``
        why those that no database can store cannot."""
        for name in (name for name in self.scalars if name in loaded):
            loaded[name], problem = storable(loaded[name])
            limit = self.key_lengths.get(name)
            if problem is None and limit and isinstance(loaded[name], str):
                if len(loaded[name]) > limit:
                    problem = f"Longer than maximum length {limit} (the field is indexed)."
            if problem:
                messages[self.external_name(name)] = [problem]

    def _resolve_fields(self) -> None:
        self.scalars.clear()
        self.relations.clear()
        self.computed.clear()
        self.by_key.clear()
        self.key_lengths.clear()
        self.unique.clear()
        self._schema = None
        for name, field in self.schema.fields.items():
            key = field.data_key or name
            self._check_field(name, key, field)
            self.by_key[key] = name
            if isinstance(field, Computed):
                self.computed[name] = field
                continue
            if isinstance(field, Relation):
                self.relations[name] = RelationInfo(self, name, field)
                continue
            self.scalars[name] = field
            if field.metadata.get("unique"):
                self.unique.append(name)
            if field.metadata.get("index") or field.metadata.get("unique"):
                if not indexable(field):
                    raise DeclarationError(
                        f"fields.{type(field).__name__} is stored as JSON and cannot be indexed",
                        collection=self.name,
                        field=name,
                    )
                if isinstance(field, fields.String) and not isinstance(field, fields.UUID):
                    self.key_lengths[name] = _declared_max_length(field) or KEY_LENGTH

    def _check_field(self, name: str, key: str, field: fields.Field) -> None:
        """Refuse a field named ``name`` (``key`` in JSON) that cannot be stored or queried."""
        where = {"collection": self.name, "field": name}
        if name == "id" or key == "id":
            raise DeclarationError(
                "'id' is reserved: every collection gets an integer id chosen by the database",
                **where,
            )
        if key in RESERVED_NAMES:
            raise DeclarationError(
                f"{key!r} is a reserved query parameter: give the field another name "
                "(or data_key=)",
                **where,
            )
        if len(key) > MAX_NAME or len(name) > MAX_NAME:
            raise DeclarationError(f"names are limited to {MAX_NAME} characters", **where)
        if field.attribute not in (None, name):
            raise DeclarationError(
                "attribute= is not supported; name the field as it should be stored", **where
            )
        if key in self.by_key:
            raise DeclarationError(f"two fields share the external name {key!r}", **where)


#: The length of an indexed string column when its field declares no maximum.
KEY_LENGTH = 255


def _declared_max_length(field: fields.Field) -> int | None:
    lengths = [
        v.max for v in field.validators if isinstance(v, validate.Length) and v.max is not None
    ]
    return min(lengths) if lengths else None


class DataModel(Declarations):
    """A set of collections and the relations between them.

    :param name: the model's name (used in messages and later in ``_meta``).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.collections: dict[str, Collection] = {}
        self.lifecycle = Lifecycle()
        self._resolved = False
        self._frozen = False

    def __repr__(self) -> str:
        return f"<DataModel {self.name!r}: {', '.join(self.collections)}>"

    def collection(self, name: str, **options: Any) -> Callable[[_SchemaT], _SchemaT]:
        """Class decorator registering a :class:`Schema` subclass as collection ``name``."""

        def decorator(schema_class: _SchemaT) -> _SchemaT:
            self.add_collection(name, schema_class, **options)
            return schema_class

        return decorator

    def add_collection(self, name: str, schema_class: type[Schema], **options: Any) -> Collection:
        """Register ``schema_class`` as collection ``name`` and return the collection."""
        if not isinstance(name, str) or not name.isidentifier() or len(name) > MAX_NAME:
            raise DeclarationError(
                f"a collection name must be a Python identifier of at most {MAX_NAME} characters",
                collection=str(name),
            )
        if name in self.collections:
            raise DeclarationError("declared twice", collection=name)
        if not (isinstance(schema_class, type) and issubclass(schema_class, Schema)):
            raise DeclarationError(
                "the schema must be a subclass of backo_restful.Schema", collection=name
            )
        if self._frozen:
            raise DeclarationError(
                "an engine already serves this model: declare every collection first",
                collection=name,
            )
        previous = schema_class.__backo_collection__
        if previous is not None and previous.model is not self:
            raise DeclarationError(
                f"this schema already belongs to collection {previous.name!r} of another model",
                collection=name,
            )
        stored = _with_options(name, schema_class, options)
        collection = Collection(self, name, stored, options)
        schema_class.__backo_collection__ = collection
        self.collections[name] = collection
        self._resolved = False
        return collection

    def object(self, name: str) -> Collection:
        """The collection ``name``, as taken by ``Resource.model``."""
        return self.get(name)

    def get(self, name: str) -> Collection:
        try:
            return self.collections[name]
        except KeyError:
            raise DeclarationError(f"no collection named {name!r} in model {self.name!r}") from None

    def resolve(self) -> DataModel:
        """Check every declaration and pair relations with their reverse sides.

        :raises DeclarationError: naming the collection and field at fault.
        """
        if self._resolved:
            return self
        if self._frozen:
            raise DeclarationError("an engine already serves this model; it cannot change")
        for collection in self.collections.values():
            collection._resolve_fields()
        claimed: dict[tuple[str, str], RelationInfo] = {}
        for collection in self.collections.values():
            for relation in collection.relations.values():
                self._pair(relation, claimed)
        for collection in self.collections.values():
            _check_owner_keys(collection)
        self.lifecycle.check(self.collections)
        self._resolved = True
        return self

    def freeze(self) -> None:
        """Refuse new collections from now on (an engine serves the model)."""
        self.resolve()
        self._frozen = True

    def _pair(self, relation: RelationInfo, claimed: dict[tuple[str, str], RelationInfo]) -> None:
        where = {"collection": relation.collection.name, "field": relation.name}
        field = relation.field
        if field.target not in self.collections:
            raise DeclarationError(f"unknown target collection {field.target!r}", **where)
        target = self.collections[field.target]
        other = target.relations.get(field.reverse)
        if other is None:
            raise DeclarationError(
                f"reverse field {field.reverse!r} is not a Ref or RefsList "
                f"of collection {target.name!r}",
                **where,
            )
        if other.field.target != relation.collection.name or other.field.reverse != relation.name:
            raise DeclarationError(
                f"reverse field {target.name}.{other.name} does not point back here "
                f"(it names {other.field.target}.{other.field.reverse})",
                **where,
            )
        if other is relation:
            raise DeclarationError("a relation cannot be its own reverse", **where)
        key = (target.name, other.name)
        if key in claimed and claimed[key] is not relation:
            first = claimed[key]
            raise DeclarationError(
                f"{target.name}.{other.name} is already the reverse of "
                f"{first.collection.name}.{first.name}",
                **where,
            )
        claimed[key] = relation
        relation.target = target
        relation.reverse = other
        if relation.multi and other.multi:
            relation.storage = LinkStorage.M2M
        elif relation.multi:
            relation.storage = LinkStorage.FK_THERE
        elif other.multi or _holds_one_to_one_key(relation, other):
            relation.storage = LinkStorage.FK_HERE
        else:
            relation.storage = LinkStorage.FK_THERE


def _check_owner_keys(collection: Collection) -> None:
    """An owner field that is a relation must store its key in the owner's table."""
    permissions = collection.options.get("permissions")
    for name in sorted(permissions.owner_fields() if permissions is not None else ()):
        relation = collection.relations.get(name)
        if relation is not None and relation.storage is not LinkStorage.FK_HERE:
            other = f"{relation.target.name}.{relation.reverse.name}"
            raise DeclarationError(
                f"the owner field {name!r} is a one-to-one Ref whose key {other} stores; "
                f"an owner field stores the key: make {other} a RefsList",
                collection=collection.name,
                field=name,
            )


def _holds_one_to_one_key(relation: RelationInfo, other: RelationInfo) -> bool:
    """Which side of a one-to-one relation stores the foreign key.

    The required side, so the database can enforce it; otherwise the side whose
    ``collection.field`` sorts first, so the choice is stable.
    """
    if relation.required != other.required:
        return relation.required
    return (relation.collection.name, relation.name) < (other.collection.name, other.name)

"""What one caller may see and change, for the length of one engine call.

The engine builds an :class:`Access` from the ``auth`` of a call (none for
``auth=None``, the trusted system context) and asks it, in one place per kind of
read and write, which objects and fields the caller may see, and whether an
action is allowed.
"""

from __future__ import annotations

import datetime as dt
import weakref
from collections.abc import Iterator, Mapping
from typing import Any

from .auth import Permission, User, user_of
from .exceptions import BackoError, BadRequest, Forbidden, Unauthorized
from .model import AUDIT_FIELDS, Collection, DataModel
from .query import And, Condition, Node, Not, Or, Path, parse_filter

#: A filter no object matches: the scope of a collection the caller may not read.
NOTHING: Node = Condition(Path((), "id", "id"), "in", ())


def permission_of(collection: Collection) -> Permission | None:
    """The permission a collection declares (``permissions=``), if any."""
    return collection.options.get("permissions")


#: Collection -> whether it is :func:`unguarded`, for as long as it lives.
_UNGUARDED: weakref.WeakKeyDictionary[Collection, bool] = weakref.WeakKeyDictionary()


def unguarded(collection: Collection) -> bool:
    """True when ``collection`` declares no permissions, field rights, owner or
    audit fields: then any caller may do anything with it."""
    known = _UNGUARDED.get(collection)
    if known is None:
        known = _UNGUARDED[collection] = _unguarded(collection)
    return known


def _unguarded(collection: Collection) -> bool:
    if permission_of(collection) is not None or collection.options.get("audit"):
        return False
    kinds = ("can_read", "can_modify")
    return not any(kind in f.metadata for f in collection.schema.fields.values() for kind in kinds)


def right(collection: Collection, name: str, kind: str) -> Any:
    """Field ``name``'s ``can_read`` or ``can_modify`` (True when not declared)."""
    field = collection.schema.fields.get(name)
    return True if field is None else field.metadata.get(kind, True)


class Access:
    """The rights of the caller ``auth`` (verified claims) in ``model``."""

    def __init__(self, model: DataModel, auth: Mapping[str, Any]) -> None:
        self.model = model
        self.auth = auth
        self.user: User = user_of(auth)
        self._scopes: dict[str, Node | None] = {}

    # -- actions ---------------------------------------------------------------

    def refusal(self, collection: Collection, action: str) -> BackoError:
        """401 for an anonymous caller, 403 for an authenticated one."""
        if self.user.is_anonymous:
            return Unauthorized(f"Authentication is required to {action} {collection.name}.")
        return Forbidden(
            f"You may not {action} this {collection.name}.",
            {"collection": collection.name, "action": action},
        )

    def require(
        self, collection: Collection, action: str, obj: Mapping[str, Any] | None = None
    ) -> None:
        """Raise the refusal unless the caller may do ``action``.

        :raises Unauthorized: (anonymous caller) or :class:`Forbidden`.
        """
        permission = permission_of(collection)
        if permission is not None and not permission.can(self.auth, action, obj):
            raise self.refusal(collection, action)

    # -- reads -----------------------------------------------------------------

    def scope(self, collection: Collection) -> Node | None:
        """The filter every read of ``collection`` gets (None: every object;
        :data:`NOTHING` when the caller may not read it at all)."""
        if collection.name not in self._scopes:
            permission = permission_of(collection)
            node: Node | None = None
            if permission is not None:
                if not permission.can(self.auth, "read"):
                    node = NOTHING
                else:
                    # A scope is the model's own filter: trusted, not limited by
                    # the caller's field rights.
                    try:
                        node = parse_filter(collection, permission.scope(self.auth))
                    except BadRequest:
                        # The caller's claims do not fit it (an id that is no id).
                        node = NOTHING
                    if node is not None and not self._owns_exactly(permission, node):
                        node = NOTHING
            self._scopes[collection.name] = node
        return self._scopes[collection.name]

    def _owns_exactly(self, permission: Permission, node: Node) -> bool:
        """Whether the owner tests of a scope compare the caller's id itself: a
        ``sub`` of "03" or " 3" parses as 3, but is not user 3."""
        owners = permission.owner_fields()
        if isinstance(node, And | Or):
            return all(self._owns_exactly(permission, part) for part in node.nodes)
        if isinstance(node, Not):
            return self._owns_exactly(permission, node.node)
        path = node.path
        name = path.steps[0].name if len(path.steps) == 1 and path.field == "id" else path.field
        if name not in owners or (path.steps and path.field != "id") or node.op != "eq":
            return True
        return str(node.value) == self.user.id

    def scopes(self) -> Mapping[str, Node]:
        """Collection name -> scope, for every collection that has one (each
        worked out when first looked up)."""
        return _Scopes(self)

    def hidden(self, collection: Collection, name: str) -> bool:
        """Whether field ``name`` is hidden from the caller wherever no single
        object is concerned (filters, sorts, ``fields``)."""
        return not self.can_read(collection, name)

    def can_read(self, collection: Collection, name: str, obj: Any = None) -> bool:
        """May the caller see field ``name`` (of ``obj``, or of any object)?"""
        return self._allowed(right(collection, name, "can_read"), obj)

    def can_modify(self, collection: Collection, name: str, obj: Any = None) -> bool:
        """May the caller change field ``name`` (of ``obj``, or of any object)?"""
        return self._allowed(right(collection, name, "can_modify"), obj)

    def _allowed(self, rule: Any, obj: Any) -> bool:
        return bool(rule(self.auth, obj)) if callable(rule) else bool(rule)

    # -- writes ----------------------------------------------------------------

    def owner_values(self, collection: Collection) -> dict[str, Any]:
        """The owner fields a create by this caller sets (to the caller's id)."""
        permission = permission_of(collection)
        if permission is None:
            return {}
        return dict.fromkeys(permission.owner_fields(), self.user.id)


class _Scopes(Mapping[str, Node]):
    def __init__(self, access: Access) -> None:
        self._access = access

    def __getitem__(self, name: str) -> Node:
        collection = self._access.model.collections.get(name)
        scope = None if collection is None else self._access.scope(collection)
        if scope is None:
            raise KeyError(name)
        return scope

    def __iter__(self) -> Iterator[str]:
        return (name for name in self._access.model.collections if name in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)


def managed_fields(collection: Collection) -> set[str]:
    """The fields the server sets, that clients may not change: owner and audit fields."""
    permission = permission_of(collection)
    names = set(permission.owner_fields()) if permission is not None else set()
    if collection.options.get("audit"):
        names.update(AUDIT_FIELDS)
    return names


def audit_values(collection: Collection, user_id: str | None, *, create: bool) -> dict[str, Any]:
    """The audit fields a write sets (none if ``collection`` keeps none)."""
    if not collection.options.get("audit"):
        return {}
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    values: dict[str, Any] = {"updated_at": now, "updated_by": user_id}
    if create:
        values.update(created_at=now, created_by=user_id)
    return values

"""What an application declares around its data: actions (and, to come, events).

An action is a business operation on one object (``on="item"``) or on a
collection (``on="collection"``), served by ``Engine.act``, ``api.basic.act``
and ``POST /<collection>[/<id>]/_actions/<name>``. Its handler runs in one
transaction with everything it writes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import marshmallow

from .auth import Permission
from .exceptions import DeclarationError

if TYPE_CHECKING:
    from .engine import Engine

#: What an action acts on: one object, or the collection.
ACTION_TARGETS = ("item", "collection")
#: An action's name, as it appears in its URL.
_ACTION_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,49}")


@dataclass(frozen=True)
class ActionContext:
    """What an action's handler is given besides the object and the args.

    :param engine: the engine; its calls join the action's transaction and run as
        trusted code (pass ``auth=`` to act for the caller).
    :param auth: the caller's verified claims (None: trusted code).
    :param collection: the name of the action's collection.
    """

    engine: Engine
    auth: Mapping[str, Any] | None
    collection: str


#: An action's handler: ``handler(ctx, obj, args)``, returning a JSON value.
Handler = Callable[[ActionContext, Any, dict[str, Any]], Any]


@dataclass(frozen=True)
class Action:
    """A declared action (see :meth:`DataModel.action`)."""

    collection: str
    name: str
    handler: Handler
    args: type[marshmallow.Schema] | None
    permission: Permission | None
    on: str


class Lifecycle:
    """The actions of one data model."""

    def __init__(self) -> None:
        self.actions: dict[tuple[str, str], Action] = {}

    def add_action(
        self,
        collection: str,
        name: str,
        handler: Handler,
        *,
        args: type[marshmallow.Schema] | None,
        permission: Permission | None,
        on: str,
    ) -> Action:
        """Declare an action; its collection is checked by :meth:`check`.

        :raises DeclarationError: naming the collection and action at fault.
        """
        where = {"collection": str(collection), "field": str(name)}
        if not isinstance(name, str) or not _ACTION_NAME.fullmatch(name):
            raise DeclarationError(
                "an action name is a letter or _ then up to 49 letters, digits, _ or -", **where
            )
        if on not in ACTION_TARGETS:
            raise DeclarationError(f"on= is one of {', '.join(ACTION_TARGETS)}", **where)
        if args is not None and not (
            isinstance(args, type) and issubclass(args, marshmallow.Schema)
        ):
            raise DeclarationError("args= takes a marshmallow Schema class", **where)
        if permission is not None and not isinstance(permission, Permission):
            raise DeclarationError("permission= takes a Permission", **where)
        if not callable(handler):
            raise DeclarationError("the handler of an action must be callable", **where)
        if (collection, name) in self.actions:
            raise DeclarationError("action declared twice", **where)
        action = Action(collection, name, handler, args, permission, on)
        self.actions[collection, name] = action
        return action

    def check(self, collections: Mapping[str, Any]) -> None:
        """Refuse an action of a collection the model does not have."""
        for collection, name in self.actions:
            if collection not in collections:
                raise DeclarationError(
                    "action of an unknown collection", collection=collection, field=name
                )

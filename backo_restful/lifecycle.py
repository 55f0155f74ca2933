"""What an application declares around its data: events and actions.

An event handler (:meth:`Declarations.on`) runs when an object of its collection
is saved, created or deleted, inside the write's transaction or after it commits.
An action (:meth:`Declarations.action`) is a business operation on one object
(``on="item"``) or on a collection (``on="collection"``), served by
``Engine.act``, ``api.basic.act`` and ``POST /<collection>[/<id>]/_actions/<name>``;
its handler runs in one transaction with everything it writes.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import marshmallow

from .auth import Permission
from .exceptions import DeclarationError

if TYPE_CHECKING:
    from .engine import Engine

#: The events of an object's life, in the order a write meets them.
EVENTS = (
    "before_save", "created", "saved", "before_delete", "deleted", "after_commit", "loaded",
)  # fmt: skip
#: The events ``after_commit`` handlers get, once the transaction has committed.
COMMITTED = ("created", "saved", "deleted")

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


@dataclass
class Event:
    """What happens to one object, as its handlers see it.

    :param name: the event (see :data:`EVENTS`; an ``after_commit`` handler gets
        the ``created``, ``saved`` or ``deleted`` event it follows).
    :param collection: the collection's name.
    :param id: the object's id (None in the ``before_save`` of a create).
    :param old: its stored values before (None on create), as trusted code reads
        them at depth 1: every field, relations as ids.
    :param new: its stored values after (None on delete). In ``before_save`` of
        the object a statement writes, the values it will write: what the
        handler changes there is validated and written with them.
    :param changes: the names of the fields that change (every field on create).
    :param auth: the caller's claims (None for trusted code).
    :param engine: the engine, its calls in the same transaction as trusted code
        (a new transaction for ``after_commit``), firing their own events.
    """

    name: str
    collection: str
    id: int | None
    old: dict[str, Any] | None
    new: dict[str, Any] | None
    changes: frozenset[str]
    auth: Mapping[str, Any] | None
    engine: Engine = field(repr=False)


#: An event's handler: ``handler(event)``.
EventHandler = Callable[[Event], Any]
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
    """The event handlers and actions of one data model."""

    def __init__(self) -> None:
        self.actions: dict[tuple[str, str], Action] = {}
        #: Collection name -> event name -> its handlers, in declaration order.
        self.handlers: dict[str, dict[str, list[EventHandler]]] = {}

    def add_handler(self, collection: str, name: str, handler: EventHandler) -> None:
        """Declare ``handler`` for event ``name`` of ``collection`` (checked by :meth:`check`).

        :raises DeclarationError: for an unknown event or a handler that is not callable.
        """
        if name not in EVENTS:
            raise DeclarationError(
                f"unknown event {name!r}: one of {', '.join(EVENTS)}", collection=str(collection)
            )
        if not callable(handler):
            raise DeclarationError(
                "an event handler must be callable", collection=str(collection), field=name
            )
        self.handlers.setdefault(collection, {}).setdefault(name, []).append(handler)

    def of(self, collection: str, name: str) -> list[EventHandler]:
        """The handlers of event ``name`` of ``collection`` (empty: none)."""
        return self.handlers.get(collection, {}).get(name, [])

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
        """Refuse an action or a handler of a collection the model does not have."""
        for collection, name in self.actions:
            if collection not in collections:
                raise DeclarationError(
                    "action of an unknown collection", collection=collection, field=name
                )
        for collection, events in self.handlers.items():
            if collection not in collections:
                raise DeclarationError(
                    f"handler of {', '.join(events)} of an unknown collection",
                    collection=collection,
                )


class Declarations:
    """The lifecycle part of a :class:`~backo_restful.model.DataModel`."""

    lifecycle: Lifecycle
    _frozen: bool
    _resolved: bool

    def _declaring(self, collection: str, name: str, what: str) -> None:
        if self._frozen:
            raise DeclarationError(
                f"an engine already serves this model: declare every {what} first",
                collection=str(collection),
                field=str(name),
            )
        self._resolved = False  # its collection is checked by resolve()

    def on(self, collection: str, name: str, handler: EventHandler | None = None) -> Any:
        """Declare ``handler(event)`` for event ``name`` of ``collection`` (and
        return it), or without ``handler`` return a decorator declaring one (see
        :class:`Event`); handlers run in declaration order.

        :raises DeclarationError: for an unknown event, or once an engine serves
            the model (an unknown collection: when the engine is built).
        """

        def decorator(handler: EventHandler) -> EventHandler:
            self._declaring(collection, name, "handler")
            self.lifecycle.add_handler(collection, name, handler)
            return handler

        return decorator(handler) if handler is not None else decorator

    def action(
        self,
        collection: str,
        name: str,
        *,
        args: type[marshmallow.Schema] | None = None,
        permission: Permission | None = None,
        on: str = "item",
    ) -> Callable[[Handler], Handler]:
        """Decorator declaring the handler ``handler(ctx, obj, args)`` of action
        ``name`` of ``collection``.

        :param args: the Schema its arguments pass (None: it takes none).
        :param permission: asked ``can(auth, name, obj)`` (default: the right to
            update the object, or to create in a collection).
        :param on: ``"item"``, or ``"collection"`` (``obj`` is None).
        :raises DeclarationError: for a wrong declaration, or once an engine
            serves the model.
        """

        def decorator(handler: Handler) -> Handler:
            self._declaring(collection, name, "action")
            self.lifecycle.add_action(
                collection, name, handler, args=args, permission=permission, on=on
            )
            return handler

        return decorator

"""Actions: an application's operations on one object or on a collection, run in
one transaction with everything they write (declared with :meth:`DataModel.action`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from marshmallow import ValidationError

from ..exceptions import InternalError, InvalidBody, UnknownAction, ValidationFailed
from ..lifecycle import Action, ActionContext
from ..logs import actions_logger as logger
from ..model import Collection, DataModel
from .call import application_code
from .tags import Conditional


def find_action(model: DataModel, collection: Collection, name: Any, *, item: bool) -> Action:
    """The action ``name`` of ``collection``, for one object (``item``) or not.

    :raises UnknownAction: if there is none.
    """
    action = model.lifecycle.actions.get((collection.name, name)) if isinstance(name, str) else None
    if action is None or (action.on == "item") != item:
        raise UnknownAction(collection.name, name)
    return action


def action_args(action: Action, args: Any) -> dict[str, Any]:
    """``args`` validated by the action's Schema (None: no arguments).

    :raises InvalidBody: if they are not a Mapping.
    :raises ValidationFailed: naming every invalid or unknown argument.
    """
    if args is None:
        args = {}  # no body: checked as an empty one (required args are missing)
    if not isinstance(args, Mapping):
        raise InvalidBody(f"The arguments of action {action.name} are a JSON object.")
    if action.args is None:
        if args:
            raise ValidationFailed({str(key): ["Unknown field."] for key in args})
        return {}
    try:
        loaded: dict[str, Any] = action.args().load(args)
    except ValidationError as exc:
        raise ValidationFailed(exc.normalized_messages()) from None
    return loaded


class Acting(Conditional):
    """The actions of one call."""

    def refuse_action_early(self, action: Action, collection: Collection) -> None:
        """Refuse a caller whom no object could allow ``action``, before its
        arguments or its object are looked at."""
        access = self.access
        if access is None:
            return
        if action.permission is None:
            self.refuse_early(collection, "update" if action.on == "item" else "create")
        elif not action.permission.can(access.auth, action.name):
            raise access.refusal(collection, action.name)

    def perform(
        self, action: Action, collection: Collection, id_: int | None, args: dict[str, Any]
    ) -> Any:
        """Run ``action`` on object ``id_`` (None: a collection action); its result.

        :raises NotFound: if the object is missing or outside the caller's scope.
        :raises Unauthorized: (anonymous caller) or :class:`Forbidden`.
        :raises InternalError: if the handler fails with an exception that is
            not a :class:`BackoError`, or returns a value that is not JSON.
        """
        obj = None
        if id_ is None:
            self._allow(action, collection, None)
        else:
            self.lock_existing(collection, [id_])
            self._allow(action, collection, self.stored(collection, id_))
            self.check_preconditions(collection, id_)
            # As stored: every field, to trusted code.
            obj = type(self)(self.engine, None).reread(collection, [id_])[0]
        auth = self.access.auth if self.access is not None else None
        engine = self.engine.bound(self.depth + 1, self.committed)
        context = ActionContext(engine, auth, collection.name)
        where = f"action {action.name} of {collection.name}"
        with application_code(logger, "%s failed", where):
            result = action.handler(context, obj, args)
        try:
            json.dumps(result, allow_nan=False)
        except (TypeError, ValueError) as exc:
            logger.error("%s returned a value that is not JSON: %r", where, type(result))
            raise InternalError() from exc
        return result

    def _allow(self, action: Action, collection: Collection, row: dict[str, Any] | None) -> None:
        """Refuse a caller whom ``action``'s permission (by default: the right to
        update the object, or to create in the collection) does not allow."""
        access = self.access
        if access is None:
            return
        if action.permission is None:
            access.require(collection, "update" if row is not None else "create", row)
        elif not action.permission.can(access.auth, action.name, row):
            raise access.refusal(collection, action.name)

"""The refusals of well-formed requests: authentication, permissions, missing
objects, conflicts, preconditions and validation."""

from __future__ import annotations

from typing import Any

from .base import ClientError


class Unauthorized(ClientError):
    """The caller must authenticate: no token where one is needed, or a token that
    is not valid (``invalid_token``). Answered with ``WWW-Authenticate: Bearer``.

    """

    code = "UNAUTHORIZED"
    status = 401

    #: Whether the request carried a token that failed verification.
    invalid_token = False

    def default_message(self) -> str:
        return "Authentication is required."

    @property
    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value of this error."""
        return 'Bearer error="invalid_token"' if self.invalid_token else "Bearer"


class InvalidToken(Unauthorized):
    """The request carried a token that failed verification."""

    code = "INVALID_TOKEN"
    invalid_token = True

    def default_message(self) -> str:
        return "The token is not valid."


class Forbidden(ClientError):
    """The caller is authenticated but may not do this."""

    code = "FORBIDDEN"
    status = 403

    def default_message(self) -> str:
        return "You may not do this."


class NotFound(ClientError):
    """The object (or route) does not exist.

    :param collection: the collection that was searched.
    :param id: the id that matched nothing.
    """

    code = "OBJECT_DOES_NOT_EXIST"
    status = 404

    def __init__(
        self,
        collection: str | None = None,
        id: Any = None,  # noqa: A002 - mirrors the field name
        *,
        message: str | None = None,
        details: dict[str, Any] | None = None,
        code: str | None = None,
    ) -> None:
        self.collection = collection
        self.id = id
        if details is None and collection is not None:
            details = {"collection": collection, "id": id}
        if message is None and collection is not None:
            message = f"There is no {collection} with id {id}."
        super().__init__(message, details, code=code)

    def default_message(self) -> str:
        return "Not found."


class UnknownCollection(NotFound):
    """The model has no collection of that name.

    :param name: the name asked for.
    """

    code = "UNKNOWN_COLLECTION"

    def __init__(self, name: Any) -> None:
        self.name = name if isinstance(name, str) else repr(name)
        super().__init__(
            message=f"There is no collection named {name!r}.",
            details={"collection": self.name},
        )


class UnknownAction(NotFound):
    """The collection has no action of that name (for an object, or for the
    collection, as asked).

    :param collection: the collection.
    :param name: the action asked for.
    """

    code = "UNKNOWN_ACTION"

    def __init__(self, collection: str, name: Any) -> None:
        self.action = name if isinstance(name, str) else repr(name)
        super().__init__(
            message=f"{collection} has no action named {name!r} here.",
            details={"collection": collection, "action": self.action},
        )
        self.collection = collection


class Conflict(ClientError):
    """The request conflicts with the stored data (delete strategy, uniqueness)."""

    code = "CONFLICT"
    status = 409

    def default_message(self) -> str:
        return "The request conflicts with the current state of the data."


class UniqueViolation(Conflict):
    """Another object already holds this value of a unique field.

    :attr collection: the collection.
    :attr field: the field (as clients name it).
    """

    code = "UNIQUE_VIOLATION"

    def __init__(self, message: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details)
        self.collection = self.details.get("collection")
        self.field = self.details.get("field")


class NotEmpty(Conflict):
    """A delete refused by the ``MUST_BE_EMPTY`` strategy of a relation that
    still holds objects."""

    code = "NOT_EMPTY"


class RequiredRelation(Conflict):
    """A write or a delete would leave an object without a relation it requires."""

    code = "REQUIRED_RELATION"


class PatchTestFailed(Conflict):
    """A ``test`` operation of a JSON Patch failed: nothing was changed."""

    code = "PATCH_TEST_FAILED"


class ConstraintViolation(Conflict):
    """A constraint of the database (other than the unique values and the links
    the engine checks itself) refused the change."""

    code = "CONSTRAINT_VIOLATION"

    def default_message(self) -> str:
        return "The change violates a constraint of the database."


class ReferenceViolation(ConstraintViolation):
    """The database's foreign key refused a row linking to an object that does
    not exist.

    The engine lets the foreign key check the links of a simple create, and
    runs it again checking each link itself when this is raised, to name the
    missing object (:class:`NotFound`).
    """


class PreconditionFailed(ClientError):
    """An ``If-Match`` or ``If-None-Match`` of a write does not hold: nothing changed."""

    code = "PRECONDITION_FAILED"
    status = 412


class PreconditionRequired(ClientError):
    """A write without ``If-Match``, which the API requires (``BACKO_REQUIRE_IF_MATCH``)."""

    code = "PRECONDITION_REQUIRED"
    status = 428


class ValidationFailed(ClientError):
    """The request body failed validation.

    :param messages: field name to error messages (nested for nested objects; list
        positions become string keys, as they would in JSON).
    """

    code = "VALIDATION_FAILED"
    status = 422

    def __init__(self, messages: dict[Any, Any], message: str | None = None) -> None:
        self.messages: dict[str, Any] = _string_keys(messages)
        names = ", ".join(sorted(self.messages))
        super().__init__(
            message or f"Invalid value for: {names}.",
            {"fields": self.messages},
        )


def _string_keys(messages: Any) -> Any:
    if isinstance(messages, dict):
        return {str(key): _string_keys(value) for key, value in messages.items()}
    return messages

"""The exceptions raised by backo_restful.

Every error is a :class:`BackoError`. Each class declares its ``code`` (a stable
UPPER_SNAKE string) and its HTTP ``status`` once; the API layers read them from
here and never decide a status themselves.
"""

from __future__ import annotations

from typing import Any


class BackoError(Exception):
    """Base class of every backo_restful error.

    :param message: a human sentence saying what went wrong.
    :param details: machine-readable data about the error (JSON-serializable).
    :param code: a code of your own for this instance, for errors your
        application raises (an event handler refusing a write, say). The
        library's own errors never use it: each code it raises belongs to one
        class, so ``except UniqueViolation`` catches exactly that error.
    """

    code: str = "INTERNAL_ERROR"
    status: int = 500

    def __init__(
        self,
        message: str | None = None,
        details: dict[str, Any] | None = None,
        *,
        code: str | None = None,
    ) -> None:
        self.message = message or self.default_message()
        self.details: dict[str, Any] = details or {}
        if code is not None:
            self.code = code
        super().__init__(self.message)

    def default_message(self) -> str:
        return "An internal error occurred."

    def to_dict(self) -> dict[str, Any]:
        """The shared JSON error body: ``{"error": {"code", "message", "details"}}``."""
        return {
            "error": {
                "code": self.code,
                "message": self.message,
                "details": self.details,
            }
        }


class DeclarationError(BackoError):
    """The data model is declared wrongly (raised when the engine is built)."""

    code = "DECLARATION_ERROR"

    def __init__(
        self, message: str, *, collection: str | None = None, field: str | None = None
    ) -> None:
        self.collection = collection
        self.field = field
        where = ".".join(part for part in (collection, field) if part)
        details = {"collection": collection, "field": field}
        super().__init__(f"{where}: {message}" if where else message, details)


class InternalError(BackoError):
    """Application code run by the engine (an action's handler) failed with an
    exception that is not a :class:`BackoError`; it is the ``__cause__``."""

    def default_message(self) -> str:
        return "The server failed to handle the request."


class EventDepthExceeded(BackoError):
    """Event handlers whose writes fire events, whose handlers write... went
    more than :data:`~backo_restful.engine.events.MAX_EVENT_DEPTH` deep: the
    call is rolled back (a loop of events, most likely)."""

    code = "EVENT_DEPTH_EXCEEDED"

    def default_message(self) -> str:
        return "Event handlers fired events too many levels deep: the write is undone."


class NoEngine(BackoError):
    """A module-level call ran before :func:`backo_restful.setup` installed a
    default engine."""

    code = "NO_ENGINE"

    def default_message(self) -> str:
        return (
            "No default engine: call backo_restful.setup(model, storage) first, "
            "or pass an engine explicitly."
        )


class StorageError(BackoError):
    """The database failed in a way the client could not have caused.

    :param reason: what the database said (for logs; never shown to clients).
    """

    code = "STORAGE_ERROR"

    def __init__(self, reason: str | None = None, *, message: str | None = None) -> None:
        self.reason = reason
        super().__init__(message)

    def default_message(self) -> str:
        return "The database could not complete the request."


class SchemaMismatch(StorageError):
    """Tables of the database lack columns the model declares (``missing``: table
    -> columns); :meth:`PeeweeStorage.migrate` adds them."""

    code = "SCHEMA_MISMATCH"

    def __init__(
        self, message: str | None = None, *, missing: dict[str, list[str]] | None = None
    ) -> None:
        self.missing: dict[str, list[str]] = missing or {}
        super().__init__(message=message)
        self.details = {"missing": self.missing}

    def default_message(self) -> str:
        return "The database's tables do not match the model: run storage.migrate()."


class MigrationRefused(SchemaMismatch):
    """:meth:`PeeweeStorage.migrate` refused changes and applied nothing
    (``refused``: each change and why)."""

    code = "MIGRATION_REFUSED"

    def __init__(self, refused: list[tuple[Any, str]]) -> None:
        self.refused = refused
        lines = "".join(f"\n- {change}: {why}" for change, why in refused)
        super().__init__(f"Migration refused, nothing was applied:{lines}")
        self.details = {"refused": [{**vars(change), "reason": why} for change, why in refused]}


class StorageUnavailable(StorageError):
    """The database cannot be reached, lost the connection, or is too busy: the
    request may be sent again (after :attr:`retry_after` seconds, the
    ``Retry-After`` of the answer).
    """

    code = "STORAGE_UNAVAILABLE"
    status = 503
    retry_after = 1

    def default_message(self) -> str:
        return "The database is unavailable: try again shortly."


class ConnectionLost(StorageUnavailable):
    """The connection to the database was lost during the call (the server
    restarted, a proxy or an operator ended the session).

    The connection is discarded; the engine reads again once on a new one.
    """


class StorageConflict(StorageUnavailable):
    """The database aborted the transaction to resolve a conflict with another one.

    The engine runs such a write again before giving up with this error.

    :param rows: the rows (collection name -> ids) the transaction would not wait
        for, which the next attempt locks first.
    """

    code = "TRANSACTION_CONFLICT"

    def __init__(
        self,
        reason: str | None = None,
        *,
        message: str | None = None,
        rows: dict[str, set[int]] | None = None,
    ) -> None:
        self.rows: dict[str, set[int]] = rows or {}
        super().__init__(reason, message=message)

    def default_message(self) -> str:
        return "The database kept aborting this write for conflicts with others: send it again."


class ClientError(BackoError):
    """Base class of every error caused by the request (the 4xx family)."""

    code = "BAD_REQUEST"
    status = 400

    def default_message(self) -> str:
        return "The request is not valid."


class BadRequest(ClientError):
    """The request is malformed: bad parameters, bad JSON, an unknown field."""


class _Described(BadRequest):
    """A :class:`BadRequest` whose ``details`` name what was refused: each name in
    :attr:`carried` becomes an attribute (None when the details lack it)."""

    carried: tuple[str, ...] = ()

    def __init__(self, message: str | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details)
        for name in self.carried:
            setattr(self, name, self.details.get(name))


class InvalidBody(BadRequest):
    """The request body is not what the call takes (not an object of fields, say)."""

    code = "INVALID_BODY"


class InvalidJSON(InvalidBody):
    """The request body is not valid JSON."""

    code = "INVALID_JSON"


class InvalidPatch(InvalidBody):
    """A JSON Patch document is invalid or does not apply (``details``: its ``index``)."""

    code = "INVALID_PATCH"


class InvalidValue(BadRequest):
    """A value does not fit its database column (the database refused it)."""

    code = "INVALID_VALUE"


class NestingTooDeep(BadRequest):
    """Objects nested in relations go deeper than the server handles."""

    code = "NESTING_TOO_DEEP"

    def default_message(self) -> str:
        return "Objects are nested too deeply."


class InvalidParameter(_Described):
    """A query parameter (or an engine argument) has a value it does not take.

    :attr parameter: the parameter's name, where one is to blame.
    """

    code = "INVALID_PARAMETER"
    carried: tuple[str, ...] = ("parameter",)


class UnknownParameter(InvalidParameter):
    """The request has a query parameter the route does not know."""

    code = "UNKNOWN_PARAMETER"


class UnknownView(InvalidParameter):
    """A ``view`` the collection does not declare.

    :attr collection: the collection read.
    :attr view: the view asked for.
    """

    code = "UNKNOWN_VIEW"
    carried = ("parameter", "collection", "view")


class InvalidCursor(InvalidParameter):
    """An ``after`` or ``before`` cursor that is not one this list gave out, or
    made for another sort."""

    code = "INVALID_CURSOR"


class InvalidId(InvalidParameter):
    """An id that is not an integer between 1 and the largest id (or, for a PUT
    that would create, above the largest id it creates).

    :attr collection: the collection it was meant for.
    :attr id: the id as given.
    """

    code = "INVALID_ID"
    carried = ("parameter", "collection", "id")


class LimitExceeded(InvalidParameter):
    """A request over one of the server's limits (depth, page size, objects in
    the answer, objects created by a write...).

    :attr setting: the setting that holds the limit (``BACKO_MAX_OBJECTS``...).
    :attr maximum: the limit.
    """

    code = "LIMIT_EXCEEDED"
    carried = ("parameter", "setting", "maximum")


class UnknownField(_Described):
    """A field path (of a filter, a sort or ``fields``) names a field the
    collection does not have, or one the caller may not read.

    :attr field: the path as given.
    """

    code = "UNKNOWN_FIELD"
    carried = ("field",)


class InvalidFilter(_Described):
    """A filter that is not well formed, or compares a field with a value it
    cannot hold.

    :attr field: the field path it concerns, where there is one.
    """

    code = "INVALID_FILTER"
    carried = ("field",)


class UnknownOperator(InvalidFilter):
    """A filter operator that does not exist, or does not apply to the field."""

    code = "UNKNOWN_OPERATOR"


class InvalidPattern(InvalidFilter):
    """A ``$re`` pattern outside the portable syntax, or too large."""

    code = "INVALID_PATTERN"


class PatternTooSlow(InvalidPattern):
    """A filter with ``$re`` ran out of the time it is given (or out of the
    database's regular expression match limit) before it could answer.

    :param limit: which limit it reached, for the message.
    """

    code = "PATTERN_TOO_SLOW"

    def __init__(self, limit: str) -> None:
        super().__init__(
            f"The $re filter could not be matched within {limit}: "
            "use a simpler pattern, or narrow the filter with other conditions.",
            {"limit": limit},
        )


class InvalidSort(_Described):
    """A sort that is not a list of field paths, or sorts on a path twice or
    through a list of objects.

    :attr field: the field path it concerns, where there is one.
    """

    code = "INVALID_SORT"
    carried = ("field",)


class BodyTooLarge(ClientError):
    """The request body is larger than the server accepts (``BACKO_MAX_BODY``).

    :param maximum: the largest body accepted, in bytes.
    """

    code = "BODY_TOO_LARGE"
    status = 413

    def __init__(self, maximum: int) -> None:
        self.maximum = maximum
        super().__init__(
            f"The request body is larger than {maximum} bytes (BACKO_MAX_BODY).",
            {"setting": "BACKO_MAX_BODY", "maximum": maximum},
        )


class UnsupportedMediaType(ClientError):
    """The request body is not JSON."""

    code = "UNSUPPORTED_MEDIA_TYPE"
    status = 415

    def default_message(self) -> str:
        return "The request body must be JSON (Content-Type: application/json)."


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


class MethodNotAllowed(ClientError):
    """The route does not serve this HTTP method.

    :param allowed: the methods it does serve (sent back in ``Allow``).
    """

    code = "METHOD_NOT_ALLOWED"
    status = 405

    def __init__(self, method: str, allowed: list[str]) -> None:
        self.allowed = allowed
        super().__init__(
            f"{method} is not allowed here; allowed: {', '.join(allowed)}.",
            {"method": method, "allowed": allowed},
        )


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

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
    :param code: overrides the class's default code for this instance.
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


class PatternTooSlow(BadRequest):
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

    :param invalid_token: the request carried a token that failed verification.
    """

    code = "UNAUTHORIZED"
    status = 401

    def __init__(self, message: str | None = None, *, invalid_token: bool = False) -> None:
        self.invalid_token = invalid_token
        super().__init__(message, code="INVALID_TOKEN" if invalid_token else None)

    def default_message(self) -> str:
        return "Authentication is required."

    @property
    def challenge(self) -> str:
        """The ``WWW-Authenticate`` value of this error."""
        return 'Bearer error="invalid_token"' if self.invalid_token else "Bearer"


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


class ReferenceViolation(Conflict):
    """The database's foreign key refused a row linking to an object that does
    not exist.

    The engine lets the foreign key check the links of a simple create, and
    runs it again checking each link itself when this is raised, to name the
    missing object (:class:`NotFound`).
    """

    code = "CONSTRAINT_VIOLATION"

    def default_message(self) -> str:
        return "The change violates a constraint of the database."


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

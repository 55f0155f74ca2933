"""The base classes of every error, and the errors of the application's own
declarations and code."""

from __future__ import annotations

from typing import Any

#: Where every library error is named from.
PACKAGE = "backo_restful.exceptions"


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

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # The library's classes are named from the package, wherever they are
        # defined: backo_restful.exceptions.NotFound, in tracebacks too.
        if cls.__module__.startswith(f"{PACKAGE}."):
            cls.__module__ = PACKAGE

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


BackoError.__module__ = PACKAGE


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


class ClientError(BackoError):
    """Base class of every error caused by the request (the 4xx family)."""

    code = "BAD_REQUEST"
    status = 400

    def default_message(self) -> str:
        return "The request is not valid."

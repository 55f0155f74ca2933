"""The errors of malformed requests: bodies, parameters, ids, filters, sorts,
media types and methods."""

from __future__ import annotations

from typing import Any

from .base import ClientError


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

"""The caller of the current Flask request: :data:`current_user` and :func:`caller_of`.

This is the Flask side of :mod:`backo_restful.auth`, which verifies tokens and
declares permissions without Flask; ``backo_restful.current_user`` and
``backo_restful.auth.current_user`` are the object defined here.
"""

from __future__ import annotations

from flask import current_app, g, has_request_context, request
from werkzeug.local import LocalProxy

from ..auth import APP_KEY, JWTAuth, User

__all__ = ["caller_of", "credentials", "current_user"]


def credentials(cookie: str | None) -> tuple[str | None, str | None]:
    """The ``Authorization`` header of the current request, and the value of its
    cookie named ``cookie`` (None: no cookie is read)."""
    value = request.cookies.get(cookie) if cookie else None
    return request.headers.get("Authorization"), value


def caller_of(authenticator: JWTAuth | None) -> User:
    """The caller of the current request as ``authenticator`` sees them (each
    authenticator authenticates a request once; None: anonymous)."""
    if not has_request_context():
        return User()
    users = g.setdefault("_backo_users", {})
    key = id(authenticator)
    if key not in users:
        users[key] = authenticator.authenticate() if authenticator is not None else User()
    return users[key]  # type: ignore[no-any-return]


def _current_user() -> User:
    return caller_of(current_app.extensions.get(APP_KEY) if has_request_context() else None)


#: The caller of the current request (anonymous outside a request, or when no
#: ``Api`` of the app authenticates), as the first ``Api`` with ``auth`` on the
#: app authenticates them. Reading it authenticates the request once; a bad
#: token raises :class:`~backo_restful.exceptions.Unauthorized`.
current_user: User = LocalProxy(_current_user)  # type: ignore[assignment]

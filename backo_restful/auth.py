"""Who is calling, and what they may do: JWT authentication, the caller as a
:class:`User`, and the permissions a collection declares.

The engine's calls take ``auth``: None from trusted code (no checks at all), or
a Mapping of verified claims. Over HTTP it is the caller's :class:`User` (a
Mapping of the token's claims; empty for an anonymous caller), so permission
and field-rights functions always receive a Mapping.

Nothing here needs Flask. The request-local :data:`current_user` and
:func:`caller_of` live in :mod:`backo_restful.api.flask_auth`; this module gives
them too, importing that module (and Flask) when they are first asked for.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jwt

from .exceptions import DeclarationError, InvalidToken, Unauthorized
from .logs import auth_logger

if TYPE_CHECKING:
    from .api.flask_auth import caller_of as caller_of
    from .api.flask_auth import current_user as current_user

__all__ = [
    "Anyone",
    "Authenticated",
    "HasRole",
    "JWTAuth",
    "Owner",
    "Permission",
    "User",
    "current_user",
    "user_of",
]

#: What permission and field-rights functions receive: the caller's verified claims.
Claims = Mapping[str, Any]

#: The actions a permission answers for.
ACTIONS = ("read", "create", "update", "delete")


class User(Mapping[str, Any]):
    """The caller: a read-only Mapping of the verified claims of their token.

    ``id``, ``login`` and ``roles`` read the claims named by ``id_claim``,
    ``login_claim`` and ``roles_claim``; a subclass may rename them or add fields
    and methods (give it to :class:`JWTAuth` as ``user_class``). An anonymous
    caller has no claims.
    """

    id_claim = "sub"
    login_claim = "login"
    roles_claim = "roles"

    def __init__(self, claims: Mapping[str, Any] | None = None) -> None:
        self._claims = dict(claims or {})

    def __getitem__(self, key: str) -> Any:
        return self._claims[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._claims)

    def __len__(self) -> int:
        return len(self._claims)

    def __repr__(self) -> str:
        if self.is_anonymous:
            return f"<{type(self).__name__} anonymous>"
        return f"<{type(self).__name__} {self.id!r}>"

    @property
    def claims(self) -> dict[str, Any]:
        """A copy of the verified claims."""
        return dict(self._claims)

    @property
    def is_anonymous(self) -> bool:
        """True when the caller sent no token."""
        return not self._claims

    @property
    def id(self) -> str | None:
        """The caller's id (claim ``sub`` unless renamed), as a string."""
        value = self._claims.get(self.id_claim)
        return None if value is None else str(value)

    @property
    def login(self) -> str | None:
        return self._claims.get(self.login_claim)

    @property
    def roles(self) -> list[str]:
        """The caller's roles (claim ``roles`` unless renamed); [] if it is not a list."""
        roles = self._claims.get(self.roles_claim)
        if not isinstance(roles, list):
            return []
        return [role for role in roles if isinstance(role, str)]

    def has_role(self, *names: str) -> bool:
        """True if the caller has at least one of ``names``."""
        roles = self.roles
        return any(name in roles for name in names)


def user_of(auth: Mapping[str, Any] | None) -> User:
    """``auth`` as a :class:`User` (itself if it is one; None is anonymous)."""
    if isinstance(auth, User):
        return auth
    return User(auth)


#: Where :meth:`JWTAuth.init_app` keeps the authenticator of ``current_user``
#: in ``app.extensions``.
APP_KEY = "backo_restful.auth"

#: The names of the Flask glue this module gives (see :func:`__getattr__`).
_FLASK_GLUE = ("current_user", "caller_of")


def __getattr__(name: str) -> Any:
    """``current_user`` and ``caller_of``, imported with Flask when first asked for."""
    if name in _FLASK_GLUE:
        from .api import flask_auth

        return getattr(flask_auth, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_FLASK_GLUE])


_HMAC = ("HS256", "HS384", "HS512")


class JWTAuth:
    """Authenticate requests by a JSON Web Token, verified with pyjwt.

    The token comes from ``Authorization: Bearer <token>``, else from the cookie
    named ``cookie``. Its signature, ``exp`` (required), ``nbf``, ``aud`` and
    ``iss`` are verified. A bad token is a 401 whatever the route; no token is an
    anonymous caller, or a 401 when ``required``.

    :param key: the HMAC secret, or the public key (PEM) for RS*/ES*/PS*.
    :param algorithms: the accepted algorithms; ``none`` never is, and HMAC ones do
        not mix with public-key ones.
    :param signing_key: the private key :meth:`create_token` signs with, when it
        is not ``key`` (public-key algorithms).
    :param user_class: the :class:`User` subclass built from the claims.
    """

    def __init__(
        self,
        key: Any,
        *,
        algorithms: Sequence[str] = ("HS256",),
        audience: str | Sequence[str] | None = None,
        issuer: str | None = None,
        leeway: float = 0,
        cookie: str | None = "jwt_token",
        required: bool = False,
        signing_key: Any = None,
        user_class: type[User] = User,
    ) -> None:
        algorithms = tuple(algorithms)
        if not algorithms or any(alg.lower() == "none" for alg in algorithms):
            raise DeclarationError("JWTAuth needs signing algorithms, and never 'none'")
        hmac = [alg in _HMAC for alg in algorithms]
        if any(hmac) and not all(hmac):
            raise DeclarationError(
                "JWTAuth cannot accept HMAC and public-key algorithms together: "
                "a public key would then verify HMAC signatures"
            )
        if not key:
            raise DeclarationError("JWTAuth needs a key")
        self.key = key
        self.algorithms = algorithms
        self.audience = audience
        self.issuer = issuer
        self.leeway = leeway
        self.cookie = cookie
        self.required = required
        self.signing_key = signing_key if signing_key is not None else key
        self.user_class = user_class

    def init_app(self, app: Any) -> None:
        """Make this the authenticator of :data:`current_user` on ``app``."""
        app.extensions.setdefault(APP_KEY, self)

    def token_of(self, authorization: str | None, cookie: str | None = None) -> str | None:
        """The token a request carries in its ``Authorization`` header or, without
        one, in its cookie; None if neither holds one.

        :raises Unauthorized: for an ``Authorization`` header that is not
            ``Bearer <token>``.
        """
        if authorization is not None:
            scheme, _, token = authorization.strip().partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token or " " in token:
                raise _refused("the Authorization header is not 'Bearer <token>'")
            return token
        return cookie or None

    def verify(self, token: str) -> dict[str, Any]:
        """The claims of ``token``.

        :raises InvalidToken: if it is malformed, signed with
            another key or algorithm, expired, not yet valid, or for another
            audience or issuer. The message says no more than that.
        """
        try:
            claims = jwt.decode(
                token,
                self.key,
                algorithms=list(self.algorithms),
                audience=self.audience,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": ["exp"]},
            )
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise _refused(_why(exc)) from None
        if not isinstance(claims, dict) or not claims:
            raise _refused("no claims")
        return claims

    def authenticate(self) -> User:
        """The caller of the current Flask request.

        :raises Unauthorized: for a bad token, or no token when ``required``.
        """
        from .api.flask_auth import credentials  # Flask, only once a request is read

        return self.user_from(*credentials(self.cookie))

    def user_from(self, authorization: str | None, cookie: str | None = None) -> User:
        """The caller of a request carrying the ``Authorization`` header value
        ``authorization`` and the value ``cookie`` of the cookie :attr:`cookie`
        (None for what it lacks), in any framework.

        :raises Unauthorized: for a bad token, or no token when ``required``.
        """
        token = self.token_of(authorization, cookie)
        if token is None:
            if self.required:
                raise Unauthorized()
            return self.user_class()
        return self.user_class(self.verify(token))

    def create_token(self, claims: Mapping[str, Any], expires_in: float = 3600) -> str:
        """A signed token holding ``claims``, valid ``expires_in`` seconds (for
        login routes). ``iat``, ``exp`` and the configured ``iss``/``aud`` are added.

        An integer ``sub`` is written as text, as JWT requires (the id of a
        users' collection is an integer).

        :raises TypeError: for a ``sub`` that is neither text nor an integer.
        """
        now = int(time.time())
        payload = dict(claims)
        sub = payload.get("sub")
        if isinstance(sub, int) and not isinstance(sub, bool):
            payload["sub"] = str(sub)
        elif sub is not None and not isinstance(sub, str):
            raise TypeError(f"sub is the caller's id, text or an integer, not {sub!r}")
        payload.setdefault("iat", now)
        payload["exp"] = now + int(expires_in)
        if self.issuer is not None:
            payload.setdefault("iss", self.issuer)
        if self.audience is not None:
            payload.setdefault("aud", self.audience)
        return jwt.encode(payload, self.signing_key, algorithm=self.algorithms[0])


#: Why pyjwt refused a token, by its exception class (the most precise first).
_REASONS = (
    (jwt.ExpiredSignatureError, "expired"),
    (jwt.ImmatureSignatureError, "not yet valid"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.MissingRequiredClaimError, "a required claim is missing"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
    (jwt.DecodeError, "malformed"),
)


def _why(exc: Exception) -> str:
    """The reason a record gives for the refusal ``exc`` (never its message,
    which may quote the token)."""
    return next((reason for kind, reason in _REASONS if isinstance(exc, kind)), "invalid")


def _refused(reason: str) -> InvalidToken:
    """The error for a refused token, logged with ``reason`` (never the token)."""
    auth_logger.info("token refused: %s", reason, extra={"reason": reason})
    return InvalidToken()


# -- permissions ---------------------------------------------------------------


class Permission:
    """What callers may do with a collection's objects.

    Subclass it and override :meth:`can` (and :meth:`scope` to restrict reads);
    combine permissions with ``&``, ``|`` and ``~``. A refused anonymous caller
    gets a 401, a refused authenticated one a 403.
    """

    def can(self, auth: Claims, action: str, obj: Claims | None = None) -> bool:
        """May ``auth`` do ``action`` (``read``, ``create``, ``update``,
        ``delete``)? ``obj`` is the stored object for ``update``/``delete`` (field
        names to stored values), the data being created for ``create``, and None
        for ``read`` and when any other action is first checked, before the
        request's body or object is read: answer True there if only the object
        can decide."""
        return True

    def scope(self, auth: Claims) -> Claims | None:
        """A filter (the language of ``filter_``) every read of the collection
        gets for ``auth``: objects outside it cannot be seen, counted, linked to
        or inferred. None: every object."""
        return None

    def owner_fields(self) -> set[str]:
        """The fields this permission sets from the caller on create."""
        return set()

    def __and__(self, other: Permission) -> Permission:
        return _All(self, other)

    def __or__(self, other: Permission) -> Permission:
        return _Any(self, other)

    def __invert__(self) -> Permission:
        return _Not(self)


class Anyone(Permission):
    """Everyone, anonymous callers included."""

    def __repr__(self) -> str:
        return "Anyone()"


class Authenticated(Permission):
    """Callers with a valid token."""

    def can(self, auth: Claims, action: str, obj: Claims | None = None) -> bool:
        return not user_of(auth).is_anonymous

    def __repr__(self) -> str:
        return "Authenticated()"


class HasRole(Permission):
    """Callers with at least one of ``roles`` (the claim :attr:`User.roles` reads)."""

    def __init__(self, *roles: str) -> None:
        if not roles:
            raise DeclarationError("HasRole needs at least one role")
        self.roles = roles

    def can(self, auth: Claims, action: str, obj: Claims | None = None) -> bool:
        user = user_of(auth)
        return not user.is_anonymous and user.has_role(*self.roles)

    def __repr__(self) -> str:
        return f"HasRole({', '.join(map(repr, self.roles))})"


class Owner(Permission):
    """Callers who own the object: its ``field`` holds their id.

    Reads are scoped to the caller's objects; on create the field is set to the
    caller's id, and clients cannot change it.
    """

    def __init__(self, field: str = "owner") -> None:
        self.field = field

    def can(self, auth: Claims, action: str, obj: Claims | None = None) -> bool:
        user = user_of(auth)
        if user.is_anonymous or user.id is None:
            return False
        if obj is None or action in ("read", "create"):
            return True
        value = obj.get(self.field)
        return value is not None and str(value) == user.id

    def scope(self, auth: Claims) -> Claims | None:
        user = user_of(auth)
        if user.is_anonymous or user.id is None:
            return {"id": {"$in": []}}  # nobody's objects
        return {self.field: user.id}

    def owner_fields(self) -> set[str]:
        return {self.field}

    def __repr__(self) -> str:
        return f"Owner(field={self.field!r})"


class _Combined(Permission):
    """Permissions built of others (``&``, ``|``): the owner fields of each part."""

    def __init__(self, *parts: Permission) -> None:
        self.parts = parts

    def owner_fields(self) -> set[str]:
        return set().union(*(part.owner_fields() for part in self.parts))


class _All(_Combined):
    def can(self, auth: Claims, action: str, obj: Claims | None = None) -> bool:
        return all(part.can(auth, action, obj) for part in self.parts)

    def scope(self, auth: Claims) -> Claims | None:
        scopes = [s for s in (part.scope(auth) for part in self.parts) if s is not None]
        if not scopes:
            return None
        return scopes[0] if len(scopes) == 1 else {"$and": scopes}

    def __repr__(self) -> str:
        return " & ".join(f"({part!r})" for part in self.parts)


class _Any(_Combined):
    def can(self, auth: Claims, action: str, obj: Claims | None = None) -> bool:
        return any(part.can(auth, action, obj) for part in self.parts)

    def scope(self, auth: Claims) -> Claims | None:
        # The union of what each operand that allows reading lets the caller see.
        scopes = [part.scope(auth) for part in self.parts if part.can(auth, "read")]
        if not scopes or any(s is None for s in scopes):
            return None
        return scopes[0] if len(scopes) == 1 else {"$or": scopes}

    def __repr__(self) -> str:
        return " | ".join(f"({part!r})" for part in self.parts)


class _Not(Permission):
    def __init__(self, part: Permission) -> None:
        self.part = part

    def can(self, auth: Claims, action: str, obj: Claims | None = None) -> bool:
        return not self.part.can(auth, action, obj)

    def __repr__(self) -> str:
        return f"~({self.part!r})"

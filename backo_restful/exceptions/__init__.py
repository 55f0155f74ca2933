"""The exceptions raised by backo_restful.

Every error is a :class:`BackoError`. Each class declares its ``code`` (a stable
UPPER_SNAKE string) and its HTTP ``status`` once; the API layers read them from
here and never decide a status themselves.

The classes live in four modules (:mod:`.base`, :mod:`.storage`,
:mod:`.requests`, :mod:`.refusals`) and are all named from here:
``backo_restful.exceptions.NotFound``.
"""

from __future__ import annotations

from .base import BackoError as BackoError
from .base import ClientError as ClientError
from .base import DeclarationError as DeclarationError
from .base import EventDepthExceeded as EventDepthExceeded
from .base import InternalError as InternalError
from .base import NoEngine as NoEngine
from .refusals import Conflict as Conflict
from .refusals import ConstraintViolation as ConstraintViolation
from .refusals import Forbidden as Forbidden
from .refusals import InvalidToken as InvalidToken
from .refusals import NotEmpty as NotEmpty
from .refusals import NotFound as NotFound
from .refusals import PatchTestFailed as PatchTestFailed
from .refusals import PreconditionFailed as PreconditionFailed
from .refusals import PreconditionRequired as PreconditionRequired
from .refusals import ReferenceViolation as ReferenceViolation
from .refusals import RequiredRelation as RequiredRelation
from .refusals import Unauthorized as Unauthorized
from .refusals import UniqueViolation as UniqueViolation
from .refusals import UnknownAction as UnknownAction
from .refusals import UnknownCollection as UnknownCollection
from .refusals import ValidationFailed as ValidationFailed
from .requests import BadRequest as BadRequest
from .requests import BodyTooLarge as BodyTooLarge
from .requests import InvalidBody as InvalidBody
from .requests import InvalidCursor as InvalidCursor
from .requests import InvalidFilter as InvalidFilter
from .requests import InvalidId as InvalidId
from .requests import InvalidJSON as InvalidJSON
from .requests import InvalidParameter as InvalidParameter
from .requests import InvalidPatch as InvalidPatch
from .requests import InvalidPattern as InvalidPattern
from .requests import InvalidSort as InvalidSort
from .requests import InvalidValue as InvalidValue
from .requests import LimitExceeded as LimitExceeded
from .requests import MethodNotAllowed as MethodNotAllowed
from .requests import NestingTooDeep as NestingTooDeep
from .requests import PatternTooSlow as PatternTooSlow
from .requests import UnknownField as UnknownField
from .requests import UnknownOperator as UnknownOperator
from .requests import UnknownParameter as UnknownParameter
from .requests import UnknownView as UnknownView
from .requests import UnsupportedMediaType as UnsupportedMediaType
from .storage import ConnectionLost as ConnectionLost
from .storage import MigrationRefused as MigrationRefused
from .storage import SchemaMismatch as SchemaMismatch
from .storage import StorageConflict as StorageConflict
from .storage import StorageError as StorageError
from .storage import StorageUnavailable as StorageUnavailable

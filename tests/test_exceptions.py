"""Unit tests of backo_restful.exceptions: one class per code, each with its status."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from backo_restful import exceptions as exc

ROOT = Path(__file__).resolve().parents[1]

#: Every public class, its code and its status.
EXPECTED = {
    "BackoError": ("INTERNAL_ERROR", 500),
    "DeclarationError": ("DECLARATION_ERROR", 500),
    "NoEngine": ("NO_ENGINE", 500),
    "InternalError": ("INTERNAL_ERROR", 500),
    "EventDepthExceeded": ("EVENT_DEPTH_EXCEEDED", 500),
    "StorageError": ("STORAGE_ERROR", 500),
    "SchemaMismatch": ("SCHEMA_MISMATCH", 500),
    "MigrationRefused": ("MIGRATION_REFUSED", 500),
    "StorageUnavailable": ("STORAGE_UNAVAILABLE", 503),
    "ConnectionLost": ("STORAGE_UNAVAILABLE", 503),
    "StorageConflict": ("TRANSACTION_CONFLICT", 503),
    "ClientError": ("BAD_REQUEST", 400),
    "BadRequest": ("BAD_REQUEST", 400),
    "InvalidBody": ("INVALID_BODY", 400),
    "InvalidJSON": ("INVALID_JSON", 400),
    "InvalidPatch": ("INVALID_PATCH", 400),
    "InvalidValue": ("INVALID_VALUE", 400),
    "NestingTooDeep": ("NESTING_TOO_DEEP", 400),
    "InvalidParameter": ("INVALID_PARAMETER", 400),
    "UnknownParameter": ("UNKNOWN_PARAMETER", 400),
    "UnknownView": ("UNKNOWN_VIEW", 400),
    "InvalidCursor": ("INVALID_CURSOR", 400),
    "InvalidId": ("INVALID_ID", 400),
    "LimitExceeded": ("LIMIT_EXCEEDED", 400),
    "UnknownField": ("UNKNOWN_FIELD", 400),
    "InvalidFilter": ("INVALID_FILTER", 400),
    "UnknownOperator": ("UNKNOWN_OPERATOR", 400),
    "InvalidPattern": ("INVALID_PATTERN", 400),
    "PatternTooSlow": ("PATTERN_TOO_SLOW", 400),
    "InvalidSort": ("INVALID_SORT", 400),
    "BodyTooLarge": ("BODY_TOO_LARGE", 413),
    "UnsupportedMediaType": ("UNSUPPORTED_MEDIA_TYPE", 415),
    "Unauthorized": ("UNAUTHORIZED", 401),
    "InvalidToken": ("INVALID_TOKEN", 401),
    "Forbidden": ("FORBIDDEN", 403),
    "NotFound": ("OBJECT_DOES_NOT_EXIST", 404),
    "UnknownCollection": ("UNKNOWN_COLLECTION", 404),
    "UnknownAction": ("UNKNOWN_ACTION", 404),
    "MethodNotAllowed": ("METHOD_NOT_ALLOWED", 405),
    "Conflict": ("CONFLICT", 409),
    "UniqueViolation": ("UNIQUE_VIOLATION", 409),
    "NotEmpty": ("NOT_EMPTY", 409),
    "RequiredRelation": ("REQUIRED_RELATION", 409),
    "PatchTestFailed": ("PATCH_TEST_FAILED", 409),
    "ConstraintViolation": ("CONSTRAINT_VIOLATION", 409),
    "ReferenceViolation": ("CONSTRAINT_VIOLATION", 409),
    "PreconditionFailed": ("PRECONDITION_FAILED", 412),
    "PreconditionRequired": ("PRECONDITION_REQUIRED", 428),
    "ValidationFailed": ("VALIDATION_FAILED", 422),
}


def classes() -> dict[str, type[exc.BackoError]]:
    """The public exception classes of the module."""
    return {
        name: value
        for name, value in vars(exc).items()
        if isinstance(value, type) and issubclass(value, exc.BackoError) and name[0] != "_"
    }


def public_parent(cls: type) -> type:
    return next(base for base in cls.__mro__[1:] if not base.__name__.startswith("_"))


def test_every_class_has_its_code_and_status() -> None:
    assert {name: (cls.code, cls.status) for name, cls in classes().items()} == EXPECTED


@pytest.mark.parametrize("cls", list(classes().values()), ids=lambda cls: cls.__name__)
def test_a_class_declares_a_code_only_to_change_it(cls: type[exc.BackoError]) -> None:
    assert re.fullmatch(r"[A-Z]+(_[A-Z]+)*", cls.code)
    if cls is exc.BackoError:
        return
    parent = cls.__mro__[1]
    if "code" in vars(cls):
        assert cls.code != parent.code
    else:
        assert cls.code == parent.code
    if "status" not in vars(cls):
        assert cls.status == parent.status  # a subclass inherits its status


def test_each_code_is_declared_by_one_class() -> None:
    declared = Counter(cls.code for cls in classes().values() if "code" in vars(cls))
    assert [code for code, count in declared.items() if count > 1] == []
    # Classes declaring no code of their own: the generic ones.
    assert sorted(name for name, cls in classes().items() if "code" not in vars(cls)) == [
        "BadRequest",
        "ConnectionLost",
        "InternalError",
        "ReferenceViolation",
    ]


def test_client_errors_are_4xx_and_the_others_5xx() -> None:
    for cls in classes().values():
        client = issubclass(cls, exc.ClientError)
        assert (400 <= cls.status < 500) == client, cls


def test_to_dict() -> None:
    error = exc.InvalidFilter("No such thing.", {"field": "jar.name"})
    assert error.to_dict() == {
        "error": {
            "code": "INVALID_FILTER",
            "message": "No such thing.",
            "details": {"field": "jar.name"},
        }
    }
    assert error.field == "jar.name" and str(error) == "No such thing."
    assert exc.Forbidden().to_dict() == {
        "error": {"code": "FORBIDDEN", "message": "You may not do this.", "details": {}}
    }


def test_an_application_may_give_its_own_code() -> None:
    error = exc.Conflict("The jar is sealed.", code="JAR_SEALED")
    assert (error.code, error.status, exc.Conflict.code) == ("JAR_SEALED", 409, "CONFLICT")
    assert error.to_dict()["error"]["code"] == "JAR_SEALED"


@pytest.mark.parametrize(
    ("parent", "error"),
    [
        (exc.InvalidFilter, exc.UnknownOperator("Unknown operator '$x'.", {"operator": "$x"})),
        (exc.InvalidFilter, exc.InvalidPattern("Invalid $re pattern.", {"field": "name"})),
        (exc.InvalidFilter, exc.PatternTooSlow("pattern_timeout")),
        (exc.InvalidParameter, exc.InvalidCursor("Not a cursor.", {"parameter": "after"})),
        (exc.InvalidParameter, exc.LimitExceeded("Too many.", {"maximum": 5})),
        (exc.InvalidBody, exc.InvalidJSON()),
        (exc.NotFound, exc.UnknownCollection("nothing")),
        (exc.Unauthorized, exc.InvalidToken()),
        (exc.StorageUnavailable, exc.StorageConflict("deadlock")),
        (exc.BadRequest, exc.InvalidSort("Bad sort.")),
    ],
)
def test_a_parent_class_catches_its_narrow_errors(
    parent: type[exc.BackoError], error: exc.BackoError
) -> None:
    with pytest.raises(parent) as caught:
        raise error
    assert caught.value is error and caught.value.status == parent.status


def test_narrow_classes_carry_their_details() -> None:
    error = exc.UnknownOperator("Unknown.", {"field": "type", "operator": "$x"})
    assert (error.field, error.details["operator"]) == ("type", "$x")
    limit = exc.LimitExceeded("Over.", {"parameter": "depth", "setting": "S", "maximum": 5})
    assert (limit.parameter, limit.setting, limit.maximum) == ("depth", "S", 5)
    assert exc.InvalidId("Bad.", {"collection": "jar", "id": "x"}).collection == "jar"
    assert exc.InvalidCursor("Bad.").parameter is None
    assert exc.PatternTooSlow("1s").details == {"limit": "1s"}


_TREE_LINE = re.compile(
    r"^(?P<indent>[ │├└─]*)(?P<name>[A-Z]\w+)\s+(?P<code>[A-Z_]+)\s+(?P<status>\d{3})$"
)


def test_errors_md_lists_every_class_in_its_tree_and_table() -> None:
    text = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    block = text.split("```text\nBackoError", 1)[1].split("```", 1)[0]
    lines = ("BackoError" + block).strip().splitlines()
    parents: dict[int, str] = {}
    listed = {}
    for line in lines:
        match = _TREE_LINE.match(line)
        assert match, f"docs/errors.md: unreadable tree line {line!r}"
        depth = len(match["indent"]) // 4
        name = match["name"]
        listed[name] = (match["code"], int(match["status"]))
        parents[depth] = name
        if depth:
            cls = classes()[name]
            assert public_parent(cls).__name__ == parents[depth - 1], name
    assert listed == EXPECTED
    table = text.split("## Codes", 1)[1]
    rows = re.findall(r"^\| `([A-Z_]+)` +\| ([^|]+)\| (\d{3}) ", table, flags=re.MULTILINE)
    in_table = {
        name: (code, int(status))
        for code, names, status in rows
        for name in re.findall(r"`(\w+)`", names)
    }
    assert in_table == EXPECTED
    assert "code=" in text

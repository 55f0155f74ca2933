"""Unit tests of backo_restful.access: what one caller may see and change."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Mapping
from typing import Any

import pytest
from marshmallow import fields

from backo_restful import DataModel, Schema
from backo_restful.access import (
    NOTHING,
    Access,
    audit_values,
    managed_fields,
    unguarded,
)
from backo_restful.auth import HasRole, Owner, user_of
from backo_restful.exceptions import Forbidden, Unauthorized
from backo_restful.model import AUDIT_FIELDS
from backo_restful.query import And, Condition, Or


def is_admin(auth: Mapping[str, Any], obj: Any) -> bool:
    return user_of(auth).has_role("admin")


def own_draft(auth: Mapping[str, Any], obj: Any) -> bool:
    """Readable in a draft of one's own; of no object, as for filters: no."""
    return obj is not None and obj.get("draft") and obj.get("owner") == user_of(auth).id


dm = DataModel("access")


@dm.collection("note", permissions=Owner() | HasRole("admin"), audit=True)
class Note(Schema):
    title = fields.String()
    owner = fields.String(allow_none=True)
    secret = fields.String(metadata={"can_read": is_admin, "can_modify": False})
    notes = fields.String(metadata={"can_read": own_draft})


@dm.collection("task", permissions=Owner("assignee") & HasRole("staff"))
class Task(Schema):
    assignee = fields.Integer()


@dm.collection("board", permissions=HasRole("editor"))
class Board(Schema):
    text = fields.String()


@dm.collection("open")
class Open(Schema):
    text = fields.String()


dm.resolve()
NOTE, TASK, BOARD, OPEN = (dm.get(name) for name in ("note", "task", "board", "open"))

ANONYMOUS: dict[str, Any] = {}
ALICE = {"sub": "7", "roles": ["staff"]}
ADMIN = {"sub": "1", "roles": ["admin", "editor"]}


@pytest.mark.parametrize(
    ("auth", "hidden"),
    [(ANONYMOUS, {"secret", "notes"}), (ALICE, {"secret", "notes"}), (ADMIN, {"notes"})],
)
def test_hidden_fields_are_those_the_caller_may_not_read(auth: Any, hidden: set[str]) -> None:
    access = Access(dm, auth)
    assert {name for name in NOTE.schema.fields if access.hidden(NOTE, name)} == hidden
    assert not access.hidden(NOTE, "no_such_field")  # undeclared rights allow


def test_field_rights_may_depend_on_the_object() -> None:
    access = Access(dm, ALICE)
    assert access.can_read(NOTE, "notes", {"draft": True, "owner": "7"})
    assert not access.can_read(NOTE, "notes", {"draft": True, "owner": "8"})
    assert not access.can_read(NOTE, "notes", {"draft": False, "owner": "7"})
    assert not access.can_read(NOTE, "notes")


def test_can_modify() -> None:
    for auth in (ANONYMOUS, ALICE, ADMIN):
        access = Access(dm, auth)
        assert not access.can_modify(NOTE, "secret")  # can_modify=False: nobody
        assert access.can_modify(NOTE, "title") and access.can_modify(NOTE, "notes")


def test_require_refuses_anonymous_callers_with_401_others_with_403() -> None:
    with pytest.raises(Unauthorized) as anonymous:
        Access(dm, ANONYMOUS).require(BOARD, "update")
    assert anonymous.value.message == "Authentication is required to update board."
    with pytest.raises(Forbidden) as alice:
        Access(dm, ALICE).require(BOARD, "update")
    assert alice.value.details == {"collection": "board", "action": "update"}
    Access(dm, ADMIN).require(BOARD, "update")
    Access(dm, ANONYMOUS).require(OPEN, "delete")


def test_the_scope_of_an_owner() -> None:
    scope = Access(dm, ALICE).scope(NOTE)
    assert isinstance(scope, Condition)
    assert (scope.path.text, scope.op, scope.value) == ("owner", "eq", "7")
    assert Access(dm, ADMIN).scope(NOTE) is None  # an admin sees every note


def test_the_scope_of_a_combined_permission() -> None:
    scope = Access(dm, ALICE).scope(TASK)
    assert isinstance(scope, Condition)
    assert (scope.path.text, scope.op, scope.value) == ("assignee", "eq", 7)


def test_a_scope_compares_the_callers_own_id() -> None:
    # "07" parses as 7, but is not user 7: the caller sees nothing.
    staff = {"sub": "07", "roles": ["staff"]}
    assert Access(dm, staff).scope(TASK) is NOTHING
    # An id that is no integer does not fit the field: nothing either.
    assert Access(dm, {"sub": "x", "roles": ["staff"]}).scope(TASK) is NOTHING


@pytest.mark.parametrize("auth", [ANONYMOUS, {"sub": "7"}])
def test_a_caller_who_may_not_read_sees_nothing(auth: Any) -> None:
    assert Access(dm, auth).scope(BOARD) is NOTHING
    assert Access(dm, auth).scope(TASK) is NOTHING


def test_scopes_are_worked_out_once_and_listed_by_collection() -> None:
    access = Access(dm, ALICE)
    assert access.scope(NOTE) is access.scope(NOTE)
    scopes = access.scopes()
    assert set(scopes) == {"note", "task", "board"} and len(scopes) == 3
    assert scopes["note"] is access.scope(NOTE) and scopes["board"] is NOTHING
    with pytest.raises(KeyError):
        scopes["open"]
    assert dict(Access(dm, ADMIN).scopes()) == {"task": NOTHING}


def test_not_and_or_scopes_check_each_owner_test() -> None:
    class Either(Owner):
        def scope(self, auth: Mapping[str, Any]) -> Any:
            return {"$or": [{"owner": user_of(auth).id}, {"$not": {"title": "x"}}]}

    model = DataModel("either")

    @model.collection("doc", permissions=Either())
    class Doc(Schema):
        owner = fields.String()
        title = fields.String()

    model.resolve()
    scope = Access(model, {"sub": "5"}).scope(model.get("doc"))
    assert isinstance(scope, Or) and not isinstance(scope, And)


def test_owner_and_audit_fields_are_managed() -> None:
    assert managed_fields(NOTE) == {"owner", *AUDIT_FIELDS}
    assert managed_fields(TASK) == {"assignee"}
    assert managed_fields(OPEN) == set()
    assert Access(dm, ALICE).owner_values(NOTE) == {"owner": "7"}
    assert Access(dm, ALICE).owner_values(OPEN) == {}


def test_audit_values() -> None:
    created = audit_values(NOTE, "7", create=True)
    assert set(created) == set(AUDIT_FIELDS)
    assert created["created_by"] == created["updated_by"] == "7"
    assert created["created_at"] == created["updated_at"]
    assert created["created_at"].tzinfo is None  # stored as naive UTC
    assert set(audit_values(NOTE, None, create=False)) == {"updated_at", "updated_by"}
    assert audit_values(OPEN, "7", create=True) == {}


def test_unguarded() -> None:
    assert unguarded(OPEN)
    assert not unguarded(NOTE) and not unguarded(BOARD)

    model = DataModel("rights only")

    @model.collection("page")
    class Page(Schema):
        text = fields.String(metadata={"can_read": False})

    assert not unguarded(model.get("page"))


def test_unguarded_does_not_keep_collections_alive() -> None:
    def checked() -> weakref.ref[Any]:
        model = DataModel("short-lived")

        @model.collection("thing")
        class Thing(Schema):
            class Meta(Schema.Meta):
                register = False  # marshmallow's registry would keep it alive

            name = fields.String()

        model.resolve()
        assert unguarded(model.get("thing"))
        return weakref.ref(model.get("thing"))

    collection = checked()
    gc.collect()
    assert collection() is None

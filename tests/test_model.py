"""Declarations: what a user may declare, and the errors a wrong one raises early."""

from __future__ import annotations

import pytest
from marshmallow import fields

from backo_restful import DataModel, Engine, Ref, RefsList, Schema
from backo_restful.exceptions import DeclarationError
from backo_restful.storage import PeeweeStorage


def build(dm: DataModel) -> Engine:
    return Engine(dm, PeeweeStorage("sqlite:///:memory:"))


def declare(**collections: dict[str, fields.Field]) -> DataModel:
    dm = DataModel("test")
    for name, attrs in collections.items():
        dm.add_collection(name, type(name.title(), (Schema,), dict(attrs)))
    return dm


def raises(dm: DataModel, *fragments: str) -> DeclarationError:
    with pytest.raises(DeclarationError) as caught:
        build(dm)
    for fragment in fragments:
        assert fragment in str(caught.value), str(caught.value)
    return caught.value


def test_collection_decorator_and_add_collection() -> None:
    dm = DataModel("shop")

    @dm.collection("jar")
    class Jar(Schema):
        cookies = RefsList("cookie", reverse="jar")

    class Cookie(Schema):
        jar = Ref("jar", reverse="cookies")

    collection = dm.add_collection("cookie", Cookie)
    assert dm.object("cookie") is collection and collection.schema_class is Cookie
    assert Jar.__backo_collection__ is dm.object("jar")
    engine = build(dm)
    assert engine.post("cookie", {"jar": {}})[0] == {"id": 1, "jar": 1}


def test_unknown_target() -> None:
    error = raises(
        declare(jar=dict(cookies=RefsList("biscuit", reverse="jar"))), "jar.cookies", "'biscuit'"
    )
    assert (error.collection, error.field) == ("jar", "cookies")


def test_missing_reverse_field() -> None:
    dm = declare(
        jar=dict(cookies=RefsList("cookie", reverse="jar")), cookie=dict(type=fields.String())
    )
    raises(dm, "jar.cookies", "reverse field 'jar'")


def test_reverse_that_is_not_a_relation() -> None:
    dm = declare(
        jar=dict(cookies=RefsList("cookie", reverse="type")), cookie=dict(type=fields.String())
    )
    raises(dm, "jar.cookies", "'type'")


def test_reverse_that_does_not_point_back() -> None:
    dm = declare(
        jar=dict(cookies=RefsList("cookie", reverse="jar"), lid=Ref("lid", reverse="jar")),
        cookie=dict(jar=Ref("jar", reverse="lid")),
        lid=dict(jar=Ref("jar", reverse="lid")),
    )
    raises(dm, "jar.cookies", "does not point back")


def test_two_relations_claiming_the_same_reverse() -> None:
    dm = declare(
        jar=dict(
            cookies=RefsList("cookie", reverse="jar"), others=RefsList("cookie", reverse="jar")
        ),
        cookie=dict(jar=Ref("jar", reverse="cookies")),
    )
    raises(dm, "jar.others", "does not point back", "jar.cookies")


def test_id_is_reserved() -> None:
    raises(declare(jar=dict(id=fields.Integer())), "jar.id", "reserved")


def test_unsupported_field_type() -> None:
    raises(declare(jar=dict(price=fields.Decimal())), "jar.price", "Decimal")


def test_declared_twice_and_bad_names() -> None:
    dm = declare(jar=dict(name=fields.String()))
    with pytest.raises(DeclarationError, match="declared twice"):
        dm.add_collection("jar", type("Other", (Schema,), {}))
    with pytest.raises(DeclarationError, match="identifier"):
        dm.add_collection("not a name", type("Other", (Schema,), {}))
    with pytest.raises(DeclarationError, match="backo_restful.Schema"):
        dm.add_collection("plain", dict)  # type: ignore[arg-type]
    with pytest.raises(DeclarationError, match="no collection named 'lid'"):
        dm.object("lid")


def test_a_foreign_key_column_name_clash() -> None:
    dm = declare(
        jar=dict(cookies=RefsList("cookie", reverse="jar")),
        cookie=dict(jar=Ref("jar", reverse="cookies"), jar_id=fields.Integer()),
    )
    raises(dm, "cookie.jar", "jar_id")


def test_relation_arguments_are_checked() -> None:
    with pytest.raises(TypeError):
        RefsList("cookie", reverse="jar", on_delete="cascade")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        Ref("jar", reverse="cookies", allow_none=True)

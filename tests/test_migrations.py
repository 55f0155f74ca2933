"""Migrations: storage.plan() and storage.migrate() bring a populated database in
line with a new version of its model, on every backend, without losing a row."""

from __future__ import annotations

from typing import Any

import peewee
import pytest
from marshmallow import fields, validate

from backo_restful import DataModel, Engine, Ref, RefsList, Schema
from backo_restful.api import basic
from backo_restful.exceptions import MigrationRefused, SchemaMismatch, StorageError
from backo_restful.storage import Change, PeeweeStorage


def version_1() -> DataModel:
    dm = DataModel("shop")

    @dm.collection("jar")
    class Jar(Schema):
        name = fields.String()
        cookies = RefsList("cookie", reverse="jar")

    @dm.collection("cookie")
    class Cookie(Schema):
        type = fields.String(required=True)
        weight = fields.Float()
        jar = Ref("jar", reverse="cookies")

    return dm


def version_2() -> DataModel:
    """Version 1, plus a field, a Ref, a many-to-many pair, an index, a unique
    field and a collection."""
    dm = DataModel("shop")

    @dm.collection("jar")
    class Jar(Schema):
        name = fields.String()
        code = fields.String(metadata={"unique": True}, validate=validate.Length(max=20))
        cookies = RefsList("cookie", reverse="jar")
        shelf = Ref("shelf", reverse="jars")

    @dm.collection("cookie")
    class Cookie(Schema):
        type = fields.String(required=True)
        weight = fields.Float()
        colour = fields.String(load_default="brown", metadata={"index": True})
        jar = Ref("jar", reverse="cookies")
        tags = RefsList("tag", reverse="cookies")

    @dm.collection("shelf")
    class Shelf(Schema):
        label = fields.String()
        jars = RefsList("jar", reverse="shelf")

    @dm.collection("tag")
    class Tag(Schema):
        label = fields.String()
        cookies = RefsList("cookie", reverse="tags")

    return dm


def populate(database: Any) -> Engine:
    engine = Engine(version_1(), PeeweeStorage(database))
    engine.post("jar", [{"name": "blue"}, {"name": "red"}])
    engine.post("cookie", [{"type": "oat", "weight": 1.5, "jar": 1}, {"type": "rye", "jar": 2}])
    engine.post("cookie", {"type": "plain"})
    engine.delete("cookie", 3)  # its id is never given again
    return engine


#: The rows of version 1, as version 2 reads them before anything is written.
ROWS = {
    "jar": [
        {"id": 1, "name": "blue", "code": None, "cookies": [1], "shelf": None},
        {"id": 2, "name": "red", "code": None, "cookies": [2], "shelf": None},
    ],
    "cookie": [
        {"id": 1, "type": "oat", "weight": 1.5, "colour": "brown", "jar": 1, "tags": []},
        {"id": 2, "type": "rye", "weight": None, "colour": "brown", "jar": 2, "tags": []},
    ],
}


#: What a database raises for a row without a value in a NOT NULL column.
NOT_NULL = (peewee.IntegrityError, peewee.OperationalError)


def kinds(changes: list[Change]) -> list[tuple[str, str, str | None]]:
    return [(change.kind, change.table, change.column) for change in changes]


def test_version_2_adds_fields_relations_indexes_and_collections(database: Any) -> None:
    populate(database)
    storage = PeeweeStorage(database)
    engine = Engine(version_2(), storage)
    id_suffixed = storage.dialect.id_suffixed_indexes
    expected = [
        ("add_table", "shelf", None),
        ("add_table", "tag", None),
        ("add_table", "cookie_tags__tag_cookies", None),
        ("add_column", "jar", "code"),
        ("add_column", "cookie", "colour"),
        ("add_foreign_key", "jar", "shelf_id"),
        ("add_index", "jar", "shelf_id"),
        ("add_unique", "jar", "code"),
        ("add_index", "cookie", "colour"),
    ]
    plan = storage.plan()
    assert sorted(kinds(plan)) == sorted(expected)
    assert [change.kind for change in plan][:3] == ["add_table"] * 3  # in the order applied
    assert not any(change.destructive for change in plan)
    descriptions = {str(change) for change in plan}
    assert "add column cookie.colour (varchar(255)), existing rows get 'brown'" in descriptions
    assert "add column jar.shelf_id (integer), a foreign key to shelf.id" in descriptions
    assert "add column jar.code (varchar(20))" in descriptions
    assert "add table shelf" in descriptions
    index = "cookie_colour_id" if id_suffixed else "cookie_colour"
    columns = "colour, id" if id_suffixed else "colour"
    assert f"add index {index} on cookie ({columns})" in descriptions

    assert storage.migrate() == plan
    assert storage.plan() == []
    for name, rows in ROWS.items():
        assert engine.get(name, sort="id")[0] == rows

    # The new fields and relations work, and the database keeps them.
    shelf, _ = engine.post("shelf", {"label": "top", "jars": [1]})
    assert engine.get("jar", 1)[0]["shelf"] == shelf["id"]
    engine.patch("jar", 2, {"code": "R-2"})
    assert engine.get("jar", filter_={"code": "R-2"}, depth=0)[0] == [2]
    tag, _ = engine.post("tag", {"label": "crisp", "cookies": [1, 2]})
    assert engine.get("cookie", 2)[0]["tags"] == [tag["id"]]
    engine.post("cookie", {"type": "ginger", "colour": "gold", "jar": 1})
    assert engine.get("cookie", filter_={"colour": "gold"}, depth=0)[0] == [4]
    assert engine.get("cookie", filter_={"colour": "brown"}, depth=0)[0] == [1, 2]
    with pytest.raises(Exception) as taken:
        engine.patch("jar", 1, {"code": "R-2"})
    assert getattr(taken.value, "code", None) == "UNIQUE_VIOLATION"
    assert storage.enforces(engine.model.get("jar").relations["shelf"])
    with pytest.raises(peewee.IntegrityError), database.connection_context():
        database.execute_sql("INSERT INTO jar (name, shelf_id) VALUES ('x', 99)")


def schema(database: Any) -> dict[str, Any]:
    """Every table of the database: its columns (type, null) and indexes."""
    with database.connection_context():
        return {
            table: (
                [(c.name, c.data_type, c.null) for c in database.get_columns(table)],
                sorted((i.name, tuple(i.columns), i.unique) for i in database.get_indexes(table)),
            )
            for table in database.get_tables()
        }


def rows(engine: Engine) -> dict[str, Any]:
    return {name: engine.get(name, sort="id")[0] for name in engine.model.collections}


def model(
    *,
    without: tuple[str, ...] = (),
    jar_required: bool = False,
    collections: dict[str, dict[str, Any]] | None = None,
    **extra: Any,
) -> DataModel:
    """Version 1 of the model, ``without`` cookie's weight or its jar, with the
    ``extra`` fields on cookie (new or replacing one) and the ``collections``
    (name -> fields) besides."""
    dm = DataModel("shop")
    jar_fields: dict[str, Any] = {"name": fields.String()}
    cookie_fields: dict[str, Any] = {"type": fields.String(required=True)}
    if "weight" not in without:
        cookie_fields["weight"] = fields.Float()
    if "jar" not in without:
        jar_fields["cookies"] = RefsList("cookie", reverse="jar")
        cookie_fields["jar"] = Ref("jar", reverse="cookies", required=jar_required)
    cookie_fields.update(extra)
    dm.add_collection("jar", type("Jar", (Schema,), jar_fields))
    dm.add_collection("cookie", type("Cookie", (Schema,), cookie_fields))
    for name, declared in (collections or {}).items():
        dm.add_collection(name, type(name.title(), (Schema,), declared))
    return dm


def test_a_destructive_change_is_refused_unless_allowed(database: Any) -> None:
    before_rows = rows(populate(database))
    before = schema(database)
    storage = PeeweeStorage(database)
    engine = Engine(model(without=("weight", "jar")), storage)
    plan = storage.plan()
    assert kinds(plan) == [("drop_column", "cookie", "weight"), ("drop_column", "cookie", "jar_id")]
    assert [change.destructive for change in plan] == [True, True]
    assert str(plan[0]) == "drop column cookie.weight (its values are lost)"
    with pytest.raises(MigrationRefused) as refused:
        storage.migrate()
    message = str(refused.value)
    assert message.startswith("Migration refused, nothing was applied:")
    assert "- drop column cookie.weight (its values are lost): it loses data" in message
    assert "- drop column cookie.jar_id (its values are lost): it loses data" in message
    assert [change for change, _ in refused.value.refused] == plan
    assert refused.value.code == "MIGRATION_REFUSED" and refused.value.details["refused"][0] == {
        "kind": "drop_column",
        "table": "cookie",
        "column": "weight",
        "index": None,
        "destructive": True,
        "description": "drop column cookie.weight (its values are lost)",
        "reason": "it loses data: pass allow_destructive=True to apply it",
    }
    assert schema(database) == before
    assert storage.plan() == plan

    assert storage.migrate(allow_destructive=True) == plan
    assert storage.plan() == []
    assert "weight" not in dict((c[0], c) for c in schema(database)["cookie"][0])
    assert engine.get("cookie", sort="id")[0] == [
        {"id": 1, "type": "oat"},
        {"id": 2, "type": "rye"},
    ]
    assert engine.get("jar", sort="id")[0] == [
        {"id": row["id"], "name": row["name"]} for row in before_rows["jar"]
    ]
    # The table may have been rebuilt (SQLite): its ids still go on from 3.
    assert engine.post("cookie", {"type": "ginger"})[0]["id"] == 4


def test_a_new_required_field_needs_a_default_on_a_table_with_rows(database: Any) -> None:
    before_rows = rows(populate(database))
    before = schema(database)
    storage = PeeweeStorage(database)
    Engine(model(size=fields.Integer(required=True), note=fields.String()), storage)
    with pytest.raises(MigrationRefused) as refused:
        storage.migrate(allow_destructive=True)
    assert str(refused.value) == (
        "Migration refused, nothing was applied:\n- add column cookie.size (integer): the "
        "field is required and has no default (load_default), and cookie has rows: they "
        "would hold no value"
    )
    # The other change (cookie.note) was not applied either.
    assert kinds(storage.plan()) == [
        ("add_column", "cookie", "size"),
        ("add_column", "cookie", "note"),
    ]
    assert schema(database) == before
    assert rows(Engine(model(), PeeweeStorage(database))) == before_rows

    storage = PeeweeStorage(database)
    engine = Engine(model(size=fields.Integer(load_default=3)), storage)
    assert [str(change) for change in storage.migrate()] == [
        "add column cookie.size (integer), existing rows get 3"
    ]
    assert [row["size"] for row in engine.get("cookie", sort="id")[0]] == [3, 3]


def test_a_new_required_field_or_relation_is_added_to_an_empty_table(database: Any) -> None:
    Engine(model(without=("jar",)), PeeweeStorage(database)).post("jar", {"name": "blue"})
    storage = PeeweeStorage(database)
    dm = DataModel("shop")

    @dm.collection("jar")
    class Jar(Schema):
        name = fields.String()
        cookies = RefsList("cookie", reverse="jar")

    @dm.collection("cookie")
    class Cookie(Schema):
        type = fields.String(required=True)
        weight = fields.Float()
        size = fields.Integer(required=True)
        jar = Ref("jar", reverse="cookies", required=True)

    engine = Engine(dm, storage)
    assert [str(change) for change in storage.migrate()] == [
        "add column cookie.size (integer)",
        "add column cookie.jar_id (integer), a foreign key to jar.id, NOT NULL",
        "add index cookie_jar_id on cookie (jar_id)",
    ]
    assert storage.plan() == []
    assert engine.post("cookie", {"type": "oat", "size": 2, "jar": 1})[0]["jar"] == 1
    with pytest.raises(NOT_NULL), database.connection_context():
        database.execute_sql("INSERT INTO cookie (type, size) VALUES ('rye', 1)")  # NOT NULL
    assert storage.enforces(dm.get("cookie").relations["jar"])


def test_a_required_relation_is_refused_on_a_table_with_rows(database: Any) -> None:
    populate(database)
    before = schema(database)
    storage = PeeweeStorage(database)
    box = Ref("box", reverse="cookies", required=True)
    Engine(
        model(box=box, collections={"box": {"cookies": RefsList("cookie", reverse="box")}}), storage
    )
    with pytest.raises(MigrationRefused) as refused:
        storage.migrate()
    assert [(change.kind, why) for change, why in refused.value.refused] == [
        (
            "add_foreign_key",
            "the relation is required and has no default (load_default), and cookie has "
            "rows: they would hold no value",
        )
    ]
    assert schema(database) == before  # not even the new table


def test_nullability_follows_the_relation(database: Any) -> None:
    engine = populate(database)
    engine.post("cookie", {"type": "loose"})
    storage = PeeweeStorage(database)
    Engine(model(jar_required=True), storage)
    plan = storage.plan()
    assert [str(change) for change in plan] == ["make cookie.jar_id NOT NULL"]
    with pytest.raises(MigrationRefused, match="1 rows of cookie have no jar_id"):
        storage.migrate()
    engine.delete("cookie", 4)
    assert storage.migrate() == plan
    assert storage.plan() == []
    with pytest.raises(NOT_NULL), database.connection_context():
        database.execute_sql("INSERT INTO cookie (type) VALUES ('rye')")

    storage = PeeweeStorage(database)
    engine = Engine(model(), storage)
    assert [str(change) for change in storage.migrate()] == ["make cookie.jar_id nullable"]
    assert engine.post("cookie", {"type": "loose"})[0]["jar"] is None


def test_indexes_and_unique_constraints_follow_the_model(database: Any) -> None:
    populate(database)
    code = fields.Integer(metadata={"unique": True})
    storage = PeeweeStorage(database)
    engine = Engine(model(code=code, grade=fields.Integer(metadata={"index": True})), storage)
    storage.migrate()
    engine.patch("cookie", 1, {"code": 7, "grade": 1})
    engine.patch("cookie", 2, {"code": 8, "grade": 1})

    # The unique field becomes indexed only, the indexed one unique: refused,
    # two cookies have the same grade.
    storage = PeeweeStorage(database)
    unique_grade = fields.Integer(metadata={"unique": True})
    indexed_code = fields.Integer(metadata={"index": True})
    engine = Engine(model(code=indexed_code, grade=unique_grade), storage)
    assert sorted(kinds(storage.plan())) == [
        ("add_index", "cookie", "code"),
        ("add_unique", "cookie", "grade"),
        ("drop_index", "cookie", "grade"),
        ("drop_unique", "cookie", "code"),
    ]
    with pytest.raises(MigrationRefused) as refused:
        storage.migrate()
    assert [why for _, why in refused.value.refused] == [
        "1 values of cookie.grade are held by more than one row"
    ]
    engine.patch("cookie", 2, {"grade": 2})
    storage.migrate()
    assert storage.plan() == []
    engine.patch("cookie", 2, {"code": 7})  # no longer unique
    with pytest.raises(Exception, match="unique") as taken:
        engine.patch("cookie", 2, {"grade": 1})
    assert getattr(taken.value, "code", None) == "UNIQUE_VIOLATION"

    # Neither: both indexes go.
    storage = PeeweeStorage(database)
    Engine(model(code=fields.Integer(), grade=fields.Integer()), storage)
    assert sorted(change.kind for change in storage.migrate()) == ["drop_index", "drop_unique"]
    assert storage.plan() == []


def test_a_type_changed_is_destructive_and_shorter_text_is_checked(database: Any) -> None:
    engine = populate(database)
    engine.patch("cookie", 1, {"weight": 2.0})
    engine.patch("cookie", 2, {"type": "r" * 21})
    storage = PeeweeStorage(database)
    short = fields.String(required=True, validate=validate.Length(max=20), metadata={"index": True})
    engine = Engine(model(type=short, weight=fields.Integer()), storage)
    plan = storage.plan()
    columns = "type, id" if storage.dialect.id_suffixed_indexes else "type"
    assert [(str(change), change.destructive) for change in plan] == [
        ("change the type of cookie.type from text to varchar(20) (every value must fit)", False),
        ("change the type of cookie.weight from float to integer (values may not fit)", True),
        (f"add index {plan[2].index} on cookie ({columns})", False),
    ]
    with pytest.raises(MigrationRefused) as refused:
        storage.migrate()
    assert [why.split(":")[0] for _, why in refused.value.refused] == [
        "1 values of cookie.type are longer than 20 characters",
        "it loses data",
    ]
    with pytest.raises(MigrationRefused) as refused:
        storage.migrate(allow_destructive=True)
    assert [why for _, why in refused.value.refused] == [
        "1 values of cookie.type are longer than 20 characters"
    ]
    Engine(model(), PeeweeStorage(database)).patch("cookie", 2, {"type": "rye"})
    assert storage.migrate(allow_destructive=True) == plan
    assert storage.plan() == []
    assert engine.get("cookie", filter_={"type": "rye"})[0] == [
        {"id": 2, "type": "rye", "weight": None, "jar": 2}
    ]
    assert engine.get("cookie", 1)[0]["weight"] == 2

    # Back to text: nothing can be lost.
    storage = PeeweeStorage(database)
    Engine(model(weight=fields.Integer()), storage)
    assert [(str(change), change.destructive) for change in storage.plan()][0] == (
        "change the type of cookie.type from varchar(20) to text",
        False,
    )
    storage.migrate()
    assert storage.plan() == []


def test_a_join_table_the_model_no_longer_declares_is_dropped(database: Any) -> None:
    tags = {"tag": {"label": fields.String(), "cookies": RefsList("cookie", reverse="tags")}}
    engine = Engine(
        model(tags=RefsList("tag", reverse="cookies"), collections=tags), PeeweeStorage(database)
    )
    engine.post("cookie", {"type": "oat", "tags": [{"label": "crisp"}]})
    with database.connection_context():
        database.execute_sql("CREATE TABLE jar_notes__other (a INTEGER, b INTEGER)")
    storage = PeeweeStorage(database)
    engine = Engine(model(collections={"tag": {"label": fields.String()}}), storage)
    plan = storage.plan()
    # A table that is not a join table of the model's collections is left alone.
    assert [(str(change), change.destructive) for change in plan] == [
        ("drop table cookie_tags__tag_cookies (its links are lost)", True)
    ]
    with pytest.raises(MigrationRefused):
        storage.migrate()
    assert storage.migrate(allow_destructive=True) == plan
    assert storage.plan() == []
    assert engine.get("tag")[0] == [{"id": 1, "label": "crisp"}]
    with database.connection_context():
        assert "jar_notes__other" in database.get_tables()


def test_first_use_refuses_tables_that_lack_declared_columns(database: Any) -> None:
    populate(database)
    before = schema(database)
    storage = PeeweeStorage(database)
    engine = Engine(version_2(), storage)
    with pytest.raises(SchemaMismatch) as mismatch:
        engine.get("cookie")
    assert str(mismatch.value) == (
        "The database lacks columns the model declares: jar.code, jar.shelf_id, "
        "cookie.colour. Run storage.migrate() (flask backo migrate) to add them."
    )
    assert mismatch.value.missing == {"jar": ["code", "shelf_id"], "cookie": ["colour"]}
    assert (mismatch.value.code, mismatch.value.status) == ("SCHEMA_MISMATCH", 500)
    body, status, _ = basic.get("cookie", engine=engine)
    assert (status, body["error"]["code"]) == (500, "SCHEMA_MISMATCH")
    with pytest.raises(SchemaMismatch):
        storage.create_tables()
    assert schema(database) == before  # nothing created: not even the new tables
    storage.migrate()
    assert engine.get("cookie", depth=0)[0] == [1, 2]


def test_create_tables_makes_what_first_use_makes(database: Any) -> None:
    storage = PeeweeStorage(database)
    engine = Engine(version_2(), storage)
    assert storage.create_tables() == ["jar", "cookie", "shelf", "tag", "cookie_tags__tag_cookies"]
    assert storage.create_tables() == []
    assert storage.plan() == []
    database.count()
    assert engine.post("shelf", {"label": "top"})[1] == 201
    assert database.count("CREATE") == 0


def test_a_storage_without_a_model_has_no_plan(database: Any) -> None:
    storage = PeeweeStorage(database)
    for call in (storage.plan, storage.migrate, storage.create_tables):
        with pytest.raises(StorageError, match="not attached to a data model"):
            call()


@pytest.mark.backends("postgresql", "mysql")
def test_a_change_the_database_cannot_make(database: Any) -> None:
    populate(database)
    before = schema(database)
    storage = PeeweeStorage(database)
    Engine(model(type=fields.Integer(required=True), note=fields.String()), storage)
    plan = storage.plan()
    assert [change.kind for change in plan] == ["add_column", "change_type"]
    with pytest.raises(StorageError):  # 'oat' is not a number
        storage.migrate(allow_destructive=True)
    if storage.dialect.migrator_class.transactional_ddl:
        assert schema(database) == before  # rolled back, every change
    else:
        assert storage.plan() == plan[1:]  # MariaDB: what came before stays


def test_a_relation_becoming_one_to_one(database: Any) -> None:
    populate(database)
    dm = DataModel("shop")
    dm.add_collection(
        "jar",
        type("Jar", (Schema,), {"name": fields.String(), "cookie": Ref("cookie", reverse="jar")}),
    )
    cookie = {"type": fields.String(), "weight": fields.Float()}
    cookie["jar"] = Ref("jar", reverse="cookie", required=True)
    dm.add_collection("cookie", type("Cookie", (Schema,), cookie))
    storage = PeeweeStorage(database)
    engine = Engine(dm, storage)
    plan = storage.plan()
    assert [str(change) for change in plan] == [
        "make cookie.jar_id NOT NULL",
        "drop index cookie_jar_id on cookie (jar_id)",
        "add unique index cookie_jar_id on cookie (jar_id)",
    ]
    # The foreign key's index is replaced (at once on MariaDB, which would not
    # drop it on its own).
    assert storage.migrate() == plan
    assert storage.plan() == []
    assert engine.get("jar", 2)[0] == {"id": 2, "name": "red", "cookie": 2}
    with pytest.raises(peewee.IntegrityError), database.connection_context():
        database.execute_sql("UPDATE cookie SET jar_id = 1 WHERE id = 2")

"""Data models shared by the tests (each test builds its own engine and database)."""

from __future__ import annotations

from marshmallow import fields, validate

from backo_restful import DataModel, DeleteStrategy, Ref, RefsList, Schema

# -- one-to-many, unlinking on delete ------------------------------------------

cookies = DataModel("cookies")


@cookies.collection("jar")
class Jar(Schema):
    name = fields.String()
    cookies = RefsList("cookie", reverse="jar", on_delete=DeleteStrategy.UNLINK_REFERENCED_ITEMS)


@cookies.collection("cookie")
class Cookie(Schema):
    type = fields.String(required=True, validate=validate.Length(min=1))
    jar = Ref("jar", reverse="cookies")


# -- one-to-one ------------------------------------------------------------------

family = DataModel("family")


@family.collection("male")
class Male(Schema):
    name = fields.String()
    wife = Ref("female", reverse="husband")


@family.collection("female")
class Female(Schema):
    name = fields.String()
    husband = Ref("male", reverse="wife")


@family.collection("person")
class Person(Schema):
    name = fields.String()
    passport = Ref("passport", reverse="owner")


@family.collection("passport")
class Passport(Schema):
    number = fields.String()
    owner = Ref("person", reverse="passport", required=True)


# -- many-to-many -------------------------------------------------------------------

library = DataModel("library")


@library.collection("book")
class Book(Schema):
    title = fields.String(required=True)
    year = fields.Integer()
    authors = RefsList("author", reverse="books", on_delete=DeleteStrategy.UNLINK_REFERENCED_ITEMS)
    tags = RefsList("tag", reverse="books")


@library.collection("author")
class Author(Schema):
    name = fields.String(required=True)
    books = RefsList("book", reverse="authors", on_delete=DeleteStrategy.UNLINK_REFERENCED_ITEMS)


@library.collection("tag")
class Tag(Schema):
    label = fields.String(required=True)
    books = RefsList("book", reverse="tags")  # MUST_BE_EMPTY


# -- required references, cascades and trees ------------------------------------------

storage = DataModel("storage")


@storage.collection("box")
class Box(Schema):
    label = fields.String()
    items = RefsList("item", reverse="box")  # MUST_BE_EMPTY


@storage.collection("item")
class Item(Schema):
    name = fields.String()
    box = Ref("box", reverse="items", required=True)


@storage.collection("crate")
class Crate(Schema):
    label = fields.String()
    bottles = RefsList("bottle", reverse="crate", on_delete=DeleteStrategy.UNLINK_REFERENCED_ITEMS)


@storage.collection("bottle")
class Bottle(Schema):
    name = fields.String()
    crate = Ref("crate", reverse="bottles", required=True)


@storage.collection("shelf")
class Shelf(Schema):
    label = fields.String()
    trays = RefsList("tray", reverse="shelf", on_delete=DeleteStrategy.DELETE_REFERENCED_ITEMS)


@storage.collection("tray")
class Tray(Schema):
    label = fields.String()
    shelf = Ref("shelf", reverse="trays", required=True)
    muffins = RefsList("muffin", reverse="tray", on_delete=DeleteStrategy.DELETE_REFERENCED_ITEMS)


@storage.collection("muffin")
class Muffin(Schema):
    flavour = fields.String()
    tray = Ref("tray", reverse="muffins")


@storage.collection("node")
class Node(Schema):
    name = fields.String()
    parent = Ref("node", reverse="children")
    children = RefsList("node", reverse="parent", on_delete=DeleteStrategy.DELETE_REFERENCED_ITEMS)


# -- scalar types ----------------------------------------------------------------

kinds = DataModel("kinds")


@kinds.collection("thing")
class Thing(Schema):
    name = fields.String(required=True)
    code = fields.String()
    quantity = fields.Integer(load_default=0)
    ratio = fields.Float()
    active = fields.Boolean()
    seen_at = fields.DateTime()
    born_on = fields.Date()
    email = fields.Email()
    extra = fields.Dict()
    tags = fields.List(fields.String())
    secret = fields.String(load_only=True)
    label = fields.String(data_key="displayLabel")


# -- names that are SQL keywords or peewee attributes; relations to the same collection ---

tricky = DataModel("tricky")


@tricky.collection("order")
class Order(Schema):
    select = fields.String()
    save = fields.Integer()
    group = Ref("order", reverse="table")
    table = Ref("order", reverse="group")
    friends = RefsList(
        "order", reverse="friend_of", on_delete=DeleteStrategy.UNLINK_REFERENCED_ITEMS
    )
    friend_of = RefsList(
        "order", reverse="friends", on_delete=DeleteStrategy.UNLINK_REFERENCED_ITEMS
    )


# -- long names (identifiers are bounded on every backend) and aware datetimes -----------

long_names = DataModel("long_names")


@long_names.collection("organisation_with_a_long_name")
class Organisation(Schema):
    administrators_of_this_organisation = RefsList(
        "user_account_with_a_long_name", reverse="administered_organisations_of_user"
    )


@long_names.collection("user_account_with_a_long_name")
class UserAccount(Schema):
    at = fields.AwareDateTime()
    administered_organisations_of_user = RefsList(
        "organisation_with_a_long_name", reverse="administrators_of_this_organisation"
    )


# -- a hot set for contention: both sides of one-to-many and many-to-many ---------------

hot = DataModel("hot")


@hot.collection("jar")
class HotJar(Schema):
    stamp = fields.String()
    cookies = RefsList("cookie", reverse="jar", on_delete=DeleteStrategy.UNLINK_REFERENCED_ITEMS)


@hot.collection("cookie")
class HotCookie(Schema):
    stamp = fields.String()
    jar = Ref("jar", reverse="cookies")


@hot.collection("book")
class HotBook(Schema):
    stamp = fields.String()
    tags = RefsList("tag", reverse="books")


@hot.collection("tag")
class HotTag(Schema):
    stamp = fields.String()
    books = RefsList("book", reverse="tags")


# -- objects linked to themselves, on every kind of relation -----------------------------

selfish = DataModel("selfish")


@selfish.collection("node")
class SelfNode(Schema):
    name = fields.String()
    parent = Ref("node", reverse="children")
    children = RefsList("node", reverse="parent", on_delete=DeleteStrategy.UNLINK_REFERENCED_ITEMS)
    friends = RefsList("node", reverse="friend_of")
    friend_of = RefsList("node", reverse="friends")
    partner = Ref("node", reverse="partner_of")
    partner_of = Ref("node", reverse="partner")

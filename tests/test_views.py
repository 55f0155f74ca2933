"""Views: server-declared field selections, through api.basic and over HTTP, on every backend."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import fields

from backo_restful import Computed, DataModel, Engine, Ref, RefsList, Schema
from backo_restful.exceptions import DeclarationError
from backo_restful.model import RESERVED_NAMES
from backo_restful.storage import PeeweeStorage
from tests.test_behaviour import error, ok


def library() -> DataModel:
    dm = DataModel("views")

    @dm.collection("author", views={"default": ["name"], "full": ["name", "born", "books"]})
    class Author(Schema):
        name = fields.String()
        born = fields.Integer()
        books = RefsList("book", reverse="author")

    @dm.collection(
        "book",
        views={
            "card": ["title", "pages_label", "author.name"],
            "bare": [],
            "secrets": ["title", "secret"],
        },
    )
    class Book(Schema):
        title = fields.String()
        pages = fields.Integer()
        secret = fields.String(metadata={"can_read": False})
        author = Ref("author", reverse="books")
        pages_label = Computed(fields.String(), get=lambda b: f"{b['pages']} pages")

    return dm


@pytest.fixture
def client(make_client: Any) -> Any:
    client = make_client(library())
    ok(client.post("author", {"name": "Le Guin", "born": 1929}), 201)
    ok(client.post("book", {"title": "Earthsea", "pages": 200, "author": 1, "secret": "s"}), 201)
    ok(client.post("book", {"title": "Lathe", "pages": 180, "author": 1}), 201)
    return client


def test_a_view_selects_its_fields(client: Any) -> None:
    card = {"id": 1, "title": "Earthsea", "pages_label": "200 pages", "author": 1}
    assert ok(client.get("book", 1, view="card")) == card
    assert ok(client.get("book", 1, view="card", depth=2)) == {
        **card,
        "author": {"id": 1, "name": "Le Guin"},
    }
    assert ok(client.get("book", view="bare")) == [{"id": 1}, {"id": 2}]
    assert ok(client.get("book", view="card", sort="-id", depth=0)) == [2, 1]


def test_the_default_view_applies_when_nothing_is_asked(client: Any) -> None:
    assert ok(client.get("author")) == [{"id": 1, "name": "Le Guin"}]
    assert ok(client.get("author", 1)) == {"id": 1, "name": "Le Guin"}
    full = {"id": 1, "name": "Le Guin", "born": 1929, "books": [1, 2]}
    assert ok(client.get("author", 1, view="full")) == full
    assert ok(client.get("author", 1, fields="born")) == {"id": 1, "born": 1929}
    # Expanded objects show every field: the default view is for the collection read.
    assert ok(client.get("book", 1, depth=2, fields="author"))["author"] == full


def test_the_engine_shows_every_field_unless_asked(client: Any) -> None:
    engine = client.engine
    full = {"id": 1, "name": "Le Guin", "born": 1929, "books": [1, 2]}
    assert engine.get("author", 1) == (full, 200)
    assert engine.get("author", 1, view="default") == ({"id": 1, "name": "Le Guin"}, 200)
    assert engine.page("author", view="default").items == [{"id": 1, "name": "Le Guin"}]


def test_a_view_leaves_out_what_the_caller_may_not_read(client: Any) -> None:
    anonymous = {"auth": {}} if client.layer == "basic" else {}
    shown = ok(client.get("book", 1, view="secrets", **anonymous))
    assert shown == {"id": 1, "title": "Earthsea"}
    if client.layer == "basic":  # trusted code reads every field
        assert ok(client.get("book", 1, view="secrets"))["secret"] == "s"


def test_an_unknown_view_is_refused(client: Any) -> None:
    err = error(client.get("book", view="nope"), 400, "UNKNOWN_VIEW")
    assert err["details"] == {"parameter": "view", "collection": "book", "view": "nope"}
    err = error(client.get("book", 1, view="full"), 400, "UNKNOWN_VIEW")
    assert err["details"]["view"] == "full"


def test_view_and_fields_together_are_refused(client: Any) -> None:
    err = error(client.get("book", view="card", fields="title"), 400, "INVALID_PARAMETER")
    assert err["details"] == {"parameter": "view"}


def test_the_link_header_keeps_the_view(client: Any) -> None:
    result = client.get("book", view="card", limit=1)
    assert ok(result) == [{"id": 1, "title": "Earthsea", "pages_label": "200 pages", "author": 1}]
    links = result.headers["Link"]
    assert links.count("view=card") == 3 and 'rel="next"' in links


def test_statements_do_not_grow_with_rows(client: Any, database: Any) -> None:
    def statements() -> int:
        database.count()
        ok(client.get("book", view="card", depth=2))
        return database.count()

    few = statements()
    for number in range(10):
        ok(client.post("book", {"title": f"b{number}", "pages": number, "author": 1}), 201)
    assert statements() == few


# -- declarations -------------------------------------------------------------------


def test_view_is_a_reserved_name() -> None:
    assert "view" in RESERVED_NAMES
    dm = DataModel("broken")

    @dm.collection("thing")
    class Thing(Schema):
        view = fields.String()

    with pytest.raises(DeclarationError, match="reserved"):
        dm.resolve()


@pytest.mark.parametrize(
    ("views", "named"),
    [
        ({"card": ["title", "colour"]}, "'card'"),
        ({"card": ["author.colour"]}, "'card'"),
        ({"card": "title"}, "'card'"),
        (["title"], "views="),
    ],
)
def test_a_wrong_view_is_a_declaration_error(views: Any, named: str) -> None:
    dm = DataModel("broken")

    @dm.collection("author")
    class Author(Schema):
        name = fields.String()
        books = RefsList("book", reverse="author")

    @dm.collection("book", views=views)
    class Book(Schema):
        title = fields.String()
        author = Ref("author", reverse="books")

    with pytest.raises(DeclarationError) as caught:
        Engine(dm, PeeweeStorage("sqlite:///:memory:"))
    assert caught.value.collection == "book"
    assert named in str(caught.value)

"""The object API (``engine.collection(name)``): states, writes, lazy finds,
related objects, permissions and errors, on every backend."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import fields

from backo_restful import DataModel, DeleteStrategy, Ref, RefsList, Schema
from backo_restful.auth import Owner
from backo_restful.engine import objects as objects_module
from backo_restful.engine.objects import Object, Objects
from backo_restful.exceptions import (
    Forbidden,
    NotFound,
    Unauthorized,
    UnknownCollection,
    ValidationFailed,
)

shop = DataModel("shop")


@shop.collection("category")
class Category(Schema):
    name = fields.String()
    products = RefsList(
        "product", reverse="category", on_delete=DeleteStrategy.UNLINK_REFERENCED_ITEMS
    )


@shop.collection("product")
class Product(Schema):
    name = fields.String(required=True)
    price_cents = fields.Integer()
    stock = fields.Integer(load_default=0)
    category = Ref("category", reverse="products")


@shop.collection("memo", permissions=Owner("owner"))
class Memo(Schema):
    title = fields.String()
    owner = fields.String(allow_none=True)
    verdict = fields.String(metadata={"can_read": False, "can_modify": False})


ALICE = {"sub": "alice"}
BOB = {"sub": "bob"}


@pytest.fixture
def engine(make_engine: Any) -> Any:
    return make_engine(shop)


@pytest.fixture
def products(engine: Any) -> Objects:
    return engine.collection("product")


class Recorder(Objects):
    """Objects that remember each object loaded (the hook of a ``loaded`` event)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[Any] = []

    def _loaded(self, obj: Object) -> None:
        self.seen.append(obj.id)


# -- states -------------------------------------------------------------------------


def test_create_stores_at_once(products: Objects, engine: Any) -> None:
    p = products.create({"name": "tea", "price_cents": 250})
    assert p.state == "SAVED"
    assert isinstance(p.id, int)
    assert p["name"] == "tea" and p["price_cents"] == 250 and p["stock"] == 0
    assert engine.get("product", p.id)[0] == p.to_dict()


def test_every_state_transition(products: Objects, engine: Any) -> None:
    p = products.new({"name": "tea"})
    assert (p.state, p.id) == ("UNSAVED", None)
    p["price_cents"] = 100  # still new
    assert p.state == "UNSAVED"
    p.save()
    assert p.state == "SAVED" and engine.get("product", p.id)[0]["price_cents"] == 100
    p["stock"] = 10
    assert p.state == "UNSAVED"
    assert engine.get("product", p.id)[0]["stock"] == 0  # not written yet
    p.save()
    assert p.state == "SAVED" and engine.get("product", p.id)[0]["stock"] == 10
    p["stock"] = 99
    p.reload()  # forgets the change
    assert (p.state, p["stock"]) == ("SAVED", 10)
    p.delete()
    assert p.state == "UNSET"
    assert p["name"] == "tea"  # what it held stays readable
    with pytest.raises(NotFound):
        engine.get("product", p.id)


def test_load_is_saved(products: Objects) -> None:
    created = products.create({"name": "tea", "stock": 3})
    loaded = products.load(created.id)
    assert loaded.state == "SAVED"
    assert loaded.to_dict() == created.to_dict()
    assert products.load(str(created.id)).id == created.id  # ids as text, like the engine


def test_save_writes_only_the_changed_fields(products: Objects, engine: Any) -> None:
    p = products.create({"name": "tea", "stock": 1})
    engine.patch("product", p.id, {"name": "green tea"})  # meanwhile, someone else
    p["stock"] = 5
    p.save()
    assert p["name"] == "green tea"  # a PATCH of stock alone, and the stored object back
    assert engine.get("product", p.id)[0]["name"] == "green tea"


def test_save_without_changes_calls_nothing(products: Objects, database: Any) -> None:
    p = products.create({"name": "tea"})
    database.count()
    p.save()
    assert database.count() == 0
    assert p.state == "SAVED"


def test_reload_reads_again(products: Objects, engine: Any) -> None:
    p = products.create({"name": "tea"})
    engine.patch("product", p.id, {"stock": 7})
    assert p["stock"] == 0
    p.reload()
    assert p["stock"] == 7


def test_to_dict_is_a_copy(products: Objects) -> None:
    p = products.create({"name": "tea"})
    copy = p.to_dict()
    copy["name"] = "coffee"
    assert p["name"] == "tea"
    assert copy["id"] == p.id


def test_loaded_hook(engine: Any) -> None:
    recorder = Recorder(engine, "product")
    created = recorder.create({"name": "a"})
    assert recorder.seen == []  # a save is no load
    loaded = recorder.load(created.id)
    loaded.reload()
    list(recorder.find())
    assert recorder.seen == [created.id] * 3


# -- find ---------------------------------------------------------------------------


def test_find_filters_sorts_and_limits(products: Objects) -> None:
    for name, stock in [("c", 1), ("a", 5), ("b", 5), ("d", 0)]:
        products.create({"name": name, "stock": stock})
    found = products.find(filter_={"stock": {"$gte": 1}}, sort="name")
    assert [p["name"] for p in found] == ["a", "b", "c"]
    assert [p["name"] for p in products.find(sort="-name", limit=2)] == ["d", "c"]
    assert all(p.state == "SAVED" for p in products.find())
    assert [p.to_dict() for p in products.find(fields="name", limit=1)] == [{"id": 1, "name": "c"}]
    assert list(products.find(limit=0)) == []


def test_find_reads_lazily_one_statement_per_page(
    products: Objects, engine: Any, database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(objects_module, "FIND_PAGE_SIZE", 5)
    engine.post("product", [{"name": f"p{n:02}"} for n in range(12)])
    database.count()
    found = products.find(sort="name")
    assert database.count() == 0  # nothing read yet
    first = next(found)
    assert first["name"] == "p00"
    assert database.count("SELECT") == 1  # the first page only
    rest = list(found)
    assert [p["name"] for p in rest] == [f"p{n:02}" for n in range(1, 12)]
    assert database.count("SELECT") == 2  # pages 2 and 3, by cursor (no count)


def test_find_over_default_pages(products: Objects, engine: Any, database: Any) -> None:
    size = objects_module.FIND_PAGE_SIZE
    engine.post("product", [{"name": f"p{n:04}"} for n in range(size + 30)])
    database.count()
    names = [p["name"] for p in products.find(filter_={"name": {"$startswith": "p"}})]
    assert len(names) == size + 30 and len(set(names)) == size + 30
    assert database.count("SELECT") == 2
    capped = list(products.find(limit=size + 1))
    assert len(capped) == size + 1
    assert database.count("SELECT") == 2  # the second page asks for one object


# -- related ------------------------------------------------------------------------


def test_related(engine: Any, products: Objects) -> None:
    categories = engine.collection("category")
    drinks = categories.create({"name": "drinks"})
    tea = products.create({"name": "tea", "category": drinks.id})
    coffee = products.create({"name": "coffee", "category": drinks.id})
    alone = products.create({"name": "salt"})
    assert tea["category"] == drinks.id
    related = tea.related("category")
    assert isinstance(related, Object) and related["name"] == "drinks"
    assert alone.related("category") is None
    drinks.reload()
    listed = drinks.related("products")
    assert isinstance(listed, list)
    assert [p.id for p in listed] == drinks["products"] == [tea.id, coffee.id]
    assert all(p.state == "SAVED" for p in listed)
    with pytest.raises(KeyError, match="no relation 'name'"):
        tea.related("name")


def test_relations_set_by_id(engine: Any, products: Objects) -> None:
    drinks = engine.collection("category").create({"name": "drinks"})
    tea = products.create({"name": "tea"})
    tea["category"] = drinks.id
    tea.save()
    drinks.reload()
    assert drinks["products"] == [tea.id]


# -- errors -------------------------------------------------------------------------


def test_unknown_collection(engine: Any) -> None:
    with pytest.raises(UnknownCollection):
        engine.collection("nothing")


def test_unknown_field_is_a_key_error(products: Objects) -> None:
    p = products.create({"name": "tea"})
    with pytest.raises(KeyError, match="no field 'colour'"):
        p["colour"] = "green"
    with pytest.raises(KeyError):
        p["id"] = 9
    assert p.state == "SAVED"
    with pytest.raises(KeyError):
        p["colour"]


def test_validation_errors(products: Objects) -> None:
    with pytest.raises(ValidationFailed) as error:
        products.create({"price_cents": 3})  # no name
    assert "name" in error.value.messages
    p = products.new({"name": "tea", "colour": "green"})  # new() checks nothing yet
    with pytest.raises(ValidationFailed):
        p.save()
    assert p.state == "UNSAVED"
    q = products.create({"name": "tea"})
    q["stock"] = "many"
    with pytest.raises(ValidationFailed):
        q.save()
    assert q.state == "UNSAVED"


def test_missing_objects(products: Objects) -> None:
    with pytest.raises(NotFound) as error:
        products.load(404)
    assert (error.value.collection, error.value.id) == ("product", 404)
    new = products.new({"name": "tea"})
    with pytest.raises(NotFound, match="never saved"):
        new.reload()
    with pytest.raises(NotFound, match="never saved"):
        new.delete()
    p = products.create({"name": "tea"})
    p.delete()
    with pytest.raises(NotFound):
        p.reload()
    with pytest.raises(NotFound):
        p.save()  # it is gone: nothing to write back to
    p["stock"] = 1
    with pytest.raises(NotFound):
        p.save()


# -- permissions --------------------------------------------------------------------


def test_permissions_apply(engine: Any) -> None:
    alice = engine.collection("memo", auth=ALICE)
    bob = engine.collection("memo", auth=BOB)
    memo = alice.create({"title": "mine"})
    assert memo["owner"] == "alice"
    assert "verdict" not in memo  # a field alice cannot read is not shown
    engine.patch("memo", memo.id, {"verdict": "spam"})  # trusted code
    assert alice.load(memo.id).get("verdict") is None
    with pytest.raises(NotFound):
        bob.load(memo.id)  # outside bob's scope
    assert list(bob.find()) == []
    assert [m.id for m in alice.find()] == [memo.id]
    with pytest.raises(Unauthorized):
        engine.collection("memo", auth={}).create({"title": "x"})
    memo["verdict"] = "fine"
    with pytest.raises(Forbidden):
        memo.save()
    assert memo.state == "UNSAVED"
    assert engine.get("memo", memo.id)[0]["verdict"] == "spam"
    trusted = engine.collection("memo").load(memo.id)
    assert trusted["verdict"] == "spam"
    bobs_view = Object(bob, memo.to_dict(), "SAVED")
    with pytest.raises(NotFound):
        bobs_view.delete()
    assert alice.load(memo.id).id == memo.id

"""Actions: declared operations on an object or a collection, through the Engine,
api.basic and HTTP, in one transaction with everything they write."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from flask import Flask
from marshmallow import Schema as Args
from marshmallow import fields, validate

from backo_restful import DataModel, Engine, Ref, RefsList, Schema
from backo_restful.api import basic
from backo_restful.api.flask import Api, Resource
from backo_restful.auth import HasRole, JWTAuth, Owner
from backo_restful.exceptions import (
    Conflict,
    DeclarationError,
    InternalError,
    UnknownAction,
    ValidationFailed,
)
from backo_restful.storage import PeeweeStorage
from tests.conftest import Result

KEY = "a key of at least 32 bytes for HS256 in the action tests"
ALICE = {"sub": "1"}
BOB = {"sub": "2"}
CASHIER = {"sub": "9", "roles": ["cashier"]}
STOCKIST = {"sub": "8", "roles": ["stock"]}
ANONYMOUS: dict[str, Any] = {}
SYSTEM = None  # trusted code: api.basic only

#: What each handler was given, in order.
seen: list[tuple[str, Any, Any, Any]] = []


def build_model() -> DataModel:
    dm = DataModel("shop")

    @dm.collection("product", permissions=HasRole("stock"))
    class Product(Schema):
        name = fields.String(required=True)
        stock = fields.Integer(load_default=0)
        orders = RefsList("order", reverse="product")

    @dm.collection("order", permissions=Owner("customer") | HasRole("cashier"))
    class Order(Schema):
        status = fields.String(load_default="new")
        method = fields.String(allow_none=True)
        customer = fields.String()
        note = fields.String(metadata={"can_read": False, "can_modify": False})
        product = Ref("product", reverse="orders")

    class PayArgs(Args):
        method = fields.String(required=True, validate=validate.OneOf(["card", "cash"]))

    @dm.action("order", "pay", args=PayArgs, permission=HasRole("cashier") | Owner("customer"))
    def pay(ctx: Any, order: Any, args: Any) -> Any:
        seen.append(("pay", ctx.auth, ctx.collection, order))
        ctx.engine.patch("order", order["id"], {"status": "paid", "method": args["method"]})
        product = ctx.engine.get("product", order["product"])[0]
        ctx.engine.patch("product", product["id"], {"stock": product["stock"] - 1})
        if product["stock"] < 1:  # written above, and rolled back with the rest
            raise Conflict("Out of stock.", {"product": product["id"]}, code="OUT_OF_STOCK")
        return {"status": "paid", "stock": product["stock"] - 1}

    @dm.action("order", "cancel")
    def cancel(ctx: Any, order: Any, args: Any) -> Any:
        seen.append(("cancel", ctx.auth and ctx.auth["sub"], order["id"], args))
        ctx.engine.patch("order", order["id"], {"status": "cancelled"})
        return None

    @dm.action("order", "boom")
    def boom(ctx: Any, order: Any, args: Any) -> Any:
        ctx.engine.patch("order", order["id"], {"status": "boom"})
        raise RuntimeError("the handler broke")

    @dm.action("order", "opaque")
    def opaque(ctx: Any, order: Any, args: Any) -> Any:
        ctx.engine.patch("order", order["id"], {"status": "opaque"})
        return {"when": object()}

    class RestockArgs(Args):
        amount = fields.Integer(required=True, validate=validate.Range(min=1))

    @dm.action("product", "restock", on="collection", args=RestockArgs, permission=HasRole("stock"))
    def restock(ctx: Any, obj: Any, args: Any) -> Any:
        seen.append(("restock", ctx.auth["sub"], ctx.collection, obj))
        products = ctx.engine.get("product")[0]
        for product in products:
            ctx.engine.patch("product", product["id"], {"stock": product["stock"] + args["amount"]})
        return [product["id"] for product in products]

    @dm.action("product", "census", on="collection")
    def census(ctx: Any, obj: Any, args: Any) -> Any:
        return len(ctx.engine.get("product")[0])

    return dm


class Caller:
    """One action through api.basic (with claims) or over HTTP (with a token)."""

    def __init__(self, engine: Engine, layer: str) -> None:
        self.engine = engine
        self.layer = layer
        self.auth = JWTAuth(KEY)
        app = Flask("shop")
        api = Api(app, engine=engine, auth=self.auth)
        for collection in engine.model.collections.values():
            resource = type(f"{collection.name}_resource", (Resource,), {"model": collection})
            api.add_resource(resource, f"/{collection.name}")
        self.http = app.test_client()

    def __call__(
        self, user: Any, name: str, action: str, id_: Any = None, args: Any = None, **kw: Any
    ) -> Result:
        if self.layer == "basic":
            return Result(
                *basic.act(name, action, id_=id_, args=args, auth=user, engine=self.engine)
            )
        headers = {}
        if user:
            headers["Authorization"] = f"Bearer {self.auth.create_token(user)}"
        url = f"/{name}/_actions/{action}" if id_ is None else f"/{name}/{id_}/_actions/{action}"
        data = kw.get("raw", None if args is None else json.dumps(args))
        response = self.http.post(
            url, headers=headers, data=data, query_string=kw.get("query"),
            content_type="application/json" if data is not None else None,
        )  # fmt: skip
        body = response.get_json(silent=True) if response.data else None
        return Result(body, response.status_code, dict(response.headers))


@pytest.fixture
def engine(make_engine: Any) -> Engine:
    seen.clear()
    engine: Engine = make_engine(build_model())
    engine.post("product", [{"name": "tea", "stock": 1}, {"name": "jam", "stock": 5}])
    engine.post("order", [
        {"customer": "1", "product": 1, "note": "fragile"},
        {"customer": "2", "product": 1},
        {"customer": "1", "product": 2},
    ])  # fmt: skip
    return engine


@pytest.fixture
def call(engine: Engine, layer: str) -> Caller:
    return Caller(engine, layer)


def error(result: Result, status: int, code: str) -> dict[str, Any]:
    assert (result.status, result.body["error"]["code"]) == (status, code), result.body
    return dict(result.body["error"])


def stored(engine: Engine, name: str, id_: int) -> dict[str, Any]:
    return dict(engine.get(name, id_)[0])


def test_an_item_action_runs_with_its_object_and_args(engine: Engine, call: Caller) -> None:
    result = call(ALICE, "order", "pay", 1, {"method": "card"})
    assert (result.status, result.body) == (200, {"status": "paid", "stock": 0})
    assert stored(engine, "order", 1)["status"] == "paid"
    assert stored(engine, "order", 1)["method"] == "card"
    assert stored(engine, "product", 1)["stock"] == 0
    # The handler got the caller, the collection and the object as trusted code
    # reads it: every field (note too, which no caller may read), relations as ids.
    name, auth, collection, order = seen[-1]
    assert (name, collection) == ("pay", "order")
    assert auth["sub"] == "1"
    assert order == {
        "id": 1, "status": "new", "method": None, "customer": "1", "note": "fragile",
        "product": 1,
    }  # fmt: skip


def test_the_engine_acts_too(engine: Engine) -> None:
    assert engine.act("order", "pay", id_="3", args={"method": "cash"}, auth=CASHIER) == (
        {"status": "paid", "stock": 4},
        200,
    )
    assert engine.act("product", "census") == (2, 200)
    assert seen[-1][1]["sub"] == "9"
    with pytest.raises(UnknownAction) as unknown:
        engine.act("order", "pay", args={"method": "cash"})
    assert unknown.value.details == {"collection": "order", "action": "pay"}


def test_a_client_error_rolls_the_whole_action_back(engine: Engine, call: Caller) -> None:
    assert call(ALICE, "order", "pay", 1, {"method": "card"}).status == 200
    # Order 2 is paid, the stock goes to -1, then the handler refuses: none of it stays.
    body = error(call(BOB, "order", "pay", 2, {"method": "cash"}), 409, "OUT_OF_STOCK")
    assert body["details"] == {"product": 1}
    assert stored(engine, "order", 2)["status"] == "new"
    assert stored(engine, "product", 1)["stock"] == 0


def test_any_other_error_is_a_500_with_nothing_written(
    engine: Engine, call: Caller, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="backo_restful.actions"):
        body = error(call(CASHIER, "order", "boom", 1), 500, "INTERNAL_ERROR")
    assert body["message"] == "The server failed to handle the request."
    assert "broke" not in json.dumps(body)  # the cause is logged, not sent
    assert stored(engine, "order", 1)["status"] == "new"
    records = [r for r in caplog.records if r.name == "backo_restful.actions"]
    assert records and records[0].exc_info is not None
    assert "action boom of order failed" in records[0].getMessage()
    with pytest.raises(InternalError) as failed:
        engine.act("order", "boom", id_=1)
    assert isinstance(failed.value.__cause__, RuntimeError)
    assert (failed.value.status, failed.value.code) == (500, "INTERNAL_ERROR")


def test_a_result_that_is_not_json_is_a_500_with_nothing_written(
    engine: Engine, call: Caller
) -> None:
    error(call(CASHIER, "order", "opaque", 1), 500, "INTERNAL_ERROR")
    assert stored(engine, "order", 1)["status"] == "new"


@pytest.mark.parametrize(
    ("name", "action", "id_"),
    [
        ("order", "refund", 1),  # no such action
        ("order", "pay", None),  # an item action, asked of the collection
        ("product", "census", 1),  # a collection action, asked of an object
    ],
)
def test_unknown_actions_are_404(call: Caller, name: str, action: str, id_: Any) -> None:
    body = error(call(CASHIER, name, action, id_, {}), 404, "UNKNOWN_ACTION")
    assert body["details"] == {"collection": name, "action": action}


def test_arguments_are_validated(engine: Engine, call: Caller) -> None:
    body = error(
        call(CASHIER, "order", "pay", 1, {"method": "gold", "tip": 1}), 422, "VALIDATION_FAILED"
    )
    assert body["details"]["fields"] == {
        "method": ["Must be one of: card, cash."],
        "tip": ["Unknown field."],
    }
    body = error(call(CASHIER, "order", "pay", 1, {}), 422, "VALIDATION_FAILED")
    assert body["details"]["fields"] == {"method": ["Missing data for required field."]}
    # An action without args= takes none.
    body = error(call(CASHIER, "order", "cancel", 1, {"why": "late"}), 422, "VALIDATION_FAILED")
    assert body["details"]["fields"] == {"why": ["Unknown field."]}
    error(call(CASHIER, "order", "pay", 1, ["card"]), 400, "INVALID_BODY")
    assert stored(engine, "order", 1)["status"] == "new"
    with pytest.raises(ValidationFailed):
        engine.act("product", "restock", args={"amount": 0})


def test_an_action_without_arguments_takes_an_empty_or_no_body(
    engine: Engine, call: Caller
) -> None:
    assert call(ALICE, "order", "cancel", 1).status == 200
    assert call(ALICE, "order", "cancel", 3, {}).status == 200
    assert seen[-2:] == [("cancel", "1", 1, {}), ("cancel", "1", 3, {})]
    assert stored(engine, "order", 3)["status"] == "cancelled"


def test_missing_and_hidden_objects_are_404(engine: Engine, call: Caller) -> None:
    error(call(CASHIER, "order", "pay", 99, {"method": "card"}), 404, "OBJECT_DOES_NOT_EXIST")
    # Order 2 is Bob's: outside Alice's scope, it does not exist for her.
    body = error(call(ALICE, "order", "cancel", 2), 404, "OBJECT_DOES_NOT_EXIST")
    assert body["details"]["id"] == 2
    error(call(CASHIER, "order", "pay", "x", {"method": "card"}), 400, "INVALID_ID")


def test_refused_callers(engine: Engine, call: Caller) -> None:
    # permission=: asked can(auth, "pay", obj).
    error(call(ANONYMOUS, "order", "pay", 1, {"method": "card"}), 401, "UNAUTHORIZED")
    error(call(STOCKIST, "order", "pay", 1, {"method": "card"}), 404, "OBJECT_DOES_NOT_EXIST")
    # Without permission=: an item action needs the right to update the object,
    # a collection action the right to create in the collection.
    error(call(ANONYMOUS, "order", "cancel", 1), 401, "UNAUTHORIZED")
    assert call(CASHIER, "order", "cancel", 2).status == 200
    error(call(ALICE, "product", "census"), 403, "FORBIDDEN")
    assert call(STOCKIST, "product", "census").body == 2
    body = error(call(ALICE, "product", "restock", None, {"amount": 2}), 403, "FORBIDDEN")
    assert body["message"] == "You may not restock this product."
    assert stored(engine, "product", 2)["stock"] == 5


def test_refusal_comes_before_the_arguments(call: Caller) -> None:
    # A refused caller learns nothing from their arguments being wrong.
    error(call(ALICE, "product", "restock", None, {"amount": "x"}), 403, "FORBIDDEN")


def test_a_collection_action(engine: Engine, call: Caller) -> None:
    result = call(STOCKIST, "product", "restock", None, {"amount": 2})
    assert (result.status, result.body) == (200, [1, 2])
    assert [stored(engine, "product", i)["stock"] for i in (1, 2)] == [3, 7]
    assert seen[-1] == ("restock", "8", "product", None)


def test_trusted_code_may_run_every_action(engine: Engine) -> None:
    assert basic.act("order", "cancel", id_=2, engine=engine) == (None, 200, {})
    assert seen[-1][1] is None


def test_http_routes(engine: Engine) -> None:
    call = Caller(engine, "http")
    token = {"Authorization": f"Bearer {call.auth.create_token(CASHIER)}"}
    response = call.http.get("/order/1/_actions/pay", headers=token)
    assert response.status_code == 405
    assert response.headers["Allow"] == "OPTIONS, POST"
    assert call.http.open("/order/1/_actions/pay", method="OPTIONS").headers["Allow"] == (
        "OPTIONS, POST"
    )
    response = call.http.post("/order/1/_actions/pay", headers=token, data="method=card")
    assert response.status_code == 415
    result = call(CASHIER, "order", "pay", 1, raw="{", args=None)
    error(result, 400, "INVALID_JSON")
    result = call(CASHIER, "order", "pay", 1, {"method": "card"}, query={"depth": "2"})
    error(result, 400, "UNKNOWN_PARAMETER")
    # The item routes still serve the object, and the collection routes the list.
    assert call.http.get("/order/1", headers=token).get_json()["status"] == "new"
    assert call.http.get("/order", headers=token).status_code == 200
    response = call.http.delete("/order/1/_actions", headers=token)
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("declare", "message"),
    [
        (lambda dm: dm.action("jar", "open bar"), "an action name is a letter"),
        (lambda dm: dm.action("jar", "open", on="object"), "on= is one of item, collection"),
        (lambda dm: dm.action("jar", "open", args=dict), "args= takes a marshmallow Schema"),
        (lambda dm: dm.action("jar", "open", permission=len), "permission= takes a Permission"),
    ],
)
def test_declaration_errors(declare: Any, message: str) -> None:
    dm = DataModel("jars")
    with pytest.raises(DeclarationError, match=message):
        declare(dm)(lambda ctx, obj, args: None)


def test_an_action_of_an_unknown_collection_or_declared_twice_or_late() -> None:
    dm = DataModel("jars")

    @dm.collection("jar")
    class Jar(Schema):
        name = fields.String()

    dm.action("jam", "open")(lambda ctx, obj, args: None)
    with pytest.raises(DeclarationError, match="jam.open: action of an unknown collection"):
        Engine(dm, PeeweeStorage("sqlite:///:memory:"))
    dm = DataModel("jars")

    @dm.collection("jar")
    class OtherJar(Schema):
        name = fields.String()

    dm.action("jar", "open")(lambda ctx, obj, args: None)
    with pytest.raises(DeclarationError, match="declared twice"):
        dm.action("jar", "open")(lambda ctx, obj, args: None)
    Engine(dm, PeeweeStorage("sqlite:///:memory:"))
    with pytest.raises(DeclarationError, match="declare every action first"):
        dm.action("jar", "close")(lambda ctx, obj, args: None)


def test_required_arguments_are_missing_without_a_body(engine: Engine, call: Caller) -> None:
    body = error(call(CASHIER, "order", "pay", 1), 422, "VALIDATION_FAILED")
    assert body["details"]["fields"] == {"method": ["Missing data for required field."]}
    assert stored(engine, "order", 1)["status"] == "new"

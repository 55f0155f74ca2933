"""A shop: products with computed prices and a view, orders paid by an action,
stock kept by an event, receipts written once a payment has committed.

Run it with ``python -m example.shop``; it serves ``/product``, ``/order`` and
``/receipt`` on http://127.0.0.1:5000 and stores them in ``shop.db`` (SQLite,
created on first use). docs/lifecycle.md walks it with curl.
"""

from __future__ import annotations

from flask import Flask
from marshmallow import Schema as Args
from marshmallow import fields, validate

from backo_restful import Computed, DataModel, Engine, Ref, RefsList, Schema
from backo_restful.api.flask import Api, Resource
from backo_restful.exceptions import Conflict
from backo_restful.lifecycle import ActionContext, Event
from backo_restful.storage import PeeweeStorage

dm = DataModel("shop")


@dm.collection("product", views={"card": ["name", "price"]})
class Product(Schema):
    name = fields.String(required=True, validate=validate.Length(min=1))
    price_cents = fields.Integer(required=True, validate=validate.Range(min=0, max=10**11))
    stock = fields.Integer(load_default=0, validate=validate.Range(min=0))
    orders = RefsList("order", reverse="product")
    price = Computed(
        # Bounded as price_cents is, so the setter's value always fits.
        fields.Float(validate=validate.Range(min=0, max=10**9)),
        get=lambda p: p["price_cents"] / 100,
        set=lambda p, value: {"price_cents": round(value * 100)},
        sql=lambda c: c.price_cents / 100.0,
    )
    url = Computed(fields.String(), get=lambda p: f"/product/{p['id']}")


@dm.collection("order")
class Order(Schema):
    status = fields.String(load_default="new", validate=validate.OneOf(["new", "paid"]))
    method = fields.String(allow_none=True)
    product = Ref("product", reverse="orders", required=True)
    receipt = Ref("receipt", reverse="order")


@dm.collection("receipt")
class Receipt(Schema):
    text = fields.String()
    order = Ref("order", reverse="receipt")


@dm.on("order", "before_save")
def stock_must_last(event: Event) -> None:
    """Paying an order takes one of its product from the stock, in its transaction."""
    paying = event.new is not None and event.new["status"] == "paid"
    if paying and (event.old or {}).get("status") != "paid":
        product = event.engine.get("product", event.new["product"])[0]
        if product["stock"] < 1:
            raise Conflict("Out of stock.", {"product": product["id"]}, code="OUT_OF_STOCK")
        event.engine.patch("product", product["id"], {"stock": product["stock"] - 1})


@dm.on("order", "after_commit")
def write_receipt(event: Event) -> None:
    """Once a payment has committed (never for one rolled back): its receipt."""
    if event.name == "saved" and "status" in event.changes and event.new:
        if event.new["status"] == "paid":
            text = f"order {event.id} paid by {event.new['method']}"
            event.engine.post("receipt", {"text": text, "order": event.id})


class PayArgs(Args):
    method = fields.String(required=True, validate=validate.OneOf(["card", "cash"]))


@dm.action("order", "pay", args=PayArgs)
def pay(ctx: ActionContext, order: dict, args: dict) -> dict:
    """``POST /order/<id>/_actions/pay {"method": "card"}``."""
    ctx.engine.patch("order", order["id"], {"status": "paid", "method": args["method"]})
    return {"status": "paid"}


class ProductResource(Resource):
    model = dm.object("product")


class OrderResource(Resource):
    model = dm.object("order")


class ReceiptResource(Resource):
    model = dm.object("receipt")


def create_app(database: str = "sqlite:///shop.db") -> Flask:
    """The shop API on ``database`` (any database URL that PeeweeStorage takes)."""
    engine = Engine(dm, PeeweeStorage(database))
    app = Flask(__name__)
    api = Api(app, engine=engine, openapi=True)
    api.add_resource(ProductResource, "/product")
    api.add_resource(OrderResource, "/order")
    api.add_resource(ReceiptResource, "/receipt")
    return app


if __name__ == "__main__":
    create_app().run(host="127.0.0.1", port=5000)

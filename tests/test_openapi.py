"""The OpenAPI document: valid OpenAPI 3.1 for every example app, and what it says.

The document is built from the model alone, so these tests run on SQLite only
(no ``backend`` fixture). tests/test_schemathesis.py checks it against the
running apps.
"""

from __future__ import annotations

import importlib
from typing import Any

import pytest
from flask import Blueprint, Flask
from marshmallow import fields
from openapi_spec_validator import validate

from backo_restful import DataModel, Engine, Schema
from backo_restful.api.flask import Api, Resource
from backo_restful.api.openapi import openapi_document
from backo_restful.auth import JWTAuth
from backo_restful.storage import PeeweeStorage

EXAMPLES = ("cookies", "family", "library", "notes", "shop")


def served(name: str, tmp_path: Any) -> dict[str, Any]:
    """The document an example app serves at /openapi.json."""
    module = importlib.import_module(f"example.{name}")
    app = module.create_app(f"sqlite:///{tmp_path / name}.db")
    response = app.test_client().get("/openapi.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    document: dict[str, Any] = response.get_json()
    return document


@pytest.fixture(scope="module")
def documents(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    tmp_path = tmp_path_factory.mktemp("openapi")
    return {name: served(name, tmp_path) for name in EXAMPLES}


@pytest.mark.parametrize("name", EXAMPLES)
def test_examples_serve_a_valid_document(documents: dict[str, Any], name: str) -> None:
    document = documents[name]
    validate(document)  # raises on an invalid OpenAPI 3.1 document
    assert document["openapi"] == "3.1.0"
    assert document["info"] == {"title": name, "version": "1.0.0"}


def test_every_route_and_method(documents: dict[str, Any]) -> None:
    paths = documents["shop"]["paths"]
    assert sorted(paths) == sorted(
        [
            "/_health",
            "/_meta",
            *(
                f"/{name}{path}"
                for name in ("order", "product", "receipt")
                for path in ("", "/_check", "/_meta", "/{id}", "/{id}/_check", "/{id}/_meta")
            ),
            "/order/{id}/_actions/pay",
        ]
    )
    assert sorted(paths["/product"]) == ["delete", "get", "head", "options", "patch", "post"]
    assert sorted(paths["/product/{id}"]) == ["delete", "get", "head", "options", "patch", "put"]
    assert sorted(paths["/order/{id}/_actions/pay"]) == ["options", "post"]
    assert sorted(paths["/_meta"]) == ["get", "head", "options"]
    assert sorted(paths["/_health"]) == ["get", "head", "options"]
    assert paths["/_health"]["get"]["security"] == []
    assert sorted(paths["/product"]["get"]["responses"]["200"]["content"]) == [
        "application/json",
        "application/x-ndjson",
        "text/csv",
    ]
    assert sorted(paths["/product/_meta"]) == ["get", "head", "options", "post"]
    assert sorted(paths["/product/{id}/_meta"]) == ["get", "head", "options"]
    assert sorted(paths["/product/_check"]) == ["options", "post"]
    assert sorted(paths["/product/{id}/_check"]) == ["options", "post"]


def test_write_schemas_lack_read_only_fields(documents: dict[str, Any]) -> None:
    schemas = documents["shop"]["components"]["schemas"]
    read = schemas["Product"]["properties"]
    create = schemas["ProductCreate"]["properties"]
    assert list(read) == ["id", "name", "price_cents", "stock", "orders", "price", "url"]
    # id and url (computed, no setter) are read-only; price has a setter.
    assert list(create) == ["name", "price_cents", "stock", "orders", "price"]
    assert schemas["ProductCreate"]["required"] == ["name", "price_cents"]
    assert "required" not in schemas["ProductPatch"]
    assert schemas["Product"]["required"] == ["id"]
    assert read["url"]["readOnly"] is True
    # A relation is an id or an object; created inside another one, without the
    # field that points back.
    assert create["orders"]["items"]["oneOf"][1] == {
        "$ref": "#/components/schemas/OrderCreateInProductOrders"
    }
    assert "product" not in schemas["OrderCreateInProductOrders"]["properties"]
    assert read["orders"]["items"]["oneOf"][1] == {"$ref": "#/components/schemas/Order"}


def test_server_set_and_hidden_fields(documents: dict[str, Any]) -> None:
    schemas = documents["notes"]["components"]["schemas"]
    note = schemas["NoteCreate"]["properties"]
    assert list(note) == ["title", "body"]  # owner and audit fields: set by the server
    assert "created_at" in schemas["Note"]["properties"]
    # password_hash: no caller may read or write it.
    assert "password_hash" not in schemas["User"]["properties"]
    assert "password_hash" not in schemas["UserCreate"]["properties"]


def parameters(document: dict[str, Any], path: str, method: str = "get") -> dict[str, Any]:
    return {p["name"]: p for p in document["paths"][path][method]["parameters"]}


def test_read_parameters(documents: dict[str, Any]) -> None:
    listed = parameters(documents["cookies"], "/cookie")
    assert {"depth", "fields", "filter", "sort", "limit", "offset", "after", "before"} <= set(
        listed
    )
    assert listed["depth"]["schema"]["maximum"] == 5
    assert listed["limit"]["schema"]["maximum"] == 1000
    assert listed["count"]["schema"]["enum"] == ["exact", "estimate", "none"]
    assert "view" not in listed  # the cookies declare no view
    assert listed["sort"]["schema"]["items"]["enum"][:3] == ["id", "type", "jar"]
    assert listed["filter"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CookieFilter"
    }
    # Flat filters: a parameter per field and operator that fits it.
    assert listed["type"]["schema"] == {"type": "string"}
    assert listed["type.$re"]["schema"] == {"type": "string"}
    assert listed["jar.$in"]["style"] == "form" and listed["jar.$in"]["explode"] is False
    assert listed["jar.$null"]["schema"] == {"type": "boolean"}
    assert "jar.$contains" not in listed  # text operators on text fields only
    assert listed["jar"]["schema"]["anyOf"][1] == {"type": "string", "enum": ["null"]}
    item = parameters(documents["cookies"], "/cookie/{id}")
    assert "limit" not in item and "depth" in item and "type.$ne" in item
    shop = parameters(documents["shop"], "/product")
    assert shop["view"]["schema"]["enum"] == ["card"]
    assert shop["price.$gte"]["schema"] == {"type": "number"}  # computed, with sql=
    assert "url" not in shop  # computed without sql=: no filter


def test_responses_headers_and_error_codes(documents: dict[str, Any]) -> None:
    paths = documents["cookies"]["paths"]
    listed = paths["/cookie"]["get"]["responses"]
    assert sorted(listed) == ["200", "304", "400", "500", "503"]
    headers = listed["200"]["headers"]
    assert {"Link", "X-Total-Count", "X-Total-Count-Method", "X-Request-Id"} <= set(headers)
    assert headers["Link"]["required"] is True
    assert headers["ETag"]["required"] is True
    assert listed["304"]["headers"]["ETag"]["required"] is True and "content" not in listed["304"]
    assert "UNKNOWN_OPERATOR" in listed["400"]["x-error-codes"]
    assert listed["400"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Error"
    }
    assert listed["503"]["headers"]["Retry-After"]["required"] is True
    assert "content" not in paths["/cookie"]["head"]["responses"]["400"]
    created = paths["/cookie"]["post"]["responses"]
    assert sorted(created) == ["201", "400", "404", "409", "413", "415", "422", "500", "503"]
    assert {"Location", "ETag"} <= set(created["201"]["headers"])
    assert created["201"]["links"]["Read"]["operationRef"] == "#/paths/~1cookie~1{id}/get"
    replaced = paths["/cookie/{id}"]["put"]["responses"]
    assert replaced["201"]["headers"]["Location"]["required"] is True
    assert replaced["200"]["headers"]["ETag"]["required"] is True
    assert replaced["412"]["x-error-codes"] == ["PRECONDITION_FAILED"] and "428" not in replaced
    for verb, headers in (("get", ["If-None-Match"]), ("put", ["If-Match", "If-None-Match"])):
        parameters = paths["/cookie/{id}"][verb]["parameters"]
        assert [p["name"] for p in parameters if p["in"] == "header"] == headers
    assert "412" in paths["/cookie/{id}"]["delete"]["responses"]
    assert "NOT_EMPTY" in paths["/cookie/{id}"]["delete"]["responses"]["409"]["x-error-codes"]
    allow = paths["/cookie/{id}"]["options"]["responses"]["200"]["headers"]["Allow"]
    assert allow["schema"]["enum"] == ["DELETE, GET, HEAD, OPTIONS, PATCH, PUT"]


def test_actions(documents: dict[str, Any]) -> None:
    pay = documents["shop"]["paths"]["/order/{id}/_actions/pay"]["post"]
    assert pay["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/OrderPayArgs"
    }
    args = documents["shop"]["components"]["schemas"]["OrderPayArgs"]
    assert args["properties"]["method"]["enum"] == ["card", "cash"]
    assert "404" in pay["responses"] and "422" in pay["responses"]


def test_security_scheme_only_with_auth(documents: dict[str, Any]) -> None:
    notes = documents["notes"]
    assert notes["components"]["securitySchemes"] == {
        "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
        "cookie": {"type": "apiKey", "in": "cookie", "name": "jwt_token"},
    }
    assert notes["security"] == [{"bearer": []}, {"cookie": []}, {}]
    listed = notes["paths"]["/note"]["get"]["responses"]
    assert listed["401"]["headers"]["WWW-Authenticate"]["required"] is True
    assert listed["401"]["x-error-codes"] == ["UNAUTHORIZED", "INVALID_TOKEN"]
    assert "securitySchemes" not in documents["cookies"]["components"]
    assert "security" not in documents["cookies"]
    assert "401" not in documents["cookies"]["paths"]["/cookie"]["get"]["responses"]


def small_model() -> DataModel:
    dm = DataModel("memo")

    @dm.collection("memo")
    class Memo(Schema):
        text = fields.String()

    return dm


def test_settings_and_no_document_by_default() -> None:
    dm = small_model()
    engine = Engine(dm, PeeweeStorage("sqlite:///:memory:"))

    class MemoResource(Resource):
        model = dm.object("memo")

    plain = Flask("plain")
    Api(plain, engine=engine).add_resource(MemoResource, "/memo")
    assert plain.test_client().get("/openapi.json").status_code == 404

    app = Flask("configured")
    app.config.update(
        BACKO_OPENAPI=True,
        BACKO_OPENAPI_TITLE="Memos",
        BACKO_OPENAPI_VERSION="2.1",
        BACKO_OPENAPI_SERVERS=["https://memos.example", {"url": "/", "description": "here"}],
    )
    api = Api(app, engine=engine, auth=JWTAuth("x" * 32, cookie=None, required=True))
    api.add_resource(MemoResource, "/memo")
    document = app.test_client().get("/openapi.json").get_json()
    validate(document)
    assert document["info"] == {"title": "Memos", "version": "2.1"}
    assert document["servers"] == [
        {"url": "https://memos.example"},
        {"url": "/", "description": "here"},
    ]
    assert document["security"] == [{"bearer": []}]  # no cookie, no anonymous caller
    assert openapi_document(api, app) == document


def test_blueprint_prefix() -> None:
    dm = small_model()
    engine = Engine(dm, PeeweeStorage("sqlite:///:memory:"))

    class MemoResource(Resource):
        model = dm.object("memo")

    blueprint = Blueprint("v1", __name__, url_prefix="/v1")
    api = Api(blueprint, engine=engine, openapi=True, prefix="/api")
    api.add_resource(MemoResource, "/memo")
    app = Flask("host")
    app.register_blueprint(blueprint)
    document = app.test_client().get("/v1/api/openapi.json").get_json()
    validate(document)
    assert sorted(document["paths"]) == [
        "/v1/api/_health",
        "/v1/api/_meta",
        "/v1/api/memo",
        "/v1/api/memo/_check",
        "/v1/api/memo/_meta",
        "/v1/api/memo/{id}",
        "/v1/api/memo/{id}/_check",
        "/v1/api/memo/{id}/_meta",
    ]

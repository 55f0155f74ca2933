"""The ``flask backo`` commands, through Flask's CLI runner, on every backend."""

from __future__ import annotations

import json
from typing import Any

import pytest
from flask import Blueprint, Flask

from backo_restful import Engine
from backo_restful.api.flask import Api, Resource
from backo_restful.engine import default
from backo_restful.storage import PeeweeStorage
from tests.test_migrations import populate, version_1, version_2


def make_app(engine: Engine, **kwargs: Any) -> Flask:
    app = Flask("cli")
    api = Api(app, engine=engine, **kwargs)
    for collection in engine.model.collections.values():
        resource = type(f"{collection.name}_resource", (Resource,), {"model": collection})
        api.add_resource(resource, f"/{collection.name}")
    return app


def run(app: Flask, *args: str) -> Any:
    return app.test_cli_runner().invoke(args=["backo", *args])


def test_create_tables(database: Any) -> None:
    engine = Engine(version_1(), PeeweeStorage(database))
    app = make_app(engine)
    result = run(app, "create-tables")
    assert result.exit_code == 0, result.output
    assert result.output == "created jar\ncreated cookie\n"
    assert {"jar", "cookie"} <= set(database.get_tables())
    result = run(app, "create-tables")
    assert result.output == "shop: every table exists\n"


def test_migrate_shows_the_plan_then_applies_it(database: Any) -> None:
    populate(database)
    engine = Engine(version_2(), PeeweeStorage(database))
    app = make_app(engine)
    plan = [str(change) for change in engine.storage.plan()]
    assert plan
    result = run(app, "migrate")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        *(f"+ {change}" for change in plan),
        "Run `flask backo migrate --apply` to apply the changes.",
    ]
    assert engine.storage.plan() != []  # only shown
    assert run(app, "migrate", "--check").exit_code == 1
    result = run(app, "migrate", "--apply")
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1] == f"shop: {len(plan)} changes applied"
    assert engine.storage.plan() == []
    assert engine.get("cookie", 1)[0]["colour"] == "brown"
    result = run(app, "migrate", "--check")
    assert (result.exit_code, result.output) == (0, "shop: the database matches the model\n")


def test_a_refused_migration_applies_nothing(database: Any) -> None:
    populate(database)
    shrunk = version_1()
    # The same model without Cookie.weight: dropping its column loses data.
    del shrunk.collections["cookie"].schema_class._declared_fields["weight"]
    engine = Engine(shrunk, PeeweeStorage(database))
    app = make_app(engine)
    result = run(app, "migrate")
    assert result.output.startswith("! drop column cookie.weight")
    result = run(app, "migrate", "--apply")
    assert result.exit_code == 1
    assert "Migration refused, nothing was applied" in result.output
    assert "cookie.weight" in result.output
    assert "weight" in [c.name for c in database.get_columns("cookie")]
    result = run(app, "migrate", "--apply", "--allow-destructive")
    assert result.exit_code == 0, result.output
    assert "weight" not in [c.name for c in database.get_columns("cookie")]
    assert engine.get("cookie", 1)[0] == {"id": 1, "type": "oat", "jar": 1}


def test_routes(database: Any) -> None:
    app = make_app(Engine(version_1(), PeeweeStorage(database)))
    result = run(app, "routes")
    assert result.exit_code == 0, result.output
    lines = [" ".join(line.split()) for line in result.output.splitlines()]
    assert lines[:5] == [
        "GET, HEAD, OPTIONS /_health the health check",
        "GET, HEAD, OPTIONS /_meta the model's description",
        "DELETE, GET, HEAD, OPTIONS, PATCH, POST /cookie cookie: collection",
        "DELETE, GET, HEAD, OPTIONS, PATCH, PUT /cookie/<id_> cookie: object",
        "OPTIONS, POST /cookie/_check cookie: check of a create",
    ]
    assert "OPTIONS, POST /jar/<id_>/_check jar: check of a PATCH" in lines
    # Action routes are listed by action: this model declares none.
    assert len(lines) == 14 and not any("_actions" in line for line in lines)


def test_routes_name_each_action() -> None:
    from example.shop import create_app

    lines = [
        " ".join(line.split())
        for line in run(create_app("sqlite://"), "routes").output.splitlines()
    ]
    assert "OPTIONS, POST /order/<id_>/_actions/pay order: action of an object" in lines


def test_routes_of_a_blueprint_with_a_prefix(database: Any) -> None:
    engine = Engine(version_1(), PeeweeStorage(database))
    blueprint = Blueprint("v1", __name__, url_prefix="/v1")
    api = Api(blueprint, engine=engine, prefix="/api")
    api.add_resource(type("jar_resource", (Resource,), {"model": engine.model.get("jar")}), "/jar")
    app = Flask("cli")
    app.register_blueprint(blueprint)
    lines = [" ".join(line.split()) for line in run(app, "routes").output.splitlines()]
    assert "DELETE, GET, HEAD, OPTIONS, PATCH, POST /v1/api/jar jar: collection" in lines
    assert "GET, HEAD, OPTIONS /v1/api/_meta the model's description" in lines


def test_openapi_prints_the_document_and_nothing_else(database: Any) -> None:
    from openapi_spec_validator import validate

    engine = Engine(version_1(), PeeweeStorage(database))
    app = make_app(engine, openapi=True)
    result = app.test_cli_runner().invoke(args=["backo", "openapi"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    validate(document)
    assert document == app.test_client().get("/openapi.json").get_json()
    assert result.stderr == ""
    # The command describes the API whether it serves the document or not.
    assert json.loads(run(make_app(engine), "openapi").output)["paths"] == document["paths"]


def test_openapi_of_one_api_among_several(database: Any) -> None:
    engine = Engine(version_1(), PeeweeStorage(database))
    app = Flask("two")
    for prefix, name in (("/v1", "jar"), ("/v2", "cookie")):
        api = Api(app, engine=engine, prefix=prefix)
        resource = type(f"{name}_{prefix[1:]}", (Resource,), {"model": engine.model.get(name)})
        api.add_resource(resource, f"/{name}")
    result = run(app, "openapi")
    assert result.exit_code == 1
    assert "Name one Api with --prefix (the app's Api prefixes: '/v1', '/v2')" in result.output
    result = run(app, "openapi", "--prefix", "/v2")
    assert result.exit_code == 0
    assert "/v2/cookie" in json.loads(result.output)["paths"]
    result = run(app, "openapi", "--prefix", "/v3")
    assert "No Api has this prefix" in result.output


def test_an_api_without_an_engine_and_no_default_engine(
    database: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Other tests (the docs' examples) may have installed a default engine.
    monkeypatch.setattr(default, "_default", None)
    app = Flask("no_engine")
    api = Api(app)
    api.add_resource(type("jar_resource", (Resource,), {"model": version_1().get("jar")}), "/jar")
    for command in ("create-tables", "migrate", "openapi"):
        result = run(app, command)
        assert result.exit_code == 1, command
        assert "Error: No default engine" in result.output, command


def test_openapi_of_one_of_two_blueprints_with_the_same_api_prefix(database: Any) -> None:
    engine = Engine(version_1(), PeeweeStorage(database))
    app = Flask("blueprints")
    for name in ("a", "b"):
        blueprint = Blueprint(name, __name__, url_prefix=f"/{name}")
        api = Api(blueprint, engine=engine)
        resource = type(f"jar_{name}", (Resource,), {"model": engine.model.get("jar")})
        api.add_resource(resource, "/jar")
        app.register_blueprint(blueprint)
    result = run(app, "openapi")
    assert "Name one Api with --prefix (the app's Api prefixes: '/a', '/b')" in result.output
    result = run(app, "openapi", "--prefix", "/b")
    assert result.exit_code == 0, result.output
    assert "/b/jar" in json.loads(result.output)["paths"]

"""The ``flask backo`` commands of an app that serves a backo_restful :class:`Api`.

``flask backo routes``, ``flask backo create-tables``, ``flask backo migrate``
(the plan; ``--apply`` to run it) and ``flask backo openapi`` (the OpenAPI
document on stdout). The :class:`Api` adds them to its app's command line.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from ..engine import Engine, default_engine
from ..exceptions import MigrationRefused, NoEngine
from ..model import Collection

if TYPE_CHECKING:
    from .flask import Api

#: Where an app keeps its APIs, in ``app.extensions``.
APIS_KEY = "backo_restful.apis"

backo = AppGroup("backo", help="Tables, migrations, the OpenAPI document and routes of the API.")


def apis_of(app: Flask) -> list[Api]:
    """The backo_restful APIs registered on ``app`` (on it or on its blueprints)."""
    apis: list[Api] = app.extensions.get(APIS_KEY, [])
    return apis


def engines_of(app: Flask) -> list[Engine]:
    """The engines serving ``app``'s APIs, each once.

    :raises click.ClickException: if the app serves no API, or an API without
        an engine when there is no default engine.
    """
    apis = apis_of(app)
    if not apis:
        raise click.ClickException("This app serves no backo_restful Api.")
    engines: list[Engine] = []
    for api in apis:
        engine = engine_of(api)
        if all(engine is not known for known in engines):
            engines.append(engine)
    return engines


def engine_of(api: Api) -> Engine:
    """The engine serving ``api``.

    :raises click.ClickException: if it has none and there is no default engine.
    """
    try:
        return api.engine or default_engine()
    except NoEngine as error:
        raise click.ClickException(error.message) from None


@backo.command("create-tables")
def create_tables() -> None:
    """Create the tables the database lacks (as the first request would)."""
    for engine in engines_of(current_app):
        created = engine.storage.create_tables()
        for table in created:
            click.echo(f"created {table}")
        if not created:
            click.echo(f"{engine.model.name}: every table exists")


@backo.command("migrate")
@click.option("--apply", "apply_", is_flag=True, help="Apply the plan (else only show it).")
@click.option(
    "--allow-destructive", is_flag=True, help="Also apply changes that lose data (with --apply)."
)
@click.option(
    "--check", is_flag=True, help="Exit with status 1 when the database differs from the model."
)
def migrate(apply_: bool, allow_destructive: bool, check: bool) -> None:
    """Compare the model with the database and show the plan (``--apply`` runs it).

    Destructive changes (marked ``!``) are refused unless ``--allow-destructive``
    is given; a refusal applies nothing.
    """
    pending = False
    for engine in engines_of(current_app):
        plan = engine.storage.plan()
        if not plan:
            click.echo(f"{engine.model.name}: the database matches the model")
            continue
        pending = True
        for change in plan:
            click.echo(f"{'!' if change.destructive else '+'} {change}")
        if not apply_:
            continue
        try:
            applied = engine.storage.migrate(allow_destructive=allow_destructive)
        except MigrationRefused as refusal:
            raise click.ClickException(str(refusal)) from None
        click.echo(f"{engine.model.name}: {len(applied)} changes applied")
    if pending and not apply_:
        click.echo("Run `flask backo migrate --apply` to apply the changes.")
        if check:
            raise click.exceptions.Exit(1)


@backo.command("openapi")
@click.option(
    "--prefix",
    default=None,
    help="The prefix of the Api to describe, when the app serves several.",
)
def openapi(prefix: str | None) -> None:
    """Print the OpenAPI 3.1 document of the API (JSON, and nothing else, on stdout)."""
    from .openapi import openapi_document

    apis = apis_of(current_app)
    if prefix is not None:
        # The URL prefix (a blueprint's url_prefix included) tells apart two Apis
        # of the same prefix on two blueprints.
        apis = [api for api in apis if prefix in _url_prefixes(api)] or [
            api for api in apis if api.prefix == prefix
        ]
    if len(apis) != 1:
        known = [p for api in apis_of(current_app) for p in _url_prefixes(api)]
        prefixes = ", ".join(map(repr, known)) or "none"
        raise click.ClickException(
            f"Name one Api with --prefix (the app's Api prefixes: {prefixes})."
            if apis
            else f"No Api has this prefix (the app's Api prefixes: {prefixes})."
        )
    engine_of(apis[0])
    click.echo(json.dumps(openapi_document(apis[0]), indent=2))


def _url_prefixes(api: Api) -> list[str]:
    """The URL prefixes ``api`` serves under (one per blueprint registration)."""
    return [rule.removesuffix("/_meta") for rule in api.description_rules()]


def _route_text(rule: str) -> str:
    """A URL rule as clients read it: ``/cookie/<id_>``, without converters."""
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"<\1>", rule)


@backo.command("routes")
def routes() -> None:
    """List the routes of the API: methods, URL and what each serves."""
    rows: list[tuple[str, str, str]] = []
    for api in apis_of(current_app):
        rows.extend(_routes_of(current_app, api))
    if not rows:
        raise click.ClickException("This app serves no backo_restful Api.")
    width = max(len(methods) for methods, _, _ in rows)
    url_width = max(len(url) for _, url, _ in rows)
    for methods, url, served in rows:
        click.echo(f"{methods:<{width}}  {url:<{url_width}}  {served}".rstrip())


def _routes_of(app: Flask, api: Api) -> list[tuple[str, str, str]]:
    from .flask import allowed_methods

    rows = []
    for rule in app.url_map.iter_rules():
        endpoint = rule.endpoint.rsplit(".", 1)[-1]
        if endpoint not in api.endpoints:
            continue
        view_class: Any = getattr(app.view_functions[rule.endpoint], "view_class", None)
        item = "id_" in rule.arguments
        methods = ", ".join(allowed_methods(view_class, item) or sorted(rule.methods or ()))
        url = _route_text(rule.rule)
        if getattr(view_class, "route", None) == "actions":
            # One line per action the model declares there (none: no line).
            for name in _actions(view_class.model, item):
                served = _served(view_class, item, endpoint)
                rows.append((methods, url.replace("<action>", name), served))
            continue
        rows.append((methods, url, _served(view_class, item, endpoint)))
    # Each collection's routes together: its own, then those of its objects.
    return sorted(rows, key=lambda row: (row[1].replace("/<id_>", ""), "<id_>" in row[1]))


def _actions(collection: Collection, item: bool) -> list[str]:
    """The actions of ``collection`` on one object (``item``) or on the collection."""
    declared = collection.model.lifecycle.actions.values()
    on = "item" if item else "collection"
    return [a.name for a in declared if a.collection == collection.name and a.on == on]


#: What the routes of an Api that are not a collection's serve, by endpoint.
_SERVED = {
    "backo_openapi": "the OpenAPI document",
    "backo_docs": "the docs page",
    "backo_docs_file": "the docs page's files",
}


def _served(view_class: Any, item: bool, endpoint: str) -> str:
    """What a route serves, in a few words."""
    from .flask import ModelDescription
    from .health import Health

    if view_class is ModelDescription:
        return "the model's description"
    if view_class is Health:
        return "the health check"
    model = getattr(view_class, "model", None)
    if model is None:
        prefix = "backo_openapi" if endpoint.startswith("backo_openapi") else endpoint
        return _SERVED.get(prefix, getattr(view_class, "__name__", ""))
    route = view_class.route
    what = {
        "model": "object" if item else "collection",
        "actions": "action of an object" if item else "action of the collection",
        "meta": "description of an object" if item else "description",
        "check": "check of a PATCH" if item else "check of a create",
    }[route]
    return f"{model.name}: {what}"

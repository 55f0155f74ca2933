"""The example apps in example/, over HTTP through the Flask test client."""

from __future__ import annotations

import importlib
import inspect
import runpy
import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

EXAMPLES = ["example.cookies", "example.family", "example.library"]


def client_for(module: str, tmp_path: Path, name: str = "app.db") -> FlaskClient:
    app = importlib.import_module(module).create_app(f"sqlite:///{tmp_path / name}")
    return app.test_client()


def send(client: FlaskClient, method: str, url: str, body: Any = None) -> tuple[int, Any]:
    response = client.open(url, method=method, json=body)
    return response.status_code, response.get_json(silent=True)


@pytest.fixture
def cookies(tmp_path: Path) -> FlaskClient:
    return client_for("example.cookies", tmp_path)


@pytest.fixture
def family(tmp_path: Path) -> FlaskClient:
    return client_for("example.family", tmp_path)


@pytest.fixture
def library(tmp_path: Path) -> FlaskClient:
    return client_for("example.library", tmp_path)


# -- every example ------------------------------------------------------------------


@pytest.mark.parametrize("module", EXAMPLES)
def test_create_app_defaults_to_a_sqlite_file_named_after_the_example(module: str) -> None:
    create_app = importlib.import_module(module).create_app
    default = inspect.signature(create_app).parameters["database"].default
    assert default == f"sqlite:///{module.split('.')[1]}.db"


@pytest.mark.parametrize("module", EXAMPLES)
def test_running_the_module_serves_on_127_0_0_1_port_5000(
    module: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # the default SQLite file lands here
    calls: list[tuple[Flask, dict[str, Any]]] = []
    monkeypatch.setattr(Flask, "run", lambda self, **kwargs: calls.append((self, kwargs)))
    monkeypatch.delitem(sys.modules, module, raising=False)  # run it afresh, as python -m does
    runpy.run_module(module, run_name="__main__")
    ((app, kwargs),) = calls
    assert kwargs == {"host": "127.0.0.1", "port": 5000}
    collection = {"example.cookies": "jar", "example.family": "male"}.get(module, "book")
    assert app.test_client().get(f"/{collection}").get_json() == []
    assert (tmp_path / f"{module.split('.')[1]}.db").exists()


@pytest.mark.parametrize("module", EXAMPLES)
def test_two_apps_on_two_databases_share_nothing(module: str, tmp_path: Path) -> None:
    first = client_for(module, tmp_path, "first.db")
    second = client_for(module, tmp_path, "second.db")
    collection, body = {
        "example.cookies": ("jar", {"name": "blue"}),
        "example.family": ("male", {"name": "Adam"}),
        "example.library": ("book", {"title": "Dune"}),
    }[module]
    assert send(first, "POST", f"/{collection}", body)[0] == 201
    assert send(second, "GET", f"/{collection}") == (200, [])
    assert send(first, "GET", f"/{collection}?depth=0") == (200, [1])


# -- cookies: one-to-many -------------------------------------------------------------


def test_cookie_moves_between_jars(cookies: FlaskClient) -> None:
    assert send(cookies, "POST", "/jar", {"name": "blue", "cookies": [{"type": "biscuit"}]}) == (
        201,
        {"id": 1, "name": "blue", "cookies": [1]},
    )
    assert send(cookies, "POST", "/jar", {"name": "red"})[0] == 201
    assert send(cookies, "PATCH", "/cookie/1", {"jar": 2}) == (
        200,
        {"id": 1, "type": "biscuit", "jar": 2},
    )
    assert send(cookies, "GET", "/jar") == (
        200,
        [{"id": 1, "name": "blue", "cookies": []}, {"id": 2, "name": "red", "cookies": [1]}],
    )
    # From the list side: listing the cookie in jar 1 takes it out of jar 2.
    assert send(cookies, "PATCH", "/jar/1", {"cookies": [1]})[0] == 200
    assert send(cookies, "GET", "/jar/2") == (200, {"id": 2, "name": "red", "cookies": []})
    assert send(cookies, "GET", "/cookie/1") == (200, {"id": 1, "type": "biscuit", "jar": 1})


def test_deleting_a_jar_unlinks_its_cookies(cookies: FlaskClient) -> None:
    send(cookies, "POST", "/jar", {"name": "blue", "cookies": [{"type": "a"}, {"type": "b"}]})
    assert cookies.delete("/jar/1").status_code == 204
    assert send(cookies, "GET", "/cookie") == (
        200,
        [{"id": 1, "type": "a", "jar": None}, {"id": 2, "type": "b", "jar": None}],
    )
    assert send(cookies, "GET", "/jar/1")[0] == 404


def test_a_cookie_needs_a_type(cookies: FlaskClient) -> None:
    status, body = send(cookies, "POST", "/cookie", {"type": ""})
    assert (status, body["error"]["code"]) == (422, "VALIDATION_FAILED")
    assert body["error"]["details"] == {"fields": {"type": ["Shorter than minimum length 1."]}}
    assert send(cookies, "GET", "/cookie") == (200, [])


# -- family: one-to-one ---------------------------------------------------------------


def test_marrying_a_married_woman_takes_her_from_her_husband(family: FlaskClient) -> None:
    assert send(family, "POST", "/male", {"name": "Adam", "wife": {"name": "Eve"}}) == (
        201,
        {"id": 1, "name": "Adam", "wife": 1},
    )
    assert send(family, "POST", "/male", {"name": "Bob"})[0] == 201
    assert send(family, "PATCH", "/male/2", {"wife": 1}) == (
        200,
        {"id": 2, "name": "Bob", "wife": 1},
    )
    assert send(family, "GET", "/male?depth=1") == (
        200,
        [{"id": 1, "name": "Adam", "wife": None}, {"id": 2, "name": "Bob", "wife": 1}],
    )
    assert send(family, "GET", "/female/1") == (
        200,
        {"id": 1, "name": "Eve", "husband": 2, "children": []},
    )


def test_marrying_from_the_other_side_takes_the_husband(family: FlaskClient) -> None:
    send(family, "POST", "/male", {"name": "Adam", "wife": {"name": "Eve"}})
    assert send(family, "POST", "/female", {"name": "Lilith", "husband": 1}) == (
        201,
        {"id": 2, "name": "Lilith", "husband": 1, "children": []},
    )
    assert send(family, "GET", "/male/1") == (200, {"id": 1, "name": "Adam", "wife": 2})
    assert send(family, "GET", "/female/1")[1]["husband"] is None
    assert send(family, "GET", "/female?husband=null&depth=0") == (200, [1])


def test_a_mother_cannot_be_deleted_while_she_has_children(family: FlaskClient) -> None:
    send(family, "POST", "/female", {"name": "Eve", "children": [{"name": "Cain"}]})
    status, body = send(family, "DELETE", "/female/1")
    assert (status, body["error"]["code"]) == (409, "NOT_EMPTY")
    assert body["error"]["details"]["linked"] == {"collection": "child", "ids": [1]}
    assert send(family, "GET", "/child/1") == (200, {"id": 1, "name": "Cain", "mother": 1})
    assert send(family, "PATCH", "/child/1", {"mother": None})[0] == 200
    assert family.delete("/female/1").status_code == 204


# -- library: many-to-many ------------------------------------------------------------


def test_links_show_on_both_sides(library: FlaskClient) -> None:
    assert send(library, "POST", "/author", {"name": "Terry"}) == (
        201,
        {"id": 1, "name": "Terry", "books": []},
    )
    assert send(
        library,
        "POST",
        "/book",
        {"title": "Good Omens", "year": 1990, "authors": [1, {"name": "Neil"}]},
    ) == (201, {"id": 1, "title": "Good Omens", "year": 1990, "authors": [1, 2]})
    assert send(library, "POST", "/author/2", {"name": "x"})[0] == 405
    # Linking from the author's side shows on the book's.
    assert send(library, "POST", "/book", {"title": "Coraline", "year": 2002})[0] == 201
    assert send(library, "PATCH", "/author/2", {"books": [1, 2]})[0] == 200
    assert send(library, "GET", "/book?depth=0&sort=-year") == (200, [2, 1])
    assert send(library, "GET", "/book/2") == (
        200,
        {"id": 2, "title": "Coraline", "year": 2002, "authors": [2]},
    )
    assert send(library, "GET", "/author/1?depth=2") == (
        200,
        {
            "id": 1,
            "name": "Terry",
            "books": [{"id": 1, "title": "Good Omens", "year": 1990, "authors": [1, 2]}],
        },
    )


def test_unlinking_and_deleting_update_both_sides(library: FlaskClient) -> None:
    send(library, "POST", "/book", {"title": "Good Omens", "authors": [{"name": "Terry"}]})
    send(library, "POST", "/author", {"name": "Neil", "books": [1]})
    assert send(library, "PATCH", "/book/1", {"authors": [2]})[1]["authors"] == [2]
    assert send(library, "GET", "/author/1") == (200, {"id": 1, "name": "Terry", "books": []})
    assert library.delete("/author/2").status_code == 204
    assert send(library, "GET", "/book/1") == (
        200,
        {"id": 1, "title": "Good Omens", "year": None, "authors": []},
    )

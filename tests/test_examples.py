"""The example apps in example/, over HTTP through the Flask test client."""

from __future__ import annotations

import importlib
import inspect
import runpy
import sys
from pathlib import Path
from typing import Any

import jwt
import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import check_password_hash

from backo_restful import Engine
from backo_restful.storage import PeeweeStorage

EXAMPLES = ["example.cookies", "example.family", "example.library", "example.notes", "example.shop"]

#: Per example: a collection, and an object to create in it.
SAMPLES = {
    "example.cookies": ("jar", {"name": "blue"}),
    "example.family": ("male", {"name": "Adam"}),
    "example.library": ("book", {"title": "Dune"}),
    "example.notes": ("note", {"title": "groceries"}),
    "example.shop": ("product", {"name": "tea", "price": 2.5}),
}


def client_for(module: str, tmp_path: Path, name: str = "app.db") -> FlaskClient:
    app = importlib.import_module(module).create_app(f"sqlite:///{tmp_path / name}")
    return app.test_client()


def send(
    client: FlaskClient, method: str, url: str, body: Any = None, token: str | None = None
) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    response = client.open(url, method=method, json=body, headers=headers)
    return response.status_code, response.get_json(silent=True)


def login(client: FlaskClient, name: str, password: str) -> str:
    """A token of the notes example for ``name``."""
    status, body = send(client, "POST", "/login", {"login": name, "password": password})
    assert status == 200, body
    return str(body["token"])


def admin_token(module: str, client: FlaskClient) -> str | None:
    """The token an example's collections need (the notes' admin), or None."""
    return login(client, "admin", "admin") if module == "example.notes" else None


@pytest.fixture(autouse=True)
def _demo_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """The notes example with its demo secret and admin password."""
    monkeypatch.delenv("NOTES_SECRET", raising=False)
    monkeypatch.delenv("NOTES_ADMIN_PASSWORD", raising=False)


@pytest.fixture
def cookies(tmp_path: Path) -> FlaskClient:
    return client_for("example.cookies", tmp_path)


@pytest.fixture
def family(tmp_path: Path) -> FlaskClient:
    return client_for("example.family", tmp_path)


@pytest.fixture
def library(tmp_path: Path) -> FlaskClient:
    return client_for("example.library", tmp_path)


@pytest.fixture
def notes(tmp_path: Path) -> FlaskClient:
    return client_for("example.notes", tmp_path)


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
    client = app.test_client()
    collection = SAMPLES[module][0]
    assert send(client, "GET", f"/{collection}", token=admin_token(module, client)) == (200, [])
    assert (tmp_path / f"{module.split('.')[1]}.db").exists()


@pytest.mark.parametrize("module", EXAMPLES)
def test_two_apps_on_two_databases_share_nothing(module: str, tmp_path: Path) -> None:
    first = client_for(module, tmp_path, "first.db")
    second = client_for(module, tmp_path, "second.db")
    collection, body = SAMPLES[module]
    token = admin_token(module, first)
    assert send(first, "POST", f"/{collection}", body, token)[0] == 201
    assert send(second, "GET", f"/{collection}", token=token) == (200, [])
    assert send(first, "GET", f"/{collection}?depth=0", token=token) == (200, [1])


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


# -- notes: users, tokens and permissions ---------------------------------------------


def register(client: FlaskClient, name: str, password: str) -> str:
    """Register ``name`` and log them in: their token."""
    status, body = send(client, "POST", "/register", {"login": name, "password": password})
    assert status == 201, body
    return login(client, name, password)


def test_users_see_and_change_only_their_own_notes(notes: FlaskClient) -> None:
    alice = register(notes, "alice", "wonderland")
    bob = register(notes, "bob", "builder")
    status, note = send(notes, "POST", "/note", {"title": "groceries", "body": "milk"}, alice)
    assert status == 201
    assert (note["owner"], note["created_by"], note["updated_by"]) == ("2", "2", "2")
    assert send(notes, "POST", "/note", {"title": "tools"}, bob)[0] == 201
    assert send(notes, "GET", "/note?depth=0", token=alice) == (200, [1])
    assert send(notes, "GET", "/note?depth=0", token=bob) == (200, [2])
    # To Bob, Alice's note does not exist, whatever the method.
    for method, body in (("GET", None), ("PATCH", {"title": "x"}), ("DELETE", None)):
        status, error = send(notes, method, "/note/1", body, bob)
        assert (status, error["error"]["code"]) == (404, "OBJECT_DOES_NOT_EXIST"), method
    assert send(notes, "GET", "/note?owner=2", token=bob) == (200, [])
    status, changed = send(notes, "PATCH", "/note/1", {"body": "milk, eggs"}, alice)
    assert (status, changed["body"]) == (200, "milk, eggs")
    assert changed["updated_at"] >= changed["created_at"] == note["created_at"]


def test_admins_see_and_change_every_note(notes: FlaskClient) -> None:
    alice = register(notes, "alice", "wonderland")
    admin = login(notes, "admin", "admin")
    send(notes, "POST", "/note", {"title": "groceries"}, alice)
    send(notes, "POST", "/note", {"title": "admin's own"}, admin)
    status, listed = send(notes, "GET", "/note?fields=owner", token=admin)
    assert (status, listed) == (200, [{"id": 1, "owner": "2"}, {"id": 2, "owner": "1"}])
    status, changed = send(notes, "PATCH", "/note/1", {"title": "checked"}, admin)
    assert status == 200
    assert (changed["owner"], changed["created_by"], changed["updated_by"]) == ("2", "2", "1")
    assert notes.delete("/note/1", headers={"Authorization": f"Bearer {admin}"}).status_code == 204


def test_owner_and_audit_fields_are_set_by_the_server(notes: FlaskClient) -> None:
    alice = register(notes, "alice", "wonderland")
    status, error = send(notes, "POST", "/note", {"title": "forged", "owner": "3"}, alice)
    assert (status, error["error"]) == (
        403,
        {
            "code": "FORBIDDEN",
            "message": "owner of note is set by the server.",
            "details": {"collection": "note", "field": "owner"},
        },
    )
    status, note = send(notes, "POST", "/note", {"title": "mine", "body": "x", "owner": "2"}, alice)
    assert (status, note["owner"]) == (201, "2")  # the value the server sets: accepted
    status, error = send(notes, "PATCH", "/note/1", {"created_by": "1"}, alice)
    assert (status, error["error"]["details"]) == (
        403,
        {"collection": "note", "field": "created_by"},
    )
    # A PUT of the note as it was read keeps the fields the server set.
    note["title"] = "renamed"
    del note["id"]
    status, saved = send(notes, "PUT", "/note/1", note, alice)
    assert (status, saved["title"], saved["owner"], saved["created_at"]) == (
        200,
        "renamed",
        "2",
        note["created_at"],
    )


def test_anonymous_callers_and_bad_tokens_get_401(notes: FlaskClient) -> None:
    response = notes.get("/note")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.get_json()["error"]["code"] == "UNAUTHORIZED"
    assert send(notes, "POST", "/note", {"title": "x"})[0] == 401
    for token in ("not.a.token", jwt.encode({"sub": "1"}, "another secret, also 32 bytes long")):
        response = notes.get("/note", headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == 'Bearer error="invalid_token"'
        assert response.get_json()["error"]["code"] == "INVALID_TOKEN"
    # The app's own views too.
    assert notes.get("/me").status_code == 401
    response = notes.get("/me", headers={"Authorization": "Bearer not.a.token"})
    assert (response.status_code, response.get_json()["error"]["code"]) == (401, "INVALID_TOKEN")


def test_login_and_register(notes: FlaskClient) -> None:
    assert send(notes, "POST", "/register", {"login": "alice", "password": "wonderland"}) == (
        201,
        {"id": 2, "login": "alice", "roles": []},
    )
    status, error = send(notes, "POST", "/register", {"login": "alice", "password": "other"})
    assert (status, error) == (
        409,
        {
            "error": {
                "code": "UNIQUE_VIOLATION",
                "message": "This login is taken.",
                "details": {"field": "login"},
            }
        },
    )
    for body in ({"login": "bob"}, {"login": "bob", "password": 1}, ["bob"]):
        status, error = send(notes, "POST", "/register", body)
        assert (status, error["error"]["code"]) == (400, "INVALID_BODY")
    for name, password in (("alice", "looking-glass"), ("nobody", "wonderland")):
        response = notes.post("/login", json={"login": name, "password": password})
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.get_json() == {
            "error": {"code": "UNAUTHORIZED", "message": "Wrong login or password.", "details": {}}
        }
    token = login(notes, "alice", "wonderland")
    assert send(notes, "GET", "/me", token=token) == (
        200,
        {"id": "2", "login": "alice", "roles": []},
    )


def test_passwords_are_hashed_and_never_shown(notes: FlaskClient, tmp_path: Path) -> None:
    register(notes, "alice", "wonderland")
    admin = login(notes, "admin", "admin")
    assert send(notes, "GET", "/user/2", token=admin) == (
        200,
        {"id": 2, "login": "alice", "roles": []},
    )
    for query, code in (
        ("password_hash=x", "UNKNOWN_PARAMETER"),
        ("sort=password_hash", "UNKNOWN_FIELD"),
        ("fields=password_hash", "UNKNOWN_FIELD"),
    ):
        status, error = send(notes, "GET", f"/user?{query}", token=admin)
        assert (status, error["error"]["code"]) == (400, code), query
    status, error = send(notes, "PATCH", "/user/2", {"password_hash": "x"}, admin)
    assert (status, error["error"]["code"]) == (403, "FORBIDDEN")
    # Only the hash is stored (read by trusted code, which sees every field).
    model = importlib.import_module("example.notes").dm
    trusted = Engine(model, PeeweeStorage(f"sqlite:///{tmp_path / 'app.db'}"))
    stored = trusted.get("user", 2)[0]["password_hash"]
    assert stored != "wonderland" and check_password_hash(stored, "wonderland")


def test_a_user_without_a_password_cannot_log_in(notes: FlaskClient) -> None:
    admin = login(notes, "admin", "admin")
    assert send(notes, "POST", "/user", {"login": "eve"}, admin)[0] == 201
    status, error = send(notes, "POST", "/login", {"login": "eve", "password": "x"})
    assert (status, error["error"]["code"]) == (401, "UNAUTHORIZED")


def test_only_admins_manage_users(notes: FlaskClient) -> None:
    alice = register(notes, "alice", "wonderland")
    status, error = send(notes, "GET", "/user", token=alice)
    assert (status, error["error"]["code"]) == (403, "FORBIDDEN")
    assert send(notes, "GET", "/user")[0] == 401
    admin = login(notes, "admin", "admin")
    assert send(notes, "PATCH", "/user/2", {"roles": ["admin"]}, admin)[0] == 200
    # The roles are in the token: a new login makes Alice an admin.
    alice = login(notes, "alice", "wonderland")
    assert send(notes, "GET", "/user?depth=0", token=alice) == (200, [1, 2])


def test_the_secret_and_the_admin_password_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "a secret of the test, at least 32 bytes"
    monkeypatch.setenv("NOTES_SECRET", secret)
    monkeypatch.setenv("NOTES_ADMIN_PASSWORD", "s3cret-admin")
    client = client_for("example.notes", tmp_path)
    status, error = send(client, "POST", "/login", {"login": "admin", "password": "admin"})
    assert (status, error["error"]["code"]) == (401, "UNAUTHORIZED")
    token = login(client, "admin", "s3cret-admin")
    claims = jwt.decode(token, secret, algorithms=["HS256"])
    assert (claims["sub"], claims["login"], claims["roles"]) == ("1", "admin", ["admin"])
    # Starting again on the same database creates no second admin.
    again = client_for("example.notes", tmp_path)
    assert send(again, "GET", "/user?depth=0", token=token) == (200, [1])

"""JSON Patch (RFC 6902) on PATCH: every operation, through api.basic and over
HTTP (``application/json-patch+json``), on every backend."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from typing import Any

import pytest
from flask import Flask
from marshmallow import fields, validate

from backo_restful import DataModel, DeleteStrategy, Engine, Ref, RefsList, Schema
from backo_restful.api import basic
from backo_restful.api.flask import Api, Resource
from backo_restful.auth import JWTAuth, user_of
from backo_restful.engine.patching import same_json
from backo_restful.exceptions import InvalidPatch, PatchTestFailed
from tests.conftest import Result

KEY = "a-secret-key-of-at-least-32-bytes!"
JSON_PATCH = "application/json-patch+json"
ADMIN = {"sub": "1", "roles": ["admin"]}
BOB = {"sub": "2"}


def is_admin(auth: Mapping[str, Any], obj: Any) -> bool:
    return user_of(auth).has_role("admin")


dm = DataModel("jsonpatch")


@dm.collection("jar")
class Jar(Schema):
    name = fields.String()
    cookies = RefsList("cookie", reverse="jar", on_delete=DeleteStrategy.UNLINK_REFERENCED_ITEMS)


@dm.collection("cookie")
class Cookie(Schema):
    type = fields.String(required=True, validate=validate.Length(min=1))
    note = fields.String()
    flavour = fields.String(load_default="plain")
    size = fields.Integer(load_default=3, validate=validate.Range(max=10))
    code = fields.String(metadata={"unique": True})
    extra = fields.Dict()
    toppings = fields.List(fields.String())
    secret = fields.String(metadata={"can_read": is_admin})
    grade = fields.Integer(metadata={"can_modify": is_admin})
    jar = Ref("jar", reverse="cookies")
    tags = RefsList("tag", reverse="cookies")


@dm.collection("tag")
class Tag(Schema):
    label = fields.String()
    cookies = RefsList("cookie", reverse="tags")


#: (event, collection, id, changed fields) of every ``saved`` event.
SAVED: list[tuple[str, str, int | None, list[str]]] = []


@dm.on("cookie", "saved")
def saved(event: Any) -> None:
    SAVED.append((event.name, event.collection, event.id, sorted(event.changes)))


class Client:
    """PATCH calls as a user: through api.basic, or over HTTP with a token and a
    JSON Patch body."""

    def __init__(self, engine: Engine, layer: str) -> None:
        self.engine = engine
        self.layer = layer
        self.auth = JWTAuth(KEY)
        app = Flask("jsonpatch")
        api = Api(app, engine=engine, auth=self.auth)
        for collection in engine.model.collections.values():
            resource = type(f"{collection.name}_resource", (Resource,), {"model": collection})
            api.add_resource(resource, f"/{collection.name}")
        self.http = app.test_client()

    def patch(self, name: str, id_: Any, ops: Any, user: dict[str, Any] = ADMIN) -> Result:
        if self.layer == "basic":
            return Result(*basic.patch(name, id_, ops, engine=self.engine, auth=user))
        return self.send("PATCH", f"/{name}/{id_}", ops, JSON_PATCH, user)

    def send(
        self, method: str, url: str, body: Any, content_type: str, user: dict[str, Any] = ADMIN
    ) -> Result:
        headers = {"Authorization": f"Bearer {self.auth.create_token(user)}"}
        response = self.http.open(
            url, method=method, data=json.dumps(body), content_type=content_type, headers=headers
        )
        body = response.get_json(silent=True) if response.data else None
        return Result(body, response.status_code, dict(response.headers))

    def get(self, name: str, id_: int, user: dict[str, Any] = ADMIN) -> Any:
        return self.engine.get(name, id_, auth=user)[0]


@pytest.fixture
def client(make_engine: Any, layer: str) -> Client:
    engine = make_engine(dm)
    engine.post("jar", [{"name": "blue"}, {"name": "red"}])
    engine.post("tag", [{"label": "sweet"}, {"label": "salty"}, {"label": "crisp"}])
    engine.post(
        "cookie",
        [
            {"type": "biscuit", "jar": 1, "tags": [1, 2], "extra": {"size": 1, "crumbs": [1, 2]},
             "toppings": ["nuts", "salt"], "secret": "s3", "grade": 5, "code": "B"},
            {"type": "muffin", "jar": 1, "code": "M"},
            {"type": "shortbread", "jar": 2},
        ],
    )  # fmt: skip
    SAVED.clear()
    return Client(engine, layer)


def ok(result: Result, status: int = 200) -> Any:
    assert result.status == status, result.body
    return result.body


def error(result: Result, status: int, code: str) -> dict[str, Any]:
    assert result.status == status, result.body
    assert set(result.body) == {"error"}
    assert result.body["error"]["code"] == code, result.body
    return result.body["error"]


def unchanged(client: Client, before: dict[str, Any]) -> None:
    assert client.get("cookie", 1) == before
    assert SAVED == []


# -- every operation -----------------------------------------------------------------


def test_operations_on_scalars(client: Client) -> None:
    body = ok(
        client.patch(
            "cookie",
            1,
            [
                {"op": "test", "path": "/type", "value": "biscuit"},
                {"op": "replace", "path": "/type", "value": "oat"},
                {"op": "add", "path": "/note", "value": "crisp"},  # add on a member replaces it
                {"op": "copy", "from": "/type", "path": "/flavour"},
                {"op": "move", "from": "/note", "path": "/code"},  # note is removed: null
                {"op": "remove", "path": "/size"},  # back to its load_default
            ],
        )
    )
    assert body == {
        **body,
        "type": "oat", "note": None, "flavour": "oat", "code": "crisp", "size": 3,
    }  # fmt: skip
    assert client.get("cookie", 1) == body


def test_remove_leaves_a_field_as_a_put_without_it(client: Client) -> None:
    ok(client.patch("cookie", 1, [{"op": "replace", "path": "/flavour", "value": "lemon"}]))
    body = ok(
        client.patch(
            "cookie",
            1,
            [
                {"op": "remove", "path": "/flavour"},
                {"op": "remove", "path": "/note"},
                {"op": "remove", "path": "/tags"},
                {"op": "remove", "path": "/jar"},
                {"op": "remove", "path": "/extra"},
            ],
        )
    )
    assert (body["flavour"], body["note"], body["tags"], body["jar"], body["extra"]) == (
        "plain", None, [], None, None,
    )  # fmt: skip
    assert client.get("jar", 1)["cookies"] == [2]
    assert client.get("tag", 1)["cookies"] == []


def test_operations_on_a_refs_list(client: Client) -> None:
    body = ok(
        client.patch(
            "jar",
            1,
            [
                {"op": "test", "path": "/cookies", "value": [1, 2]},
                {"op": "add", "path": "/cookies/-", "value": 3},  # taken from jar 2
                {"op": "remove", "path": "/cookies/0"},
                {"op": "add", "path": "/cookies/-", "value": {"type": "new"}},  # created
            ],
        )
    )
    assert body == {"id": 1, "name": "blue", "cookies": [2, 3, 4]}
    assert client.get("jar", 2)["cookies"] == []
    assert client.get("cookie", 1)["jar"] is None
    assert client.get("cookie", 4)["jar"] == 1
    # Many-to-many, from either side; moving an id within the list changes no link.
    body = ok(
        client.patch(
            "cookie",
            1,
            [
                {"op": "move", "from": "/tags/0", "path": "/tags/-"},
                {"op": "test", "path": "/tags", "value": [2, 1]},
                {"op": "replace", "path": "/tags/0", "value": 3},
            ],
        )
    )
    assert body["tags"] == [1, 3]
    # The same link twice is refused, as in any write.
    err = error(client.patch("cookie", 1, [{"op": "copy", "from": "/tags/1", "path": "/tags/-"}]),
                422, "VALIDATION_FAILED")  # fmt: skip
    assert err["details"]["fields"] == {"tags": {"2": ["Duplicate id 3."]}}
    assert client.get("tag", 2)["cookies"] == []
    assert client.get("tag", 3)["cookies"] == [1]
    ok(client.patch("tag", 2, [{"op": "add", "path": "/cookies/0", "value": 2}]))
    assert client.get("cookie", 2)["tags"] == [2]


def test_operations_on_a_ref(client: Client) -> None:
    patch = [
        {"op": "test", "path": "/jar", "value": 1},
        {"op": "replace", "path": "/jar", "value": 2},
    ]
    assert ok(client.patch("cookie", 1, patch))["jar"] == 2
    assert client.get("jar", 1)["cookies"] == [2]
    assert client.get("jar", 2)["cookies"] == [1, 3]
    assert ok(client.patch("cookie", 1, [{"op": "remove", "path": "/jar"}]))["jar"] is None
    assert ok(client.patch("cookie", 1, [{"op": "add", "path": "/jar", "value": 1}]))["jar"] == 1
    body = ok(client.patch("cookie", 2, [{"op": "copy", "from": "/jar", "path": "/grade"}]))
    assert body["grade"] == 1
    err = error(client.patch("cookie", 1, [{"op": "add", "path": "/jar", "value": 9}]), 404,
                "OBJECT_DOES_NOT_EXIST")  # fmt: skip
    assert err["details"]["collection"] == "jar"


def test_operations_inside_json_fields(client: Client) -> None:
    body = ok(
        client.patch(
            "cookie",
            1,
            [
                {"op": "test", "path": "/extra/size", "value": 1.0},  # numbers by value
                {"op": "add", "path": "/extra/color", "value": "red"},
                {"op": "replace", "path": "/extra/size", "value": 2},
                {"op": "remove", "path": "/extra/crumbs/0"},
                {"op": "copy", "from": "/extra/crumbs", "path": "/extra/copied"},
                {"op": "add", "path": "/toppings/0", "value": "sugar"},
                {"op": "add", "path": "/toppings/-", "value": "salt"},
                {"op": "move", "from": "/toppings/1", "path": "/toppings/-"},
                {"op": "remove", "path": "/toppings/0"},
                {"op": "test", "path": "/toppings", "value": ["salt", "salt", "nuts"]},
            ],
        )
    )
    assert body["extra"] == {"size": 2, "color": "red", "crumbs": [2], "copied": [2]}
    assert body["toppings"] == ["salt", "salt", "nuts"]
    assert client.get("cookie", 1) == body


def test_events_fire_as_for_a_patch(client: Client) -> None:
    ok(client.patch("cookie", 2, [{"op": "replace", "path": "/type", "value": "oat"}]))
    by_patch = SAVED[:]
    SAVED.clear()
    ok(Result(*basic.patch("cookie", 3, {"type": "oat"}, engine=client.engine)))
    assert by_patch == [("saved", "cookie", 2, ["type"])]
    assert SAVED == [("saved", "cookie", 3, ["type"])]
    SAVED.clear()
    # Links change both sides, as a PATCH of them does.
    ok(client.patch("cookie", 2, [{"op": "replace", "path": "/jar", "value": 2}]))
    assert [(name, id_) for _, name, id_, _ in SAVED] == [("cookie", 2)]
    assert client.get("jar", 2)["cookies"] == [2, 3]


def test_an_empty_patch_is_an_empty_patch(client: Client) -> None:
    before = client.get("cookie", 1)
    assert ok(client.patch("cookie", 1, [])) == before
    assert ok(Result(*basic.patch("cookie", 2, {}, engine=client.engine)))["id"] == 2
    assert SAVED == []  # nothing changed: no event, for either


# -- refusals --------------------------------------------------------------------


def test_a_failed_test_changes_nothing(client: Client) -> None:
    before = client.get("cookie", 1)
    patch = [
        {"op": "replace", "path": "/type", "value": "oat"},
        {"op": "add", "path": "/tags/-", "value": 3},
        {"op": "test", "path": "/type", "value": "oat"},  # passes: it sees the replace
        {"op": "test", "path": "/grade", "value": True},  # 5 is not true
    ]
    err = error(client.patch("cookie", 1, patch), 409, "PATCH_TEST_FAILED")
    assert err["details"] == {"index": 3, "op": "test", "path": "/grade"}
    unchanged(client, before)
    assert client.get("tag", 3)["cookies"] == []
    with pytest.raises(PatchTestFailed):
        client.engine.patch("cookie", 1, [{"op": "test", "path": "/extra", "value": {}}])
    unchanged(client, before)


INVALID = [
    ([1], {"index": 1}),
    ([{}], {"index": 1}),
    ([{"op": "append", "path": "/type", "value": "s"}], {"index": 1}),
    ([{"op": "add", "value": 1}], {"index": 1, "op": "add", "member": "path"}),
    ([{"op": "add", "path": "type", "value": 1}], {"index": 1, "op": "add", "member": "path"}),
    ([{"op": "add", "path": 3, "value": 1}], {"index": 1, "op": "add", "member": "path"}),
    ([{"op": "add", "path": "/note"}], {"index": 1, "op": "add", "path": "/note"}),
    ([{"op": "test", "path": "/note"}], {"index": 1, "op": "test", "path": "/note"}),
    ([{"op": "move", "path": "/note"}], {"index": 1, "op": "move", "path": "/note"}),
    ([{"op": "copy", "from": "note", "path": "/a"}], {"index": 1, "op": "copy", "member": "from"}),
    ([{"op": "remove", "path": "/nothing"}], {"index": 1, "op": "remove", "path": "/nothing"}),
    ([{"op": "replace", "path": "/x", "value": 1}], {"index": 1, "op": "replace", "path": "/x"}),
    ([{"op": "test", "path": "/x", "value": None}], {"index": 1, "op": "test", "path": "/x"}),
    ([{"op": "move", "from": "/x", "path": "/note"}], {"index": 1, "op": "move", "path": "/note"}),
    ([{"op": "copy", "from": "/x", "path": "/note"}], {"index": 1, "op": "copy", "path": "/note"}),
    ([{"op": "add", "path": "/x/y", "value": 1}], {"index": 1, "op": "add", "path": "/x/y"}),
    ([{"op": "add", "path": "/tags/9", "value": 1}], {"index": 1, "op": "add", "path": "/tags/9"}),
    ([{"op": "remove", "path": "/tags/-"}], {"index": 1, "op": "remove", "path": "/tags/-"}),
    ([{"op": "remove", "path": "/tags/01"}], {"index": 1, "op": "remove", "path": "/tags/01"}),
    ([{"op": "replace", "path": "/type/0", "value": 1}], {"index": 1, "op": "replace",
                                                          "path": "/type/0"}),
    ([{"op": "remove", "path": ""}], {"index": 1, "op": "remove", "path": ""}),
    ([{"op": "replace", "path": "", "value": [1]}], {"index": 1, "op": "replace", "path": ""}),
    ([{"op": "move", "from": "/extra", "path": "/extra/in"}], {"index": 1, "op": "move",
                                                               "path": "/extra/in"}),
]  # fmt: skip


def test_invalid_documents_are_400(client: Client) -> None:
    before = client.get("cookie", 1)
    fine = {"op": "replace", "path": "/type", "value": "oat"}
    for ops, details in INVALID:  # one database for them all
        err = error(client.patch("cookie", 1, [fine, *ops]), 400, "INVALID_PATCH")
        assert err["details"] == details, ops
        assert err["message"].startswith("Operation 1 "), ops
    unchanged(client, before)


def test_the_body_takes_the_shape_its_media_type_says(client: Client) -> None:
    if client.layer == "basic":
        with pytest.raises(InvalidPatch):
            client.engine.patch("cookie", 1, [[]])
        return
    ops = [{"op": "replace", "path": "/type", "value": "oat"}]
    err = error(client.send("PATCH", "/cookie/1", {"type": "oat"}, JSON_PATCH), 400,
                "INVALID_PATCH")  # fmt: skip
    assert err["message"] == f"A JSON Patch document ({JSON_PATCH}) is an array of operations."
    # application/json keeps merge-style bodies: a list there is no JSON Patch.
    error(client.send("PATCH", "/cookie/1", ops, "application/json"), 400, "INVALID_BODY")
    for method, url in (("PUT", "/cookie/1"), ("POST", "/cookie")):
        error(client.send(method, url, {"type": "oat"}, JSON_PATCH), 415, "UNSUPPORTED_MEDIA_TYPE")
    err = error(client.send("PATCH", "/cookie/1", ops, "text/plain"), 415,
                "UNSUPPORTED_MEDIA_TYPE")  # fmt: skip
    assert JSON_PATCH in err["message"]
    assert client.get("cookie", 1)["type"] == "biscuit"
    assert ok(client.send("PATCH", "/cookie/1", ops, f"{JSON_PATCH}; charset=utf-8"))["type"] == (
        "oat"
    )


@pytest.mark.parametrize(
    ("ops", "fields"),
    [
        ([{"op": "replace", "path": "/type", "value": ""}], {"type"}),
        ([{"op": "remove", "path": "/type"}], {"type"}),
        ([{"op": "replace", "path": "/size", "value": 11}], {"size"}),
        ([{"op": "replace", "path": "/size", "value": "big"}], {"size"}),
        ([{"op": "add", "path": "/nothing", "value": 1}], {"nothing"}),
        ([{"op": "replace", "path": "/id", "value": 2}], {"id"}),
        ([{"op": "remove", "path": "/id"}], {"id"}),
        ([{"op": "move", "from": "/type", "path": "/kind"}], {"type", "kind"}),
        ([{"op": "add", "path": "/tags/-", "value": "x"}], {"tags"}),
    ],
)
def test_the_result_is_validated(client: Client, ops: list[Any], fields: set[str]) -> None:
    before = client.get("cookie", 1)
    err = error(client.patch("cookie", 1, ops), 422, "VALIDATION_FAILED")
    assert set(err["details"]["fields"]) == fields
    unchanged(client, before)


def test_the_write_checks_what_any_write_checks(client: Client) -> None:
    before = client.get("cookie", 1)
    err = error(client.patch("cookie", 1, [{"op": "replace", "path": "/code", "value": "M"}]),
                409, "UNIQUE_VIOLATION")  # fmt: skip
    assert err["details"] == {"collection": "cookie", "field": "code", "id": 2}
    error(client.patch("cookie", 9, []), 404, "OBJECT_DOES_NOT_EXIST")
    error(client.patch("cookie", "x", []), 400, "INVALID_ID")
    if client.layer == "basic":
        error(client.patch("nothing", 1, []), 404, "UNKNOWN_COLLECTION")
    nested = [{"op": "add", "path": "/cookies/-", "value": {"type": t}} for t in ("a", "b")]
    if client.layer == "basic":
        result = Result(*basic.patch("jar", 1, nested, engine=client.engine, max_batch=1))
        error(result, 400, "LIMIT_EXCEEDED")
        assert client.get("jar", 1)["cookies"] == [1, 2]
    unchanged(client, before)


def test_field_rights(client: Client) -> None:
    before = client.get("cookie", 1)
    err = error(client.patch("cookie", 1, [{"op": "replace", "path": "/grade", "value": 6}],
                             BOB), 403, "FORBIDDEN")  # fmt: skip
    assert err["details"] == {"collection": "cookie", "field": "grade"}
    error(client.patch("cookie", 1, [{"op": "remove", "path": "/grade"}], BOB), 403, "FORBIDDEN")
    unchanged(client, before)
    # Reading and testing it is theirs, and so are the other fields.
    patch = [
        {"op": "test", "path": "/grade", "value": 5},
        {"op": "copy", "from": "/type", "path": "/note"},
        {"op": "replace", "path": "/grade", "value": 5},  # the value it holds: no change
    ]
    body = ok(client.patch("cookie", 1, patch, BOB))
    assert (body["note"], body["grade"], "secret" in body) == ("biscuit", 5, False)
    assert (
        ok(client.patch("cookie", 1, [{"op": "replace", "path": "/grade", "value": 6}]))["grade"]
        == 6
    )


HIDDEN = [
    {"op": "test", "path": "/F", "value": "s3"},
    {"op": "replace", "path": "/F", "value": "x"},
    {"op": "remove", "path": "/F"},
    {"op": "add", "path": "/F", "value": "x"},
    {"op": "add", "path": "/F/x", "value": "x"},
    {"op": "copy", "from": "/F", "path": "/note"},
    {"op": "move", "from": "/F", "path": "/note"},
    {"op": "move", "from": "/note", "path": "/F"},
    {"op": "copy", "from": "/type", "path": "/F"},
]


def test_a_field_the_caller_cannot_read_does_not_exist(client: Client) -> None:
    before = client.get("cookie", 1)

    def attempt(op: dict[str, Any], name: str) -> Result:
        ops = [{k: v.replace("F", name) if isinstance(v, str) else v for k, v in op.items()}]
        return client.patch("cookie", 1, ops, BOB)

    for op in HIDDEN:
        hidden, missing = attempt(op, "secret"), attempt(op, "nothing")
        assert hidden.status == missing.status and hidden.status in (400, 422), op
        assert json.dumps(hidden.body).replace("secret", "nothing") == json.dumps(missing.body)
    unchanged(client, before)
    assert client.get("cookie", 1)["secret"] == "s3"


def test_the_admin_sees_the_hidden_field(client: Client) -> None:
    patch = [
        {"op": "test", "path": "/secret", "value": "s3"},
        {"op": "move", "from": "/secret", "path": "/note"},
    ]
    body = ok(client.patch("cookie", 1, patch))
    assert (body["secret"], body["note"]) == (None, "s3")


def test_test_and_set_is_atomic(make_engine: Any) -> None:
    """Threads increment ``grade`` with test-and-replace patches: each patch reads
    the object locked, so no two succeed on the same value."""
    engine = make_engine(dm)
    engine.post("cookie", {"type": "oat"})
    rounds, threads = 8, 4
    wins: list[int] = []
    engine.patch("cookie", 1, {"grade": 0})

    def work() -> None:
        done = 0
        while done < rounds:
            grade = engine.get("cookie", 1)[0]["grade"]
            ops = [
                {"op": "test", "path": "/grade", "value": grade},
                {"op": "replace", "path": "/grade", "value": grade + 1},
            ]
            try:
                engine.patch("cookie", 1, ops)
            except PatchTestFailed:
                continue
            wins.append(grade)
            done += 1

    errors: list[BaseException] = []

    def target() -> None:
        try:
            work()
        except BaseException as exc:  # reported below
            errors.append(exc)

    workers = [threading.Thread(target=target) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert errors == []
    assert sorted(wins) == list(range(rounds * threads))
    assert engine.get("cookie", 1)[0]["grade"] == rounds * threads


def test_same_json_compares_as_rfc_6902() -> None:
    assert same_json(1, 1.0) and same_json({"a": [1, None]}, {"a": [1.0, None]})
    assert not same_json(1, True) and not same_json(0, False) and not same_json(True, 1)
    assert same_json(True, True) and not same_json([1], [1, 1]) and not same_json({}, [])
    assert not same_json({"a": 1}, {"b": 1}) and not same_json("1", 1)

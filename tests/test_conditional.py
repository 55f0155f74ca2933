"""Conditional requests: ETag on answers, If-None-Match (304), If-Match (412),
BACKO_REQUIRE_IF_MATCH (428), through api.basic and over HTTP, on every backend."""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Mapping
from typing import Any

import pytest
from flask import Flask
from marshmallow import fields

from backo_restful import DataModel, DeleteStrategy, Engine, Ref, RefsList, Schema
from backo_restful.api import basic
from backo_restful.api.conditional import parse_tags, weak_match
from backo_restful.api.flask import Api, Resource
from backo_restful.auth import JWTAuth, user_of
from backo_restful.engine.tags import MAX_TAGS, etag_of, tag_options
from backo_restful.exceptions import PreconditionFailed
from tests.conftest import Result

KEY = "a key of at least 32 bytes for HS256 in the tag tests"
ADMIN = {"sub": "1", "roles": ["admin"]}
USER = {"sub": "2"}


def is_admin(auth: Mapping[str, Any], obj: Any) -> bool:
    return user_of(auth).has_role("admin")


def build_model() -> DataModel:
    dm = DataModel("tagged")

    @dm.collection("jar", views={"default": ["name", "cookies"], "card": ["name"]})
    class Jar(Schema):
        name = fields.String()
        label = fields.String()
        secret = fields.String(metadata={"can_read": is_admin})
        cookies = RefsList(
            "cookie", reverse="jar", on_delete=DeleteStrategy.UNLINK_REFERENCED_ITEMS
        )

    @dm.collection("cookie")
    class Cookie(Schema):
        type = fields.String(required=True)
        jar = Ref("jar", reverse="cookies")

    @dm.action("jar", "seal")
    def seal(ctx: Any, jar: Any, args: Any) -> Any:
        ctx.engine.patch("jar", jar["id"], {"name": "sealed"})
        return {"sealed": jar["id"]}

    return dm


class Client:
    """The calls of one layer, with the conditional headers as HTTP sends them
    (parsed as api.flask parses them, for api.basic)."""

    def __init__(self, engine: Engine, layer: str, **config: Any) -> None:
        self.engine, self.layer = engine, layer
        self.require = bool(config.get("BACKO_REQUIRE_IF_MATCH"))
        self.auth = JWTAuth(KEY)
        app = Flask("tagged")
        app.config.update(config)
        api = Api(app, engine=engine, auth=self.auth)
        for collection in engine.model.collections.values():
            resource = type(f"{collection.name}_resource", (Resource,), {"model": collection})
            api.add_resource(resource, f"/{collection.name}")
        self.http = app.test_client()

    def _headers(self, user: Any, **given: str | None) -> dict[str, str]:
        headers = {name.replace("_", "-").title(): v for name, v in given.items() if v is not None}
        if user:
            headers["Authorization"] = f"Bearer {self.auth.create_token(user)}"
        return headers

    @staticmethod
    def _result(response: Any) -> Result:
        body = response.get_json(silent=True) if response.data else None
        return Result(body, response.status_code, dict(response.headers))

    def get(
        self, name: str, id_: Any = None, *, user: Any = None, if_none_match: str | None = None,
        method: str = "GET", **params: Any,
    ) -> Result:  # fmt: skip
        if self.layer == "basic":
            tags = parse_tags(if_none_match)
            return Result(
                *basic.get(name, id_, engine=self.engine, auth=user, if_none_match=tags, **params)
            )
        url = f"/{name}" if id_ is None else f"/{name}/{id_}"
        headers = self._headers(user, if_none_match=if_none_match)
        query = {key: str(value) for key, value in params.items()}
        return self._result(self.http.open(url, method=method, headers=headers, query_string=query))

    def write(
        self, method: str, name: str, id_: Any = None, data: Any = None, *, user: Any = None,
        if_match: str | None = None, if_none_match: str | None = None, action: str | None = None,
        raw: str | None = None,
    ) -> Result:  # fmt: skip
        if self.layer == "basic":
            return Result(
                *self._basic(method, name, id_, data, user, if_match, if_none_match, action)
            )
        url = f"/{name}" if id_ is None else f"/{name}/{id_}"
        if action is not None:
            url += f"/_actions/{action}"
        headers = self._headers(user, if_match=if_match, if_none_match=if_none_match)
        body = raw if raw is not None else None if data is None else json.dumps(data)
        media_type = "application/json"
        if method == "PATCH" and isinstance(data, list):
            media_type = "application/json-patch+json"
        response = self.http.open(
            url, method=method, headers=headers, data=body,
            content_type=media_type if body is not None else None,
        )  # fmt: skip
        return self._result(response)

    def _basic(
        self, method: str, name: str, id_: Any, data: Any, user: Any, if_match: str | None,
        if_none_match: str | None, action: str | None,
    ) -> Any:  # fmt: skip
        common = {"engine": self.engine, "auth": user}
        tags = parse_tags(if_match)
        required = {"require_if_match": self.require}
        if action is not None:
            return basic.act(name, action, id_=id_, args=data, if_match=tags, **required, **common)
        if method == "POST":
            return basic.post(name, data, **common)
        if method == "DELETE":
            return basic.delete(name, id_, if_match=tags, **required, **common)
        if method == "PATCH":
            return basic.patch(name, id_, data, if_match=tags, **required, **common)
        none = "*" if parse_tags(if_none_match) == "*" else None
        return basic.put(name, id_, data, if_match=tags, if_none_match=none, **required, **common)


@pytest.fixture
def engine(make_engine: Any) -> Engine:
    engine: Engine = make_engine(build_model())
    engine.post("jar", [{"name": "blue", "label": "a", "secret": "s"}, {"name": "red"}])
    engine.post("cookie", [{"type": "plain", "jar": 1}, {"type": "nut"}])
    return engine


@pytest.fixture
def client(engine: Engine, layer: str) -> Client:
    return Client(engine, layer)


def stored(engine: Engine, name: str, id_: int) -> Any:
    return engine.get(name, id_)[0]


def code(result: Result) -> tuple[int, str]:
    return result.status, result.body["error"]["code"]


# -- reads: ETag and If-None-Match ---------------------------------------------------------


def test_an_object_read_carries_a_strong_tag_and_304_when_it_matches(client: Client) -> None:
    first = client.get("cookie", 1)
    tag = first.headers["ETag"]
    assert first.status == 200 and tag.startswith('"') and tag.endswith('"')
    assert client.get("cookie", 1).headers["ETag"] == tag  # stable
    for header in (tag, f"W/{tag}", f'"other", {tag}', "*"):
        again = client.get("cookie", 1, if_none_match=header)
        assert (again.status, again.body, again.headers["ETag"]) == (304, None, tag), header
    for header in ('"other"', "garbage", ""):
        assert client.get("cookie", 1, if_none_match=header).status == 200
    client.write("PATCH", "cookie", 1, {"type": "oat"})
    changed = client.get("cookie", 1, if_none_match=tag)
    assert changed.status == 200 and changed.headers["ETag"] != tag
    assert client.get("cookie", 99, if_none_match="*").status == 404


def test_a_page_carries_a_weak_tag_and_304_without_paging_headers(client: Client) -> None:
    page = client.get("cookie")
    tag = page.headers["ETag"]
    assert tag.startswith('W/"') and "X-Total-Count" in page.headers
    same = client.get("cookie", if_none_match=tag)
    assert (same.status, same.body, same.headers["ETag"]) == (304, None, tag)
    assert "Link" not in same.headers and "X-Total-Count" not in same.headers
    assert client.get("cookie", if_none_match=tag[2:]).status == 304  # weak comparison
    assert client.get("cookie", limit=1).headers["ETag"] != tag  # another page
    client.write("POST", "cookie", data={"type": "new"})
    assert client.get("cookie", if_none_match=tag).status == 200


def test_head_answers_304_too(engine: Engine) -> None:
    client = Client(engine, "http")
    tag = client.get("jar", 1).headers["ETag"]
    head = client.get("jar", 1, if_none_match=tag, method="HEAD")
    assert (head.status, head.headers["ETag"]) == (304, tag)
    assert client.get("jar", 1, method="HEAD").headers["ETag"] == tag


# -- what a tag names ------------------------------------------------------------------------


def test_a_link_changed_from_the_other_side_changes_the_tag(client: Client) -> None:
    before = client.get("jar", 2).headers["ETag"]
    assert client.write("PATCH", "cookie", 2, {"jar": 2}).status == 200  # the cookie's side
    after = client.get("jar", 2).headers["ETag"]
    assert after != before
    refused = client.write("PATCH", "jar", 2, {"name": "late"}, if_match=before)
    assert code(refused) == (412, "PRECONDITION_FAILED")
    assert stored(client.engine, "jar", 2)["name"] == "red"
    assert client.write("PATCH", "jar", 2, {"name": "on time"}, if_match=after).status == 200


def test_tags_differ_per_caller_field_rights(client: Client) -> None:
    admin = client.get("jar", 1, user=ADMIN, fields="name,secret")
    user = client.get("jar", 1, user=USER, fields="name")
    assert admin.body == {"id": 1, "name": "blue", "secret": "s"}
    assert admin.headers["ETag"] != user.headers["ETag"]
    full_admin = client.get("jar", 1, user=ADMIN, view="card").headers["ETag"]
    full_user = client.get("jar", 1, user=USER, view="card").headers["ETag"]
    assert full_admin == full_user  # the same fields shown: the same tag
    plain_admin = client.write("PATCH", "jar", 1, {"label": "b"}, user=ADMIN).headers["ETag"]
    plain_user = client.get("jar", 1, user=USER, depth=1, view="default").headers["ETag"]
    assert plain_admin != plain_user
    # The admin's tag shows the secret: it matches no representation the user sees.
    refused = client.write("PATCH", "jar", 1, {"label": "c"}, user=USER, if_match=plain_admin)
    assert code(refused) == (412, "PRECONDITION_FAILED")
    tag = client.get("jar", 1, user=USER, fields="name").headers["ETag"]
    assert client.write("PATCH", "jar", 1, {"label": "c"}, user=USER, if_match=tag).status == 200


def test_tags_differ_per_depth_fields_and_view(client: Client) -> None:
    tags = {
        client.get("jar", 1).headers["ETag"],
        client.get("jar", 1, depth=0).headers["ETag"],
        client.get("jar", 1, depth=2).headers["ETag"],
        client.get("jar", 1, fields="name").headers["ETag"],
        client.get("jar", 1, view="card").headers["ETag"],
    }
    assert len(tags) == 5
    # fields=name and view=card show the same: the hashes agree, the options not.
    assert len({tag.split(".")[0].strip('"') for tag in tags}) == 4


def test_a_tag_of_any_read_guards_a_write(client: Client) -> None:
    deep = client.get("jar", 1, depth=2)
    assert deep.body["cookies"][0] == {"id": 1, "type": "plain", "jar": 1}
    patched = client.write("PATCH", "jar", 1, {"label": "x"}, if_match=deep.headers["ETag"])
    assert patched.status == 200
    # A depth-2 tag names the related objects too: a cookie's change makes it stale.
    deep = client.get("jar", 1, depth=2).headers["ETag"]
    client.write("PATCH", "cookie", 1, {"type": "crumbled"})
    refused = client.write("PATCH", "jar", 1, {"label": "y"}, if_match=deep)
    assert code(refused) == (412, "PRECONDITION_FAILED")
    fields = client.get("jar", 1, fields="name").headers["ETag"]
    assert client.write("PATCH", "jar", 1, {"label": "y"}, if_match=fields).status == 200


def test_a_write_answers_with_the_tag_a_read_shows(client: Client) -> None:
    created = client.write("POST", "cookie", data={"type": "rye", "jar": 1})
    assert created.headers["ETag"] == client.get("cookie", created.body["id"]).headers["ETag"]
    patched = client.write("PATCH", "cookie", 1, {"type": "spelt"})
    assert patched.headers["ETag"] == client.get("cookie", 1).headers["ETag"]
    replaced = client.write("PUT", "cookie", 1, {"type": "corn"})
    assert replaced.headers["ETag"] == client.get("cookie", 1).headers["ETag"]
    # jar has a default view: a plain GET shows it, a write's answer every field,
    # and its tag says so, so an If-Match takes it.
    jar = client.write("PATCH", "jar", 1, {"label": "z"})
    assert jar.headers["ETag"] != client.get("jar", 1).headers["ETag"]
    again = client.write("PATCH", "jar", 1, {"name": "teal"}, if_match=jar.headers["ETag"])
    assert again.status == 200
    assert "ETag" not in client.write("POST", "cookie", data=[{"type": "a"}]).headers


# -- writes: If-Match ------------------------------------------------------------------------


WRITES = [
    ("PUT", "jar", {"name": "new"}, None),
    ("PATCH", "jar", {"name": "new"}, None),
    ("PATCH", "jar", [{"op": "replace", "path": "/name", "value": "new"}], None),  # JSON Patch
    ("DELETE", "jar", None, None),
    ("POST", "jar", None, "seal"),
]


@pytest.mark.parametrize(("method", "name", "data", "action"), WRITES)
def test_a_stale_tag_is_412_with_nothing_changed(
    client: Client, method: str, name: str, data: Any, action: str | None
) -> None:
    stale = client.get(name, 1).headers["ETag"]
    client.write("PATCH", name, 1, {"name": "moved on"})  # shown by a plain GET
    before = stored(client.engine, name, 1)
    refused = client.write(method, name, 1, data, if_match=stale, action=action)
    assert code(refused) == (412, "PRECONDITION_FAILED")
    assert refused.body["error"]["details"] == {"collection": "jar", "id": 1}
    assert stored(client.engine, name, 1) == before
    current = client.get(name, 1).headers["ETag"]
    done = client.write(method, name, 1, data, if_match=f'"stale", {current}', action=action)
    assert done.status in (200, 204)
    assert client.write(method, name, 1, data, if_match=current, action=action).status in (
        412,
        404,
    )  # the tag of what was there before


def test_star_matches_any_existing_object(client: Client) -> None:
    assert client.write("PATCH", "jar", 1, {"name": "x"}, if_match="*").status == 200
    assert code(client.write("PATCH", "jar", 9, {"name": "x"}, if_match="*")) == (
        404,
        "OBJECT_DOES_NOT_EXIST",
    )
    refused = client.write("PUT", "jar", 9, {"name": "x"}, if_match="*")
    assert code(refused) == (412, "PRECONDITION_FAILED")
    assert client.get("jar", 9).status == 404  # nothing created
    stale = client.write("PUT", "jar", 9, {"name": "x"}, if_match='"' + "A" * 22 + '"')
    assert code(stale) == (412, "PRECONDITION_FAILED")
    assert client.get("jar", 9).status == 404


def test_if_none_match_star_puts_only_new_objects(client: Client) -> None:
    refused = client.write("PUT", "jar", 1, {"name": "x"}, if_none_match="*")
    assert code(refused) == (412, "PRECONDITION_FAILED")
    assert stored(client.engine, "jar", 1)["name"] == "blue"
    created = client.write("PUT", "jar", 9, {"name": "x"}, if_none_match="*")
    assert created.status == 201 and created.headers["ETag"]
    assert created.headers["ETag"] == client.engine.etag("jar", created.body)


def forged(options: Any, digest: str = "A" * 22) -> str:
    raw = json.dumps(options).encode()
    return f'"{digest}.{base64.urlsafe_b64encode(raw).decode().rstrip("=")}"'


@pytest.mark.parametrize(
    "header",
    [
        "garbage",
        '"unterminated',
        '"a" "b"',
        '"' + "A" * 22 + '"',
        '"' + "A" * 22 + '.!!not base64!!"',
        '"' + "A" * 22 + '.bm90IGpzb24"',  # "not json"
        forged({"depth": 10**9}),
        forged({"depth": -1}),
        forged({"depth": True}),
        forged({"view": "nope"}),
        forged({"fields": ["no_such_field"]}),
        forged({"fields": [1]}),
        forged({"fields": []}),
        forged({"filter": {"name": "blue"}}),
        forged(["depth", 2]),
        forged({"fields": "name"}),
        "x" * 5000,
        ", ".join(['"t"'] * (MAX_TAGS + 1)),
    ],
)
def test_malformed_or_forged_if_match_is_412(client: Client, header: str) -> None:
    before = stored(client.engine, "jar", 1)
    refused = client.write("PATCH", "jar", 1, {"name": "x"}, if_match=header)
    assert code(refused) == (412, "PRECONDITION_FAILED")
    assert stored(client.engine, "jar", 1) == before


def test_a_weak_tag_never_matches_if_match(client: Client) -> None:
    tag = client.get("jar", 1).headers["ETag"]
    refused = client.write("PATCH", "jar", 1, {"name": "x"}, if_match=f"W/{tag}")
    assert code(refused) == (412, "PRECONDITION_FAILED")


def test_a_hidden_field_in_a_tag_is_412_for_whom_it_is_hidden(client: Client) -> None:
    body = client.get("jar", 1, user=ADMIN, fields="secret").body
    tag = etag_of(body, tag_options(client.engine.model.collections["jar"], fields="secret"))
    assert client.write("PATCH", "jar", 1, {"label": "q"}, user=ADMIN, if_match=tag).status == 200
    body = client.get("jar", 1, user=ADMIN, fields="secret").body
    tag = etag_of(body, tag_options(client.engine.model.collections["jar"], fields="secret"))
    refused = client.write("PATCH", "jar", 1, {"label": "r"}, user=USER, if_match=tag)
    assert code(refused) == (412, "PRECONDITION_FAILED")


# -- BACKO_REQUIRE_IF_MATCH ------------------------------------------------------------------


@pytest.mark.parametrize(("method", "name", "data", "action"), WRITES)
def test_a_write_without_if_match_is_428_when_required(
    engine: Engine, layer: str, method: str, name: str, data: Any, action: str | None
) -> None:
    client = Client(engine, layer, BACKO_REQUIRE_IF_MATCH=True)
    before = stored(engine, name, 1)
    refused = client.write(method, name, 1, data, action=action)
    assert code(refused) == (428, "PRECONDITION_REQUIRED")
    assert stored(engine, name, 1) == before
    tag = client.get(name, 1).headers["ETag"]
    assert client.write(method, name, 1, data, if_match=tag, action=action).status in (200, 204)
    assert client.write("POST", "cookie", data={"type": "free"}).status == 201


def test_428_comes_before_the_body_and_after_the_token(engine: Engine) -> None:
    client = Client(engine, "http", BACKO_REQUIRE_IF_MATCH=True)
    assert code(client.write("PATCH", "jar", 1, raw="{not json")) == (428, "PRECONDITION_REQUIRED")
    bad_token = client.http.patch(
        "/jar/1", data="{}", content_type="application/json",
        headers={"Authorization": "Bearer nonsense"},
    )  # fmt: skip
    assert bad_token.status_code == 401
    put = client.write("PUT", "jar", 9, {"name": "new"}, if_none_match="*")
    assert put.status == 201  # If-None-Match: * is a condition too
    assert client.write("POST", "jar", 1, action="seal").status == 428
    assert client.write("POST", "jar", data={"name": "free"}).status == 201


# -- the engine ------------------------------------------------------------------------------


def test_the_engine_takes_if_match(engine: Engine) -> None:
    body, _ = engine.get("jar", 1, depth=2, fields=["cookies", "name"])
    tag = engine.etag("jar", body, depth=2, fields="name,cookies")
    assert engine.patch("jar", 1, {"label": "k"}, if_match=tag)[1] == 200  # not in the tag
    assert engine.patch("jar", 1, {"name": "k"}, if_match=tag)[1] == 200
    with pytest.raises(PreconditionFailed):
        engine.patch("jar", 1, {"name": "l"}, if_match=[tag])
    with pytest.raises(PreconditionFailed):
        engine.delete("jar", 1, if_match=[])
    assert engine.delete("jar", 1, if_match=["*"]) == (None, 204)
    page = engine.page("jar")
    assert engine.page_etag(page) == engine.page_etag(engine.page("jar"))
    assert weak_match([engine.page_etag(page)], engine.page_etag(engine.page("jar")))


# -- two writers, one tag --------------------------------------------------------------------


@pytest.mark.backends("postgresql", "mysql")
def test_two_writers_with_the_same_tag_one_wins(make_engine: Any) -> None:
    dm = build_model()
    slow = threading.Event()

    @dm.on("jar", "saved")
    def linger(event: Any) -> None:  # the winner holds its lock a while
        if slow.is_set():
            time.sleep(0.3)

    engine = make_engine(dm)
    engine.post("jar", {"name": "blue"})
    for round_ in range(3):
        tag = engine.etag("jar", engine.get("jar", 1)[0])
        barrier = threading.Barrier(2)
        outcomes: list[Any] = []

        def write(
            index: int, tag: str = tag, barrier: threading.Barrier = barrier,
            outcomes: list[Any] = outcomes, name: str = f"round {round_}",
        ) -> None:  # fmt: skip
            barrier.wait()
            try:
                outcomes.append(engine.patch("jar", 1, {"name": f"{name}-{index}"}, if_match=tag))
            except PreconditionFailed as error:
                outcomes.append(error)
            finally:
                engine.storage.close()

        slow.set()
        threads = [threading.Thread(target=write, args=(n,)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        slow.clear()
        wins = [o for o in outcomes if isinstance(o, tuple)]
        assert len(wins) == 1 and len(outcomes) == 2, outcomes
        assert isinstance(next(o for o in outcomes if o not in wins), PreconditionFailed)
        assert engine.get("jar", 1)[0]["name"] == wins[0][0]["name"]

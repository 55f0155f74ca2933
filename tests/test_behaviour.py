"""The behaviour suite: every case runs through api.basic and over HTTP, on every backend."""

from __future__ import annotations

from typing import Any

import pytest

from tests import models


@pytest.fixture
def cookies(make_client: Any) -> Any:
    return make_client(models.cookies)


@pytest.fixture
def family(make_client: Any) -> Any:
    return make_client(models.family)


@pytest.fixture
def library(make_client: Any) -> Any:
    return make_client(models.library)


@pytest.fixture
def storage(make_client: Any) -> Any:
    return make_client(models.storage)


@pytest.fixture
def kinds(make_client: Any) -> Any:
    return make_client(models.kinds)


def ok(result: Any, status: int = 200) -> Any:
    assert result.status == status, result.body
    return result.body


def error(result: Any, status: int, code: str) -> dict[str, Any]:
    assert result.status == status, result.body
    assert set(result.body) == {"error"}
    err = result.body["error"]
    assert set(err) == {"code", "message", "details"}
    assert err["code"] == code, err
    assert isinstance(err["message"], str) and err["message"]
    return err


def seed_cookies(client: Any) -> None:
    """Two jars; biscuit and muffin in jar 1, shortbread in jar 2."""
    ok(client.post("jar", {"name": "blue"}), 201)
    ok(client.post("jar", {"name": "red"}), 201)
    ok(client.post("cookie", {"type": "biscuit", "jar": 1}), 201)
    ok(client.post("cookie", {"type": "muffin", "jar": 1}), 201)
    ok(client.post("cookie", {"type": "shortbread", "jar": 2}), 201)


# -- depth ---------------------------------------------------------------------


def test_depth_shapes(cookies: Any) -> None:
    seed_cookies(cookies)
    assert ok(cookies.get("cookie", 1, depth=0)) == 1
    assert ok(cookies.get("cookie", 1, depth=1)) == {"id": 1, "type": "biscuit", "jar": 1}
    assert ok(cookies.get("cookie", 1, depth=2)) == {
        "id": 1,
        "type": "biscuit",
        "jar": {"id": 1, "name": "blue", "cookies": [1, 2]},
    }
    assert ok(cookies.get("cookie", 1, depth=3)) == {
        "id": 1,
        "type": "biscuit",
        "jar": {
            "id": 1,
            "name": "blue",
            "cookies": [
                {"id": 1, "type": "biscuit", "jar": 1},
                {"id": 2, "type": "muffin", "jar": 1},
            ],
        },
    }
    assert ok(cookies.get("jar", depth=0)) == [1, 2]


def test_default_depth_is_one(cookies: Any) -> None:
    seed_cookies(cookies)
    assert ok(cookies.get("jar", 2)) == {"id": 2, "name": "red", "cookies": [3]}


def test_refs_list_in_primary_key_order_and_empty_values(cookies: Any) -> None:
    for kind in ("a", "b", "c"):
        ok(cookies.post("cookie", {"type": kind}), 201)
    ok(cookies.post("jar", {"name": "x", "cookies": [3, 1, 2]}), 201)
    ok(cookies.post("jar", {}), 201)
    assert ok(cookies.get("jar", 1))["cookies"] == [1, 2, 3]
    assert ok(cookies.get("jar", 2)) == {"id": 2, "name": None, "cookies": []}
    ok(cookies.post("cookie", {"type": "loose"}), 201)
    assert ok(cookies.get("cookie", 4, depth=2)) == {"id": 4, "type": "loose", "jar": None}


def test_get_missing_object(cookies: Any) -> None:
    err = error(cookies.get("cookie", 99), 404, "OBJECT_DOES_NOT_EXIST")
    assert err["details"] == {"collection": "cookie", "id": 99}


# -- filters, sort, paging ----------------------------------------------------------


def test_filter_scalars_and_refs(cookies: Any) -> None:
    seed_cookies(cookies)
    ok(cookies.post("cookie", {"type": "loose"}), 201)
    ids = lambda **f: [c["id"] for c in ok(cookies.get("cookie", filter_=f))]  # noqa: E731
    assert ids(jar=1) == [1, 2]
    assert ids(jar=1, type="biscuit") == [1]
    assert ids(type="shortbread") == [3]
    assert ids(type="gingerbread") == []
    assert ids(jar=None) == [4]
    assert ids(id=2) == [2]
    assert [j["id"] for j in ok(cookies.get("jar", filter_={"name": "red"}))] == [2]


def test_filter_on_string_compares_exactly(cookies: Any) -> None:
    ok(cookies.post("cookie", {"type": "Biscuit"}), 201)
    ok(cookies.post("cookie", {"type": "biscuit"}), 201)
    ok(cookies.post("cookie", {"type": "bis%"}), 201)
    assert [c["id"] for c in ok(cookies.get("cookie", filter_={"type": "biscuit"}))] == [2]
    assert [c["id"] for c in ok(cookies.get("cookie", filter_={"type": "bis%"}))] == [3]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        (["type"], [1, 2, 3]),
        (["-id"], [3, 2, 1]),
        (["jar", "-type"], [2, 1, 3]),
        (["-jar", "type"], [3, 1, 2]),
    ],
)
def test_sort(cookies: Any, sort: list[str], expected: list[int]) -> None:
    seed_cookies(cookies)
    assert [c["id"] for c in ok(cookies.get("cookie", sort=sort))] == expected


def test_sort_ties_broken_by_primary_key(cookies: Any) -> None:
    for _ in range(4):
        ok(cookies.post("cookie", {"type": "same"}), 201)
    assert [c["id"] for c in ok(cookies.get("cookie", sort=["type"]))] == [1, 2, 3, 4]
    # In the direction of the last key, so an index on that key serves the order.
    assert [c["id"] for c in ok(cookies.get("cookie", sort=["-type"]))] == [4, 3, 2, 1]
    assert [c["id"] for c in ok(cookies.get("cookie", sort=["-type", "id"]))] == [1, 2, 3, 4]


def test_limit_and_offset(cookies: Any) -> None:
    for index in range(7):
        ok(cookies.post("cookie", {"type": f"c{index}"}), 201)
    page = lambda **p: [c["id"] for c in ok(cookies.get("cookie", **p))]  # noqa: E731
    assert page(limit=3) == [1, 2, 3]
    assert page(limit=3, offset=3) == [4, 5, 6]
    assert page(limit=3, offset=6) == [7]
    assert page(offset=5) == [6, 7]
    assert page(limit=0) == []
    assert page(limit=2, offset=1, sort=["-id"]) == [6, 5]


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"depth": -1}, "INVALID_PARAMETER"),
        ({"depth": 6}, "LIMIT_EXCEEDED"),
        ({"depth": 10**30}, "LIMIT_EXCEEDED"),
        ({"limit": -5}, "INVALID_PARAMETER"),
        ({"offset": -1}, "INVALID_PARAMETER"),
        ({"limit": 10**30}, "LIMIT_EXCEEDED"),
        ({"filter_": {"flavour": "x"}}, "UNKNOWN_FIELD"),
        ({"filter_": {"jar": "one"}}, "INVALID_FILTER"),
        ({"filter_": {"jar": [1]}}, "INVALID_FILTER"),
        ({"filter_": {"type": 3}}, "INVALID_FILTER"),
        ({"filter_": {"id": "x"}}, "INVALID_FILTER"),
        ({"sort": ["colour"]}, "UNKNOWN_FIELD"),
        ({"sort": ["-"]}, "INVALID_SORT"),
    ],
)
def test_bad_read_parameters(cookies: Any, params: dict[str, Any], code: str) -> None:
    seed_cookies(cookies)
    err = error(cookies.get("cookie", **params), 400, code)
    assert err["details"]


def test_filter_on_a_relation_list_and_no_sort_on_it(cookies: Any) -> None:
    seed_cookies(cookies)
    assert [j["id"] for j in ok(cookies.get("jar", filter_={"cookies": 3}))] == [2]
    error(cookies.get("jar", sort=["cookies"]), 400, "INVALID_SORT")


def test_filter_integer_field_converts_and_rejects(library: Any) -> None:
    ok(library.post("book", {"title": "A", "year": 1999}), 201)
    ok(library.post("book", {"title": "B", "year": 2001}), 201)
    assert [b["id"] for b in ok(library.get("book", filter_={"year": 2001}))] == [2]
    err = error(library.get("book", filter_={"year": "abc"}), 400, "INVALID_FILTER")
    assert err["details"]["field"] == "year"


# -- writes: creation, validation -----------------------------------------------------


def test_post_returns_the_object_at_depth_one(cookies: Any) -> None:
    body = ok(cookies.post("jar", {"name": "blue", "cookies": [{"type": "biscuit"}]}), 201)
    assert body == {"id": 1, "name": "blue", "cookies": [1]}
    assert ok(cookies.get("cookie", 1)) == {"id": 1, "type": "biscuit", "jar": 1}


def test_post_list_creates_all(cookies: Any) -> None:
    body = ok(cookies.post("cookie", [{"type": "a"}, {"type": "b"}]), 201)
    assert body == [{"id": 1, "type": "a", "jar": None}, {"id": 2, "type": "b", "jar": None}]


def test_post_list_is_all_or_nothing(cookies: Any) -> None:
    err = error(cookies.post("cookie", [{"type": "a"}, {"type": ""}, {}]), 422, "VALIDATION_FAILED")
    assert set(err["details"]["fields"]) == {"1", "2"}
    err = error(
        cookies.post("cookie", [{"type": "a"}, {"type": "b", "jar": 7}]),
        404,
        "OBJECT_DOES_NOT_EXIST",
    )
    assert err["details"]["collection"] == "jar"
    assert ok(cookies.get("cookie")) == []


def test_validation_names_every_field(cookies: Any) -> None:
    err = error(
        cookies.post("cookie", {"id": 5, "type": 3, "jar": "x", "colour": "red"}),
        422,
        "VALIDATION_FAILED",
    )
    assert set(err["details"]["fields"]) == {"id", "type", "jar", "colour"}
    err = error(cookies.post("cookie", {}), 422, "VALIDATION_FAILED")
    assert set(err["details"]["fields"]) == {"type"}
    assert ok(cookies.get("cookie")) == []


def test_id_is_read_only_on_every_write(cookies: Any) -> None:
    seed_cookies(cookies)
    for result in (
        cookies.put("cookie", 1, {"id": 1, "type": "x"}),
        cookies.patch("cookie", 1, {"id": 2}),
    ):
        err = error(result, 422, "VALIDATION_FAILED")
        assert "id" in err["details"]["fields"]
    assert ok(cookies.get("cookie", 1))["type"] == "biscuit"


@pytest.mark.parametrize(
    "body",
    [
        {"type": "x", "jar": [1]},
        {"type": "x", "jar": True},
        {"type": "x", "jar": 0},
        {"type": "x", "jar": 2**70},
        {"type": "x", "jar": "1"},
        {"type": ["x"]},
        {"type": None},
        {"type": "x" * 10, "jar": {"cookies": "no"}},
    ],
)
def test_wrong_values_are_422(cookies: Any, body: dict[str, Any]) -> None:
    ok(cookies.post("jar", {"name": "j"}), 201)
    error(cookies.post("cookie", body), 422, "VALIDATION_FAILED")
    assert ok(cookies.get("cookie")) == []


@pytest.mark.parametrize("body", ["a string", None, 3, True])
def test_body_must_be_an_object(cookies: Any, body: Any) -> None:
    error(cookies.post("cookie", body), 400, "INVALID_BODY")
    ok(cookies.post("cookie", {"type": "x"}), 201)
    error(cookies.patch("cookie", 1, body), 400, "INVALID_BODY")
    error(cookies.put("cookie", 1, body), 400, "INVALID_BODY")


def test_post_list_with_non_objects(cookies: Any) -> None:
    error(cookies.post("cookie", [{"type": "a"}, "b"]), 422, "VALIDATION_FAILED")
    assert ok(cookies.get("cookie")) == []


def test_huge_numbers_never_reach_the_database(library: Any) -> None:
    error(library.post("book", {"title": "x", "year": 2**63}), 422, "VALIDATION_FAILED")
    error(library.post("book", {"title": "x", "year": -(2**63) - 1}), 422, "VALIDATION_FAILED")
    ok(library.post("book", {"title": "x", "year": 2**63 - 1}), 201)
    assert ok(library.get("book", 1))["year"] == 2**63 - 1


@pytest.mark.parametrize("id_", ["abc", "0", "-1", str(2**63), "1.5"])
def test_invalid_ids(cookies: Any, id_: str) -> None:
    error(cookies.get("cookie", id_), 400, "INVALID_ID")
    error(cookies.put("cookie", id_, {"type": "x"}), 400, "INVALID_ID")
    error(cookies.patch("cookie", id_, {"type": "x"}), 400, "INVALID_ID")
    error(cookies.delete("cookie", id_), 400, "INVALID_ID")


# -- writes: relations ----------------------------------------------------------------


def test_nested_writes_are_recursive(storage: Any) -> None:
    body = ok(
        storage.post(
            "shelf",
            {
                "label": "top",
                "trays": [{"label": "t1", "muffins": [{"flavour": "plum"}]}, {"label": "t2"}],
            },
        ),
        201,
    )
    assert body == {"id": 1, "label": "top", "trays": [1, 2]}
    shelf = body  # a cycle is expanded again at each level, to the depth asked
    assert ok(storage.get("shelf", 1, depth=3)) == {
        "id": 1,
        "label": "top",
        "trays": [
            {
                "id": 1,
                "label": "t1",
                "shelf": shelf,
                "muffins": [{"id": 1, "flavour": "plum", "tray": 1}],
            },
            {"id": 2, "label": "t2", "shelf": shelf, "muffins": []},
        ],
    }


def test_nested_create_through_a_ref(cookies: Any) -> None:
    body = ok(cookies.post("cookie", {"type": "ginger", "jar": {"name": "new"}}), 201)
    assert body == {"id": 1, "type": "ginger", "jar": 1}
    assert ok(cookies.get("jar", 1)) == {"id": 1, "name": "new", "cookies": [1]}


def test_nested_object_cannot_set_its_reverse_field(cookies: Any) -> None:
    ok(cookies.post("jar", {"name": "a"}), 201)
    err = error(
        cookies.post("jar", {"name": "b", "cookies": [{"type": "x", "jar": 1}]}),
        422,
        "VALIDATION_FAILED",
    )
    assert "cookies" in err["details"]["fields"]
    assert ok(cookies.get("cookie")) == []


def test_nested_validation_errors_are_located(storage: Any) -> None:
    err = error(
        storage.post("shelf", {"trays": [{"label": "ok"}, {"label": 5}]}),
        422,
        "VALIDATION_FAILED",
    )
    fields = err["details"]["fields"]
    assert list(fields) == ["trays"]
    assert fields["trays"] == {"1": {"label": ["Not a valid string."]}}
    assert ok(storage.get("shelf")) == []


def test_linking_a_missing_object_writes_nothing(cookies: Any) -> None:
    ok(cookies.post("cookie", {"type": "a"}), 201)
    err = error(
        cookies.post("jar", {"name": "j", "cookies": [1, 42]}), 404, "OBJECT_DOES_NOT_EXIST"
    )
    assert err["details"]["collection"] == "cookie"
    assert err["details"]["id"] == 42
    assert ok(cookies.get("jar")) == []
    assert ok(cookies.get("cookie", 1))["jar"] is None
    error(cookies.patch("cookie", 1, {"type": "changed", "jar": 9}), 404, "OBJECT_DOES_NOT_EXIST")
    assert ok(cookies.get("cookie", 1))["type"] == "a"


def test_optional_ref_accepts_null_required_rejects_it(storage: Any, cookies: Any) -> None:
    seed_cookies(cookies)
    assert ok(cookies.patch("cookie", 1, {"jar": None}))["jar"] is None
    assert ok(cookies.get("jar", 1))["cookies"] == [2]
    ok(storage.post("box", {"label": "b"}), 201)
    ok(storage.post("item", {"name": "i", "box": 1}), 201)
    err = error(storage.patch("item", 1, {"box": None}), 422, "VALIDATION_FAILED")
    assert "box" in err["details"]["fields"]
    error(storage.post("item", {"name": "j"}), 422, "VALIDATION_FAILED")
    assert ok(storage.get("item", 1))["box"] == 1


def test_moving_a_cookie_updates_both_jars(cookies: Any) -> None:
    seed_cookies(cookies)
    ok(cookies.patch("cookie", 1, {"jar": 2}))
    assert ok(cookies.get("jar", 1))["cookies"] == [2]
    assert ok(cookies.get("jar", 2))["cookies"] == [1, 3]
    # and from the other side: jar 1 takes cookie 3 and drops cookie 2
    assert ok(cookies.patch("jar", 1, {"cookies": [3]}))["cookies"] == [3]
    assert ok(cookies.get("jar", 2))["cookies"] == [1]
    assert ok(cookies.get("cookie", 2))["jar"] is None
    assert ok(cookies.get("cookie", 3))["jar"] == 1


def test_unlinking_a_required_ref_from_the_list_side_is_refused(storage: Any) -> None:
    ok(storage.post("box", {"label": "a", "items": [{"name": "i"}]}), 201)
    err = error(storage.patch("box", 1, {"items": []}), 409, "REQUIRED_RELATION")
    assert err["details"]["ids"] == [1]
    assert ok(storage.get("box", 1))["items"] == [1]
    # moving it to another box is fine: it keeps a box
    ok(storage.post("box", {"label": "b"}), 201)
    ok(storage.patch("box", 2, {"items": [1]}))
    assert ok(storage.get("item", 1))["box"] == 2


def test_one_to_one_steals_the_partner(family: Any) -> None:
    ok(family.post("male", {"name": "m1"}), 201)
    ok(family.post("male", {"name": "m2"}), 201)
    ok(family.post("female", {"name": "f1", "husband": 1}), 201)
    ok(family.post("female", {"name": "f2", "husband": 2}), 201)
    assert ok(family.get("male", 1))["wife"] == 1
    # f2 takes m1: f1 becomes single, m2 too
    assert ok(family.patch("female", 2, {"husband": 1}))["husband"] == 1
    assert ok(family.get("female", 1))["husband"] is None
    assert ok(family.get("male", 1))["wife"] == 2
    assert ok(family.get("male", 2))["wife"] is None
    # from the side that does not hold the key
    assert ok(family.patch("male", 2, {"wife": 2}))["wife"] == 2
    assert ok(family.get("male", 1))["wife"] is None
    assert ok(family.get("female", 2))["husband"] == 2
    # a nested new partner replaces the old one
    assert ok(family.patch("female", 2, {"husband": {"name": "m3"}}))["husband"] == 3
    assert ok(family.get("male", 2))["wife"] is None
    assert ok(family.get("male", 3, depth=2))["wife"] == {"id": 2, "name": "f2", "husband": 3}


def test_one_to_one_creation_from_the_side_without_the_key(family: Any) -> None:
    ok(family.post("female", {"name": "f1"}), 201)
    ok(family.post("male", {"name": "m1", "wife": 1}), 201)
    ok(family.post("male", {"name": "m2", "wife": 1}), 201)
    assert ok(family.get("female", 1))["husband"] == 2
    assert ok(family.get("male", 1))["wife"] is None


def test_one_to_one_required_partner_cannot_be_stolen(family: Any) -> None:
    ok(family.post("person", {"name": "p1"}), 201)
    ok(family.post("person", {"name": "p2"}), 201)
    ok(family.post("passport", {"number": "A", "owner": 1}), 201)
    ok(family.post("passport", {"number": "B", "owner": 2}), 201)
    error(family.patch("passport", 2, {"owner": 1}), 409, "REQUIRED_RELATION")
    error(family.patch("person", 2, {"passport": 1}), 409, "REQUIRED_RELATION")
    error(family.patch("person", 1, {"passport": None}), 409, "REQUIRED_RELATION")
    assert ok(family.get("passport", 1))["owner"] == 1
    assert ok(family.get("passport", 2))["owner"] == 2
    # deleting a person whose passport requires them is refused; the passport can go
    error(family.delete("person", 1), 409, "REQUIRED_RELATION")
    ok(family.delete("passport", 1), 204)
    ok(family.delete("person", 1), 204)


def test_many_to_many_links_both_sides(library: Any) -> None:
    ok(library.post("author", {"name": "Ann"}), 201)
    ok(library.post("author", {"name": "Bob"}), 201)
    body = ok(library.post("book", {"title": "T", "authors": [2, 1, {"name": "Cy"}]}), 201)
    assert body["authors"] == [1, 2, 3]
    assert ok(library.get("author", 3))["books"] == [1]
    ok(library.post("book", {"title": "U", "authors": [1]}), 201)
    assert ok(library.get("author", 1))["books"] == [1, 2]
    assert ok(library.patch("author", 1, {"books": [2]}))["books"] == [2]
    assert ok(library.get("book", 1))["authors"] == [2, 3]
    assert ok(library.get("author", 1, depth=2))["books"] == [
        {"id": 2, "title": "U", "year": None, "authors": [1], "tags": []}
    ]


# -- PUT and PATCH -------------------------------------------------------------------


def test_put_replaces_the_whole_object(kinds: Any, cookies: Any) -> None:
    ok(kinds.post("thing", {"name": "a", "code": "c", "quantity": 5, "active": True}), 201)
    body = ok(kinds.put("thing", 1, {"name": "b"}))
    assert body["name"] == "b"
    assert body["code"] is None and body["active"] is None
    assert body["quantity"] == 0  # back to its default
    seed_cookies(cookies)
    assert ok(cookies.put("jar", 1, {"name": "bare"})) == {"id": 1, "name": "bare", "cookies": []}
    assert ok(cookies.get("cookie", 1))["jar"] is None


def test_put_creates_at_a_free_id_and_post_never_collides(cookies: Any) -> None:
    ok(cookies.post("cookie", {"type": "a"}), 201)
    result = cookies.put("cookie", 50, {"type": "b"})
    assert ok(result, 201) == {"id": 50, "type": "b", "jar": None}
    if result.headers is not None and "Location" in result.headers:
        assert result.headers["Location"].endswith("/cookie/50")
    assert ok(cookies.post("cookie", {"type": "c"}), 201)["id"] > 50
    assert ok(cookies.put("cookie", 50, {"type": "d"}))["type"] == "d"


def test_patch_changes_only_given_fields(kinds: Any) -> None:
    ok(kinds.post("thing", {"name": "a", "code": "c", "quantity": 5}), 201)
    body = ok(kinds.patch("thing", 1, {"code": "z"}))
    assert (body["name"], body["code"], body["quantity"]) == ("a", "z", 5)
    error(kinds.patch("thing", 2, {"code": "z"}), 404, "OBJECT_DOES_NOT_EXIST")


# -- delete strategies ---------------------------------------------------------------------


def test_must_be_empty_refuses_and_changes_nothing(storage: Any) -> None:
    ok(storage.post("box", {"label": "full", "items": [{"name": "i"}]}), 201)
    err = error(storage.delete("box", 1), 409, "NOT_EMPTY")
    assert err["details"]["linked"] == {"collection": "item", "ids": [1]}
    assert ok(storage.get("box", 1))["items"] == [1]
    ok(storage.delete("item", 1), 204)
    ok(storage.delete("box", 1), 204)
    error(storage.get("box", 1), 404, "OBJECT_DOES_NOT_EXIST")


def test_delete_referenced_items_cascades(storage: Any) -> None:
    ok(
        storage.post(
            "shelf",
            {
                "trays": [
                    {"muffins": [{"flavour": "a"}, {"flavour": "b"}]},
                    {"muffins": [{"flavour": "c"}]},
                ]
            },
        ),
        201,
    )
    ok(storage.post("shelf", {"trays": [{"muffins": [{"flavour": "d"}]}]}), 201)
    ok(storage.delete("shelf", 1), 204)
    assert [t["id"] for t in ok(storage.get("tray"))] == [3]
    assert [m["flavour"] for m in ok(storage.get("muffin"))] == ["d"]


def test_cascade_through_a_tree(storage: Any) -> None:
    ok(
        storage.post(
            "node",
            {
                "name": "root",
                "children": [
                    {"name": "a", "children": [{"name": "a1"}, {"name": "a2"}]},
                    {"name": "b"},
                ],
            },
        ),
        201,
    )
    ok(storage.post("node", {"name": "other"}), 201)
    ok(storage.delete("node", 2), 204)  # a and its children
    assert [n["name"] for n in ok(storage.get("node"))] == ["root", "b", "other"]
    ok(storage.delete("node", 1), 204)
    assert [n["name"] for n in ok(storage.get("node"))] == ["other"]


def test_unlink_referenced_items_nulls_the_other_side(cookies: Any) -> None:
    seed_cookies(cookies)
    ok(cookies.delete("jar", 1), 204)
    assert [c["jar"] for c in ok(cookies.get("cookie"))] == [None, None, 2]


def test_unlink_refused_where_the_ref_is_required(storage: Any) -> None:
    ok(storage.post("crate", {"bottles": [{"name": "b"}]}), 201)
    err = error(storage.delete("crate", 1), 409, "REQUIRED_RELATION")
    assert err["details"]["linked"]["ids"] == [1]
    assert ok(storage.get("bottle", 1))["crate"] == 1
    ok(storage.post("crate", {}), 201)
    ok(storage.delete("crate", 2), 204)


def test_many_to_many_delete_strategies(library: Any) -> None:
    ok(
        library.post("book", {"title": "T", "authors": [{"name": "A"}], "tags": [{"label": "x"}]}),
        201,
    )
    error(library.delete("tag", 1), 409, "NOT_EMPTY")
    ok(library.delete("author", 1), 204)
    assert ok(library.get("book", 1))["authors"] == []
    error(library.delete("book", 1), 409, "NOT_EMPTY")  # its tags must be emptied first
    ok(library.patch("book", 1, {"tags": []}))
    ok(library.delete("book", 1), 204)
    assert ok(library.get("tag", 1))["books"] == []


def test_delete_missing_object(cookies: Any) -> None:
    err = error(cookies.delete("cookie", 3), 404, "OBJECT_DOES_NOT_EXIST")
    assert err["details"] == {"collection": "cookie", "id": 3, "ids": [3]}


# -- scalar types ------------------------------------------------------------------------------


def test_scalar_types_round_trip(kinds: Any) -> None:
    data = {
        "name": "n",
        "code": "ünïcødé ✓",
        "quantity": -3,
        "ratio": 0.25,
        "active": False,
        "seen_at": "2024-05-06T07:08:09.123456",
        "born_on": "2000-02-29",
        "email": "a@example.org",
        "extra": {"nested": [1, {"x": None}]},
        "tags": ["a", "b"],
        "secret": "hidden",
        "displayLabel": "shown",
    }
    body = ok(kinds.post("thing", data), 201)
    expected = {key: value for key, value in data.items() if key != "secret"}
    assert body == {"id": 1, **expected}
    assert ok(kinds.get("thing", 1)) == body
    assert list(body) == ["id", *expected]
    assert ok(kinds.get("thing", filter_={"displayLabel": "shown"}))[0]["id"] == 1
    assert ok(kinds.get("thing", filter_={"active": False}))[0]["id"] == 1
    error(kinds.get("thing", filter_={"label": "shown"}), 400, "UNKNOWN_FIELD")
    error(kinds.get("thing", filter_={"extra": {}}), 400, "INVALID_FILTER")


def test_aware_datetimes_are_stored_in_utc(kinds: Any) -> None:
    body = ok(kinds.post("thing", {"name": "n", "seen_at": "2024-05-06T09:00:00+02:00"}), 201)
    assert body["seen_at"] == "2024-05-06T07:00:00"
    assert ok(kinds.get("thing", filter_={"seen_at": "2024-05-06T07:00:00"}))[0]["id"] == 1


def test_long_and_nul_strings(kinds: Any) -> None:
    long = "x" * 200_000
    assert ok(kinds.post("thing", {"name": long}), 201)["name"] == long
    error(kinds.post("thing", {"name": "a\x00b"}), 422, "VALIDATION_FAILED")


def test_nulls_sort_last_ascending_and_first_descending(cookies: Any) -> None:
    seed_cookies(cookies)
    ok(cookies.post("cookie", {"type": "loose"}), 201)
    assert [c["id"] for c in ok(cookies.get("cookie", sort=["jar"]))] == [1, 2, 3, 4]
    # Descending, the id breaks ties descending too.
    assert [c["id"] for c in ok(cookies.get("cookie", sort=["-jar"]))] == [4, 3, 2, 1]


def test_keyword_names_and_relations_within_one_collection(make_client: Any) -> None:
    tricky = make_client(models.tricky)
    ok(tricky.post("order", {"select": "a", "save": 1}), 201)
    body = ok(
        tricky.post("order", {"select": "b", "group": 1, "friends": [1, {"select": "c"}]}), 201
    )
    assert body == {
        "id": 2,
        "select": "b",
        "save": None,
        "group": 1,
        "table": None,
        "friends": [1, 3],
        "friend_of": [],
    }
    assert ok(tricky.get("order", 1))["table"] == 2
    assert ok(tricky.get("order", 1))["friend_of"] == [2]
    assert ok(tricky.patch("order", 3, {"table": 1}))["table"] == 1
    assert ok(tricky.get("order", 1))["group"] == 3
    assert [o["id"] for o in ok(tricky.get("order", sort=["-select"], filter_={"save": None}))] == [
        3,
        2,
    ]
    ok(tricky.delete("order", 1), 204)
    assert ok(tricky.get("order", depth=1)) == [
        {
            "id": 2,
            "select": "b",
            "save": None,
            "group": None,
            "table": None,
            "friends": [3],
            "friend_of": [],
        },
        {
            "id": 3,
            "select": "c",
            "save": None,
            "group": None,
            "table": None,
            "friends": [],
            "friend_of": [2],
        },
    ]


def test_filter_one_to_one_from_the_side_without_the_key(family: Any) -> None:
    ok(family.post("female", [{"name": "f1"}, {"name": "f2"}]), 201)
    ok(
        family.post("male", [{"name": "m1", "wife": 2}, {"name": "m2"}, {"name": "m3", "wife": 1}]),
        201,
    )
    assert [m["id"] for m in ok(family.get("male", filter_={"wife": 1}))] == [3]
    assert [m["id"] for m in ok(family.get("male", filter_={"wife": None}))] == [2]
    assert [f["id"] for f in ok(family.get("female", filter_={"husband": 1}))] == [2]
    assert [m["id"] for m in ok(family.get("male", sort=["wife"]))] == [3, 1, 2]
    assert [f["id"] for f in ok(family.get("female", sort=["-husband"]))] == [1, 2]


def test_a_created_object_answers_as_it_reads_back(make_client: Any) -> None:
    # One object alone is answered from the row its INSERT returns; a list is
    # read back. Both must equal what a GET finds, for every storable type.
    import enum

    from marshmallow import fields

    from backo_restful import DataModel, Ref, RefsList, Schema

    class Size(enum.Enum):
        small = 1
        large = 2

    every = DataModel("every")

    @every.collection("box")
    class Box(Schema):
        label = fields.String()
        link = fields.Url()
        key = fields.UUID()
        opens = fields.Time()
        when = fields.AwareDateTime()
        size = fields.Enum(Size)
        pair = fields.Tuple((fields.Integer(), fields.String()))
        anything = fields.Raw()
        weight = fields.Float()
        shelf = Ref("shelf", reverse="boxes")

    @every.collection("shelf")
    class Shelf(Schema):
        name = fields.String()
        boxes = RefsList("box", reverse="shelf")

    client = make_client(every)
    ok(client.post("shelf", {"name": "top"}), 201)
    data = {
        "label": "ünï ✓",
        "link": "https://example.org/a?b=c",
        "key": "12345678-1234-5678-1234-567812345678",
        "opens": "07:08:09.123456",
        "when": "2024-05-06T09:00:00.5+02:00",
        "size": "large",
        "pair": [3, "x"],
        "anything": {"a": [1, 2.5, None, True]},
        "weight": 0.1,
        "shelf": 1,
    }
    alone = ok(client.post("box", data), 201)
    listed = ok(client.post("box", [data]), 201)[0]
    assert alone == ok(client.get("box", alone["id"]))
    assert listed == ok(client.get("box", listed["id"]))
    assert {**alone, "id": None} == {**listed, "id": None}
    assert alone["when"] == "2024-05-06T07:00:00.500000+00:00"
    assert ok(client.get("shelf", 1))["boxes"] == [alone["id"], listed["id"]]
    # A related object created on the way is written before the row: same answer.
    nested = ok(client.post("box", {**data, "shelf": {"name": "new"}}), 201)
    assert nested == ok(client.get("box", nested["id"]))
    assert ok(client.get("shelf", nested["shelf"]))["boxes"] == [nested["id"]]


@pytest.mark.parametrize(
    ("field", "value", "reverse", "seen"),
    [
        ("parent", 1, "children", [1]),
        ("children", [1], "parent", 1),
        ("friends", [1], "friend_of", [1]),
        ("friend_of", [1], "friends", [1]),
        ("partner", 1, "partner_of", 1),
        ("partner_of", 1, "partner", 1),
    ],
)
def test_an_object_linked_to_itself(
    make_client: Any, field: str, value: Any, reverse: str, seen: Any
) -> None:
    client = make_client(models.selfish)
    assert client.post("node", {"name": "n"}).status == 201
    # A replace resets the relations it does not give, but not the other side of
    # a link it sets itself.
    for call in (client.put, client.patch):
        body = ok(call("node", 1, {"name": "n", field: value}))
        assert (body[field], body[reverse]) == (value, seen), call
        ok(client.put("node", 1, {"name": "n"}))
        assert ok(client.get("node", 1))[field] in (None, [])

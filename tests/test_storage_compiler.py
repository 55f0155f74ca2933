"""Filter, sort and cursor compilation (backo_restful.storage.compiler), on every backend."""

from __future__ import annotations

from typing import Any

import pytest
from marshmallow import fields

from backo_restful import DataModel, Ref, RefsList, Schema
from backo_restful.exceptions import InvalidCursor
from backo_restful.query import And, Condition, Or, Path, parse_filter, parse_sort
from backo_restful.storage import PeeweeStorage
from backo_restful.storage.compiler import after, non_null, ordering

shop = DataModel("compiler_shop")


@shop.collection("shelf")
class Shelf(Schema):
    name = fields.String()
    jars = RefsList("jar", reverse="shelf")


@shop.collection("jar")
class Jar(Schema):
    name = fields.String()
    rank = fields.Integer(allow_none=True, metadata={"index": True})
    shelf = Ref("shelf", reverse="jars")


@pytest.fixture
def storage(database: Any) -> PeeweeStorage:
    """A storage of ``shop``: shelves A and B; jars a (rank 2, shelf A), b (no rank,
    shelf A), c (rank 1, shelf B), d (rank 3, no shelf)."""
    shop.resolve()
    storage = PeeweeStorage(database)
    storage.attach(shop)
    shelf, jar = shop.collections["shelf"], shop.collections["jar"]
    with storage.transaction(write=True):
        a_shelf = storage.insert(shelf, {"name": "A"})
        b_shelf = storage.insert(shelf, {"name": "B"})
        for name, rank, on in (("a", 2, a_shelf), ("b", None, a_shelf), ("c", 1, b_shelf)):
            storage.insert(jar, {"name": name, "rank": rank, "shelf": on})
        storage.insert(jar, {"name": "d", "rank": 3, "shelf": None})
    return storage


def names(storage: PeeweeStorage, where: Any = None, sort: Any = None, **options: Any) -> list[str]:
    jar = shop.collections["jar"]
    with storage.transaction(write=False):
        rows = storage.select(jar, parse_filter(jar, where), parse_sort(jar, sort), **options)
    return [row["name"] for row in rows]


@pytest.mark.parametrize(
    ("where", "expected"),
    [
        ({"name": "a"}, ["a"]),
        ({"rank": {"$gte": 2}}, ["a", "d"]),
        ({"rank": {"$in": [1, 3]}}, ["c", "d"]),
        ({"rank": {"$in": []}}, []),
        ({"rank": {"$null": True}}, ["b"]),
        ({"rank": {"$ne": 2}}, ["b", "c", "d"]),  # null matches a negation
        ({"name": {"$startswith": "c"}}, ["c"]),
        ({"$or": [{"name": "a"}, {"rank": 3}]}, ["a", "d"]),
        ({"rank": {"$nin": [2]}}, ["b", "c", "d"]),
        ({"shelf.name": "A"}, ["a", "b"]),
        ({"$not": {"shelf.name": "A"}}, ["c", "d"]),  # no shelf matches the complement
        ({"shelf": {"$null": True}}, ["d"]),
        ({"shelf.jars.name": "c"}, ["c"]),  # a path of two steps: one joined subquery
    ],
)
def test_filters_select_the_rows_they_name(
    storage: PeeweeStorage, where: Any, expected: list[str]
) -> None:
    assert names(storage, where, ["name"]) == expected


def test_a_to_many_path_filters_through_its_join(storage: PeeweeStorage) -> None:
    shelf = shop.collections["shelf"]
    with storage.transaction(write=False):
        rows = storage.select(shelf, parse_filter(shelf, {"jars.rank": {"$gt": 1}}))
        empty = storage.select(shelf, parse_filter(shelf, {"jars": {"$null": True}}))
    assert [row["name"] for row in rows] == ["A"]
    assert empty == []


def test_a_filter_compiles_to_one_where_with_its_parameters(storage: PeeweeStorage) -> None:
    jar = shop.collections["jar"]
    where = parse_filter(jar, {"name": "a", "rank": {"$lt": 5}})
    sql, params = storage._filtered(jar, where, None, None)
    assert sql.startswith(" WHERE ")
    assert sorted(map(str, params)) == ["5", "a"]
    assert storage._filtered(jar, None, None, None) == ("", [])


def test_a_scope_hides_related_objects_from_paths(storage: PeeweeStorage) -> None:
    jar, shelf = shop.collections["jar"], shop.collections["shelf"]
    scopes = {"shelf": parse_filter(shelf, {"name": "B"})}
    with storage.transaction(write=False):
        visible = storage.select(jar, parse_filter(jar, {"shelf": {"$null": False}}), scopes=scopes)
        scoped = storage.select(jar, scope=parse_filter(jar, {"rank": {"$gt": 1}}))
    assert [row["name"] for row in visible] == ["c"]
    assert [row["name"] for row in scoped] == ["a", "d"]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        (["rank"], ["c", "a", "d", "b"]),  # nulls last ascending
        (["-rank"], ["b", "d", "a", "c"]),  # and first descending
        (["shelf.name", "name"], ["a", "b", "c", "d"]),  # a joined key, null last
        (["-shelf.name", "name"], ["d", "c", "a", "b"]),
        (["shelf", "-name"], ["b", "a", "c", "d"]),  # the key column itself
    ],
)
def test_sorts_order_rows_with_nulls_at_the_end(
    storage: PeeweeStorage, sort: list[str], expected: list[str]
) -> None:
    assert names(storage, None, sort) == expected
    assert names(storage, None, sort, reverse=True) == expected[::-1]


def test_sort_row_keys_name_where_each_key_value_is(storage: PeeweeStorage) -> None:
    jar = shop.collections["jar"]
    assert storage.sort_row_keys(parse_sort(jar, ["rank", "shelf.name"])) == ["rank", "_k1", "id"]
    assert storage.sort_row_keys(parse_sort(jar, ["shelf", "-id"])) == ["shelf", "id"]


def test_an_offset_without_a_limit_reads_every_row_after_it(storage: PeeweeStorage) -> None:
    assert names(storage, None, ["name"], offset=1) == ["b", "c", "d"]
    assert names(storage, None, ["shelf.name", "name"], offset=3) == ["d"]


@pytest.mark.parametrize(
    ("sort", "position", "expected"),
    [
        (["rank"], [1, 3], ["a", "d", "b"]),  # after c: the rest, nulls last
        (["rank"], [None, 2], []),  # after b, the last null: nothing
        (["-rank"], [None, 2], ["d", "a", "c"]),  # after b, the first
        (["-rank"], [2, 1], ["c"]),
        (["name"], ["b", 2], ["c", "d"]),
    ],
)
def test_a_cursor_reads_the_rows_strictly_after_its_position(
    storage: PeeweeStorage, sort: list[str], position: list[Any], expected: list[str]
) -> None:
    assert names(storage, None, sort, after=position) == expected


def test_a_cursor_on_a_filtered_order_seeks_the_indexed_column(storage: PeeweeStorage) -> None:
    # rank is proven non-null by the filter: the cursor bounds it (rank >= 2).
    assert names(storage, {"rank": {"$gt": 0}}, ["rank"], after=[2, 1]) == ["d"]


def test_a_cursor_of_another_sort_is_refused(storage: PeeweeStorage) -> None:
    with pytest.raises(InvalidCursor) as caught:
        names(storage, None, ["rank"], after=[1])
    assert caught.value.code == "INVALID_CURSOR"


def test_non_null_fields_are_those_every_match_tests() -> None:
    jar = shop.collections["jar"]

    def path(name: str) -> Path:
        return Path((), name, name)

    rank = Condition(path("rank"), "gt", 1)
    name = Condition(path("name"), "eq", "a")
    assert non_null(And((rank, name))) == {"rank", "name"}
    assert non_null(Or((rank, name))) == set()
    assert non_null(Or((rank, And((rank, name))))) == {"rank"}
    assert non_null(Condition(path("rank"), "isnull")) == set()
    assert non_null(parse_filter(jar, {"$not": {"rank": 1}})) == set()
    assert non_null(None) == set()


def test_orderings_write_a_nulls_clause_unless_plain(storage: PeeweeStorage) -> None:
    column = storage.column(shop.collections["jar"], "rank")

    def sql(descending: bool, plain: bool) -> str:
        ctx = storage._context(shop.collections["jar"])
        ctx.sql(ordering(column, descending, plain))
        return str(ctx.query()[0])

    # NULLS LAST, or MySQL's CASE WHEN ... IS NULL.
    assert "NULL" in sql(False, False) and "NULL" in sql(True, False)
    assert "NULL" not in sql(False, True) and sql(False, True).endswith("ASC")
    assert sql(True, True).endswith("DESC")


def test_after_is_nothing_past_the_last_null(storage: PeeweeStorage) -> None:
    column = storage.column(shop.collections["jar"], "rank")
    ctx = storage._context(shop.collections["jar"])
    ctx.sql(after([(column, False)], [None], [False]))
    assert ctx.query()[0] == "1 = 0"

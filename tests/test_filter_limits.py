"""Filters at the documented limits answer 200 on every backend; past them, 400.

Up to 100 conditions, going through 32 relations in all, groups nested 16 deep,
paths of 8 fields: the SQL they give must fit every database's parser (SQLite's
stack is small) and planner (PostgreSQL's time grows fast with joins), and no
database text reaches the client.
"""

from __future__ import annotations

from typing import Any

import pytest

from backo_restful.query import MAX_CONDITIONS, MAX_NESTING, MAX_PATH, MAX_RELATION_STEPS
from tests import models

LONG_PATH = ".".join(["jar", "cookies"] * ((MAX_PATH - 1) // 2) + ["jar", "name"])[: 10**6]


def nested(depth: int, leaf: dict[str, Any]) -> dict[str, Any]:
    """``leaf`` under ``depth`` groups, alternating $and, $or and $not."""
    node = leaf
    for level in range(depth):
        kind = ("$and", "$or", "$not")[level % 3]
        node = {kind: node} if kind == "$not" else {kind: [node, {"type": f"t{level}"}]}
    return node


@pytest.fixture
def client(make_client: Any) -> Any:
    client = make_client(models.cookies)
    assert client.post("jar", {"name": "blue", "cookies": [{"type": "t0"}]}).status == 201
    return client


def conditions(count: int, path: str) -> list[dict[str, Any]]:
    return [{path: {"$ne": f"v{n}"}} for n in range(count)]


@pytest.mark.parametrize("group", ["$or", "$and"])
@pytest.mark.parametrize("path", ["type", "jar.name", LONG_PATH])
def test_a_group_of_the_most_conditions(client: Any, group: str, path: str) -> None:
    steps = len(path.split(".")) - 1
    assert steps < MAX_PATH
    most = min(MAX_CONDITIONS, MAX_RELATION_STEPS // steps) if steps else MAX_CONDITIONS
    result = client.get("cookie", depth=0, filter_={group: conditions(most, path)})
    assert (result.status, result.body) == (200, [1])
    result = client.get("cookie", depth=0, filter_={group: conditions(most + 1, path)})
    assert result.status == 400 and result.body["error"]["code"] == "INVALID_FILTER"


@pytest.mark.parametrize(
    "path", ["books.title", "books.authors.name", "books.authors.books.authors.books.title"]
)
@pytest.mark.parametrize("group", ["$or", "$and"])
def test_the_most_relations_through_many_to_many(make_client: Any, group: str, path: str) -> None:
    client = make_client(models.library)
    assert client.post("author", {"name": "a", "books": [{"title": "t"}]}).status == 201
    steps = len(path.split(".")) - 1
    most = MAX_RELATION_STEPS // steps
    result = client.get("author", depth=0, filter_={group: conditions(most, path)})
    assert (result.status, result.body) == (200, [1])
    result = client.get("author", depth=0, filter_={group: conditions(most + 1, path)})
    assert result.status == 400 and result.body["error"]["code"] == "INVALID_FILTER"


@pytest.mark.parametrize("path", ["type", LONG_PATH])
def test_the_deepest_nesting(client: Any, path: str) -> None:
    steps = len(path.split(".")) - 1
    count = MAX_CONDITIONS - MAX_NESTING if not steps else MAX_RELATION_STEPS // steps
    leaf = {"$or": conditions(count, path)}
    result = client.get("cookie", depth=0, filter_=nested(MAX_NESTING - 1, leaf))
    assert result.status == 200, result.body
    result = client.get("cookie", depth=0, filter_=nested(MAX_NESTING + 1, leaf))
    assert result.status == 400 and result.body["error"]["code"] == "INVALID_FILTER"

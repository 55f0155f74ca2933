"""Filters at the documented limits answer 200 on every backend; past them, 400.

Up to 100 conditions, groups nested 16 deep, paths of 8 fields: the SQL they give
must fit every database's parser (SQLite's stack is small), and no database text
reaches the client.
"""

from __future__ import annotations

from typing import Any

import pytest

from backo_restful.query import MAX_CONDITIONS, MAX_NESTING, MAX_PATH
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
    assert len(path.split(".")) <= MAX_PATH
    result = client.get("cookie", depth=0, filter_={group: conditions(MAX_CONDITIONS, path)})
    assert (result.status, result.body) == (200, [1])
    result = client.get("cookie", depth=0, filter_={group: conditions(MAX_CONDITIONS + 1, path)})
    assert result.status == 400 and result.body["error"]["code"] == "INVALID_FILTER"


@pytest.mark.parametrize("path", ["type", LONG_PATH])
def test_the_deepest_nesting(client: Any, path: str) -> None:
    leaf = {"$or": conditions(MAX_CONDITIONS - MAX_NESTING, path)}
    result = client.get("cookie", depth=0, filter_=nested(MAX_NESTING - 1, leaf))
    assert result.status == 200, result.body
    result = client.get("cookie", depth=0, filter_=nested(MAX_NESTING + 1, leaf))
    assert result.status == 400 and result.body["error"]["code"] == "INVALID_FILTER"

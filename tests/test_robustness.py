"""No client input, however wrong, gets a 5xx: random requests over HTTP (fixed seed)."""

from __future__ import annotations

import json
import random
from typing import Any
from urllib.parse import quote

import pytest

from tests import models
from tests.conftest import HttpClient

REQUESTS = 150


def junk(rng: random.Random, depth: int = 0) -> Any:
    choice = rng.randrange(11 if depth < 3 else 8)
    if choice == 0:
        return None
    if choice == 1:
        return rng.choice([True, False])
    if choice == 2:
        return rng.choice([0, 1, 2, 3, -1, 2**31, 2**63, -(2**63) - 1, 10**40])
    if choice == 3:
        return rng.choice([0.5, -1e308, 1e308, 1e-300])
    if choice == 4:
        return rng.choice(["", "x", "1", "null", "\x00", "é" * 3, "2024-01-01", "a" * 3000])
    if choice == 5:
        return rng.choice(["2024-02-30T25:00:00", "not a date", "0001-01-01T00:00:00"])
    if choice in (6, 7):
        return rng.randrange(1, 6)
    if choice in (8, 9):
        return [junk(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {
        rng.choice(["id", "name", "type", "jar", "cookies", "x", "wife", "authors"]): junk(
            rng, depth + 1
        )
        for _ in range(rng.randrange(4))
    }


def body_for(rng: random.Random, collection: Any) -> Any:
    if rng.random() < 0.1:
        return junk(rng)
    keys = list(collection.by_key) + ["id", "unknown"]
    return {rng.choice(keys): junk(rng) for _ in range(rng.randrange(5))}


def query_for(rng: random.Random, collection: Any) -> str:
    keys = list(collection.by_key) + ["depth", "sort", "limit", "offset", "filter", "id", "zz"]
    parts = []
    for _ in range(rng.randrange(4)):
        key = rng.choice(keys)
        value = rng.choice(
            [
                "1",
                "0",
                "-1",
                "abc",
                "",
                "null",
                "99999999999999999999999",
                "2",
                "5",
                json.dumps(junk(rng)),
                "-id",
                "id,-id",
                ",",
                "a%00b",
            ]
        )
        parts.append(f"{quote(key)}={quote(value)}")
    return "&".join(parts)


@pytest.mark.parametrize(
    "dm", [models.cookies, models.family, models.library, models.storage], ids=lambda dm: dm.name
)
def test_random_requests_never_fail_the_server(make_engine: Any, dm: Any) -> None:
    rng = random.Random(f"backo-{dm.name}")
    client = HttpClient(make_engine(dm))
    names = list(dm.collections)
    for name in names:  # something to link to
        client.post(name, {})
    for _ in range(REQUESTS):
        collection = dm.collections[rng.choice(names)]
        id_ = rng.choice(["1", "2", "3", "0", "abc", "-4", "1.0", "99999999999999999999"])
        method = rng.choice(["GET", "GET", "POST", "PUT", "PATCH", "DELETE"])
        url = f"/{collection.name}"
        if method != "POST" or rng.random() < 0.2:
            url += f"/{quote(id_)}"
        if method == "GET":
            url += "?" + query_for(rng, collection)
            response = client.http.get(url)
        else:
            data = json.dumps(body_for(rng, collection))
            response = client.http.open(
                url, method=method, data=data, content_type="application/json"
            )
        assert response.status_code < 500, (method, url, response.get_json())
        if response.status_code >= 400:
            assert set(response.get_json()["error"]) == {"code", "message", "details"}

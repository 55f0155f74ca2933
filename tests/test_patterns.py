"""Hostile ``$re`` filters: refused when their cost is unbounded, stopped at the time
limit, never silently wrong, on every backend, over HTTP."""

from __future__ import annotations

from typing import Any

import peewee
import pytest
from marshmallow import fields

from backo_restful import DataModel, Engine, Schema
from backo_restful.exceptions import BadRequest
from backo_restful.query import Path, check_pattern
from backo_restful.storage import PeeweeStorage
from tests.conftest import HttpClient
from tests.faults import Background, pooled

notes = DataModel("notes")


@notes.collection("note")
class Note(Schema):
    text = fields.String()


BIG = "a" * 2_000_000 + "1"  # a real 2 MB value
SMALL = "xyz\nab12"


@pytest.mark.parametrize(
    "pattern",
    [
        r"^[a-z]+\.(com|org)$",
        r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}",
        r"colou?r",
        r".{0,255}x",
        r"a.*b",
        r"^\w{0,16}@\w{0,16}\.com$",
    ],
)
def test_patterns_of_bounded_cost_pass(pattern: str) -> None:
    check_pattern(Path((), "text", "text"), pattern)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r".{0,255}.{0,255}.{0,255}\d", "at most one wide repeat"),
        (r"[a]{0,255}[a]{0,255}[a]{0,255}[a]{0,255}[^a]", "at most one wide repeat"),
        (r"a*b+", "at most one wide repeat"),
        (r"a{0,17}b{0,17}", "at most one wide repeat"),
        (r"a?b?c?d?e?f?g?h?i?j?k?", "combine in too many ways"),
        (r".*a{0,16}b{0,16}c{0,16}", "combine in too many ways"),
        (r"(a+)+", "a repeated group may hold neither"),
        (r"a{0,256}", "repeat counts go up to 255"),
        (r"[z-a]", "invalid character class range"),
    ],
)
def test_patterns_of_unbounded_cost_are_refused(pattern: str, reason: str) -> None:
    with pytest.raises(BadRequest) as refused:
        check_pattern(Path((), "text", "text"), pattern)
    assert refused.value.code == "INVALID_PATTERN" and reason in refused.value.message


#: pattern -> the notes it matches (1: the 2 MB value, 2: the small one), or the
#: error code every backend may answer instead where it cannot match it in time.
ON_A_BIG_VALUE = [
    (r".{0,255}.{0,255}.{0,255}\d", "INVALID_PATTERN"),
    (r"[a]{0,255}[a]{0,255}[a]{0,255}[a]{0,255}[^a]", "INVALID_PATTERN"),
    (r"\d", [1, 2]),
    (r"[a]{0,255}1", [1, 2]),
    (r"^a{1,10}1", []),
    (r"a.*b", [2]),
    (r"\w*\d\d", [2]),
    (r"a{2}1$", [1]),
]


def test_patterns_on_a_2_mb_value(make_engine: Any) -> None:
    client = HttpClient(make_engine(notes))
    assert client.post("note", [{"text": BIG}, {"text": SMALL}]).status == 201
    for pattern, expected in ON_A_BIG_VALUE:
        # Nothing hangs: every answer comes (the time is measured by bench/patterns.py).
        call = Background(
            lambda p=pattern: client.get("note", depth=0, filter_={"text": {"$re": p}})
        )
        result = call.result(timeout=60)
        if isinstance(expected, str):
            assert result.status == 400 and result.body["error"]["code"] == expected, pattern
        elif result.status == 200:
            assert result.body == expected, pattern  # never a wrong answer
        else:
            # A backtracking matcher (MariaDB's) gave up: it says so.
            assert (result.status, result.body["error"]["code"]) == (400, "PATTERN_TOO_SLOW")


def test_a_slow_pattern_statement_is_stopped(database: Any, backend: str) -> None:
    pool = pooled(database) if backend != "sqlite" else None
    storage = PeeweeStorage(pool or database, pattern_timeout=0.002)
    client = HttpClient(Engine(notes, storage))
    client.post("note", {"text": "first"})
    table = storage.table(notes.collections["note"])
    db: peewee.Database = storage.db
    with db.connection_context(), db.atomic():
        for start in range(0, 50_000, 1000):
            rows = [{table.f_text: "a" * 99 + str(n % 10)} for n in range(start, start + 1000)]
            table.insert_many(rows).execute()
    result = client.get("note", depth=0, filter_={"text": {"$re": "b"}})
    assert result.status == 400, result
    assert result.body["error"] == {
        "code": "PATTERN_TOO_SLOW",
        "message": "The $re filter could not be matched within 0.002 s: use a simpler "
        "pattern, or narrow the filter with other conditions.",
        "details": {"limit": "0.002 s"},
    }
    # The limit ends with the call: the same connection scans the table in full.
    result = client.get("note", depth=0, filter_={"text": {"$contains": "b"}})
    assert (result.status, result.body) == (200, [])
    if pool is not None:
        with pool.connection_context():
            if backend == "postgresql":
                setting = "SHOW statement_timeout"
            else:
                setting = "SELECT @@SESSION.max_statement_time"
            (value,) = pool.execute_sql(setting).fetchone()
        assert float(value) == 0
        pool.close_all()

"""Hostile ``$re`` filters: refused when their cost is unbounded, stopped at the time
limit, never silently wrong, on every backend, over HTTP."""

from __future__ import annotations

import random
import re
from typing import Any

import peewee
import pytest
from marshmallow import fields

from backo_restful import DataModel, Engine, Schema
from backo_restful.api import basic
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
        r"^(bis|mu)|(oat|rye)$",
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
        (r"(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)(a|a)x", "combine in too many ways"),
        (r"^(a|b|c|d|e)[a-z]{1,16}[0-9]{1,16}$", "combine in too many ways"),
        (r"(a+)+", "a repeated group may hold neither"),
        (r"((a|aa))+$", "a repeated group may hold neither"),
        (r"(x(a+))*", "a repeated group may hold neither"),
        ("a" + "[ab]{255}" * 50 + "c", "compiles to a matcher of"),
        (r"[\Sx]", "not portable inside [...]"),
        (r"^*", "a repeat must follow something"),
        (r"$+", "a repeat must follow something"),
        (r"[\d-z]", "cannot be the end of a range"),
        (r"[a-\w]", "cannot be the end of a range"),
        (r"[\p{L}]", "not in the portable syntax"),
        (r"[\x{41}]", "not in the portable syntax"),
        (r"[\n]", "not in the portable syntax"),
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


@pytest.mark.parametrize("length", [15_000, 100_000])
def test_patterns_that_backtrack_on_long_values(make_engine: Any, length: int) -> None:
    client = HttpClient(make_engine(notes))
    assert client.post("note", [{"text": "b" + "a" * length}, {"text": SMALL}]).status == 201
    for pattern, expected in [(r"a+b", [2]), (r"a.*b", [2]), (r"\w*\d\d", [2]), (r"a{1,16}b", [2])]:
        call = Background(
            lambda p=pattern: client.get("note", depth=0, filter_={"text": {"$re": p}})
        )
        result = call.result(timeout=60)  # answered, not hanging
        if result.status == 200:
            assert result.body == expected, pattern
        else:
            # MariaDB's matcher, which backtracks, gave up, or was not given the
            # value: it says so.
            assert (result.status, result.body["error"]["code"]) == (400, "PATTERN_TOO_SLOW")


def test_a_pattern_that_defeats_fast_matchers(make_engine: Any) -> None:
    # Fixed repeats: no backtracking, but RE2's fast matcher gives up on it, and
    # its slow one takes time in proportion to the value times the pattern.
    client = HttpClient(make_engine(notes))
    rng = random.Random(7)
    value = "".join(rng.choice("ab") for _ in range(200_000))
    assert client.post("note", {"text": value}).status == 201
    pattern = "a" + "[ab]{255}" * 19 + "c"
    call = Background(lambda: client.get("note", depth=0, filter_={"text": {"$re": pattern}}))
    result = call.result(timeout=60)
    if result.status == 200:
        assert result.body == []
    else:
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


@pytest.mark.backends("postgresql", "mysql")
def test_each_pattern_statement_has_its_own_time_limit(make_engine: Any, database: Any) -> None:
    engine = make_engine(notes)
    engine.post("note", [{"text": "abc"}, {"text": "abd"}, {"text": "xyz"}])
    database.count()
    # Past the end: the page comes back empty, and the count is a statement of
    # its own.
    result = basic.get(
        "note", filter_={"text": {"$re": "^a"}}, limit=1, offset=5, count="exact", engine=engine
    )
    assert result[0] == [] and result[2]["X-Total-Count"] == "2"
    # The page and the count filter with the pattern; each runs under the limit,
    # which is lifted right after it.
    limited = False
    patterns = 0
    for sql in database.statements:
        if sql.startswith("SET") and "DEFAULT" in sql:
            assert limited, database.statements
            limited = False
        elif sql.startswith("SET"):
            assert not limited and ("statement_timeout" in sql or "max_statement_time" in sql)
            limited = True
        else:
            matches = " ~ " in sql or " REGEXP " in sql
            assert limited == matches, (sql, database.statements)
            patterns += matches
    assert patterns == 2 and not limited


#: Values (no line breaks: there the databases differ, as documented).
UNICODE = ["é", "ã", "€", "ß", "\u2003", "A", "a", "ab", "x\x0by", "😀", "e\u0301"]


@pytest.mark.parametrize(
    "pattern",
    [r"^.$", r"^..$", r"^[é]$", r"^[^x]$", r"[😀]", r"^\s$", r"\s", r"^\w$", r"^[a-z]$",
     r"^A$", r"^.{2}$", r"^[^\s]$", r"^[^\sa]$", r"^\S+$", r"[ß-€]", r"^\W$", r"\d|\D"],
)  # fmt: skip
def test_every_database_reads_a_pattern_alike(make_client: Any, pattern: str) -> None:
    client = make_client(notes)
    assert client.post("note", [{"text": text} for text in UNICODE]).status == 201
    # The reference: Python's re with ASCII classes, case-sensitive, by characters.
    expected = [n for n, text in enumerate(UNICODE, 1) if re.search(pattern, text, re.ASCII)]
    result = client.get("note", depth=0, filter_={"text": {"$re": pattern}})
    assert (result.status, result.body) == (200, expected), pattern

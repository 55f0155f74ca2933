"""Unit tests of backo_restful.paging: cursors and the Link header."""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

import pytest
from marshmallow import fields

from backo_restful import DataModel, Ref, RefsList, Schema
from backo_restful.exceptions import InvalidCursor, InvalidParameter
from backo_restful.paging import END, Page, decode, encode, link_header
from backo_restful.query import Path, SortKey, parse_sort

dm = DataModel("paging")


@dm.collection("jar")
class Jar(Schema):
    name = fields.String()
    born = fields.DateTime()
    day = fields.Date()
    at = fields.Time()
    cookies = RefsList("cookie", reverse="jar")


@dm.collection("cookie")
class Cookie(Schema):
    type = fields.String()
    jar = Ref("jar", reverse="cookies")


dm.resolve()
JAR = dm.get("jar")
COOKIE = dm.get("cookie")
ID = Path((), "id", "id")


def sorted_by(collection: Any, sort: list[str]) -> tuple[list[SortKey], list[Path]]:
    """The sort keys of ``sort`` and the paths a cursor holds (the id last)."""
    keys = parse_sort(collection, sort)
    return keys, [key.path for key in keys] + [ID]


def raw(payload: Any) -> str:
    """A cursor holding ``payload`` as it is, signature or not."""
    text = json.dumps(payload, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(text).decode().rstrip("=")


def payload(cursor: str) -> dict[str, Any]:
    return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    ("sort", "values"),
    [
        (["name"], ["blue", 3]),
        (["name"], [None, 2]),
        (["-born"], [dt.datetime(2020, 1, 2, 3, 4, 5, 6), 9]),
        (["day", "-at"], [dt.date(2021, 5, 6), dt.time(7, 8, 9), 1]),
        (["jar.name", "-type"], ["glass", "oat", 2**63 - 1]),
        ([], [12]),
    ],
)
def test_a_cursor_gives_back_the_values_of_its_row(sort: list[str], values: list[Any]) -> None:
    collection = COOKIE if sort and sort[0] == "jar.name" else JAR
    keys, paths = sorted_by(collection, sort)
    cursor = encode(collection, keys, values)
    assert cursor.isascii() and "=" not in cursor and "/" not in cursor and "+" not in cursor
    assert decode(collection, keys, paths, cursor, "after") == values


def test_end_is_no_position() -> None:
    keys, paths = sorted_by(JAR, ["name"])
    assert decode(JAR, keys, paths, END, "before") is None


def test_a_cursor_is_signed_by_its_collection_and_sort() -> None:
    keys, _ = sorted_by(JAR, ["name"])
    first = payload(encode(JAR, keys, ["a", 1]))
    assert first["v"] == ["a", 1]
    assert first["s"] == payload(encode(JAR, keys, ["b", 2]))["s"]
    descending, _ = sorted_by(JAR, ["-name"])
    assert first["s"] != payload(encode(JAR, descending, ["a", 1]))["s"]


def foreign_cursors() -> list[tuple[str, Any]]:
    """Cursors that are not one the ``name`` order of jars gave out."""
    keys, _ = sorted_by(JAR, ["name"])
    good = encode(JAR, keys, ["blue", 3])
    signature = payload(good)["s"]
    descending, _ = sorted_by(JAR, ["-name"])
    by_type, _ = sorted_by(COOKIE, ["type"])
    return [
        ("not base64", "!!!"),
        ("not JSON", base64.urlsafe_b64encode(b"{oops").decode()),
        ("a number", 12),
        ("too long", "a" * 4001),
        ("no signature", raw({"v": ["blue", 3]})),
        ("tampered signature", raw({"s": "00000000", "v": ["blue", 3]})),
        ("values not a list", raw({"s": signature, "v": "blue"})),
        ("one value too many", raw({"s": signature, "v": ["blue", 3, 4]})),
        ("a tampered id", raw({"s": signature, "v": ["blue", "three"]})),
        ("an id out of range", raw({"s": signature, "v": ["blue", 0]})),
        ("a list for a string", raw({"s": signature, "v": [["blue"], 3]})),
        ("another sort", encode(JAR, descending, ["blue", 3])),
        ("another collection", encode(COOKIE, by_type, ["blue", 3])),
    ]


@pytest.mark.parametrize(("why", "cursor"), foreign_cursors(), ids=lambda x: str(x)[:20])
def test_a_foreign_or_tampered_cursor_is_refused(why: str, cursor: Any) -> None:
    keys, paths = sorted_by(JAR, ["name"])
    with pytest.raises(InvalidCursor) as refused:
        decode(JAR, keys, paths, cursor, "after")
    error = refused.value
    assert isinstance(error, InvalidParameter)
    assert (error.code, error.status, error.parameter) == ("INVALID_CURSOR", 400, "after")
    assert error.details == {"parameter": "after"}
    assert error.message.startswith("Parameter 'after' is not a cursor of this collection and sort")


@pytest.mark.parametrize(
    "value", ["2020-01-02T03:04:05+01:00", "yesterday", 1577934245, "2020-13-01T00:00:00"]
)
def test_a_cursor_holds_naive_datetimes(value: Any) -> None:
    keys, paths = sorted_by(JAR, ["born"])
    signature = payload(encode(JAR, keys, [None, 1]))["s"]
    with pytest.raises(InvalidCursor) as refused:
        decode(JAR, keys, paths, raw({"s": signature, "v": [value, 1]}), "before")
    assert refused.value.message == (
        "Parameter 'before' is not a cursor of this collection and sort."
    )


def test_links_of_a_cursor_page() -> None:
    page = Page([], next="N", previous="P", limit=2)
    query = {"depth": "0", "after": "old", "offset": "4", "limit": "9", "filter": '{"a":1}'}
    assert link_header("/jar", query, page, cursor_mode=True).split(", ") == [
        '</jar?depth=0&filter=%7B%22a%22%3A1%7D&limit=2>; rel="first"',
        '</jar?depth=0&filter=%7B%22a%22%3A1%7D&limit=2&before=P>; rel="prev"',
        '</jar?depth=0&filter=%7B%22a%22%3A1%7D&limit=2&after=N>; rel="next"',
        '</jar?depth=0&filter=%7B%22a%22%3A1%7D&limit=2&before=end>; rel="last"',
    ]


def test_links_of_the_first_and_only_cursor_page() -> None:
    page = Page([1], limit=5)
    assert link_header("", {}, page, cursor_mode=True) == (
        '<?limit=5>; rel="first", <?limit=5&before=end>; rel="last"'
    )


@pytest.mark.parametrize(
    ("page", "links"),
    [
        (
            Page([], total=5, total_method="exact", next="n", limit=2, offset=2),
            ["?limit=2", "?limit=2&offset=0", "?limit=2&offset=4", "?limit=2&offset=4"],
        ),
        (
            Page([], total=4, total_method="exact", limit=2, offset=3),
            ["?limit=2", "?limit=2&offset=1", "?limit=2&offset=2"],
        ),
        (
            Page([], total=5000, total_method="estimate", next="n", limit=10, offset=0),
            ["?limit=10", "?limit=10&offset=10", "?limit=10&before=end"],
        ),
    ],
)
def test_links_of_an_offset_page(page: Page, links: list[str]) -> None:
    header = link_header("https://x.example/jar", {"offset": "2"}, page, cursor_mode=False)
    targets = [
        part.split(">;")[0].removeprefix("<https://x.example/jar") for part in header.split(", ")
    ]
    assert targets == links
    rels = [part.split('rel="')[1].rstrip('"') for part in header.split(", ")]
    assert rels[0] == "first" and rels[-1] == "last"
    assert ("prev" in rels) == bool(page.offset) and ("next" in rels) == (page.next is not None)

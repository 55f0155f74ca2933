"""Events: handlers of each object's life, fired by every write that changes it,
inside its transaction or after it commits; through api.basic and over HTTP."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from marshmallow import fields

from backo_restful import DataModel, DeleteStrategy, Engine, Ref, RefsList, Schema
from backo_restful.exceptions import (
    Conflict,
    DeclarationError,
    EventDepthExceeded,
    InternalError,
)
from backo_restful.lifecycle import EVENTS, Event
from backo_restful.storage import PeeweeStorage

SAVING = ("before_save", "created", "saved", "before_delete", "deleted")


def build(*, strategy: DeleteStrategy = DeleteStrategy.UNLINK_REFERENCED_ITEMS) -> DataModel:
    dm = DataModel("cookies")

    @dm.collection("jar")
    class Jar(Schema):
        name = fields.String()
        label = fields.String(metadata={"can_read": False})
        cookies = RefsList("cookie", reverse="jar", on_delete=strategy)
        lid = Ref("lid", reverse="jar")

    @dm.collection("cookie")
    class Cookie(Schema):
        type = fields.String(required=True)
        jar = Ref("jar", reverse="cookies")
        tags = RefsList("tag", reverse="cookies")

    @dm.collection("tag")
    class Tag(Schema):
        label = fields.String()
        cookies = RefsList("cookie", reverse="tags")

    @dm.collection("lid")
    class Lid(Schema):
        color = fields.String()
        jar = Ref("jar", reverse="lid")

    return dm


class Recorder:
    """Records every event of every collection as (name, collection, id, changes)."""

    def __init__(self, dm: DataModel, *names: str) -> None:
        self.events: list[Event] = []
        for collection in dm.collections:
            for name in names or SAVING:
                dm.on(collection, name, self.events.append)

    def seen(self) -> list[tuple[str, str, int | None, list[str]]]:
        seen = [(e.name, e.collection, e.id, sorted(e.changes)) for e in self.events]
        self.events.clear()
        return seen


@pytest.fixture
def recorded(make_client: Any) -> tuple[Any, Recorder]:
    dm = build()
    recorder = Recorder(dm)
    client = make_client(dm)
    return client, recorder


def test_a_create_fires_before_save_created_and_saved(recorded: Any) -> None:
    client, recorder = recorded
    assert client.post("jar", {"name": "blue", "label": "secret"}).status == 201
    every = ["cookies", "lid", "name"]  # label too, which no client reads: see below
    assert recorder.events[0].old is None
    assert recorder.events[0].new == {
        "name": "blue", "label": "secret", "cookies": [], "lid": None
    }  # fmt: skip
    assert recorder.events[2].new == {
        "id": 1, "name": "blue", "label": "secret", "cookies": [], "lid": None
    }  # fmt: skip
    assert recorder.seen() == [
        ("before_save", "jar", None, sorted([*every, "label"])),
        ("created", "jar", 1, sorted([*every, "label"])),
        ("saved", "jar", 1, sorted([*every, "label"])),
    ]


def test_an_update_fires_with_old_and_new_values(recorded: Any) -> None:
    client, recorder = recorded
    client.post("jar", {"name": "blue"})
    recorder.seen()
    assert client.patch("jar", 1, {"name": "green"}).status == 200
    before, saved = recorder.events
    assert (before.old["name"], before.new["name"], saved.old["name"], saved.new["name"]) == (
        "blue", "green", "blue", "green",
    )  # fmt: skip
    assert recorder.seen() == [
        ("before_save", "jar", 1, ["name"]),
        ("saved", "jar", 1, ["name"]),
    ]
    # Nothing changes: no saved event.
    assert client.patch("jar", 1, {"name": "green"}).status == 200
    assert recorder.seen() == [("before_save", "jar", 1, [])]


def test_nested_creates_and_both_sides_of_each_link(recorded: Any) -> None:
    client, recorder = recorded
    result = client.post("jar", {"name": "blue", "cookies": [{"type": "a"}, {"type": "b"}]})
    assert result.status == 201
    seen = recorder.seen()
    assert seen[:3] == [
        ("before_save", "jar", None, ["cookies", "label", "lid", "name"]),
        ("created", "jar", 1, ["cookies", "label", "lid", "name"]),
        ("saved", "jar", 1, ["cookies", "label", "lid", "name"]),
    ]
    # Each cookie is created linked to the jar, which gains it.
    assert seen[3:] == [
        ("before_save", "cookie", None, ["jar", "tags", "type"]),
        ("before_save", "jar", 1, ["cookies"]),
        ("saved", "jar", 1, ["cookies"]),
        ("created", "cookie", 1, ["jar", "tags", "type"]),
        ("saved", "cookie", 1, ["jar", "tags", "type"]),
        ("before_save", "cookie", None, ["jar", "tags", "type"]),
        ("before_save", "jar", 1, ["cookies"]),
        ("saved", "jar", 1, ["cookies"]),
        ("created", "cookie", 2, ["jar", "tags", "type"]),
        ("saved", "cookie", 2, ["jar", "tags", "type"]),
    ]


def test_a_link_moved_from_either_side(recorded: Any) -> None:
    client, recorder = recorded
    client.post("jar", [{"name": "blue"}, {"name": "red"}])
    client.post("cookie", {"type": "a", "jar": 1})
    recorder.seen()
    # From the cookie: both jars change.
    assert client.patch("cookie", 1, {"jar": 2}).status == 200
    events = list(recorder.events)
    assert recorder.seen() == [
        ("before_save", "cookie", 1, ["jar"]),
        ("before_save", "jar", 1, ["cookies"]),
        ("before_save", "jar", 2, ["cookies"]),
        ("saved", "jar", 1, ["cookies"]),
        ("saved", "jar", 2, ["cookies"]),
        ("saved", "cookie", 1, ["jar"]),
    ] or [(e.name, e.collection, e.id) for e in events]
    jar_1 = next(e for e in events if e.name == "saved" and e.id == 1 and e.collection == "jar")
    assert (jar_1.old["cookies"], jar_1.new["cookies"]) == ([1], [])
    # From the jar: the cookie moves back, its key changes.
    assert client.patch("jar", 1, {"cookies": [1]}).status == 200
    seen = recorder.seen()
    assert ("saved", "cookie", 1, ["jar"]) in seen
    assert ("saved", "jar", 1, ["cookies"]) in seen
    assert ("saved", "jar", 2, ["cookies"]) in seen


def test_many_to_many_links_change_both_sides(recorded: Any) -> None:
    client, recorder = recorded
    client.post("tag", [{"label": "x"}, {"label": "y"}])
    client.post("cookie", {"type": "a", "tags": [1]})
    recorder.seen()
    assert client.patch("cookie", 1, {"tags": [2]}).status == 200
    seen = recorder.seen()
    assert ("saved", "tag", 1, ["cookies"]) in seen  # lost the cookie
    assert ("saved", "tag", 2, ["cookies"]) in seen  # gained it
    assert ("saved", "cookie", 1, ["tags"]) in seen


def test_a_one_to_one_partner_taken_away(recorded: Any) -> None:
    client, recorder = recorded
    client.post("lid", {"color": "red"})
    client.post("jar", [{"name": "blue", "lid": 1}, {"name": "red"}])
    recorder.seen()
    assert client.patch("jar", 2, {"lid": 1}).status == 200
    seen = recorder.seen()
    for expected in [("saved", "jar", 1, ["lid"]), ("saved", "jar", 2, ["lid"])]:
        assert expected in seen
    assert any(s[:3] == ("saved", "lid", 1) for s in seen)


@pytest.mark.parametrize(
    ("strategy", "expected"),
    [
        (
            DeleteStrategy.UNLINK_REFERENCED_ITEMS,
            [
                ("before_delete", "jar", 1, ["cookies", "label", "lid", "name"]),
                ("before_save", "cookie", 1, ["jar"]),
                ("saved", "cookie", 1, ["jar"]),
                ("deleted", "jar", 1, ["cookies", "label", "lid", "name"]),
            ],
        ),
        (
            DeleteStrategy.DELETE_REFERENCED_ITEMS,
            [
                ("before_delete", "jar", 1, ["cookies", "label", "lid", "name"]),
                ("before_delete", "cookie", 1, ["jar", "tags", "type"]),
                ("deleted", "jar", 1, ["cookies", "label", "lid", "name"]),
                ("deleted", "cookie", 1, ["jar", "tags", "type"]),
            ],
        ),
    ],
)
def test_delete_strategies(make_client: Any, strategy: DeleteStrategy, expected: Any) -> None:
    dm = build(strategy=strategy)
    recorder = Recorder(dm)
    client = make_client(dm)
    client.post("jar", {"name": "blue", "cookies": [{"type": "a"}]})
    recorder.seen()
    assert client.delete("jar", 1).status == 204
    seen = recorder.seen()
    assert sorted(seen) == sorted(expected)
    assert seen[0][0] == "before_delete"


def test_a_refused_delete_fires_nothing_that_commits(make_client: Any) -> None:
    dm = build(strategy=DeleteStrategy.MUST_BE_EMPTY)
    committed: list[Event] = []
    dm.on("jar", "after_commit", committed.append)
    client = make_client(dm)
    client.post("jar", {"name": "blue", "cookies": [{"type": "a"}]})
    committed.clear()
    assert client.delete("jar", 1).status == 409
    assert committed == []


def test_before_save_may_change_what_is_written(make_client: Any) -> None:
    dm = build()

    @dm.on("jar", "before_save")
    def shout(event: Event) -> None:
        assert event.new is not None
        event.new["name"] = (event.new["name"] or "").upper()
        if event.new["name"] == "BAD":
            event.new["name"] = 7  # not a string: refused like a body would be

    client = make_client(dm)
    assert client.post("jar", {"name": "blue"}).body["name"] == "BLUE"
    assert client.patch("jar", 1, {"name": "green"}).body["name"] == "GREEN"
    assert client.get("jar", 1).body["name"] == "GREEN"
    result = client.patch("jar", 1, {"name": "bad"})
    assert result.status == 422
    assert result.body["error"]["details"]["fields"] == {"name": ["Not a valid string."]}
    assert client.get("jar", 1).body["name"] == "GREEN"


def test_a_client_error_cancels_the_whole_call(make_client: Any) -> None:
    dm = build()

    @dm.on("cookie", "before_save")
    def no_mint(event: Event) -> None:
        if event.new and event.new["type"] == "mint":
            raise Conflict("No mint.", {"type": "mint"}, code="NO_MINT")

    client = make_client(dm)
    result = client.post("jar", {"name": "blue", "cookies": [{"type": "a"}, {"type": "mint"}]})
    assert (result.status, result.body["error"]["code"]) == (409, "NO_MINT")
    assert result.body["error"]["details"] == {"type": "mint"}
    assert client.get("jar").body == []
    assert client.get("cookie").body == []


def test_any_other_error_is_a_500_with_nothing_written(
    make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    dm = build()

    @dm.on("jar", "saved")
    def broken(event: Event) -> None:
        raise KeyError("oops")

    client = make_client(dm)
    with caplog.at_level(logging.ERROR, logger="backo_restful.events"):
        result = client.post("jar", {"name": "blue"})
    assert (result.status, result.body["error"]["code"]) == (500, "INTERNAL_ERROR")
    assert "oops" not in str(result.body)
    assert client.get("jar").body == []
    records = [r for r in caplog.records if r.name == "backo_restful.events"]
    assert records and "saved handler broken of jar" in records[0].getMessage()
    assert records[0].exc_info is not None
    with pytest.raises(InternalError) as failed:
        client.engine.post("jar", {"name": "blue"})
    assert isinstance(failed.value.__cause__, KeyError)


def test_the_event_engine_joins_the_transaction(make_client: Any) -> None:
    dm = build()

    @dm.on("cookie", "created")
    def label_the_jar(event: Event) -> None:
        assert event.new is not None
        if event.new["jar"] is not None:
            event.engine.patch("jar", event.new["jar"], {"name": f"has {event.new['type']}"})
        if event.new["type"] == "last":
            raise Conflict("Not that one.")

    client = make_client(dm)
    client.post("jar", {"name": "blue"})
    assert client.post("cookie", {"type": "a", "jar": 1}).status == 201
    assert client.get("jar", 1).body["name"] == "has a"
    # The handler's write is undone with the call that refused.
    assert client.post("cookie", {"type": "last", "jar": 1}).status == 409
    assert client.get("jar", 1).body["name"] == "has a"


def test_after_commit_runs_only_after_a_commit(
    make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    dm = build()
    committed: list[tuple[str, str, int | None]] = []

    @dm.on("cookie", "before_save")
    def refuse(event: Event) -> None:
        if event.new and event.new["type"] == "refused":
            raise Conflict("Refused.")

    @dm.on("cookie", "after_commit")
    def first(event: Event) -> None:
        committed.append((event.name, event.collection, event.id))
        raise RuntimeError("mail server down")

    @dm.on("cookie", "after_commit")
    def second(event: Event) -> None:
        committed.append(("second", event.name, event.id))
        if event.name == "created":
            # Its own transaction: the write stays.
            event.engine.post("tag", {"label": f"for {event.id}"})

    client = make_client(dm)
    with caplog.at_level(logging.ERROR, logger="backo_restful.events"):
        assert client.post("cookie", {"type": "a"}).status == 201
    assert committed == [
        ("created", "cookie", 1),
        ("second", "created", 1),
        ("saved", "cookie", 1),
        ("second", "saved", 1),
    ]
    assert [t["label"] for t in client.get("tag").body] == ["for 1"]
    assert any("after_commit handler first" in r.getMessage() for r in caplog.records)
    committed.clear()
    assert client.post("cookie", {"type": "refused"}).status == 409
    assert committed == []


def test_after_commit_waits_for_the_callers_transaction(make_engine: Any) -> None:
    dm = build()
    committed: list[int | None] = []
    dm.on("jar", "after_commit", lambda event: committed.append(event.id))
    engine = make_engine(dm)
    engine.get("jar")  # tables first: MariaDB commits around CREATE TABLE
    with engine.storage.db.atomic():
        engine.post("jar", {"name": "blue"})
        assert committed == []
    assert committed == [1, 1]  # created, saved
    committed.clear()
    with pytest.raises(RuntimeError), engine.storage.db.atomic():
        engine.post("jar", {"name": "red"})
        raise RuntimeError("rolled back")
    assert committed == []


def test_a_loop_of_events_is_stopped(make_client: Any) -> None:
    dm = build()

    @dm.on("jar", "saved")
    def again(event: Event) -> None:
        event.engine.patch("jar", event.id, {"name": f"{event.new['name']}!"})

    client = make_client(dm)
    result = client.post("jar", {"name": "blue"})
    assert (result.status, result.body["error"]["code"]) == (500, "EVENT_DEPTH_EXCEEDED")
    assert client.get("jar").body == []
    with pytest.raises(EventDepthExceeded):
        client.engine.post("jar", {"name": "blue"})


def test_events_see_the_caller(make_engine: Any) -> None:
    dm = build()
    seen: list[Any] = []
    dm.on("jar", "saved", lambda event: seen.append(event.auth))
    engine = make_engine(dm)
    engine.post("jar", {"name": "blue"}, auth={"sub": "5"})
    engine.post("jar", {"name": "red"})
    assert seen == [{"sub": "5"}, None]


def test_without_handlers_a_write_costs_what_it_did(make_engine: Any, database: Any) -> None:
    plain = make_engine(build())
    plain.post("jar", {"name": "blue"})
    database.count()
    plain.patch("jar", 1, {"name": "red"})
    plain.post("cookie", {"type": "a", "jar": 1})
    plain.delete("cookie", 1)
    without = database.count()
    dm = build()
    dm.on("lid", "saved", lambda event: None)  # handlers of another collection
    watched = Engine(dm, PeeweeStorage(database))
    watched.post("jar", {"name": "blue"})
    database.count()
    watched.patch("jar", 2, {"name": "red"})
    watched.post("cookie", {"type": "a", "jar": 2})
    watched.delete("cookie", 2)
    assert database.count() == without


def test_declaration_errors() -> None:
    dm = build()
    with pytest.raises(DeclarationError, match="unknown event 'updated'"):
        dm.on("jar", "updated", print)
    assert "loaded" in EVENTS
    dm.on("box", "saved", print)
    with pytest.raises(DeclarationError, match="box: handler of saved of an unknown collection"):
        Engine(dm, PeeweeStorage("sqlite:///:memory:"))
    dm = build()
    Engine(dm, PeeweeStorage("sqlite:///:memory:"))
    with pytest.raises(DeclarationError, match="declare every handler first"):
        dm.on("jar", "saved", print)


def test_the_object_api_fires_the_same_events_and_loaded(make_engine: Any) -> None:
    dm = build()
    recorder = Recorder(dm, *SAVING, "loaded")
    engine = make_engine(dm)
    jars = engine.collection("jar", auth={"sub": "3"})
    jar = jars.create({"name": "blue"})
    assert recorder.seen() == [
        ("before_save", "jar", None, ["cookies", "label", "lid", "name"]),
        ("created", "jar", 1, ["cookies", "label", "lid", "name"]),
        ("saved", "jar", 1, ["cookies", "label", "lid", "name"]),
    ]
    jar["name"] = "red"
    jar.save()
    assert recorder.seen() == [("before_save", "jar", 1, ["name"]), ("saved", "jar", 1, ["name"])]
    jar.reload()
    loaded = recorder.events[0]
    assert (loaded.name, loaded.id, loaded.old, loaded.new["name"]) == ("loaded", 1, None, "red")
    assert loaded.auth == {"sub": "3"}
    recorder.seen()
    jars.load(1)
    assert [jar.id for jar in jars.find()] == [1]
    assert recorder.seen() == [("loaded", "jar", 1, []), ("loaded", "jar", 1, [])]
    jar.delete()
    assert [s[0] for s in recorder.seen()] == ["before_delete", "deleted"]


def test_a_loop_of_after_commit_handlers_is_stopped(
    make_engine: Any, caplog: pytest.LogCaptureFixture
) -> None:
    dm = build()
    runs: list[int] = []

    @dm.on("jar", "after_commit")
    def again(event: Event) -> None:
        runs.append(1)
        if event.name == "saved":
            event.engine.patch("jar", event.id, {"name": f"{len(runs)}"})

    engine = make_engine(dm)
    with caplog.at_level(logging.ERROR, logger="backo_restful.events"):
        assert engine.post("jar", {"name": "blue"})[1] == 201
    # Each level commits its write; the seventeenth is refused, and logged.
    assert len(runs) < 40
    assert any("EventDepthExceeded" in (r.exc_text or "") for r in caplog.records)
    assert engine.get("jar", 1)[0]["name"] == str(len(runs) - 1)


def test_before_save_may_not_change_what_needs_more_than_a_value(make_engine: Any) -> None:
    dm = build()

    @dm.on("jar", "before_save")
    def meddle(event: Event) -> None:
        if event.new is not None and event.new["name"] == "lidded":
            event.new["lid"] = 1  # one-to-one: it would take a lid from another jar

    engine = make_engine(dm)
    engine.post("lid", {"color": "red"})
    with pytest.raises(InternalError, match="stored fields and many-to-one Refs only"):
        engine.post("jar", {"name": "lidded"})
    assert engine.get("jar")[0] == []


def test_event_values_hold_stored_fields_not_computed_ones(make_engine: Any) -> None:
    from backo_restful import Computed

    dm = DataModel("computed_events")

    @dm.collection("box")
    class Box(Schema):
        size = fields.Integer()
        double = Computed(fields.Integer(), get=lambda b: (b["size"] or 0) * 2)

    seen: list[Event] = []
    dm.on("box", "before_save", seen.append)
    dm.on("box", "saved", seen.append)
    engine = make_engine(dm)
    assert engine.post("box", {"size": 2})[0] == {"id": 1, "size": 2, "double": 4}
    assert [(e.name, e.new, sorted(e.changes)) for e in seen] == [
        ("before_save", {"size": 2}, ["size"]),
        ("saved", {"id": 1, "size": 2}, ["size"]),
    ]

"""Crossing writes on a small hot set, over a real threaded HTTP server.

Threads move cookies between jars from both sides of the relation and change
book-tag links from both sides, for a few seconds per backend. Every write answer
must list exactly the links it set, no request may fail but for a rare
``TRANSACTION_CONFLICT``, PostgreSQL must see no deadlock at all, and at the end
both sides of every relation agree and hold only what acknowledged writes wrote.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from collections import Counter
from typing import Any

from werkzeug.serving import make_server

from backo_restful import Engine
from backo_restful.storage import PeeweeStorage
from tests import models
from tests.conftest import make_app
from tests.faults import deadlocks, pooled, raw_connection, run

THREADS = 6
SECONDS = 3.0
JARS, COOKIES, BOOKS, TAGS = 3, 12, 4, 6


class Client:
    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def send(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        payload = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if body is not None else {}
        self.connection.request(method, path, body=payload, headers=headers)
        response = self.connection.getresponse()
        data = response.read()
        return response.status, json.loads(data) if data else None


def crossing_write(rng: random.Random, stamp: str) -> tuple[str, dict[str, Any], str, Any]:
    """One write of the mix: (path, body, the relation field it sets, its value)."""
    kind = rng.randrange(4)
    if kind == 0:
        jar = rng.choice([None, *range(1, JARS + 1)])
        return f"/cookie/{rng.randint(1, COOKIES)}", {"jar": jar, "stamp": stamp}, "jar", jar
    if kind == 1:
        cookies = sorted(rng.sample(range(1, COOKIES + 1), rng.randint(0, 5)))
        body = {"cookies": cookies, "stamp": stamp}
        return f"/jar/{rng.randint(1, JARS)}", body, "cookies", cookies
    if kind == 2:
        tags = sorted(rng.sample(range(1, TAGS + 1), rng.randint(0, 4)))
        return f"/book/{rng.randint(1, BOOKS)}", {"tags": tags, "stamp": stamp}, "tags", tags
    books = sorted(rng.sample(range(1, BOOKS + 1), rng.randint(0, 3)))
    return f"/tag/{rng.randint(1, TAGS)}", {"books": books, "stamp": stamp}, "books", books


class Served:
    """An engine for ``dm`` on the test's database (through a pool on servers, as in
    production: a connection per request would hide contention), served by a real
    threaded HTTP server, and the database's deadlock count."""

    def __init__(self, database: Any, backend: str, dm: Any, make_engine: Any) -> None:
        self.backend = backend
        self.database = database
        self.pool = None if backend == "sqlite" else pooled(database, size=THREADS + 4)
        self.engine = make_engine(dm) if self.pool is None else Engine(dm, PeeweeStorage(self.pool))
        self.admin = None if backend == "sqlite" else raw_connection(database)

    def __enter__(self) -> Served:
        self.before = None if self.admin is None else deadlocks(self.admin)
        self.started = None
        if self.backend == "postgresql":
            self.started = run(self.admin, "SELECT now()")[0][0]
        self.server = make_server("127.0.0.1", 0, make_app(self.engine), threaded=True)
        self.port = self.server.socket.getsockname()[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)
        if self.pool is not None:
            self.pool.close_all()  # its sessions end, and report what they counted

    def deadlocks(self) -> int:
        """The deadlocks the database counted since the server started."""
        assert self.admin is not None and self.before is not None
        if self.backend == "postgresql":
            # Sessions report their counts when they end: wait for the engine's to end.
            deadline = time.monotonic() + 10
            sql = "SELECT count(*) FROM pg_stat_activity WHERE backend_start >= %s AND pid <> %s"
            mine = run(self.admin, "SELECT pg_backend_pid()")[0][0]
            while run(self.admin, sql, (self.started, mine))[0][0] and time.monotonic() < deadline:
                time.sleep(0.1)
        count = deadlocks(self.admin) - self.before
        self.admin.close()
        return count


def run_threads(count: int, work: Any) -> None:
    threads = [threading.Thread(target=work, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads)


def test_crossing_writes_on_a_hot_set(make_engine: Any, database: Any, backend: str) -> None:
    served = Served(database, backend, models.hot, make_engine)
    engine = served.engine
    engine.post("jar", [{"stamp": "seed"} for _ in range(JARS)])
    engine.post("cookie", [{"stamp": "seed", "jar": n % JARS + 1} for n in range(COOKIES)])
    engine.post("tag", [{"stamp": "seed"} for _ in range(TAGS)])
    engine.post("book", [{"stamp": "seed", "tags": [n % TAGS + 1]} for n in range(BOOKS)])
    lock = threading.Lock()
    statuses: Counter[str] = Counter()
    acknowledged = {"seed"}
    wrong: list[str] = []

    def work(index: int) -> None:
        client = Client(served.port)
        rng = random.Random(index)
        deadline = time.monotonic() + SECONDS
        sequence = 0
        while time.monotonic() < deadline:
            sequence += 1
            stamp = f"{index}-{sequence}"
            path, body, field, wanted = crossing_write(rng, stamp)
            status, answer = client.send("PATCH", path, body)
            code = answer["error"]["code"] if status >= 400 else ""
            with lock:
                statuses[f"{status} {code}".strip()] += 1
                if status == 200:
                    acknowledged.add(stamp)
                    if answer[field] != wanted or answer["stamp"] != stamp:
                        wrong.append(f"PATCH {path} {body} answered {answer}")

    with served:
        run_threads(THREADS, work)
        client = Client(served.port)
        state = {}
        for name in ("jar", "cookie", "book", "tag"):
            status, items = client.send("GET", f"/{name}?limit=100")
            assert status == 200
            state[name] = {item["id"]: item for item in items}

    total = sum(statuses.values())
    assert total > 50, statuses  # the load ran
    assert wrong == []
    conflicts = statuses.pop("503 TRANSACTION_CONFLICT", 0)
    assert conflicts <= total / 100, statuses
    assert set(statuses) == {"200"}, statuses
    for name, items in state.items():
        for item in items.values():
            assert item["stamp"] in acknowledged, (name, item)  # no failed write left a trace
    for jar in state["jar"].values():
        held = [c["id"] for c in state["cookie"].values() if c["jar"] == jar["id"]]
        assert jar["cookies"] == sorted(held)
    for book in state["book"].values():
        held = [t["id"] for t in state["tag"].values() if book["id"] in t["books"]]
        assert book["tags"] == sorted(held)
    if backend == "postgresql":
        assert served.deadlocks() == 0


def test_cascading_deletes_racing_with_inserts(
    make_engine: Any, database: Any, backend: str
) -> None:
    # A shelf's trays go with it, and their muffins with them, while other clients
    # keep adding muffins to its trays: every delete takes every muffin with it
    # (none is left on a deleted tray, none makes the delete fail), and a muffin
    # added to a tray already gone is a 404.
    served = Served(database, backend, models.storage, make_engine)
    lock = threading.Lock()
    statuses: Counter[str] = Counter()
    trays: list[int] = []

    def delete_shelves(index: int) -> None:
        client = Client(served.port)
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            body = {"label": "s", "trays": [{"label": "t", "muffins": [{}]} for _ in range(10)]}
            status, shelf = client.send("POST", "/shelf", body)
            assert status == 201, shelf
            trays[:] = shelf["trays"]
            status, answer = client.send("DELETE", f"/shelf/{shelf['id']}")
            with lock:
                code = answer["error"]["code"] if answer else ""
                statuses[f"DELETE {status} {code}".strip()] += 1

    def add_muffins(index: int) -> None:
        client = Client(served.port)
        rng = random.Random(index)
        deadline = time.monotonic() + SECONDS
        while time.monotonic() < deadline:
            if not trays:
                time.sleep(0.001)
                continue
            status, answer = client.send("POST", "/muffin", {"tray": rng.choice(trays)})
            code = answer["error"]["code"] if status >= 400 else ""
            with lock:
                statuses[f"POST {status} {code}".strip()] += 1

    with served:
        run_threads(THREADS, lambda n: (delete_shelves if n == 0 else add_muffins)(n))
        client = Client(served.port)
        _, muffins = client.send("GET", "/muffin?limit=1000&depth=0&tray.$null=false")
        _, shelves = client.send("GET", "/shelf?depth=0")

    total = sum(statuses.values())
    assert statuses["DELETE 204"] > 3, statuses
    conflicts = statuses.pop("DELETE 503 TRANSACTION_CONFLICT", 0)
    conflicts += statuses.pop("POST 503 TRANSACTION_CONFLICT", 0)
    assert conflicts <= total / 100, statuses
    assert set(statuses) <= {"DELETE 204", "POST 201", "POST 404 OBJECT_DOES_NOT_EXIST"}, statuses
    assert (muffins, shelves) == ([], [])  # every shelf deleted, with all it held
    if backend == "postgresql":
        assert served.deadlocks() == 0

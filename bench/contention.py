"""Contention benchmark: crossing writes on a small hot data set, over HTTP.

    python bench/contention.py --backend postgresql      # also: mysql, sqlite
    python bench/contention.py --backend mysql --workers 4 --clients 8 --seconds 10
    python bench/contention.py --backend postgresql --spread   # 20 times the rows

A fresh database (PostgreSQL or MariaDB database ``backo_contention``, or a SQLite
file) gets a hot set: 3 jars holding 12 cookies (one-to-many), 4 books and 6 tags
(many-to-many). The app runs under gunicorn (sync workers, a connection pool per
worker) on 127.0.0.1; client threads send, for ``--seconds``, a mix of writes that
cross from both sides of each relation:

- ``PATCH /cookie/<id> {"jar": j}`` and ``PATCH /jar/<id> {"cookies": [...]}``
- ``PATCH /book/<id> {"tags": [...]}`` and ``PATCH /tag/<id> {"books": [...]}``
- ``GET /jar/<id>?depth=2`` (one request in ten)

Every write also sets a ``stamp`` unique to it. The report gives requests/s, the
median and p99 latency, the answers by status and error code, the deadlocks the
database counted, and what the end state tells:

- every write answer lists exactly the links the write set;
- both sides of every relation agree;
- every object's stamp comes from an acknowledged write (a failed write left
  nothing behind).

Exit status 0 when the checks hold and no request got a 5xx, else 1.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from typing import Any

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
sys.path.insert(0, REPO_DIR)

SERVERS = {
    "postgresql": "postgresql://postgres@127.0.0.1:5432",
    "mysql": "mysql://root@127.0.0.1:3306",
}
DATABASE = "backo_contention"
JARS, COOKIES, BOOKS, TAGS = 3, 12, 4, 6


def make_app() -> Any:
    """The app gunicorn serves (``contention:make_app()``), on ``BENCH_CONTENTION_URL``."""
    from flask import Flask
    from marshmallow import fields

    from backo_restful import DataModel, DeleteStrategy, Engine, Ref, RefsList, Schema
    from backo_restful.api.flask import Api, Resource
    from backo_restful.storage import PeeweeStorage

    dm = DataModel("contention")

    @dm.collection("jar")
    class Jar(Schema):
        stamp = fields.String()
        cookies = RefsList(
            "cookie", reverse="jar", on_delete=DeleteStrategy.UNLINK_REFERENCED_ITEMS
        )

    @dm.collection("cookie")
    class Cookie(Schema):
        stamp = fields.String()
        jar = Ref("jar", reverse="cookies")

    @dm.collection("book")
    class Book(Schema):
        stamp = fields.String()
        tags = RefsList("tag", reverse="books")

    @dm.collection("tag")
    class Tag(Schema):
        stamp = fields.String()
        books = RefsList("book", reverse="tags")

    url = os.environ["BENCH_CONTENTION_URL"]
    if os.environ.get("BENCH_CONTENTION_NO_POOL"):
        from playhouse.db_url import connect

        engine = Engine(dm, PeeweeStorage(connect(url)))  # a connection per call
    else:
        engine = Engine(dm, PeeweeStorage(url))  # a pool per worker

    app = Flask("contention")
    api = Api(app, engine=engine)
    for name in dm.collections:
        resource = type(f"{name}_resource", (Resource,), {"model": dm.object(name)})
        api.add_resource(resource, f"/{name}")
    return app


# -- the database ----------------------------------------------------------------------


def fresh_database(backend: str, workdir: str) -> str:
    """Create an empty database; return the URL the app uses."""
    if backend == "sqlite":
        return f"sqlite:///{os.path.join(workdir, 'contention.db')}"
    if backend == "postgresql":
        import psycopg2

        admin = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test")
        admin.autocommit = True
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)")
            cursor.execute(f"CREATE DATABASE {DATABASE}")
        admin.close()
    else:
        import pymysql

        admin = pymysql.connect(host="127.0.0.1", user="root", autocommit=True)
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {DATABASE}")
            cursor.execute(f"CREATE DATABASE {DATABASE} CHARACTER SET utf8mb4")
        admin.close()
    return f"{SERVERS[backend]}/{DATABASE}"


def deadlocks(backend: str) -> int | None:
    """The deadlocks the server has counted so far (in the benchmark's database)."""
    if backend == "postgresql":
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test")
        with connection.cursor() as cursor:
            cursor.execute("SELECT deadlocks FROM pg_stat_database WHERE datname = %s", (DATABASE,))
            (count,) = cursor.fetchone()
        connection.close()
        return int(count)
    if backend == "mysql":
        import pymysql

        connection = pymysql.connect(host="127.0.0.1", user="root")
        with connection.cursor() as cursor:
            cursor.execute("SHOW GLOBAL STATUS LIKE 'Innodb_deadlocks'")
            row = cursor.fetchone()
        connection.close()
        return None if row is None else int(row[1])
    return None


# -- the server ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(
    url: str, workers: int, workdir: str, app: str = "contention:make_app()"
) -> tuple[subprocess.Popen[bytes], int]:
    """gunicorn serving ``app`` on ``url``, answering on the port returned."""
    port = free_port()
    log = open(os.path.join(workdir, "gunicorn.log"), "wb")  # noqa: SIM115 - closed by the OS
    env = dict(os.environ, BENCH_CONTENTION_URL=url, PYTHONPATH=REPO_DIR)
    command = [sys.executable, "-m", "gunicorn", "--chdir", BENCH_DIR, "--workers", str(workers)]
    command += ["--bind", f"127.0.0.1:{port}", "--timeout", "300", "--log-level", "warning", app]
    process = subprocess.Popen(
        command,
        env=env,
        stdout=log,
        stderr=log,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited; see {log.name}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            connection.request("GET", "/nothing-here")
            if connection.getresponse().status == 404:
                return process, port
        except OSError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("gunicorn did not answer within 30 s")


class Client:
    """One keep-alive HTTP connection to the app."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)

    def send(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        payload = None if body is None else json.dumps(body)
        try:
            self.connection.request(method, path, body=payload, headers=headers)
            response = self.connection.getresponse()
            data = response.read()
        except (http.client.HTTPException, OSError):
            self.connection.close()
            self.connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
            raise
        return response.status, json.loads(data) if data else None


# -- the load --------------------------------------------------------------------------


def seed(client: Client) -> None:
    for jar in range(JARS):
        status, _ = client.send("POST", "/jar", {"stamp": f"seed-jar-{jar}"})
        assert status == 201
    cookies = [{"stamp": f"seed-cookie-{n}", "jar": n % JARS + 1} for n in range(COOKIES)]
    status, _ = client.send("POST", "/cookie", cookies)
    assert status == 201
    status, _ = client.send("POST", "/tag", [{"stamp": f"seed-tag-{n}"} for n in range(TAGS)])
    assert status == 201
    books = [
        {"stamp": f"seed-book-{n}", "tags": random.sample(range(1, TAGS + 1), 2)}
        for n in range(BOOKS)
    ]
    status, _ = client.send("POST", "/book", books)
    assert status == 201


class Results:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.acknowledged: set[str] = {
            *(f"seed-jar-{n}" for n in range(JARS)),
            *(f"seed-cookie-{n}" for n in range(COOKIES)),
            *(f"seed-tag-{n}" for n in range(TAGS)),
            *(f"seed-book-{n}" for n in range(BOOKS)),
        }
        self.mismatches: list[str] = []
        self.failures: list[str] = []


def one_request(client: Client, rng: random.Random, stamp: str) -> tuple[str, str, Any, Any]:
    """Send one request of the mix: (method, path, body sent, (field, wanted))."""
    draw = rng.random()
    if draw < 0.1:
        return "GET", f"/jar/{rng.randint(1, JARS)}?depth=2", None, None
    if draw < 0.325:
        jar = rng.choice([None, *range(1, JARS + 1)])
        body = {"jar": jar, "stamp": stamp}
        return "PATCH", f"/cookie/{rng.randint(1, COOKIES)}", body, ("jar", jar)
    if draw < 0.55:
        cookies = sorted(rng.sample(range(1, COOKIES + 1), rng.randint(0, 5)))
        body = {"cookies": cookies, "stamp": stamp}
        return "PATCH", f"/jar/{rng.randint(1, JARS)}", body, ("cookies", cookies)
    if draw < 0.775:
        tags = sorted(rng.sample(range(1, TAGS + 1), rng.randint(0, 4)))
        body = {"tags": tags, "stamp": stamp}
        return "PATCH", f"/book/{rng.randint(1, BOOKS)}", body, ("tags", tags)
    books = sorted(rng.sample(range(1, BOOKS + 1), rng.randint(0, 3)))
    body = {"books": books, "stamp": stamp}
    return "PATCH", f"/tag/{rng.randint(1, TAGS)}", body, ("books", books)


def load(port: int, index: int, seconds: float, results: Results) -> None:
    client = Client(port)
    rng = random.Random(index)
    deadline = time.monotonic() + seconds
    sequence = 0
    while time.monotonic() < deadline:
        sequence += 1
        stamp = f"c{index}-{sequence}"
        method, path, body, check = one_request(client, rng, stamp)
        start = time.perf_counter()
        try:
            status, answer = client.send(method, path, body)
        except (http.client.HTTPException, OSError) as exc:
            with results.lock:
                results.failures.append(f"{method} {path}: {type(exc).__name__}: {exc}")
            continue
        elapsed = time.perf_counter() - start
        code = answer["error"]["code"] if isinstance(answer, dict) and "error" in answer else ""
        with results.lock:
            results.latencies.append(elapsed)
            results.statuses[f"{status} {code}".strip()] += 1
            if 200 <= status < 300 and check is not None:
                results.acknowledged.add(stamp)
                field, wanted = check
                if answer.get(field) != wanted:
                    results.mismatches.append(
                        f"{method} {path} {json.dumps(body)} answered {json.dumps(answer)}"
                    )


def final_state(client: Client, results: Results) -> list[str]:
    """What the end state gets wrong (empty when every check holds)."""
    problems = []
    state = {}
    for name in ("jar", "cookie", "book", "tag"):
        status, items = client.send("GET", f"/{name}?limit=1000")
        assert status == 200, items
        state[name] = {item["id"]: item for item in items}
        for item in items:
            if item["stamp"] not in results.acknowledged:
                problems.append(
                    f"{name} {item['id']} holds stamp {item['stamp']!r} of a failed write"
                )
    for jar in state["jar"].values():
        held = sorted(c["id"] for c in state["cookie"].values() if c["jar"] == jar["id"])
        if sorted(jar["cookies"]) != held:
            problems.append(f"jar {jar['id']} lists {jar['cookies']}, cookies say {held}")
    for book in state["book"].values():
        held = sorted(t["id"] for t in state["tag"].values() if book["id"] in t["books"])
        if sorted(book["tags"]) != held:
            problems.append(f"book {book['id']} lists {book['tags']}, tags say {held}")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("postgresql", "mysql", "sqlite"), required=True)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn sync workers")
    parser.add_argument("--clients", type=int, default=8, help="client threads")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--no-pool", action="store_true", help="a connection per request")
    parser.add_argument(
        "--spread", action="store_true",
        help="20 times as many rows (60 jars, 240 cookies, 80 books, 120 tags): the same "
        "mix, with writes that rarely meet",
    )  # fmt: skip
    args = parser.parse_args()
    if args.spread:
        global JARS, COOKIES, BOOKS, TAGS
        JARS, COOKIES, BOOKS, TAGS = (n * 20 for n in (JARS, COOKIES, BOOKS, TAGS))

    workdir = tempfile.mkdtemp(prefix="backo-contention-")
    url = fresh_database(args.backend, workdir)
    if args.no_pool:
        os.environ["BENCH_CONTENTION_NO_POOL"] = "1"
    process, port = start_server(url, args.workers, workdir)
    try:
        seed(Client(port))
        before = deadlocks(args.backend)
        results = Results()
        threads = [
            threading.Thread(target=load, args=(port, n, args.seconds, results))
            for n in range(args.clients)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        after = deadlocks(args.backend)
        problems = final_state(Client(port), results)
    finally:
        process.terminate()
        process.wait(timeout=30)

    latencies = sorted(results.latencies)
    count = len(latencies)
    server_errors = sum(n for key, n in results.statuses.items() if key.startswith("5"))
    print(
        f"{args.backend}: {args.workers} workers, {args.clients} clients, "
        f"{args.seconds:g} s, {'no pool' if args.no_pool else 'pool'}"
        f"{', spread' if args.spread else ''}"
    )
    print(f"  requests      {count} ({count / elapsed:.0f}/s)")
    if latencies:
        p99 = latencies[min(count - 1, int(count * 0.99))]
        print(f"  latency       p50 {statistics.median(latencies) * 1000:.0f} ms, "
              f"p99 {p99 * 1000:.0f} ms, max {latencies[-1] * 1000:.0f} ms")  # fmt: skip
    for key, n in sorted(results.statuses.items()):
        print(f"  {key:<40} {n}")
    print(f"  5xx           {server_errors} ({100 * server_errors / max(count, 1):.2f}%)")
    if before is not None and after is not None:
        print(f"  deadlocks     {after - before}")
    print(f"  wrong answers {len(results.mismatches)}")
    for line in results.mismatches[:5]:
        print(f"    {line}")
    print(f"  end state     {'consistent' if not problems else f'{len(problems)} problems'}")
    for line in problems[:5]:
        print(f"    {line}")
    for line in results.failures[:5]:
        print(f"  transport     {line}")
    ok = not problems and not results.mismatches and not results.failures and not server_errors
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

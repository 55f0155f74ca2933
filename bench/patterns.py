"""How long hostile ``$re`` filters take over HTTP, on each backend.

    python bench/patterns.py --backend sqlite      # also: postgresql, mysql
    python bench/patterns.py --backend mysql --size 2000000 --timeout 60

A fresh database holds one ``note`` whose ``text`` is ``--size`` characters of
``a``. The app runs under gunicorn (one sync worker); each pattern is sent as
``GET /note?text.$re=<pattern>`` and timed. A request still running after
``--timeout`` seconds is reported as such, and the server (with, on PostgreSQL and
MariaDB, the statement it left running) is stopped before the next pattern.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import sys
import tempfile
import time
import urllib.parse
from typing import Any

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, BENCH_DIR)

from contention import DATABASE, fresh_database, start_server  # noqa: E402

PATTERNS = [
    r".{0,255}.{0,255}.{0,255}\d",
    r"[a]{0,255}[a]{0,255}[a]{0,255}[a]{0,255}[^a]",
    r"a.*b",
    r"(a|aa)+b",
    r"\d",
    r"[a]{0,255}1",
    r"\w*\d\d",
]


def make_app() -> Any:
    """The app gunicorn serves (``patterns:make_app()``), on ``BENCH_CONTENTION_URL``."""
    from flask import Flask
    from marshmallow import fields

    from backo_restful import DataModel, Engine, Schema
    from backo_restful.api.flask import Api, Resource
    from backo_restful.storage import PeeweeStorage

    dm = DataModel("patterns")

    @dm.collection("note")
    class Note(Schema):
        text = fields.String()

    engine = Engine(dm, PeeweeStorage(os.environ["BENCH_CONTENTION_URL"]))
    app = Flask("patterns")
    api = Api(app, engine=engine)
    api.add_resource(type("NoteResource", (Resource,), {"model": dm.object("note")}), "/note")
    return app


def kill_statements(backend: str) -> None:
    """Stop what the benchmark's database is still running."""
    if backend == "postgresql":
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", user="postgres", dbname="test")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (DATABASE,),
            )
        connection.close()
    elif backend == "mysql":
        import pymysql

        connection = pymysql.connect(host="127.0.0.1", user="root", autocommit=True)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT id FROM information_schema.PROCESSLIST WHERE DB = %s", (DATABASE,)
            )
            for (thread,) in cursor.fetchall():
                cursor.execute(f"KILL {int(thread)}")
        connection.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=("postgresql", "mysql", "sqlite"), required=True)
    parser.add_argument("--size", type=int, default=600, help="characters in the value")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds per request")
    parser.add_argument("--tail", default="", help="characters after the a's (e.g. 1)")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="backo-patterns-")
    url = fresh_database(args.backend, workdir, pool=False)
    print(f"{args.backend}: one note of {args.size} a's then {args.tail!r}")
    for pattern in PATTERNS:
        process, port = start_server(url, 1, workdir, app="patterns:make_app()")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=args.timeout)
            connection.request(
                "GET", "/note?limit=1&depth=0", headers={"Content-Type": "application/json"}
            )
            existing = json.loads(connection.getresponse().read())
            if not existing:
                body = json.dumps({"text": "a" * args.size + args.tail})
                connection.request(
                    "POST", "/note", body=body, headers={"Content-Type": "application/json"}
                )
                response = connection.getresponse()
                response.read()
                assert response.status == 201, response.status
            query = urllib.parse.urlencode({"text.$re": pattern, "depth": 0})
            start = time.perf_counter()
            try:
                connection.request("GET", f"/note?{query}")
                response = connection.getresponse()
                answer = json.loads(response.read())
                elapsed = time.perf_counter() - start
                code = answer["error"]["code"] if isinstance(answer, dict) else answer
                print(f"  {pattern:<50} {elapsed:8.2f} s  {response.status} {code}")
            except TimeoutError:
                print(f"  {pattern:<50} > {args.timeout:g} s (no answer)")
        finally:
            process.kill()
            process.wait(timeout=30)
            kill_statements(args.backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())

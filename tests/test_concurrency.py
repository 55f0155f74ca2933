"""Concurrent requests in threads lose nothing and never mix state."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Callable
from typing import Any

from werkzeug.serving import make_server

from tests import models
from tests.conftest import make_app

THREADS = 6
ROUNDS = 15


def run_threads(work: Callable[[int], None]) -> list[BaseException]:
    errors: list[BaseException] = []

    def target(index: int) -> None:
        try:
            work(index)
        except BaseException as exc:  # collected and reported by the test
            errors.append(exc)

    threads = [threading.Thread(target=target, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not any(thread.is_alive() for thread in threads), "a thread hung"
    return errors


def test_concurrent_writers_through_the_engine(make_engine: Any) -> None:
    engine = make_engine(models.cookies)
    engine.post("jar", [{"name": "a"}, {"name": "b"}])

    def work(index: int) -> None:
        for round_ in range(ROUNDS):
            cookie, _ = engine.post("cookie", {"type": f"t{index}-{round_}", "jar": 1})
            # each write reads (existence, current links) before it writes
            engine.patch("cookie", cookie["id"], {"jar": 2})
            engine.patch("jar", 2, {"name": f"by {index}"})

    assert run_threads(work) == []
    cookies, _ = engine.get("cookie")
    assert len(cookies) == THREADS * ROUNDS
    assert {c["jar"] for c in cookies} == {2}
    assert engine.get("jar", 2)[0]["cookies"] == [c["id"] for c in cookies]
    assert engine.get("jar", 1)[0]["cookies"] == []


def test_threaded_http_server(make_engine: Any) -> None:
    engine = make_engine(models.cookies)
    app = make_app(engine)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    port = server.socket.getsockname()[1]
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    try:

        def request(method: str, url: str, body: Any = None) -> tuple[int, Any]:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            try:
                headers = {"Content-Type": "application/json"}
                payload = None if body is None else json.dumps(body)
                connection.request(method, url, body=payload, headers=headers)
                response = connection.getresponse()
                data = response.read()
                return response.status, json.loads(data) if data else None
            finally:
                connection.close()

        status, _ = request("POST", "/jar", {"name": "shared"})
        assert status == 201

        def work(index: int) -> None:
            for round_ in range(ROUNDS):
                status, body = request("POST", "/cookie", {"type": f"{index}.{round_}", "jar": 1})
                assert status == 201, body
                assert body["type"] == f"{index}.{round_}"
                status, body = request("GET", f"/cookie/{body['id']}")
                assert status == 200 and body["type"] == f"{index}.{round_}", body

        assert run_threads(work) == []
        status, jar = request("GET", "/jar/1")
        assert status == 200 and len(jar["cookies"]) == THREADS * ROUNDS
    finally:
        server.shutdown()
        serving.join(timeout=10)

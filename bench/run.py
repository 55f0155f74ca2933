"""HTTP benchmark: backo_restful against two hand-written Flask + Peewee apps.

    python bench/run.py                # S1-S7 on 10 000 books, 5 rounds of 3 s each
    python bench/run.py --quick        # smoke test: tiny data, ~1 s per scenario
    python bench/run.py --check        # only compare the apps' responses
    python bench/run.py --scale        # S1 and S5 at 10 000 and 1 000 000 books

The apps: ``backo`` (app_backo.py), ``minimal`` (app_minimal.py: the least work a
hand-written app does; the target applies to backo/minimal) and ``reference``
(app_reference.py: the same answers as backo_restful, byte for byte, at the same
costs). Each app runs under gunicorn (``--workers`` sync workers, 1 by default) on
127.0.0.1, on its own copy of the same seeded SQLite file. A load client (threads,
http.client) sends each scenario to one app after the other, for several rounds;
the table gives the median requests/s, the ratios backo/minimal and
backo/reference, the CPU time of each app's workers per request, and the SQL
statements per request of each app (counted in-process with a sqlite3 trace
callback). Reads (S1-S5) run before writes (S6, S7), so writes never change what
the reads see.

Exit status: 0 when every response matched and every request succeeded; 1 on a
mismatch or a failed request; 2 when a server could not start.
"""

from __future__ import annotations

import argparse
import http.client
import json
import math
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
sys.path.insert(0, BENCH_DIR)

import seed as seeding  # noqa: E402

APPS = ("backo", "minimal", "reference")
MODULES = {"backo": "app_backo", "minimal": "app_minimal", "reference": "app_reference"}
TARGET_RATIO = 0.8  # backo/minimal throughput, every scenario
TARGET_SCALE = 2.0  # per-request cost at 1M books / at 10k books
JSON_HEADERS = {"Content-Type": "application/json"}
#: Headers compared between backo_restful and the reference in the check; ``Link``
#: is compared by its relations (its cursors are opaque). Others are listed in the
#: notes. The minimal app is compared by status, JSON data and ``Location`` form.
COMPARED_HEADERS = ("Content-Type", "Location", "X-Total-Count", "Link")
#: Headers every response has; not worth a note when only one app sends them.
_COMMON_HEADERS = {"server", "date", "connection", "content-length", "content-type"}


# -- scenarios ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Data:
    authors: int
    books: int


Request = tuple[str, str, bytes | None]  # method, path, body
Answer = tuple[int, dict[str, str], bytes]  # status, headers, body


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    status: int  # the expected status
    write: bool
    make: Callable[[random.Random, Data], Request]


def _get(path: str) -> Callable[[random.Random, Data], Request]:
    return lambda rng, data: ("GET", path, None)


def _book_by_id(rng: random.Random, data: Data) -> Request:
    return "GET", f"/book/{rng.randint(1, data.books)}", None


def _post_book(rng: random.Random, data: Data) -> Request:
    body = {
        "title": f"Benchmark book {rng.randint(1, 10**9)}",
        "year": rng.randint(1950, 2024),
        "author": rng.randint(1, data.authors),
    }
    return "POST", "/book", json.dumps(body).encode()


def _patch_year(rng: random.Random, data: Data) -> Request:
    body = {"year": rng.randint(1950, 2024)}
    return "PATCH", f"/book/{rng.randint(1, data.books)}", json.dumps(body).encode()


S5_PATH = "/book?year.$gte=2000&sort=-year&limit=20"

SCENARIOS = [
    Scenario("S1", "GET /book/<id>", 200, False, _book_by_id),
    Scenario("S2", "GET /book?limit=100", 200, False, _get("/book?limit=100")),
    Scenario("S3", "GET /author?limit=50&depth=2", 200, False, _get("/author?limit=50&depth=2")),
    Scenario("S4", "GET /book?limit=50&depth=2", 200, False, _get("/book?limit=50&depth=2")),
    Scenario("S5", "GET " + S5_PATH, 200, False, _get(S5_PATH)),
    Scenario("S6", "POST /book", 201, True, _post_book),
    Scenario("S7", "PATCH /book/<id>", 200, True, _patch_year),
]
BY_KEY = {s.key: s for s in SCENARIOS}


# -- reporting helpers -----------------------------------------------------------------


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Report:
    """What the run found; ``failures`` make the exit status non-zero."""

    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: header sent by backo_restful only -> the scenarios where it was seen
    extra_headers: dict[str, set[str]] = field(default_factory=dict)

    def fail(self, message: str) -> None:
        log(f"FAIL: {message}")
        self.failures.append(message)

    def note(self, message: str) -> None:
        log(f"note: {message}")
        self.notes.append(message)

    def header_notes(self) -> list[str]:
        return [
            f"backo_restful also sends `{name}` ({', '.join(sorted(keys))}); the reference "
            "does not build it"
            for name, keys in sorted(self.extra_headers.items())
        ]


# -- the database files ------------------------------------------------------------------


def make_copies(workdir: str, books: int, names: list[str]) -> tuple[Data, dict[str, str]]:
    """Seed one file, then copy it once per name (each app gets its own)."""
    base = os.path.join(workdir, f"seed-{books}.db")
    start = time.perf_counter()
    authors, n_books = seeding.seed(base, books)
    log(f"seeded {authors} authors, {n_books} books in {time.perf_counter() - start:.1f} s")
    paths = {}
    for name in names:
        paths[name] = os.path.join(workdir, f"{name}-{books}.db")
        shutil.copyfile(base, paths[name])
    return Data(authors, n_books), paths


# -- in-process probes: features and SQL statements per request ---------------------------


class _Tracer:
    """Counts the statements sent by every SQLite connection peewee opens, while counting.

    The trace callback is set once on each connection, when peewee opens it; it
    adds each statement to the current count, if one is open. So a connection kept
    open across requests (the minimal app's) is counted request by request, as one
    opened per request is: its PRAGMAs count only in the request that opened it.
    """

    def __init__(self) -> None:
        self.statements: list[str] | None = None
        self.installed = False

    def install(self) -> None:
        import peewee

        if self.installed:
            return
        # A private hook of peewee (hence getattr/setattr): called once per new connection.
        original = getattr(peewee.SqliteDatabase, "_add_conn_hooks")  # noqa: B009
        tracer = self

        def add_conn_hooks(db: Any, conn: Any) -> None:
            conn.set_trace_callback(tracer.trace)
            original(db, conn)

        setattr(peewee.SqliteDatabase, "_add_conn_hooks", add_conn_hooks)  # noqa: B010
        self.installed = True

    def trace(self, statement: str) -> None:
        if self.statements is not None:
            self.statements.append(statement)

    @contextmanager
    def counting(self) -> Iterator[list[str]]:
        statements: list[str] = []
        self.statements = statements
        try:
            yield statements
        finally:
            self.statements = None


TRACER = _Tracer()
_DATA_VERBS = ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH", "REPLACE")


def _client_open(client: Any, request: Request) -> Any:
    method, path, body = request
    headers = JSON_HEADERS if body is not None else {}
    return client.open(path, method=method, data=body, headers=headers)


def in_process_apps(
    paths: dict[str, str], features: Features, trace: bool = True
) -> dict[str, Any]:
    """Flask test clients of the apps, each on its own file; ``trace``: statements traced.

    The tracer is installed first: it sees only the connections opened after it.
    """
    import app_backo
    import app_minimal
    import app_reference

    if trace:
        TRACER.install()
    return {
        "backo": app_backo.create_app(paths["backo"]).test_client(),
        "minimal": app_minimal.create_app(paths["minimal"]).test_client(),
        "reference": app_reference.create_app(
            paths["reference"], features.total_count, features.link
        ).test_client(),
    }


@dataclass
class Features:
    total_count: bool
    link: bool
    s5: bool
    s5_reason: str = ""
    list_headers: dict[str, str] = field(default_factory=dict)


def probe_backo(path: str) -> Features:
    """What backo_restful does today: list headers, and whether S5's operator exists."""
    import app_backo

    client = app_backo.create_app(path).test_client()
    response = client.get("/book?limit=2")
    if response.status_code != 200:
        raise RuntimeError(f"GET /book?limit=2 answered {response.status}: {response.data[:300]!r}")
    headers = {k: v for k, v in response.headers.items() if k in ("X-Total-Count", "Link")}
    s5 = client.get(S5_PATH)
    reason = ""
    if s5.status_code != 200:
        try:
            error = s5.get_json()["error"]
            reason = f"{s5.status_code} {error['code']}: {error['message']}"
        except Exception:  # noqa: BLE001 - any body: report it as is
            reason = f"{s5.status_code}: {s5.data[:200]!r}"
    return Features(
        total_count="X-Total-Count" in headers,
        link="Link" in headers,
        s5=s5.status_code == 200,
        s5_reason=reason,
        list_headers=headers,
    )


def count_statements(
    clients: dict[str, Any], scenarios: list[Scenario], data: Data, report: Report, samples: int = 4
) -> dict[tuple[str, str], tuple[float, float]]:
    """``(scenario, app) -> (data statements, all statements)`` per request, averaged."""
    counts: dict[tuple[str, str], tuple[float, float]] = {}
    for scenario in scenarios:
        for app, client in clients.items():
            rng = random.Random(f"sql-{scenario.key}")
            _client_open(client, scenario.make(rng, data))  # warm up (tables, caches)
            with TRACER.counting() as statements:
                for _ in range(samples):
                    response = _client_open(client, scenario.make(rng, data))
                    if response.status_code != scenario.status:
                        report.fail(
                            f"{scenario.key} {app} (in-process): status {response.status_code}, "
                            f"expected {scenario.status}: {response.data[:200]!r}"
                        )
            if not statements:
                report.fail(f"{scenario.key} {app} (in-process): no SQL statement traced")
            every = len(statements) / samples
            data_statements = sum(
                1 for s in statements if s.lstrip().upper().startswith(_DATA_VERBS)
            )
            counts[(scenario.key, app)] = (data_statements / samples, every)
    return counts


# -- the servers -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """One app under gunicorn: ``workers`` sync workers on 127.0.0.1:<free port>."""

    def __init__(
        self, app: str, db_path: str, workdir: str, env: dict[str, str], workers: int = 1
    ) -> None:
        self.app = app
        self.workers = workers
        self.port = free_port()
        self.log_path = os.path.join(workdir, f"gunicorn-{app}-{self.port}.log")
        command = [
            sys.executable, "-m", "gunicorn",
            "--workers", str(workers), "--worker-class", "sync",
            "--bind", f"127.0.0.1:{self.port}",
            "--chdir", BENCH_DIR,
            "--timeout", "300",
            "--log-level", "warning",
            f"{MODULES[app]}:app",
        ]  # fmt: skip
        environment = dict(os.environ, BENCH_DB=db_path, **env)
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        # cwd=bench/: ``python -m`` puts the working directory first on sys.path, and
        # backo_restful must come from wherever the running Python finds it.
        self.process = subprocess.Popen(
            command, env=environment, cwd=BENCH_DIR, stdout=self._log, stderr=subprocess.STDOUT
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.app}: gunicorn exited ({self.process.returncode})")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
                conn.request("GET", "/book/1")
                response = conn.getresponse()
                response.read()
                conn.close()
                if response.status == 200:
                    self._wait_workers(deadline)
                    return
                raise RuntimeError(f"{self.app}: GET /book/1 answered {response.status}")
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.app}: not ready after {timeout:.0f} s")

    def _wait_workers(self, deadline: float) -> None:
        """With several workers, wait until all of them run and are idle (booted).

        One worker answered; the others may still be importing the app, and that CPU
        time must not count in a measure. Without /proc there is nothing to wait for.
        """
        if self.workers == 1 or not os.path.isdir("/proc"):
            return
        last: dict[int, float | None] = {}
        while time.monotonic() < deadline:
            now = {pid: cpu_seconds(pid) for pid in self.worker_pids()}
            if len(now) == self.workers and now.keys() == last.keys():
                used = [(now[pid] or 0.0) - (last[pid] or 0.0) for pid in now]
                if max(used) < 0.01:  # under 10 ms of CPU in the last 0.2 s: idle
                    return
            last = now
            time.sleep(0.2)
        raise RuntimeError(f"{self.app}: {self.workers} workers not all up in time")

    def worker_pids(self) -> list[int]:
        """The pids of the gunicorn workers (the master's children), as /proc shows them."""
        master = self.process.pid
        try:
            with open(f"/proc/{master}/task/{master}/children", encoding="ascii") as handle:
                children = [int(pid) for pid in handle.read().split()]
        except OSError:
            children = []
            for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
                if entry.isdigit():
                    try:
                        with open(f"/proc/{entry}/stat", encoding="ascii") as handle:
                            fields = handle.read().rsplit(")", 1)[1].split()
                    except OSError:
                        continue
                    if int(fields[1]) == master:
                        children.append(int(entry))
        return sorted(children)

    def log_tail(self, lines: int = 30) -> str:
        self._log.flush()
        with open(self.log_path, encoding="utf-8", errors="replace") as handle:
            return "".join(handle.readlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()


@contextmanager
def servers(
    paths: dict[str, str], workdir: str, features: Features, workers: int = 1
) -> Iterator[dict[str, Server]]:
    env = {
        "reference": {
            "BENCH_TOTAL_COUNT": "1" if features.total_count else "0",
            "BENCH_LINKS": "1" if features.link else "0",
        }
    }
    started: dict[str, Server] = {}
    try:
        for app in APPS:
            started[app] = Server(app, paths[app], workdir, env.get(app, {}), workers)
        for server in started.values():
            try:
                server.wait_ready()
            except RuntimeError as error:
                raise ServerError(f"{error}\n{server.log_tail()}") from None
        log("servers ready: " + ", ".join(f"{a} on :{s.port}" for a, s in started.items()))
        yield started
    finally:
        for server in started.values():
            server.stop()


class ServerError(RuntimeError):
    pass


def cpu_seconds(pid: int) -> float | None:
    """CPU time used so far by process ``pid`` (None where /proc cannot tell)."""
    try:
        with open(f"/proc/{pid}/schedstat", encoding="ascii") as handle:
            nanoseconds = int(handle.read().split()[0])
        if nanoseconds:
            return nanoseconds / 1e9
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def workers_cpu_seconds(pids: list[int]) -> float | None:
    """CPU time used so far by all of ``pids`` together (None if one cannot tell)."""
    used = [cpu_seconds(pid) for pid in pids]
    return None if not used or None in used else sum(u for u in used if u is not None)


# -- HTTP ------------------------------------------------------------------------------


def send(conn: http.client.HTTPConnection, request: Request) -> Answer:
    method, path, body = request
    conn.request(method, path, body=body, headers=JSON_HEADERS if body is not None else {})
    response = conn.getresponse()
    payload = response.read()
    return response.status, dict(response.getheaders()), payload


def _same(value: str | None) -> str | None:
    return value


def _link_rels(value: str | None) -> list[str] | None:
    """The relations of a ``Link`` header, in order (``first``, ``next`` ...)."""
    return None if value is None else re.findall(r'rel="([^"]*)"', value)


def _ordered(payload: bytes) -> Any:
    """The JSON value with objects as lists of pairs, so key order counts."""
    return json.loads(payload, object_pairs_hook=list)


def _as_reference(backo: Answer, reference: Answer) -> str | None:
    """What differs between the answers of backo_restful and of the reference, if anything.

    Status, body (byte for byte) and :data:`COMPARED_HEADERS` must be equal.
    """
    (bs, bh, bb), (rs, rh, rb) = backo, reference
    if bs != rs:
        return f"status backo {bs} != reference {rs}: {rb[:300]!r}"
    if bb != rb:
        try:
            same_json = _ordered(bb) == _ordered(rb)
        except ValueError:
            same_json = False
        kind = "bytes differ (same JSON, same order)" if same_json else "JSON differs"
        return f"{kind}:\n  backo:     {bb[:400]!r}\n  reference: {rb[:400]!r}"
    for name in COMPARED_HEADERS:
        shown = _link_rels if name == "Link" else _same
        if shown(bh.get(name)) != shown(rh.get(name)):
            return f"header {name}: backo {bh.get(name)!r}, reference {rh.get(name)!r}"
    return None


def _location_form(value: str | None) -> str | None:
    """A ``Location`` with its numbers as ``<n>``: ``/book/12`` -> ``/book/<n>``."""
    return None if value is None else re.sub(r"\d+", "<n>", value)


def _as_minimal(backo: Answer, minimal: Answer) -> str | None:
    """What differs between the answers of backo_restful and of the minimal app, if anything.

    Status and JSON data must be equal (key order and spacing aside); on a create,
    the ``Location`` must have the same form.
    """
    (bs, bh, bb), (ms, mh, mb) = backo, minimal
    if bs != ms:
        return f"status backo {bs} != minimal {ms}: {mb[:300]!r}"
    try:
        same_json = json.loads(bb) == json.loads(mb)
    except ValueError:
        same_json = False
    if not same_json:
        return f"JSON data differs:\n  backo:   {bb[:400]!r}\n  minimal: {mb[:400]!r}"
    if bs == 201 and _location_form(bh.get("Location")) != _location_form(mh.get("Location")):
        return f"Location: backo {bh.get('Location')!r}, minimal {mh.get('Location')!r}"
    return None


CHECKS = {"reference": _as_reference, "minimal": _as_minimal}


def compare(
    servers_: dict[str, Server], scenario: Scenario, data: Data, report: Report, count: int = 3
) -> None:
    """Send the same requests to every app; compare the others' answers with backo_restful's.

    backo_restful must answer the expected status. The reference must answer the
    same bytes (:func:`_as_reference`; a header that only backo_restful sends is
    noted), the minimal app the same data (:func:`_as_minimal`). After an app's
    first mismatch, its later answers to the scenario are not compared.
    """
    rng = random.Random(f"check-{scenario.key}")
    failed: set[str] = set()
    for _ in range(count):
        request = scenario.make(rng, data)
        answers = {}
        for app, server in servers_.items():
            conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=120)
            try:
                answers[app] = send(conn, request)
            finally:
                conn.close()
        bs, bh, bb = answers["backo"]
        where = f"{scenario.key} {request[0]} {request[1]}"
        if bs != scenario.status:
            report.fail(f"{where}: backo answered {bs}, expected {scenario.status}: {bb[:300]!r}")
            return
        for app, check in CHECKS.items():
            if app in answers and app not in failed:
                problem = check(answers["backo"], answers[app])
                if problem:
                    report.fail(f"{where}: {problem}")
                    failed.add(app)
        if "reference" in answers and "reference" not in failed:
            reference_names = {name.lower() for name in answers["reference"][1]}
            for name in bh:
                if name.lower() not in reference_names | _COMMON_HEADERS:
                    report.extra_headers.setdefault(name, set()).add(scenario.key)


# -- the load client ---------------------------------------------------------------------


@dataclass
class Measure:
    requests: int
    seconds: float
    errors: int
    first_error: str = ""

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def load(
    port: int, scenario: Scenario, data: Data, *, threads: int, duration: float, salt: str
) -> Measure:
    """``threads`` clients send ``scenario`` to ``port`` for ``duration`` seconds."""
    start_line = threading.Barrier(threads + 1)
    results: list[tuple[int, int, str, float]] = []
    lock = threading.Lock()
    deadline_box: list[float] = []

    def client(index: int) -> None:
        rng = random.Random(f"{salt}-{scenario.key}-{index}")
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        done = errors = 0
        first_error = ""
        last = 0.0
        start_line.wait()
        deadline = deadline_box[0]
        while True:
            now = time.perf_counter()
            if now >= deadline:
                break
            try:
                status, _, payload = send(conn, scenario.make(rng, data))
                if status == scenario.status:
                    done += 1
                else:
                    errors += 1
                    first_error = first_error or f"status {status}: {payload[:200]!r}"
            except (OSError, http.client.HTTPException) as error:
                errors += 1
                first_error = first_error or f"{type(error).__name__}: {error}"
                conn.close()
            last = time.perf_counter()
        conn.close()
        with lock:
            results.append((done, errors, first_error, last))

    workers = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    begin = time.perf_counter()
    deadline_box.append(begin + duration)
    start_line.wait()
    for worker in workers:
        worker.join()
    end = max(r[3] for r in results) if results else time.perf_counter()
    done = sum(r[0] for r in results)
    errors = sum(r[1] for r in results)
    first = next((r[2] for r in results if r[2]), "")
    return Measure(done, max(end - begin, 1e-9), errors, first)


@dataclass
class Results:
    """Per ``(scenario, app)``: requests/s and server CPU ms/request of each round."""

    rates: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    cpu: dict[tuple[str, str], list[float]] = field(default_factory=dict)

    def update(self, other: Results) -> None:
        self.rates.update(other.rates)
        self.cpu.update(other.cpu)

    def rate(self, key: str, app: str) -> float | None:
        values = self.rates.get((key, app))
        return statistics.median(values) if values else None

    def cpu_ms(self, key: str, app: str) -> float | None:
        values = self.cpu.get((key, app))
        return statistics.median(values) if values else None

    def ratio(self, key: str, other: str) -> float | None:
        """Median of each round's backo/``other`` throughput ratio."""
        b, o = self.rates.get((key, "backo")), self.rates.get((key, other))
        if not b or not o or len(b) != len(o):
            return None
        ratios = [x / y for x, y in zip(b, o, strict=True) if y]
        return statistics.median(ratios) if ratios else None

    def cpu_ratio(self, key: str, other: str) -> float | None:
        """Median of each round's ``other``/backo CPU per request (< 1: backo costs more)."""
        b, o = self.cpu.get((key, "backo")), self.cpu.get((key, other))
        if not b or not o or len(b) != len(o):
            return None
        ratios = [y / x for x, y in zip(b, o, strict=True) if x]
        return statistics.median(ratios) if ratios else None


def measure_scenarios(
    servers_: dict[str, Server],
    scenarios: list[Scenario],
    data: Data,
    args: argparse.Namespace,
    report: Report,
) -> Results:
    """Load each scenario on each app, round after round; the app that goes first rotates.

    Besides requests/s, the CPU time of the gunicorn workers over the measure gives
    their cost per request, which other processes on the machine disturb far less.
    """
    results = Results()
    apps = [app for app in APPS if app in servers_]
    for round_ in range(args.rounds):
        for scenario in scenarios:
            shift = round_ % len(apps)
            for app in apps[shift:] + apps[:shift]:
                port = servers_[app].port
                salt = f"{args.books}-{round_}"
                if args.warmup > 0:
                    load(port, scenario, data, threads=args.concurrency,
                         duration=args.warmup, salt=f"warm-{salt}")  # fmt: skip
                workers = servers_[app].worker_pids()
                cpu_before = workers_cpu_seconds(workers)
                result = load(port, scenario, data, threads=args.concurrency,
                              duration=args.duration, salt=salt)  # fmt: skip
                cpu_after = workers_cpu_seconds(workers)
                if result.errors:
                    report.fail(
                        f"{scenario.key} {app} round {round_ + 1}: {result.errors} failed "
                        f"request(s), first: {result.first_error}"
                    )
                key = (scenario.key, app)
                results.rates.setdefault(key, []).append(result.rate)
                cpu_ms = None
                if cpu_before is not None and cpu_after is not None and result.requests:
                    cpu_ms = (cpu_after - cpu_before) * 1000 / result.requests
                    results.cpu.setdefault(key, []).append(cpu_ms)
                log(
                    f"round {round_ + 1}/{args.rounds} {scenario.key} {app:9}: "
                    f"{result.rate:8.1f} req/s ({result.requests} requests)"
                    + (f", workers' CPU {cpu_ms:.2f} ms/request" if cpu_ms is not None else "")
                )
    return results


# -- runs -------------------------------------------------------------------------------


def environment_lines(args: argparse.Namespace, data: Data | None) -> list[str]:
    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "?"

    def git(*command: str) -> str:
        try:
            out = subprocess.run(
                ["git", "-C", REPO_DIR, *command], capture_output=True, text=True, timeout=10
            )
            return out.stdout.strip()
        except (OSError, subprocess.SubprocessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD") or "?"
    dirty = git("status", "--porcelain", "--", "backo_restful")
    import sqlite3

    lines = [
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}; commit {commit}"
        + (" with uncommitted changes in backo_restful/" if dirty else ""),
        f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} "
        f"{platform.release()}; Python {platform.python_version()}, SQLite "
        f"{sqlite3.sqlite_version}",
        f"- packages: flask {version('flask')}, flask-restful {version('flask-restful')}, "
        f"marshmallow {version('marshmallow')}, peewee {version('peewee')}, "
        f"gunicorn {version('gunicorn')}",
        f"- load: {args.concurrency} client threads, {args.rounds} round(s) of "
        f"{args.duration:g} s per scenario and app (after {args.warmup:g} s warm-up), "
        "median shown",
        f"- servers: gunicorn, {args.workers} sync worker(s) per app",
    ]
    if data is not None:
        lines.append(f"- data: {data.authors} authors, {data.books} books (seed.py)")
    return lines


def fmt_sql(counts: dict[tuple[str, str], tuple[float, float]], key: tuple[str, str]) -> str:
    if key not in counts:
        return "-"
    data_statements, every = counts[key]
    return f"{data_statements:g} ({every:g})"


def run_main(args: argparse.Namespace, workdir: str, report: Report) -> list[str]:
    """Check the apps, then benchmark S1-S7 (or the chosen scenarios)."""
    names = ["probe", *[f"sql-{app}" for app in APPS], *APPS]
    data, paths = make_copies(workdir, args.books, names)
    features = probe_backo(paths["probe"])
    describe_features(features, report)
    chosen = [BY_KEY[key] for key in args.scenarios]
    runnable = [s for s in chosen if s.key != "S5" or features.s5]
    reads = [s for s in runnable if not s.write]
    writes = [s for s in runnable if s.write]

    clients = in_process_apps({app: paths[f"sql-{app}"] for app in APPS}, features)
    counts = count_statements(clients, runnable, data, report)

    results = Results()
    with servers({a: paths[a] for a in APPS}, workdir, features, args.workers) as running:
        for scenario in reads:
            compare(running, scenario, data, report)
        if not args.check:
            results.update(measure_scenarios(running, reads, data, args, report))
        # Writes last, so that they never change what the reads above saw.
        for scenario in writes:
            compare(running, scenario, data, report, count=2)
        if not args.check:
            results.update(measure_scenarios(running, writes, data, args, report))

    lines = ["## Throughput", "", *environment_lines(args, data), ""]
    if args.check:
        lines += ["Check only (`--check`): no load was run.", ""]
    lines += [
        "| scenario | request | backo req/s | minimal req/s | reference req/s | "
        f"backo/minimal req/s | ≥ {TARGET_RATIO:g} | minimal/backo CPU | "
        "backo/reference req/s | backo CPU ms/req | minimal CPU ms/req | "
        "reference CPU ms/req | SQL/req backo | SQL/req minimal | SQL/req reference |",
        "| --- | --- | ---: | ---: | ---: | ---: | :---: | ---: | ---: | ---: | ---: | ---: "
        "| ---: | ---: | ---: |",
    ]
    for scenario in chosen:
        key = scenario.key
        if scenario not in runnable:
            lines.append(f"| {key} | `{scenario.label}` | not run |" + " - |" * 12)
            continue
        ratio = results.ratio(key, "minimal")
        cells = [
            *[_num(results.rate(key, app), ",.0f") for app in APPS],
            _ratio(ratio),
            "-" if ratio is None else "yes" if ratio >= TARGET_RATIO else "**no**",
            _ratio(results.cpu_ratio(key, "minimal")),
            _ratio(results.ratio(key, "reference")),
            *[_num(results.cpu_ms(key, app), ".2f") for app in APPS],
            *[fmt_sql(counts, (key, app)) for app in APPS],
        ]
        lines.append(f"| {key} | `{scenario.label}` | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"- req/s: requests completed per second by the app's {args.workers} gunicorn "
        "worker(s) (median of the rounds); backo/minimal and backo/reference req/s: the "
        f"median of each round's ratio. The target, ≥ {TARGET_RATIO:g}, applies to "
        "backo/minimal: the minimal app does the least work a hand-written app does; the "
        "reference gives backo_restful's answers byte for byte, at the same costs.",
        "- CPU ms/req: CPU time of the app's gunicorn worker(s) per request (median of the "
        "rounds); minimal/backo CPU: the median of each round's ratio, comparable to the "
        "backo/minimal req/s ratio but far less disturbed by other processes.",
        "- SQL/req: data statements (SELECT, INSERT, UPDATE) per request, and in brackets "
        "every statement sent, with the connection's PRAGMAs and BEGIN/COMMIT (the minimal "
        "app keeps its connection open: no PRAGMAs).",
    ]
    if results.rates and args.rounds > 1:
        lines += ["", f"Each round, req/s and CPU ms/req ({' / '.join(APPS)}):", ""]
        for scenario in runnable:
            key = scenario.key
            rounds = _each_round(results.rates, key, ",.0f")
            cpu = _each_round(results.cpu, key, ".2f")
            lines.append(f"- {key}: {rounds}" + (f"; CPU {cpu}" if cpu else ""))
    return lines


def _each_round(values: dict[tuple[str, str], list[float]], key: str, spec: str) -> str:
    """``a / b / c, ...``: each round's value of every app, in :data:`APPS` order."""
    per_app = [values.get((key, app), []) for app in APPS]
    rows = zip(*per_app, strict=False)
    return ", ".join(" / ".join(format(x, spec) for x in row) for row in rows)


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def _ratio(value: float | None) -> str:
    """A ratio cut (not rounded) to 2 decimals, so 0.797 never shows as 0.80."""
    return "-" if value is None else f"{math.floor(value * 100) / 100:.2f}"


def describe_features(features: Features, report: Report) -> None:
    if features.list_headers:
        shown = "; ".join(f"`{k}: {v}`" for k, v in features.list_headers.items())
        report.note(f"GET /book?limit=2 on backo_restful answers with {shown}")
    else:
        report.note("backo_restful sends no X-Total-Count/Link header on lists")
    if features.total_count:
        report.note("so the reference sends `X-Total-Count` too (one `COUNT(*)` per list request)")
    if features.link:
        report.note(
            "so the reference sends a `Link` too (reading one row more to know if a next "
            "page exists); the check compares its relations, not its opaque cursors"
        )
    if not features.s5:
        report.note(
            f"S5 could not run: backo_restful answers `{S5_PATH}` with {features.s5_reason}"
        )


def run_scale(args: argparse.Namespace, workdir: str, report: Report) -> list[str]:
    """S1 and S5 at each size of ``--scale-books``: per-request cost and its growth."""
    sizes = args.scale_books
    measured: dict[int, Results] = {}
    data_by_size: dict[int, Data] = {}
    s5_ran = True
    for books in sizes:
        data, paths = make_copies(workdir, books, ["probe", *APPS])
        data_by_size[books] = data
        features = probe_backo(paths["probe"])
        if not features.s5:
            s5_ran = False
            report.note(f"S5 could not run at {books} books: {features.s5_reason}")
        scenarios = [BY_KEY["S1"]] + ([BY_KEY["S5"]] if features.s5 else [])
        with servers({a: paths[a] for a in APPS}, workdir, features, args.workers) as running:
            for scenario in scenarios:
                compare(running, scenario, data, report)
            sized = argparse.Namespace(**{**vars(args), "books": books})
            measured[books] = measure_scenarios(running, scenarios, data, sized, report)
        for path in paths.values():
            os.remove(path)

    small, large = sizes[0], sizes[-1]
    lines = [
        "## Scale",
        "",
        *environment_lines(args, None),
        f"- sizes: {', '.join(f'{data_by_size[b].books:,} books' for b in sizes)}",
        "",
        "Cost per request, two ways: wall ms/req = 1000 / median req/s of the app; "
        "CPU ms/req = its workers' CPU time per request (median of the rounds).",
        "",
        "| scenario | app | "
        + " | ".join(f"{b:,} books wall ms/req | {b:,} books CPU ms/req" for b in sizes)
        + f" | {large:,}/{small:,} wall | {large:,}/{small:,} CPU | ≤ {TARGET_SCALE:g} |",
        "| --- | --- | " + "---: | ---: | " * len(sizes) + "---: | ---: | :---: |",
    ]
    for key in ("S1", "S5"):
        for app in APPS:
            if measured[small].rate(key, app) is None:
                cells = " | ".join("not run" for _ in range(2 * len(sizes)))
                lines.append(f"| {key} | {app} | {cells} | - | - | - |")
                continue
            walls, cpus = [], []
            for books in sizes:
                rate = measured[books].rate(key, app)
                walls.append(1000.0 / rate if rate else None)
                cpus.append(measured[books].cpu_ms(key, app))
            wall_growth = walls[-1] / walls[0] if walls[-1] and walls[0] else None
            cpu_growth = cpus[-1] / cpus[0] if cpus[-1] and cpus[0] else None
            judged = cpu_growth if cpu_growth is not None else wall_growth
            ok = "-" if judged is None else "yes" if judged <= TARGET_SCALE else "**no**"
            cells = " | ".join(
                f"{_num(w, '.2f')} | {_num(c, '.2f')}" for w, c in zip(walls, cpus, strict=True)
            )
            lines.append(
                f"| {key} | {app} | {cells} | {_num(wall_growth, '.2f')} | "
                f"{_num(cpu_growth, '.2f')} | {ok} |"
            )
    lines += [
        "",
        f"The target column judges the CPU growth (the wall growth where CPU time is not "
        f"available): a request at {large:,} books should cost at most {TARGET_SCALE:g}× "
        f"one at {small:,}.",
    ]
    if not s5_ran:
        lines += ["", "S5 could not run: backo_restful does not accept `year.$gte` yet."]
    return lines


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="HTTP benchmark of backo_restful against two hand-written apps."
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: tiny data, one short round (well under a minute)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="only check the apps' answers and count their SQL statements (no load)",
    )
    parser.add_argument(
        "--scale",
        action="store_true",
        help="S1 and S5 at 10 000 and 1 000 000 books (see --scale-books)",
    )
    parser.add_argument(
        "--books",
        type=int,
        default=None,
        help="books in the database, 10 per author (default 10000; --quick 500)",
    )
    parser.add_argument(
        "--scale-books",
        default=None,
        help="comma-separated sizes for --scale (default 10000,1000000)",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds of load per scenario, app and round (default 3)",
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        help="seconds of warm-up before each measure (default 0.5)",
    )
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 5)")
    parser.add_argument("--concurrency", type=int, default=4, help="client threads (default 4)")
    parser.add_argument(
        "--workers", type=int, default=1, help="gunicorn sync workers per app (default 1)"
    )
    parser.add_argument(
        "--scenarios", default=None, help="comma-separated subset, e.g. S1,S3 (default: all)"
    )
    parser.add_argument(
        "--count", choices=("estimate", "exact", "none"), default=None,
        help="backo_restful's BACKO_COUNT (default: its own default, estimate); with "
        "'none' its lists send no X-Total-Count, and the reference counts nothing either",
    )  # fmt: skip
    parser.add_argument("--output", help="also write the Markdown report to this file")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directory (databases, gunicorn logs)")  # fmt: skip
    args = parser.parse_args(argv)
    quick = args.quick
    if args.books is None:
        args.books = 500 if quick else seeding.DEFAULT_BOOKS
    if args.duration is None:
        args.duration = 0.4 if quick else 3.0
    if args.warmup is None:
        args.warmup = 0.1 if quick else 0.5
    if args.rounds is None:
        args.rounds = 1 if quick else 5
    if args.scale_books is None:
        args.scale_books = "500,5000" if quick else "10000,1000000"
    args.scale_books = [int(x) for x in str(args.scale_books).split(",") if x.strip()]
    args.scenarios = (
        [s.key for s in SCENARIOS]
        if args.scenarios is None
        else [x.strip().upper() for x in args.scenarios.split(",") if x.strip()]
    )
    unknown = [key for key in args.scenarios if key not in BY_KEY]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    if args.concurrency < 1 or args.rounds < 1 or args.duration <= 0 or args.workers < 1:
        parser.error("--concurrency, --rounds, --duration and --workers must be positive")
    if len(args.scale_books) < 2:
        parser.error("--scale-books needs at least two sizes")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.count is not None:
        os.environ["BENCH_COUNT"] = args.count  # read by app_backo, here and in gunicorn
    report = Report()
    started = time.perf_counter()
    workdir = tempfile.mkdtemp(prefix="backo-bench-")
    try:
        lines = run_scale(args, workdir, report) if args.scale else run_main(args, workdir, report)
    except ServerError as error:
        log(f"FAIL: a server did not start: {error}")
        return 2
    except Exception:  # noqa: BLE001 - any other error fails the run, with its traceback
        log("FAIL: the benchmark stopped on an error:\n" + traceback.format_exc())
        return 1
    finally:
        if args.keep:
            log(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    notes = report.notes + report.header_notes()
    if notes:
        lines += ["", "Notes:", "", *[f"- {note}" for note in notes]]
    if report.failures:
        lines += ["", "FAILURES:", "", *[f"- {failure}" for failure in report.failures]]
    text = "\n".join(lines) + "\n"
    sys.stdout.write(text)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    log(f"done in {time.perf_counter() - started:.1f} s: "
        + ("FAILED" if report.failures else "ok"))  # fmt: skip
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())

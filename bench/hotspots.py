"""Where a scenario's time goes, in-process (no HTTP): timings and a cProfile listing.

    python bench/hotspots.py S3                 # the three apps timed, then backo profiled
    python bench/hotspots.py S2 --requests 2000 --top 30 --app minimal

The three apps (backo, minimal, reference) answer through their Flask test client,
each on its own copy of the same seeded database (``--books``, default 10 000).
First each app's time per request is measured (CPU time, best of 7 interleaved
batches); then ``--app`` (default backo) runs under cProfile, and the functions
with the most own time are listed, followed by the time spent under a few groups
of functions (SQL execution, query building, serialisation ...).
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import run  # noqa: E402
import seed as seeding  # noqa: E402

#: (label, predicate on (file, function name)) for the cumulative-time groups.
GROUPS = [
    (
        "sqlite3 execute (Cursor.execute / fetch)",
        lambda f, n: f == "~" and ("execute" in n or "fetch" in n),
    ),
    (
        "peewee: building and running queries",
        lambda f, n: f.endswith("peewee.py") and n in ("execute", "__iter__", "__len__", "scalar"),
    ),
    (
        "peewee: connect (with PRAGMAs) and close",
        lambda f, n: f.endswith("peewee.py") and n in ("connect", "close"),
    ),
    (
        "backo_restful: query parsing (parse_args)",
        lambda f, n: "backo_restful" in f and n in ("parse_args",),
    ),
    (
        "backo_restful: Engine.get / Engine.page",
        lambda f, n: f.endswith("engine/core.py") and n in ("get", "page"),
    ),
    (
        "backo_restful: rendering (Reading.render)",
        lambda f, n: f.endswith("engine/reading.py") and n == "render",
    ),
    ("backo_restful: count", lambda f, n: "/storage/" in f and n in ("count", "estimate")),
    ("backo_restful: Link header", lambda f, n: f.endswith("paging.py") and n == "link_header"),
    (
        "backo_restful: writes (run_write)",
        lambda f, n: f.endswith("engine/transactions.py") and n == "run_write",
    ),
    ("json.dumps", lambda f, n: f.endswith("json/__init__.py") and n == "dumps"),
    ("marshmallow load (validation)", lambda f, n: "marshmallow" in f and n == "load"),
]


_PACKAGES = ("backo_restful", "peewee", "playhouse", "flask_restful", "flask", "werkzeug",
             "marshmallow", "json", "app_reference", "app_minimal", "app_backo")  # fmt: skip


def _package(file: str, name: str) -> str:
    """The package a profiled function belongs to (C functions by what they do)."""
    if file == "~":
        if "sqlite3" in name:
            return "sqlite3 (C: executing SQL, fetching rows)"
        return "builtins (C)"
    parts = file.replace("\\", "/").split("/")
    for package in _PACKAGES:
        if package in parts or f"{package}.py" in parts:
            return package
    return "other (stdlib ...)"


def time_apps(clients, scenario, data, requests: int, batches: int = 7) -> dict[str, float]:
    """Best CPU microseconds per request of each app over ``batches`` interleaved batches.

    CPU time (``time.process_time``) leaves out the time other processes take; the
    best batch is the one least disturbed otherwise (as ``timeit`` does).
    """
    rngs = {app: random.Random("profile") for app in clients}
    best = {app: float("inf") for app in clients}
    size = max(1, requests // batches)
    for _ in range(batches):
        for app, client in clients.items():
            start = time.process_time()
            for _ in range(size):
                response = run._client_open(client, scenario.make(rngs[app], data))
                if response.status_code != scenario.status:
                    raise SystemExit(
                        f"{scenario.key} {app}: status {response.status_code}: "
                        f"{response.data[:300]!r}"
                    )
            best[app] = min(best[app], (time.process_time() - start) / size * 1e6)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("scenario", help="S1 ... S7")
    parser.add_argument("--books", type=int, default=seeding.DEFAULT_BOOKS)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--app", choices=run.APPS, default="backo", help="the app to profile")
    args = parser.parse_args(argv)
    scenario = run.BY_KEY[args.scenario.upper()]
    workdir = tempfile.mkdtemp(prefix="backo-profile-")
    try:
        data, paths = run.make_copies(workdir, args.books, ["probe", *run.APPS])
        features = run.probe_backo(paths["probe"])
        clients = run.in_process_apps(paths, features, trace=False)
        for client in clients.values():  # warm up
            rng = random.Random("warm")
            for _ in range(20):
                run._client_open(client, scenario.make(rng, data))
        timings = time_apps(clients, scenario, data, args.requests)
        print(
            f"{scenario.key} {scenario.label}, in-process (Flask test client), {data.books} books:"
        )
        for app, micros in timings.items():
            print(f"  {app:9} {micros:8.0f} µs CPU/request")
        for other in ("minimal", "reference"):
            print(f"  backo/{other} time: {timings['backo'] / timings[other]:.2f}")

        profiler = cProfile.Profile()
        client = clients[args.app]
        rng = random.Random("profiled")
        profiler.enable()
        for _ in range(args.requests):
            run._client_open(client, scenario.make(rng, data))
        profiler.disable()
        stats = pstats.Stats(profiler)
        total = stats.total_tt  # type: ignore[attr-defined]
        per = 1e6 / args.requests
        print(
            f"\ncProfile of {args.app}, {args.requests} requests "
            f"({total * per:.0f} µs/request under the profiler):"
        )
        print("\ngroups (cumulative time, µs/request; groups overlap):")
        raw = stats.stats  # type: ignore[attr-defined]
        for label, predicate in GROUPS:
            seen = 0.0
            for (file, _, name), (_, _, _, cumulative, _) in raw.items():
                if predicate(file, name):
                    seen += cumulative
            if seen:
                print(f"  {label:45} {seen * per:8.1f}  ({seen / total:5.1%})")
        print("\nown time by package (µs/request):")
        packages: dict[str, float] = {}
        for (file, _, name), (_, _, own, _, _) in raw.items():
            packages[_package(file, name)] = packages.get(_package(file, name), 0.0) + own
        for package, own in sorted(packages.items(), key=lambda item: -item[1]):
            print(f"  {package:45} {own * per:8.1f}  ({own / total:5.1%})")
        print(f"\ntop {args.top} functions by own time:")
        rows = sorted(raw.items(), key=lambda item: item[1][2], reverse=True)[: args.top]
        for (file, line, name), (_, calls, own, cumulative, _) in rows:
            where = f"{os.path.basename(file)}:{line}" if file != "~" else "<built-in>"
            print(
                f"  {own * per:7.1f} µs own {cumulative * per:8.1f} µs cum "
                f"{calls / args.requests:6.1f} calls  {name} ({where})"
            )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

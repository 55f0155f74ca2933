"""Python function calls per request of the benchmark's backo_restful app.

    python bench/calls.py                     # this checkout
    python bench/calls.py --tree ../other     # another checkout of the project

Unlike throughput, the number of calls does not depend on how busy the machine
is: comparing two commits with it shows a fixed cost they add or remove, even on
a noisy machine. It serves the bench app in-process through the Flask test client
(no gunicorn, no HTTP), on a fresh seeded SQLite file, warms each request up, then
profiles 100 of them with cProfile.
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import tempfile

SCENARIOS = [
    ("S1", "/book/17"),
    ("S2", "/book?limit=100"),
    ("S3", "/author?limit=50&depth=2"),
    ("S4", "/book?limit=50&depth=2"),
    ("S5", "/book?year.$gte=2000&sort=-year&limit=20"),
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", default=os.path.dirname(os.path.dirname(__file__)) or ".")
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args(argv)
    tree = os.path.abspath(args.tree)
    # The checkout measured comes first, before any installed copy of the project.
    sys.path[:0] = [tree, os.path.join(tree, "bench")]
    import seed as seeding

    os.environ["BENCH_DB"] = os.path.join(tempfile.mkdtemp(), "calls.db")
    seeding.seed(os.environ["BENCH_DB"], books=10_000)
    import app_backo

    client = app_backo.app.test_client()
    print(f"backo_restful from {os.path.dirname(sys.modules['backo_restful'].__file__ or '')}")
    for name, url in SCENARIOS:
        for _ in range(20):
            client.get(url)
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.requests):
            client.get(url)
        profile.disable()
        calls = pstats.Stats(profile).total_calls / args.requests  # type: ignore[attr-defined]
        print(f"{name} {url:45s} {calls:7.0f} calls/request")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Create the benchmark's SQLite file: N authors with 10 books each, from a fixed seed.

    python bench/seed.py bench.db                  # 1 000 authors, 10 000 books
    python bench/seed.py bench.db --books 1000000  # 100 000 authors, 1 000 000 books

backo_restful creates the tables (through ``app_backo``'s model, so the layout is
exactly the one it serves); the rows are then inserted with ``sqlite3`` in one
transaction. The same ``--books`` and ``--seed`` always give the same rows:

- ``author``: ``id`` 1..N, ``name``;
- ``book``: ``id`` 1..10N, ``title``, ``year`` (1950-2024), ``author_id``. Each
  author has exactly 10 books; which books is shuffled, so a page of books links
  to many different authors.
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import app_backo  # noqa: E402

BOOKS_PER_AUTHOR = 10
DEFAULT_BOOKS = 10_000
DEFAULT_SEED = 20240501

_FIRST = "Ada Alan Barbara Claude Donald Edsger Frances Grace John Ken Leslie Margaret".split()
_LAST = "Lovelace Turing Liskov Shannon Knuth Dijkstra Allen Hopper McCarthy Thompson".split()
_WORDS = (
    "art structure program garden river night machine city silence theory light winter "
    "stone language memory fire glass ocean logic dream shadow mountain signal harbor"
).split()


def expected_counts(books: int) -> tuple[int, int]:
    """``(authors, books)`` actually created for ``--books books``."""
    authors = max(1, books // BOOKS_PER_AUTHOR)
    return authors, authors * BOOKS_PER_AUTHOR


def seed(path: str, books: int = DEFAULT_BOOKS, seed_value: int = DEFAULT_SEED) -> tuple[int, int]:
    """Create ``path`` (replacing it) and fill it; return ``(authors, books)``."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    n_authors, n_books = expected_counts(books)

    # Let backo_restful create its tables: they are created by the first transaction
    # (an empty read transaction here, so seeding does not depend on the query API).
    engine = app_backo.build_engine(path)
    with engine.storage.transaction(write=False):
        pass

    rng = random.Random(seed_value)
    author_rows = [
        (i, f"{rng.choice(_FIRST)} {rng.choice(_LAST)} {i}") for i in range(1, n_authors + 1)
    ]
    owners = [a for a in range(1, n_authors + 1) for _ in range(BOOKS_PER_AUTHOR)]
    rng.shuffle(owners)
    choice, randint = rng.choice, rng.randint
    book_rows = [
        (i, f"The {choice(_WORDS)} of {choice(_WORDS)} {i}", randint(1950, 2024), owners[i - 1])
        for i in range(1, n_books + 1)
    ]

    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("PRAGMA foreign_keys = 1")
        conn.execute("BEGIN")
        conn.executemany("INSERT INTO author (id, name) VALUES (?, ?)", author_rows)
        conn.executemany(
            "INSERT INTO book (id, title, year, author_id) VALUES (?, ?, ?, ?)", book_rows
        )
        conn.execute("COMMIT")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return n_authors, n_books


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", help="the SQLite file to create (replaced if it exists)")
    parser.add_argument(
        "--books",
        type=int,
        default=DEFAULT_BOOKS,
        help=f"number of books, 10 per author (default {DEFAULT_BOOKS})",
    )
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    authors, books = seed(args.path, args.books, args.seed)
    print(
        f"{args.path}: {authors} authors, {books} books in {time.perf_counter() - start:.1f} s",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

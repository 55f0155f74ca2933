"""Each database's dialect (backo_restful.storage.dialects), on its real database."""

from __future__ import annotations

from typing import Any

import peewee
import pytest
from marshmallow import fields

from backo_restful import DataModel, Ref, RefsList, Schema
from backo_restful.exceptions import DeclarationError
from backo_restful.storage import PeeweeStorage
from backo_restful.storage import dialects as d

stock = DataModel("dialect_stock")


@stock.collection("bin")
class Bin(Schema):
    label = fields.String()
    parts = RefsList("part", reverse="bin")


@stock.collection("part")
class Part(Schema):
    sku = fields.String(metadata={"unique": True})
    note = fields.String()
    made = fields.DateTime()
    bin = Ref("bin", reverse="parts")


@pytest.fixture
def storage(database: Any) -> PeeweeStorage:
    stock.resolve()
    storage = PeeweeStorage(database)
    storage.attach(stock)
    with storage.transaction(write=False):
        pass  # creates the tables
    return storage


def failed(storage: PeeweeStorage, work: Any) -> peewee.PeeweeException:
    """The peewee error ``work()`` raises in a transaction of its own."""
    storage.db.connect(reuse_if_open=True)
    try:
        with pytest.raises(peewee.PeeweeException) as caught, storage.db.atomic():
            work()
    finally:
        storage.db.close()
    return caught.value


def test_each_database_gets_its_dialect(storage: PeeweeStorage, backend: str) -> None:
    expected = {
        "sqlite": d.SqliteDialect,
        "postgresql": d.PostgresqlDialect,
        "mysql": d.MysqlDialect,
    }
    assert type(storage.dialect) is expected[backend]
    assert storage.dialect.name == storage.backend == backend


def test_an_unsupported_database_is_refused() -> None:
    class Other(peewee.Database):
        pass

    with pytest.raises(DeclarationError, match="unsupported database Other"):
        d.dialect_of(Other("x"))


def test_a_unique_violation_names_its_index(storage: PeeweeStorage) -> None:
    part = stock.collections["part"]
    with storage.transaction(write=True):
        storage.insert(part, {"sku": "x-1"})
    table = storage.table(part)
    error = failed(storage, lambda: table.insert({storage.column(part, "sku"): "x-1"}).execute())
    assert storage.dialect.failure(error) is None
    assert storage._uniques[storage.dialect.unique_key(error) or ""] == (part, "sku")
    assert not storage.dialect.missing_reference(error)


def test_a_link_to_nothing_is_a_missing_reference(storage: PeeweeStorage) -> None:
    part = stock.collections["part"]
    table = storage.table(part)
    error = failed(storage, lambda: table.insert({storage.column(part, "bin"): 99}).execute())
    assert storage.dialect.missing_reference(error)
    assert storage.dialect.unique_key(error) is None


def test_an_id_taken_is_a_primary_key_clash_where_writers_run_together(
    storage: PeeweeStorage,
) -> None:
    part = stock.collections["part"]
    with storage.transaction(write=True):
        storage.insert(part, {"sku": "a"}, id_=7)
    table = storage.table(part)
    error = failed(
        storage, lambda: table.insert({table.id: 7, storage.column(part, "sku"): "b"}).execute()
    )
    # SQLite's writers run one at a time: an id found free stays free.
    assert storage.dialect.primary_key_clash(error, "part") is storage.dialect.row_locks


def test_ids_continue_past_an_explicit_id(storage: PeeweeStorage) -> None:
    part = stock.collections["part"]
    with storage.transaction(write=True):
        storage.insert(part, {"sku": "a"}, id_=100)
        assert storage.insert(part, {"sku": "b"}) == 101


@pytest.mark.backends("sqlite", "postgresql")
def test_a_statement_out_of_time_is_a_timeout(storage: PeeweeStorage, backend: str) -> None:
    slow = {
        "sqlite": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) "
        "SELECT COUNT(*) FROM n",
        "postgresql": "SELECT pg_sleep(5)",
    }[backend]

    def run() -> None:
        storage.dialect.start_time_limit(0.05)
        storage.db.execute_sql(slow)

    assert storage.dialect.failure(failed(storage, run)) is d.Failure.TIMEOUT


def test_an_unreadable_pattern_is_a_bad_pattern(storage: PeeweeStorage, backend: str) -> None:
    if backend == "sqlite":
        pytest.skip("SQLite's patterns are checked before any statement")
    match = "~" if backend == "postgresql" else "REGEXP"
    error = failed(storage, lambda: storage.db.execute_sql(f"SELECT 'a' {match} '('"))
    assert storage.dialect.failure(error) is d.Failure.BAD_PATTERN


def test_columns_fit_their_database(storage: PeeweeStorage, backend: str) -> None:
    part = stock.collections["part"]
    note, made = storage.column(part, "note"), storage.column(part, "made")
    if backend == "postgresql":
        assert note.collation == '"C"'
    if backend == "mysql":
        assert (note.field_type, made.field_type) == ("LONGTEXT", "DATETIME(6)")
    else:
        assert (note.field_type, made.field_type) == ("TEXT", "DATETIME")
    # SQLite's AUTOINCREMENT never reuses the id of a deleted row.
    primary = d._SqliteAutoIncrement if backend == "sqlite" else peewee.BigAutoField
    assert type(storage.table(part).id) is primary


def test_indexes_end_with_the_id_where_the_database_needs_it(storage: PeeweeStorage) -> None:
    @stock.collection("shelf_tag")
    class Tag(Schema):
        word = fields.String(metadata={"index": True})

    try:
        stock.resolve()
        other = PeeweeStorage(storage.db)
        other._build_table(peewee.Model, stock.collections["shelf_tag"])
        tag = other._build_table(peewee.Model, stock.collections["shelf_tag"])
        indexes = [list(i._expressions) for i in tag._meta.fields_to_index()]
        if storage.dialect.id_suffixed_indexes:
            assert [[c.name for c in cols] for cols in indexes] == [["f_word", "id"]]
        else:
            assert [[c.name for c in cols] for cols in indexes] == [["f_word"]]
    finally:
        del stock.collections["shelf_tag"]
        stock.resolve()


def test_the_estimate_comes_from_the_database(storage: PeeweeStorage, backend: str) -> None:
    part = stock.collections["part"]
    with storage.transaction(write=True):
        for n in range(3):
            storage.insert(part, {"sku": str(n)})
    if backend == "postgresql":
        storage.db.execute_sql('ANALYZE "part"')
    with storage.transaction(write=False):
        estimate = storage.estimate(part)
    assert estimate == {"sqlite": None, "postgresql": 3, "mysql": estimate}[backend]
    if backend == "mysql":
        assert isinstance(estimate, int) and estimate >= 0


def test_drop_tables_drops_tables_that_reference_each_other(storage: PeeweeStorage) -> None:
    storage.drop_tables()
    with storage.db.connection_context():
        assert {"bin", "part"} & set(storage.db.get_tables()) == set()


def test_sqlite_memory_is_one_database_for_every_thread(tmp_path: Any) -> None:
    memory = peewee.SqliteDatabase(":memory:", thread_safe=False, check_same_thread=False)
    assert d.SqliteDialect(memory).in_memory
    assert not d.SqliteDialect(peewee.SqliteDatabase(str(tmp_path / "f.db"))).in_memory
    assert not d.PostgresqlDialect(peewee.PostgresqlDatabase("x")).in_memory


def test_sqlite_refuses_a_pattern_too_costly_for_a_value() -> None:
    dialect = d.SqliteDialect(peewee.SqliteDatabase(":memory:"))
    assert d._sqlite_regexp("b", "abc")
    with pytest.raises(OverflowError):
        d._sqlite_regexp("(a|b)+c", "a" * d.MATCH_BUDGET)
    assert dialect.pattern_refused()
    assert not dialect.pattern_refused()  # forgotten once told


def test_sqlite_prepares_foreign_keys_and_functions(tmp_path: Any) -> None:
    db = peewee.SqliteDatabase(str(tmp_path / "p.db"))
    d.SqliteDialect(db).prepare()
    with db.connection_context():
        assert db.execute_sql("PRAGMA foreign_keys").fetchone() == (1,)
        assert db.execute_sql("SELECT backo_lower('ÉA')").fetchone() == ("éa",)
        assert db.execute_sql("SELECT 'xyz' REGEXP 'y'").fetchone() == (1,)


def test_nulls_and_offsets_follow_each_database() -> None:
    assert d.PostgresqlDialect.nulls_sort_high and not d.SqliteDialect.nulls_sort_high
    assert (d.SqliteDialect.limit_all, d.PostgresqlDialect.limit_all) == (-1, None)
    assert d.MysqlDialect.limit_all == 2**63 - 1
    assert not d.SqliteDialect.deferred_foreign_keys and d.MysqlDialect.deferred_foreign_keys

"""Fixtures: a fresh database per test on every backend, and clients for both layers.

Backends: SQLite always; PostgreSQL and MariaDB/MySQL on the servers named by
``BACKO_TEST_POSTGRES_URL`` and ``BACKO_TEST_MYSQL_URL`` (defaults: the local
servers of the CI machine). A server that does not answer is skipped with the
reason, except under ``CI=true``, where it fails the test. ``BACKO_TEST_BACKENDS``
(comma-separated) limits the run to some backends.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from typing import Any, NamedTuple
from urllib.parse import unquote, urlparse

import peewee
import pytest
from flask import Flask

from backo_restful import DataModel, Engine
from backo_restful.api import basic
from backo_restful.api.flask import Api, Resource
from backo_restful.storage import PeeweeStorage

POSTGRES_URL = os.environ.get(
    "BACKO_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
MYSQL_URL = os.environ.get("BACKO_TEST_MYSQL_URL", "mysql://root@127.0.0.1:3306/test")
ALL_BACKENDS = ("sqlite", "postgresql", "mysql")
BACKENDS = tuple(
    name.strip()
    for name in os.environ.get("BACKO_TEST_BACKENDS", ",".join(ALL_BACKENDS)).split(",")
    if name.strip()
)
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


class Counting:
    """Mixin recording every SQL statement a peewee database executes."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.statements: list[str] = []
        self.executed: list[tuple[str, Any]] = []

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        self.statements.append(sql)
        self.executed.append((sql, params))
        del self.executed[:-20]
        return super().execute_sql(sql, params)  # type: ignore[misc]

    def count(self, prefix: str = "") -> int:
        """Statements recorded (those starting with ``prefix``), then forget them."""
        found = [s for s in self.statements if s.lstrip().upper().startswith(prefix.upper())]
        self.statements.clear()
        return len(found)


class CountingSqlite(Counting, peewee.SqliteDatabase):
    pass


class CountingPostgres(Counting, peewee.PostgresqlDatabase):
    pass


class CountingMySQL(Counting, peewee.MySQLDatabase):
    pass


def _server(url: str) -> dict[str, Any]:
    parsed = urlparse(url)
    return {
        "host": parsed.hostname or "127.0.0.1",
        "port": parsed.port,
        "user": unquote(parsed.username or ""),
        "password": unquote(parsed.password or ""),
        "database": parsed.path.lstrip("/"),
    }


_reachable: dict[str, str | None] = {}


def _why_unreachable(backend: str) -> str | None:
    """None if the backend's server answers, else the reason."""
    if backend in _reachable:
        return _reachable[backend]
    reason = None
    try:
        if backend == "postgresql":
            import psycopg2

            s = _server(POSTGRES_URL)
            psycopg2.connect(
                host=s["host"],
                port=s["port"] or 5432,
                user=s["user"],
                password=s["password"],
                dbname=s["database"],
                connect_timeout=3,
            ).close()
        elif backend == "mysql":
            import pymysql

            s = _server(MYSQL_URL)
            pymysql.connect(
                host=s["host"],
                port=s["port"] or 3306,
                user=s["user"],
                password=s["password"],
                database=s["database"],
                connect_timeout=3,
            ).close()
    except Exception as exc:  # any driver or network failure means "not reachable"
        url = POSTGRES_URL if backend == "postgresql" else MYSQL_URL
        reason = f"{backend} at {url} is not reachable: {type(exc).__name__}: {exc}"
    _reachable[backend] = reason
    return reason


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    marker = request.node.get_closest_marker("backends")
    if marker is not None and name not in marker.args:
        pytest.skip(f"this test is for {', '.join(marker.args)} only")
    reason = _why_unreachable(name)
    if reason is not None:
        if IN_CI:
            pytest.fail(f"CI=true requires every backend: {reason}")
        pytest.skip(reason)
    return name


@pytest.fixture
def database(backend: str, tmp_path: Any) -> Iterator[Counting]:
    """A fresh, empty database (SQLite file, PostgreSQL schema or MySQL database)."""
    name = f"backo_{uuid.uuid4().hex[:12]}"
    if backend == "sqlite":
        db: Counting = CountingSqlite(str(tmp_path / "test.db"))
        yield db
        db.close()
        return
    if backend == "postgresql":
        import psycopg2

        s = _server(POSTGRES_URL)
        params = dict(
            host=s["host"], port=s["port"] or 5432, user=s["user"], password=s["password"]
        )
        admin = psycopg2.connect(dbname=s["database"], **params)
        admin.autocommit = True
        admin.cursor().execute(f'CREATE SCHEMA "{name}"')
        db = CountingPostgres(s["database"], options=f"-c search_path={name}", **params)
        try:
            yield db
        finally:
            db.close()
            admin.cursor().execute(f'DROP SCHEMA "{name}" CASCADE')
            admin.close()
        return
    import pymysql

    s = _server(MYSQL_URL)
    params = dict(host=s["host"], port=s["port"] or 3306, user=s["user"], password=s["password"])
    admin = pymysql.connect(autocommit=True, **params)
    admin.cursor().execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    db = CountingMySQL(name, **params)
    try:
        yield db
    finally:
        db.close()
        admin.cursor().execute(f"DROP DATABASE `{name}`")
        admin.close()


class Result(NamedTuple):
    body: Any
    status: int
    headers: dict[str, str]


class BasicClient:
    """Calls ``api.basic`` with an explicit engine."""

    layer = "basic"

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def get(self, name: str, id_: Any = None, **params: Any) -> Result:
        return Result(*basic.get(name, id_, engine=self.engine, **params))

    def post(self, name: str, data: Any) -> Result:
        return Result(*basic.post(name, data, engine=self.engine))

    def put(self, name: str, id_: Any, data: Any) -> Result:
        return Result(*basic.put(name, id_, data, engine=self.engine))

    def patch(self, name: str, id_: Any, data: Any) -> Result:
        return Result(*basic.patch(name, id_, data, engine=self.engine))

    def delete(self, name: str, id_: Any) -> Result:
        return Result(*basic.delete(name, id_, engine=self.engine))


def make_app(engine: Engine, **config: Any) -> Flask:
    """A Flask app serving every collection of the engine's model at ``/<name>``."""
    app = Flask(f"test_{engine.model.name}")
    app.config.update(config)
    api = Api(app, engine=engine)
    for collection in engine.model.collections.values():
        resource = type(f"{collection.name}_resource", (Resource,), {"model": collection})
        api.add_resource(resource, f"/{collection.name}")
    return app


class HttpClient:
    """Replays the same calls over HTTP through the Flask test client."""

    layer = "http"

    def __init__(self, engine: Engine, **config: Any) -> None:
        self.engine = engine
        self.app = make_app(engine, **config)
        self.http = self.app.test_client()

    @staticmethod
    def _url(name: str, id_: Any) -> str:
        return f"/{name}" if id_ is None else f"/{name}/{id_}"

    @staticmethod
    def _result(response: Any) -> Result:
        body = response.get_json(silent=True) if response.data else None
        return Result(body, response.status_code, dict(response.headers))

    def get(self, name: str, id_: Any = None, **params: Any) -> Result:
        query: dict[str, str] = {}
        for key, value in params.items():
            if key == "filter_":
                query["filter"] = json.dumps(value)
            elif key in ("sort", "fields"):
                query[key] = ",".join(value) if isinstance(value, list) else value
            else:
                query[key] = str(value)
        return self._result(self.http.get(self._url(name, id_), query_string=query))

    def _send(self, method: str, url: str, data: Any) -> Result:
        response = self.http.open(
            url, method=method, data=json.dumps(data), content_type="application/json"
        )
        return self._result(response)

    def post(self, name: str, data: Any) -> Result:
        return self._send("POST", f"/{name}", data)

    def put(self, name: str, id_: Any, data: Any) -> Result:
        return self._send("PUT", self._url(name, id_), data)

    def patch(self, name: str, id_: Any, data: Any) -> Result:
        return self._send("PATCH", self._url(name, id_), data)

    def delete(self, name: str, id_: Any) -> Result:
        return self._result(self.http.delete(self._url(name, id_)))


@pytest.fixture
def make_engine(database: Counting) -> Iterator[Any]:
    """``make_engine(dm)``: an engine for ``dm`` on this test's fresh database."""
    engines: list[Engine] = []

    def make(dm: DataModel) -> Engine:
        engine = Engine(dm, PeeweeStorage(database))
        engines.append(engine)
        return engine

    yield make


@pytest.fixture(params=["basic", "http"])
def layer(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_client(make_engine: Any, layer: str) -> Any:
    """``make_client(dm)``: a client of the layer under test, on a fresh database."""

    def make(dm: DataModel) -> BasicClient | HttpClient:
        engine = make_engine(dm)
        return BasicClient(engine) if layer == "basic" else HttpClient(engine)

    return make

"""schemathesis against every example app: each operation of its OpenAPI
document, then sequences of calls that follow the document's links.

Every response must conform to the document (status code, content type,
headers, body) and none may be a 5xx. The cases are drawn from a fixed seed
(``derandomize``) and bounded per operation, so a run is reproducible and
quick; the apps run in this process over WSGI, each on its own SQLite file.
"""

from __future__ import annotations

import importlib
import os
import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

EXAMPLES = ("cookies", "family", "library", "notes", "shop")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
#: Cases per operation: enough to reach every parameter, little enough for CI.
MAX_EXAMPLES = 15

_DIRECTORY = tempfile.TemporaryDirectory(prefix="backo-schemathesis-")


def example_app(name: str) -> Any:
    """Example ``name`` on a SQLite file of its own."""
    module = importlib.import_module(f"example.{name}")
    return module.create_app(f"sqlite:///{Path(_DIRECTORY.name) / name}.db")


def admin_token(app: Any) -> str:
    """A token of the notes example's admin, who may do anything there."""
    response = app.test_client().post("/login", json={"login": "admin", "password": "admin"})
    token: str = response.get_json()["token"]
    return token


def load(app: Any) -> Any:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    config = schema.config
    config.phases.update(phases=PHASES)
    config.generation.update(max_examples=MAX_EXAMPLES, deterministic=True)
    config.checks.update(included_check_names=[check.__name__ for check in CHECKS])
    return schema


PHASES = os.environ.get("ST_PHASES", "examples,fuzzing,stateful").split(",")
APPS = {name: example_app(name) for name in EXAMPLES}
SCHEMAS = {name: load(app) for name, app in APPS.items()}


@SCHEMAS["notes"].auth()
class NotesAdmin:
    """Sends the notes admin's token, so the calls reach past the 401s."""

    def get(self, case: Any, context: Any) -> str:
        return admin_token(APPS["notes"])

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}


HYPOTHESIS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@schemathesis.pytest.parametrize(**SCHEMAS)
@HYPOTHESIS
def test_operations(case: Any) -> None:
    case.call_and_validate(checks=CHECKS)


@pytest.mark.parametrize("name", EXAMPLES)
def test_stateful(name: str) -> None:
    machine = SCHEMAS[name].as_state_machine()
    machine.run(
        settings=settings(
            max_examples=10,
            stateful_step_count=6,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )

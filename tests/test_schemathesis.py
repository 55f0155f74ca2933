"""schemathesis against every example app: each operation of its OpenAPI
document, then sequences of calls that follow the document's links.

Every response must conform to the document (status code, content type,
headers, body) and none may be a 5xx. The cases are drawn from a fixed seed
(``derandomize``) and bounded per operation, so a run is reproducible and
quick; the apps run in this process over WSGI, each on its own SQLite file.
"""

from __future__ import annotations

import importlib
import itertools
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
MAX_EXAMPLES = 20
#: Sequences of calls per app, and calls per sequence.
SEQUENCES, STEPS = 25, 6
#: The phases run: the explicit examples, then cases drawn from the schemas (and
#: the links, for the state machine). The coverage phase is left out: its
#: boundary cases grow with the parameters (a list route has 40 to 70 flat
#: filters), and it takes minutes per operation on the 2-core CI machine.
PHASES = ["examples", "fuzzing", "stateful"]

_DIRECTORY = tempfile.TemporaryDirectory(prefix="backo-schemathesis-")


_FILES = itertools.count()


def example_app(name: str) -> Any:
    """Example ``name`` on a new SQLite file of its own."""
    module = importlib.import_module(f"example.{name}")
    return module.create_app(f"sqlite:///{Path(_DIRECTORY.name) / name}-{next(_FILES)}.db")


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


APPS = {name: example_app(name) for name in EXAMPLES}
SCHEMAS = {name: load(app) for name, app in APPS.items()}
#: Taken once: the calls may delete the admin, or change their login.
ADMIN_TOKEN = admin_token(APPS["notes"])


@SCHEMAS["notes"].auth()
class NotesAdmin:
    """Sends the notes admin's token, so the calls reach past the 401s."""

    def get(self, case: Any, context: Any) -> str:
        return ADMIN_TOKEN

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
    class Sequences(SCHEMAS[name].as_state_machine()):  # type: ignore[misc]
        """Each sequence on a fresh database: hypothesis runs a sequence again
        to check a failure, and must then meet the same state."""

        def setup(self) -> None:
            self.app = example_app(name)

        def get_call_kwargs(self, case: Any) -> dict[str, Any]:
            return {"app": self.app}

    Sequences.run(
        settings=settings(
            max_examples=SEQUENCES,
            stateful_step_count=STEPS,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
    )

"""The layers: the core of backo_restful imports and works without Flask."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import backo_restful
import backo_restful.api.flask_auth as flask_auth
import backo_restful.auth as auth

ROOT = Path(__file__).resolve().parents[1]

#: Makes ``flask``, ``flask_restful`` and ``werkzeug`` (and their submodules)
#: impossible to import, as in a program where they are not installed.
BLOCK_FLASK = """
import sys
from importlib.abc import MetaPathFinder

class NoFlask(MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("flask", "flask_restful", "werkzeug"):
            raise ImportError(f"No module named {name!r} (blocked)")
        return None

sys.meta_path.insert(0, NoFlask())
"""

CORE = """
import json
from marshmallow import fields

import backo_restful
import backo_restful.access
import backo_restful.engine
import backo_restful.exceptions
import backo_restful.model
import backo_restful.paging
import backo_restful.query
import backo_restful.storage
from backo_restful import DataModel, Engine, Schema
from backo_restful.api import basic
from backo_restful.auth import Anyone, Authenticated, HasRole, JWTAuth, Owner, User
from backo_restful.exceptions import InvalidToken
from backo_restful.storage import PeeweeStorage

dm = DataModel("layers")

@dm.collection("note", permissions=Owner() | HasRole("admin"))
class Note(Schema):
    title = fields.String()
    owner = fields.String(allow_none=True)

engine = Engine(dm, PeeweeStorage("sqlite:///:memory:"))
jwt_auth = JWTAuth("a secret long enough for HS256 signatures, 32+ bytes")
token = jwt_auth.create_token({"sub": "7", "roles": ["writer"]})
caller = jwt_auth.user_from("Bearer " + token)
created, status = engine.post("note", {"title": "first"}, auth=caller)
try:
    jwt_auth.verify(token + "x")
    refused = None
except InvalidToken as error:
    refused = error.code
result = {
    "claims": jwt_auth.verify(token)["sub"],
    "caller": [type(caller).__name__, caller.id, caller.roles],
    "post": [created, status],
    "get": engine.get("note", created["id"], auth=caller),
    "others": basic.get("note", auth=User({"sub": "8"}), engine=engine)[:2],
    "anonymous": basic.get("note", auth=User(), engine=engine)[1:],
    "refused": refused,
    "permissions": [repr(Anyone()), repr(Authenticated())],
    "flask": sorted(
        name for name in sys.modules
        if name.partition(".")[0] in ("flask", "flask_restful", "werkzeug")
    ),
}
try:
    backo_restful.current_user
except ImportError as error:
    result["current_user"] = str(error)
print(json.dumps(result))
"""


def run(code: str) -> subprocess.CompletedProcess[str]:
    """``code`` run by a new interpreter that imports this checkout's backo_restful."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )


def test_the_core_works_without_flask() -> None:
    done = run(BLOCK_FLASK + CORE)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["flask"] == []
    assert result["claims"] == "7"
    assert result["caller"] == ["User", "7", ["writer"]]
    assert result["post"] == [{"id": 1, "title": "first", "owner": "7"}, 201]
    assert result["get"] == [{"id": 1, "title": "first", "owner": "7"}, 200]
    assert result["others"] == [[], 200]
    assert result["anonymous"][0] == 401
    assert result["anonymous"][1] == {"WWW-Authenticate": "Bearer"}
    assert result["refused"] == "INVALID_TOKEN"
    assert result["permissions"] == ["Anyone()", "Authenticated()"]
    # Only the Flask glue needs Flask, and asking for it says so.
    assert "flask" in result["current_user"]


def test_the_blocker_blocks_flask() -> None:
    """The check above could not pass with Flask importable: the API layer fails."""
    done = run(BLOCK_FLASK + "import backo_restful.api.flask")
    assert done.returncode != 0
    assert "ImportError" in done.stderr or "ModuleNotFoundError" in done.stderr


def test_current_user_is_the_flask_glue_under_each_name() -> None:
    from backo_restful import current_user
    from backo_restful.auth import caller_of
    from backo_restful.auth import current_user as auth_current_user

    assert current_user is auth_current_user is flask_auth.current_user
    assert caller_of is flask_auth.caller_of
    assert "current_user" in dir(backo_restful) and "current_user" in dir(auth)
    assert current_user.is_anonymous  # outside a request


def test_unknown_names_are_still_attribute_errors() -> None:
    for module in (backo_restful, auth):
        try:
            getattr(module, "no_such_name")  # noqa: B009 - the module's __getattr__ answers
        except AttributeError as error:
            assert "no_such_name" in str(error)
        else:
            raise AssertionError(f"{module.__name__}.no_such_name exists")

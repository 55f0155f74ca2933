"""Every example in README.md and docs/*.md is run here.

- Python blocks are doctests (``>>>`` lines with their exact output), run per page.
  A Python block without ``>>>`` must be preceded by ``<!-- file: path -->`` and be a
  verbatim excerpt of that file of the repository.
- ``console`` blocks hold ``$ curl ...`` commands on http://127.0.0.1:5000, each
  followed by its output: the JSON body, or with ``-i`` the status line, the headers
  shown (each must be in the response, others may be omitted), a blank line and the
  body. An HTML comment ``<!-- app: example.cookies -->`` names the example app that
  serves the blocks after it; ``<!-- app: example.cookies#exports -->`` names another
  instance of it, on a database of its own. Each page replays its commands, in order,
  through the test client of a fresh app on a fresh SQLite file per app and page.
- In a shown body, ``...`` stands for any text (as in doctests), for values that
  change from run to run: tokens, timestamps.
- ``$ flask --app example.cookies backo ...`` runs a command of the app's command
  line (Flask's CLI runner); its output is compared as text, ``...`` included.
- ``$ NAME=$(curl ... | jq -r .key)`` runs the request, which must succeed, and
  keeps ``key`` of its JSON body in the shell variable ``NAME``; later commands of
  the page use it as ``$NAME`` or ``${NAME}`` (outside single quotes, as in a shell).
"""

from __future__ import annotations

import doctest
import enum
import importlib
import inspect
import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BASE_URL = "http://127.0.0.1:5000"

_APP_COMMENT = re.compile(r"<!--\s*app:\s*([\w.]+(?:#\w+)?)\s*-->")
_FILE_COMMENT = re.compile(r"<!--\s*file:\s*([\w./-]+)\s*-->")
_FENCE = re.compile(r"^```\s*([\w-]*)\s*$")
_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
_CAPTURE = re.compile(r"^(\w+)=\$\((curl .*) \| jq -r ((?:\.\w+)+)\)$")
_VARIABLE = re.compile(r"\$(?:(\w+)|\{(\w+)\})")


@dataclass
class Block:
    """A fenced block of a page."""

    page: Path
    line: int  # 1-based line of the opening fence
    language: str
    lines: list[str]
    app: str | None  # the app named by the last ``<!-- app: ... -->`` before it
    file: str | None  # the file named by a ``<!-- file: ... -->`` just before it

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page``, in order."""
    result: list[Block] = []
    app: str | None = None
    last_file: str | None = None
    current: Block | None = None
    for number, line in enumerate(page.read_text(encoding="utf-8").splitlines(), 1):
        fence = _FENCE.match(line)
        if current is not None:
            if line.strip() == "```":
                result.append(current)
                current = None
            else:
                current.lines.append(line)
            continue
        if fence:
            current = Block(page, number, fence.group(1).lower(), [], app, last_file)
            last_file = None
            continue
        if match := _APP_COMMENT.search(line):
            app = match.group(1)
        if match := _FILE_COMMENT.search(line):
            last_file = match.group(1)
        elif line.strip():
            last_file = None
    assert current is None, f"{page.relative_to(ROOT)}: a fenced block is not closed"
    return result


# -- curl -----------------------------------------------------------------------


@dataclass
class Curl:
    """One ``$ curl ...`` command and the output shown after it."""

    where: str
    method: str
    path: str
    headers: dict[str, str]
    body: str | None
    include: bool
    expected: list[str] = field(default_factory=list)


def parse_curl(command: str, where: str) -> Curl:
    """The request that ``command`` sends (the options the docs use, no others)."""
    args = shlex.split(command)
    assert args and args[0] == "curl", f"{where}: only curl commands go in console blocks"
    method: str | None = None
    headers: dict[str, str] = {}
    data: list[str] = []
    url: str | None = None
    include = get = head = False
    rest = iter(args[1:])
    for arg in rest:
        if arg in ("-s", "--silent", "-S", "--show-error", "-g", "--globoff"):
            continue
        if arg in ("-i", "--include"):
            include = True
        elif arg in ("-I", "--head"):
            include = head = True
        elif arg in ("-G", "--get"):
            get = True
        elif arg in ("-X", "--request"):
            method = next(rest)
        elif arg in ("-H", "--header"):
            name, _, value = next(rest).partition(":")
            headers[name.strip()] = value.strip()
        elif arg in ("-d", "--data", "--data-raw", "--data-binary"):
            value = next(rest)
            assert not value.startswith("@"), f"{where}: -d @file is not supported"
            data.append(value)
        elif arg == "--data-urlencode":
            name, equals, value = next(rest).partition("=")
            data.append(f"{name}={quote(value, safe='')}" if equals else quote(name, safe=""))
        elif arg.startswith("-"):
            raise AssertionError(f"{where}: curl option {arg} is not supported here")
        else:
            assert url is None, f"{where}: one URL per command"
            url = arg
    assert url is not None and url.startswith(BASE_URL + "/"), f"{where}: bad URL {url!r}"
    parts = urlsplit(url)
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    body = "&".join(data) if data else None
    if get and body is not None:
        path += ("&" if "?" in path else "?") + body
        body = None
    if method is None:
        method = "HEAD" if head else "GET" if get or body is None else "POST"
    if body is not None and not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = "application/x-www-form-urlencoded"  # as curl does
    return Curl(where, method, path, headers, body, include)


@dataclass
class Command:
    """One ``$ ...`` line of a console block (joined with its continuation lines)
    and the output shown after it."""

    where: str
    text: str
    expected: list[str] = field(default_factory=list)


def commands(block: Block) -> Iterator[Command]:
    """The commands of a console block, each with the output shown after it."""
    lines = iter(enumerate(block.lines, block.line + 1))
    current: Command | None = None
    for number, line in lines:
        if not line.startswith("$ "):
            assert current is not None, f"{block.where}: output before any command"
            current.expected.append(line)
            continue
        if current is not None:
            yield current
        text = line[2:]
        while text.endswith("\\"):
            text = text[:-1] + next(lines)[1]
        current = Command(f"{block.page.relative_to(ROOT)}:{number}", text)
    if current is not None:
        yield current


def expand(command: str, variables: dict[str, str], where: str) -> str:
    """``command`` with its shell variables replaced by their values, except
    inside single quotes (where a shell leaves them too)."""
    out: list[str] = []
    quote: str | None = None
    index = 0
    while index < len(command):
        char = command[index]
        if char == "\\" and quote != "'":
            out.append(command[index : index + 2])
            index += 2
            continue
        if char in "'\"" and quote in (None, char):
            quote = None if quote == char else char
        elif char == "$" and quote != "'" and (match := _VARIABLE.match(command, index)):
            name = match.group(1) or match.group(2)
            assert name in variables, f"{where}: ${name} is not set"
            out.append(variables[name])
            index = match.end()
            continue
        out.append(char)
        index += 1
    return "".join(out)


def _canonical(text: str, where: str) -> str:
    try:
        return json.dumps(json.loads(text))
    except ValueError:
        raise AssertionError(f"{where}: not JSON: {text!r}") from None


def check_response(curl: Curl, response: Any) -> None:
    """Compare a test client response with the output shown for ``curl``."""
    expected = list(curl.expected)
    where = curl.where
    if curl.include:
        assert expected, f"{where}: -i output must start with the status line"
        status_line = expected.pop(0)
        assert status_line == f"HTTP/1.1 {response.status}", (
            f"{where}: got HTTP/1.1 {response.status}"
        )
        while expected and expected[0].strip():
            name, _, value = expected.pop(0).partition(":")
            actual = response.headers.get(name.strip())
            assert actual == value.strip(), f"{where}: header {name}: got {actual!r}"
        if expected:
            expected.pop(0)
    shown = "\n".join(expected).strip()
    text = response.get_data(as_text=True).strip()
    if not shown:
        assert not text, f"{where}: expected no body, got {text!r}"
        return
    if response.mimetype in _TEXT_TYPES:  # compared as text, line by line
        got = "\n".join(text.splitlines())
        assert _ellipsis_match(shown, got), f"{where}: got\n{got}"
        return
    got = _canonical(text, where + " (response)")
    assert _ellipsis_match(_canonical(shown, where), got), f"{where}: got {text}"


#: Bodies shown as text rather than JSON (exports): CSV, and NDJSON's lines.
_TEXT_TYPES = ("text/csv", "application/x-ndjson")


def check_cli(app: Any, name: str, command: Command) -> None:
    """Run ``flask --app <name> ...`` through the app's CLI runner and compare its
    output (text, ``...`` standing for any text) with the one shown."""
    args = shlex.split(command.text)[1:]
    if args[:1] == ["--app"]:
        assert args[1] == name, f"{command.where}: the block's app is {name}"
        args = args[2:]
    result = app.test_cli_runner().invoke(args=args)
    shown = "\n".join(command.expected).strip()
    got = result.output.strip()
    assert result.exit_code == 0, f"{command.where}: exit {result.exit_code}: {got}"
    assert _ellipsis_match(shown, got), f"{command.where}: got\n{got}"


def _ellipsis_match(want: str, got: str) -> bool:
    """Whether ``got`` is ``want``, each ``...`` of which stands for any text."""
    if "..." not in want:
        return want == got
    first, *middle, last = want.split("...")
    if not (got.startswith(first) and got.endswith(last)):
        return False
    position, end = len(first), len(got) - len(last)
    for piece in middle:
        position = got.find(piece, position, end)
        if position < 0:
            return False
        position += len(piece)
    return position <= end


def replay(page: Path, tmp_path: Path) -> int:
    """Run every curl command of ``page``; return how many ran."""
    clients: dict[str, Any] = {}
    variables: dict[str, str] = {}
    count = 0
    for block in blocks(page):
        if block.language != "console":
            continue
        assert block.app, f"{block.where}: name the app first: <!-- app: example.cookies -->"
        if block.app not in clients:
            module = importlib.import_module(block.app.partition("#")[0])
            database = tmp_path / f"{re.sub(r'[.#]', '_', block.app)}.db"
            clients[block.app] = module.create_app(f"sqlite:///{database}").test_client()
        client = clients[block.app]
        for command in commands(block):
            if command.text.startswith("flask "):
                check_cli(client.application, block.app.partition("#")[0], command)
                count += 1
                continue
            capture = _CAPTURE.match(command.text)
            text = capture.group(2) if capture else command.text
            curl = parse_curl(expand(text, variables, command.where), command.where)
            curl.expected = command.expected
            data = curl.body.encode() if curl.body is not None else None
            response = client.open(curl.path, method=curl.method, headers=curl.headers, data=data)
            if capture:
                assert not curl.expected, f"{command.where}: a variable assignment shows nothing"
                assert response.status_code < 300, f"{command.where}: got {response.status}"
                value = response.get_json()
                for key in capture.group(3).split(".")[1:]:
                    value = value[key]
                variables[capture.group(1)] = str(value)
            else:
                check_response(curl, response)
            count += 1
    return count


# -- the tests --------------------------------------------------------------------


def _page_id(page: Path) -> str:
    return str(page.relative_to(ROOT))


def test_pages_exist() -> None:
    names = {_page_id(page) for page in PAGES}
    for name in (
        "README.md",
        "docs/index.md",
        "docs/quickstart.md",
        "docs/models.md",
        "docs/reading.md",
        "docs/writing.md",
        "docs/errors.md",
        "docs/storage.md",
        "docs/layers.md",
        "docs/configuration.md",
        "docs/api.md",
        "docs/auth.md",
        "docs/objects.md",
        "docs/logging.md",
        "docs/describe.md",
    ):
        assert name in names


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_doctests(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)  # whatever a page writes lands here
    result = doctest.testfile(
        str(page),
        module_relative=False,
        encoding="utf-8",
        optionflags=doctest.ELLIPSIS,  # as pytest --doctest-glob does by default
    )
    assert result.failed == 0, f"{result.failed} doctest failure(s) in {_page_id(page)}"


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_code_blocks_are_checked(page: Path) -> None:
    """Python blocks are doctests or excerpts; curl appears only in console blocks."""
    for block in blocks(page):
        text = "\n".join(block.lines)
        if block.language in ("python", "py", "pycon"):
            if ">>> " in text:
                continue
            assert block.file, f"{block.where}: a Python block without >>> needs <!-- file: -->"
            source = (ROOT / block.file).read_text(encoding="utf-8")
            assert text in source, f"{block.where}: not an excerpt of {block.file}"
        elif block.language != "console":
            assert "curl " not in text, f"{block.where}: curl commands go in console blocks"
            assert ">>> " not in text, f"{block.where}: doctests go in python blocks"


#: Pages that walk the API over curl.
CURL_PAGES = (
    "README.md",
    "docs/quickstart.md",
    "docs/reading.md",
    "docs/writing.md",
    "docs/auth.md",
)


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_curl_examples(page: Path, tmp_path: Path) -> None:
    count = replay(page, tmp_path)
    if _page_id(page) in CURL_PAGES:
        assert count > 0, f"{_page_id(page)}: no curl command ran"


@pytest.mark.parametrize("page", PAGES, ids=_page_id)
def test_links(page: Path) -> None:
    """Relative links point at files that exist."""
    for target in _LINK.findall(page.read_text(encoding="utf-8")):
        if "://" in target or target.startswith(("#", "mailto:")):
            continue
        path = (page.parent / target.split("#")[0]).resolve()
        assert path.exists(), f"{_page_id(page)}: broken link {target}"


# -- the API reference -------------------------------------------------------------

_MODULE_HEADING = re.compile(r"^## `([\w.]+)`$")
_NAME_HEADING = re.compile(r"^### `([\w.]+)(\(.*\))?`$")

#: Names that the API reference must document, by module.
PUBLIC = {
    "backo_restful": [
        "DataModel",
        "Schema",
        "Computed",
        "Ref",
        "RefsList",
        "DeleteStrategy",
        "Engine",
        "Engine.collection",
        "Engine.describe",
        "Engine.check",
        "Engine.columns",
        "Engine.etag",
        "Engine.page_etag",
        "Engine.patch_many",
        "Engine.delete_many",
        "setup",
        "current_user",
    ],
    "backo_restful.engine": [
        "ReadOptions",
        "default_engine",
        "get",
        "post",
        "put",
        "patch",
        "delete",
        "Objects",
        *(f"Objects.{name}" for name in ("new", "create", "load", "find")),
        "Object",
        *(f"Object.{name}" for name in ("id", "state", "save", "reload", "delete")),
        *(f"Object.{name}" for name in ("to_dict", "related")),
    ],
    "backo_restful.engine.tags": ["etag_of", "page_etag", "tag_options"],
    "backo_restful.api.conditional": ["parse_tags", "weak_match", "write_conditions"],
    "backo_restful.storage": [
        "PeeweeStorage",
        "PeeweeStorage.statements",
        "PeeweeStorage.ping",
        *(f"PeeweeStorage.{name}" for name in ("create_tables", "plan", "migrate")),
        "Change",
    ],
    "backo_restful.logs": [
        "engine_logger",
        "storage_logger",
        "http_logger",
        "auth_logger",
        "events_logger",
        "actions_logger",
    ],
    "backo_restful.api.basic": [
        *("get", "post", "put", "patch", "delete", "act", "describe", "check"),
        *("patch_many", "delete_many", "DEFAULT_MAX_AFFECTED"),
        "error_response",
        "health",
    ],
    "backo_restful.api.exports": ["export", "negotiate"],
    "backo_restful.lifecycle": ["ActionContext", "Event", "EVENTS"],
    "backo_restful.api.cli": ["backo", "apis_of", "engines_of"],
    "backo_restful.api.flask": ["Api", "Api.routes", "Resource", "Resource.caller"],
    "backo_restful.api.docs_page": ["register", "swagger_ui_folder"],
    "backo_restful.api.openapi": ["openapi_document", "Route", "OPENAPI_VERSION"],
    "backo_restful.auth": [
        *importlib.import_module("backo_restful.auth").__all__,
        *(f"JWTAuth.{name}" for name in ("init_app", "token_of", "verify", "authenticate")),
        "JWTAuth.create_token",
        *(f"Permission.{name}" for name in ("can", "scope", "owner_fields")),
        *(f"User.{name}" for name in ("id", "login", "roles", "has_role", "is_anonymous")),
        "User.claims",
    ],
    "backo_restful.exceptions": [
        name
        for name, value in vars(importlib.import_module("backo_restful.exceptions")).items()
        if isinstance(value, type)
        and issubclass(value, Exception)
        and value.__module__ == "backo_restful.exceptions"
        and not name.startswith("_")
    ],
}


def signature(obj: Any) -> str:
    """``obj``'s parameters as the reference writes them: no annotations, no self."""
    parts: list[str] = []
    star = False
    for parameter in inspect.signature(obj).parameters.values():
        if parameter.name == "self":
            continue
        if parameter.kind is parameter.VAR_POSITIONAL:
            parts.append(f"*{parameter.name}")
            star = True
            continue
        if parameter.kind is parameter.VAR_KEYWORD:
            parts.append(f"**{parameter.name}")
            continue
        if parameter.kind is parameter.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        default = parameter.default
        if default is parameter.empty:
            parts.append(parameter.name)
        elif isinstance(default, enum.Enum):
            parts.append(f"{parameter.name}={type(default).__name__}.{default.name}")
        elif isinstance(default, type):
            parts.append(f"{parameter.name}={default.__name__}")
        else:
            parts.append(f"{parameter.name}={default!r}")
    return f"({', '.join(parts)})"


def reference() -> list[tuple[str, str, str | None]]:
    """``(module, dotted name, signature or None)`` for each entry of docs/api.md."""
    entries = []
    module = None
    for line in (ROOT / "docs" / "api.md").read_text(encoding="utf-8").splitlines():
        if match := _MODULE_HEADING.match(line):
            module = match.group(1)
        elif match := _NAME_HEADING.match(line):
            assert module is not None, f"docs/api.md: {line} is under no module"
            entries.append((module, match.group(1), match.group(2)))
    return entries


def test_api_reference_matches_the_code() -> None:
    entries = reference()
    for module, name, documented in entries:
        obj: Any = importlib.import_module(module)
        for part in name.split("."):
            assert hasattr(obj, part), f"docs/api.md: {module}.{name} does not exist"
            obj = getattr(obj, part)
        if documented is not None:
            assert documented == signature(obj), f"docs/api.md: {module}.{name}{signature(obj)}"
    documented_names = {(module, name) for module, name, _ in entries}
    for module, names in PUBLIC.items():
        for name in names:
            assert (module, name) in documented_names, f"docs/api.md lacks {module}.{name}"


def test_parse_curl() -> None:
    """The parser sends what curl sends."""
    curl = parse_curl(
        "curl -s -X PATCH http://127.0.0.1:5000/cookie/1 "
        "-H 'Content-Type: application/json' -d '{\"jar\": 2}'",
        "here",
    )
    assert (curl.method, curl.path, curl.body) == ("PATCH", "/cookie/1", '{"jar": 2}')
    assert curl.headers == {"Content-Type": "application/json"}
    curl = parse_curl(
        "curl -s -G http://127.0.0.1:5000/cookie --data-urlencode 'filter={\"jar\": 1}'", "here"
    )
    assert (curl.method, curl.path, curl.body) == (
        "GET",
        "/cookie?filter=%7B%22jar%22%3A%201%7D",
        None,
    )
    curl = parse_curl("curl -s http://127.0.0.1:5000/jar -d name=x", "here")
    assert (curl.method, curl.headers["Content-Type"]) == (
        "POST",
        "application/x-www-form-urlencoded",
    )
    with pytest.raises(AssertionError, match="not supported"):
        parse_curl("curl -s -u me http://127.0.0.1:5000/jar", "here")
    with pytest.raises(AssertionError, match="bad URL"):
        parse_curl("curl -s http://localhost/jar", "here")


def test_export_bodies_are_compared_as_text() -> None:
    """A CSV or NDJSON body is its lines (CRLF or LF), ``...`` standing for any text."""
    from werkzeug.wrappers import Response

    curl = Curl("here", "GET", "/cookie", {}, None, False, ["id,type", "1,..."])
    check_response(curl, Response("id,type\r\n1,oat\r\n", mimetype="text/csv"))
    with pytest.raises(AssertionError, match="got"):
        check_response(curl, Response("id,type\r\n2,oat\r\n", mimetype="text/csv"))
    curl = Curl("here", "GET", "/cookie", {}, None, False, ['{"id":1}', '{"id":2}'])
    check_response(curl, Response('{"id":1}\n{"id":2}\n', mimetype="application/x-ndjson"))
    with pytest.raises(AssertionError, match="got"):
        check_response(curl, Response('{"id":1}\n', mimetype="application/x-ndjson"))


def test_variables_and_ellipses() -> None:
    """Shell variables expand outside single quotes; ``...`` matches any text."""
    variables = {"TOKEN": "abc"}
    assert (
        expand(
            """curl -H "Authorization: Bearer $TOKEN" -d '{"$or": "$TOKEN"}'""", variables, "here"
        )
        == """curl -H "Authorization: Bearer abc" -d '{"$or": "$TOKEN"}'"""
    )
    assert expand("curl ${TOKEN}x", variables, "here") == "curl abcx"
    with pytest.raises(AssertionError, match=r"\$OTHER is not set"):
        expand('curl -H "X: $OTHER"', variables, "here")
    capture = _CAPTURE.match("T=$(curl -s http://127.0.0.1:5000/login -d x | jq -r .token)")
    assert capture is not None
    assert capture.groups() == ("T", "curl -s http://127.0.0.1:5000/login -d x", ".token")
    assert _ellipsis_match('{"token": "eyJ..."}', '{"token": "eyJhbGc.x.y"}')
    assert _ellipsis_match('{"a": "...", "b": "..."}', '{"a": "1", "b": "2"}')
    assert not _ellipsis_match('{"a": "...", "b": "..."}', '{"a": "1", "c": "2"}')
    assert not _ellipsis_match('{"a": "x..."}', '{"a": "y"}')
    assert not _ellipsis_match("ab...ba", "aba")

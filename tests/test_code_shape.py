"""The library keeps the shape docs/layers.md describes: small modules, classes
and functions (ruff's C90 keeps their complexity), each database difference in
its dialect, each error code in one class."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "backo_restful"
MODULES = sorted(PACKAGE.rglob("*.py"))

MAX_MODULE = 600
MAX_CLASS = 400
MAX_FUNCTION = 60


def _name(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


def _definitions(tree: ast.AST) -> list[ast.AST]:
    return [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
    ]


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_sizes(path: Path) -> None:
    source = path.read_text()
    lines = source.count("\n")
    assert lines <= MAX_MODULE, f"{_name(path)} has {lines} lines, over {MAX_MODULE}"
    for node in _definitions(ast.parse(source)):
        assert isinstance(node, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        length = (node.end_lineno or node.lineno) - first + 1
        limit = MAX_CLASS if isinstance(node, ast.ClassDef) else MAX_FUNCTION
        where = f"{_name(path)}:{node.lineno} {node.name}"
        assert length <= limit, f"{where} has {length} lines, over {limit}"


def test_the_sizes_are_measured() -> None:
    # The limits above must see the library: a glob that finds nothing passes.
    assert len(MODULES) >= 20
    assert any(path.name == "core.py" for path in MODULES)


@pytest.mark.parametrize("path", MODULES, ids=_name)
def test_no_bare_assert(path: Path) -> None:
    # ``python -O`` drops them: a check the library relies on must raise.
    tree = ast.parse(path.read_text())
    asserts = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.Assert)]
    assert not asserts, f"{_name(path)}: assert on lines {asserts}"


def test_database_differences_live_in_the_dialects() -> None:
    found = []
    for path in MODULES:
        if "dialect" in path.name:
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if re.search(r"backend\s*(==|!=|\bin\b)", line):
                found.append(f"{_name(path)}:{number}: {line.strip()}")
    assert not found, "\n".join(found)


def test_raise_sites_name_their_class() -> None:
    # Each code belongs to one exception class; the library never picks one
    # at a raise site with ``code=``.
    found = []
    for path in MODULES:
        if path.parent.name == "exceptions":
            continue
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and any(k.arg == "code" for k in node.keywords):
                found.append(f"{_name(path)}:{node.lineno}")
    assert not found, found


STORAGE_WRITES = {
    "insert", "insert_returning", "update", "update_returning", "update_many",
    "set_link", "m2m_add", "m2m_remove", "delete",
}  # fmt: skip


def test_every_write_of_the_engine_goes_through_changes() -> None:
    # The events of objects fire in engine/changes.py (and events.py, which
    # writes what before_save handlers change): a write that went to the storage
    # by another path would skip them.
    found = []
    for path in sorted((PACKAGE / "engine").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in STORAGE_WRITES
                and isinstance(node.value, ast.Attribute)
                and node.value.attr == "storage"
            ):
                found.append(f"{_name(path)}:{node.lineno} storage.{node.attr}")
    write_path = ("engine/changes.py", "engine/events.py")
    assert found and all(any(p in where for p in write_path) for where in found), found


def test_the_engine_keeps_no_call_state_in_globals() -> None:
    # The caller's rights and the budget travel in the call's Operation.
    found = [
        _name(path)
        for path in sorted((PACKAGE / "engine").glob("*.py"))
        if "ContextVar" in path.read_text() or "contextvars" in path.read_text()
    ]
    assert not found, found


def test_layers_md_lays_out_every_module() -> None:
    text = (PACKAGE.parent / "docs" / "layers.md").read_text(encoding="utf-8")
    block = text.split("## How the code is laid out", 1)[1].split("```text\n", 1)[1]
    listed = set()
    folders: dict[int, str] = {}
    for line in block.split("```", 1)[0].splitlines()[1:]:
        match = re.match(r"^([│ ├└─]*)(\S+)", line)
        assert match, line
        depth = len(match[1]) // 4
        name = match[2]
        path = "".join(folders[level] for level in range(1, depth)) + name
        if name.endswith("/"):
            folders[depth] = name
        else:
            listed.add(path)
    modules = {
        str(path.relative_to(PACKAGE))
        for path in MODULES
        if path.name != "_utils.py" and (path.name != "__init__.py" or path.parent == PACKAGE)
    }
    assert listed == modules

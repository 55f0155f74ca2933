"""The query language: filters, sort keys, sparse fields and paging, checked and typed.

The engine turns ``filter_`` into a tree of :class:`Condition`, :class:`And`,
:class:`Or` and :class:`Not` nodes, ``sort`` into :class:`SortKey` objects and
``fields`` into a selection; storage compiles them to SQL. :func:`parse_args` turns
an HTTP query string into the same keyword arguments. Every unknown or malformed
parameter is a :class:`~backo_restful.exceptions.BadRequest` that names it.

Paths name a field through relations: ``jar.name`` (through a ``Ref``),
``cookies.type`` (through a ``RefsList``: at least one related object matches).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import re2
from marshmallow import ValidationError
from marshmallow import fields as ma

from .exceptions import (
    InvalidFilter,
    InvalidParameter,
    InvalidPattern,
    InvalidSort,
    LimitExceeded,
    UnknownField,
    UnknownOperator,
    UnknownParameter,
)
from .model import MAX_ID, RESERVED_NAMES, Collection, RelationInfo, check_id, storable

#: Query parameters with a meaning of their own; every other one is a filter.
RESERVED = RESERVED_NAMES

#: Filter operators. ``$ne``, ``$nin`` and ``$null`` are built from the others.
OPERATORS = (
    "$eq", "$ne", "$gt", "$gte", "$lt", "$lte", "$in", "$nin", "$null",
    "$contains", "$icontains", "$startswith", "$re",
)  # fmt: skip
_STRING_OPERATORS = ("$contains", "$icontains", "$startswith", "$re")
_ORDERING = ("$gt", "$gte", "$lt", "$lte")

#: Bounds that keep one request's SQL small.
MAX_PATH = 8
MAX_NESTING = 16
MAX_CONDITIONS = 100
#: The relations the paths of one filter may go through in all (``jar.name`` goes
#: through one): each is a join the database plans, and PostgreSQL's planning time
#: grows fast with their number.
MAX_RELATION_STEPS = 32
MAX_IN = 1000
MAX_PATTERN = 500
#: A repeat whose count may vary by more than this is "wide" (``*``, ``+``,
#: ``{0,255}``): a ``$re`` pattern may hold one.
WIDE_REPEAT = 16
#: The largest matcher a ``$re`` pattern may compile to (RE2's program size):
#: fixed repeats count too (``[ab]{255}`` is 255 steps).
MAX_PROGRAM = 5000
#: The ways the other repeats and the alternatives of a ``$re`` pattern may
#: combine: the product of their ranges and numbers (``?`` counts 2, ``{1,3}`` 3,
#: ``(a|b|c)`` 3).
REPEAT_BUDGET = 1024

_JSON_STORED = (ma.Dict, ma.List, ma.Tuple, ma.Nested, ma.Enum, ma.Raw)
_DIGITS = re.compile(r"[0-9]+")


@dataclass(frozen=True, eq=False)
class Path:
    """A field reached from a collection through zero or more relations.

    ``field`` is ``"id"`` or a scalar field name of the last collection reached.
    """

    steps: tuple[RelationInfo, ...]
    field: str
    text: str

    @property
    def multi(self) -> bool:
        """Does the path go through a ``RefsList`` (many values per object)?"""
        return any(step.multi for step in self.steps)


@dataclass(frozen=True, eq=False)
class Condition:
    """``path`` compared with ``value`` by a positive operator.

    ``op`` is one of ``eq gt gte lt lte in notnull isnull contains icontains
    startswith re``;
    negations are :class:`Not` nodes, so a null value (or a missing related
    object) matches ``$ne``, ``$nin`` and ``$not``.
    """

    path: Path
    op: str
    value: Any = None


@dataclass(frozen=True, eq=False)
class And:
    nodes: tuple[Node, ...]


@dataclass(frozen=True, eq=False)
class Or:
    nodes: tuple[Node, ...]


@dataclass(frozen=True, eq=False)
class Not:
    node: Node


Node = Condition | And | Or | Not


@dataclass(frozen=True, eq=False)
class SortKey:
    """Order by ``path`` (through ``Ref`` fields only), descending if asked."""

    path: Path
    descending: bool = False


def details(**values: Any) -> dict[str, Any]:
    """The ``details`` of an error naming ``values``, each as a JSON error body may show it."""
    return {key: _printable(value) for key, value in values.items()}


#: ``hidden(collection, name)``: the caller may not read field ``name``, so for
#: them it does not exist (see :mod:`backo_restful.auth`).
Hidden = Callable[[Collection, str], bool]


def resolve_path(
    collection: Collection, text: Any, *, purpose: str = "filter", hidden: Hidden | None = None
) -> Path:
    """The :class:`Path` written ``text`` (external names joined by dots).

    :raises BadRequest: for an unknown (or ``hidden``) field, or one that cannot
        serve ``purpose``.
    """
    error: type[InvalidFilter | InvalidSort] = InvalidSort if purpose == "sort" else InvalidFilter
    if not isinstance(text, str) or not text:
        raise error(f"Invalid field path {text!r}.", details(field=text))
    segments = text.split(".")
    if len(segments) > MAX_PATH:
        raise error(f"Path {text!r} is longer than {MAX_PATH} fields.", details(field=text))
    current = collection
    steps: list[RelationInfo] = []
    field = "id"
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment == "id":
            if not last:
                raise error(f"{text!r}: 'id' has no fields.", details(field=text))
            break
        name = current.by_key.get(segment)
        if name is None or (hidden is not None and hidden(current, name)):
            where = f" in {text!r}" if len(segments) > 1 else ""
            raise UnknownField(
                f"Unknown field {segment!r}{where}: {current.name} has no such field.",
                details(field=text, collection=current.name),
            )
        relation = current.relations.get(name)
        if relation is not None:
            steps.append(relation)
            current = relation.target
            continue
        if not last:
            raise error(f"{text!r}: {segment!r} is not a relation.", details(field=text))
        if isinstance(current.scalars[name], _JSON_STORED):
            raise error(
                f"Cannot {purpose} on {text!r}: it is stored as a JSON document.",
                details(field=text),
            )
        field = name
    path = Path(tuple(steps), field, text)
    if purpose == "sort" and path.multi:
        raise error(
            f"Cannot sort on {text!r}: it goes through a list of objects.", details(field=text)
        )
    return path


def _field_of(collection: Collection, path: Path) -> ma.Field | None:
    if path.field == "id":
        return None
    owner = path.steps[-1].target if path.steps else collection
    return owner.scalars[path.field]


# -- filters ---------------------------------------------------------------------------


def parse_filter(
    collection: Collection, filter_: Any, *, from_text: bool = False, hidden: Hidden | None = None
) -> Node | None:
    """The filter tree of ``filter_`` (``{path: value}``, ``{path: {"$op": value}}``,
    ``{"$and": [...]}``, ``{"$or": [...]}``, ``{"$not": {...}}``), all ANDed.

    :param from_text: the values come from a query string (all strings).
    :param hidden: fields the caller may not read, refused as unknown.
    :raises BadRequest: for an unknown field or operator, or a value of the wrong type.
    """
    if filter_ is None:
        return None
    return _parse_group(collection, filter_, _Parsing(from_text, hidden), 0)


@dataclass
class _Parsing:
    """The state of one filter's parsing."""

    from_text: bool
    hidden: Hidden | None
    conditions: int = 0
    steps: int = 0

    def count(self, path: Path) -> None:
        """Count one more condition, on ``path``, against the limits of a filter."""
        self.conditions += 1
        if self.conditions > MAX_CONDITIONS:
            raise InvalidFilter(f"A filter has more than {MAX_CONDITIONS} conditions.")
        self.steps += len(path.steps)
        if self.steps > MAX_RELATION_STEPS:
            raise InvalidFilter(
                f"A filter goes through more than {MAX_RELATION_STEPS} relations in all "
                "(each field of a path but the last is one)."
            )


def _parse_group(collection: Collection, filter_: Any, parsing: _Parsing, nesting: int) -> Node:
    if nesting > MAX_NESTING:
        raise InvalidFilter(f"Filters nest deeper than {MAX_NESTING} levels.")
    if not isinstance(filter_, Mapping):
        raise InvalidFilter(
            "A filter must be an object of field paths to values.", details(value=filter_)
        )
    nodes: list[Node] = []
    for key, value in filter_.items():
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not value:
                raise InvalidFilter(f"{key} takes a non-empty list of filters.", details(field=key))
            parts = tuple(_parse_group(collection, part, parsing, nesting + 1) for part in value)
            nodes.append(And(parts) if key == "$and" else Or(parts))
        elif key == "$not":
            nodes.append(Not(_parse_group(collection, value, parsing, nesting + 1)))
        elif isinstance(key, str) and key.startswith("$"):
            raise UnknownOperator(
                f"Unknown operator {key!r}: use $and, $or or $not here.", details(operator=key)
            )
        else:
            nodes.extend(_parse_entry(collection, key, value, parsing))
    if not nodes:
        raise InvalidFilter("An empty filter matches nothing in particular.")
    return nodes[0] if len(nodes) == 1 else And(tuple(nodes))


def _parse_entry(collection: Collection, key: Any, value: Any, parsing: _Parsing) -> list[Node]:
    if not isinstance(key, str):
        raise InvalidFilter(f"Invalid field path {key!r}.", details(field=key))
    text, _, operator = key.rpartition(".$")
    if _:
        operators = {"$" + operator: value}
    elif isinstance(value, Mapping):
        if not value or not all(isinstance(k, str) and k.startswith("$") for k in value):
            raise InvalidFilter(
                f'{key!r}: an object value must hold operators, e.g. {{"$gte": 1}}.',
                details(field=key),
            )
        text, operators = key, dict(value)
    else:
        text, operators = key, {"$eq": value}
    path = resolve_path(collection, text, hidden=parsing.hidden)
    nodes = []
    for op, operand in operators.items():
        parsing.count(path)
        nodes.append(condition(collection, path, op, operand, from_text=parsing.from_text))
    return nodes


def paths_of(node: Node | None) -> list[Path]:
    """The paths a filter tree tests."""
    if node is None:
        return []
    if isinstance(node, And | Or):
        return [path for part in node.nodes for path in paths_of(part)]
    if isinstance(node, Not):
        return paths_of(node.node)
    return [node.path]


def condition(
    collection: Collection, path: Path, op: str, value: Any, *, from_text: bool = False
) -> Node:
    """The node for ``path op value``, with ``value`` typed by the field at ``path``."""
    if op not in OPERATORS:
        raise UnknownOperator(
            f"Unknown operator {op!r} on {path.text!r}; known: {', '.join(OPERATORS)}.",
            details(field=path.text, operator=op),
        )
    field = _field_of(collection, path)
    if op == "$null":
        return _null(path, _boolean(path, value, from_text))
    if op in ("$in", "$nin"):
        values = _list(path, op, value, from_text)
        typed = tuple(_typed(path, field, item, from_text, op) for item in values)
        if any(item is None for item in typed):
            raise InvalidFilter(
                f"{op} on {path.text!r} cannot hold null: use $null.", details(field=path.text)
            )
        node: Node = Condition(path, "in", typed)
        return Not(node) if op == "$nin" else node
    if op in _STRING_OPERATORS:
        if not isinstance(field, ma.String):
            raise InvalidFilter(
                f"{op} works on text fields only, not {path.text!r}.",
                details(field=path.text, operator=op),
            )
        if not isinstance(value, str):
            raise InvalidFilter(
                f"{op} on {path.text!r} takes a string.", details(field=path.text, value=value)
            )
        text = _typed(path, field, value, True, op)
        if op == "$re":
            check_pattern(path, text)
        return Condition(path, op[1:], text)
    typed = _typed(path, field, value, from_text, op)
    if typed is None:
        if op in _ORDERING:
            raise InvalidFilter(
                f"{op} on {path.text!r} cannot compare with null.", details(field=path.text)
            )
        return _null(path, op == "$eq")
    if op == "$ne":
        return Not(Condition(path, "eq", typed))
    return Condition(path, op[1:], typed)


def _null(path: Path, wanted: bool) -> Node:
    """``path`` is (``wanted``) or is not null.

    Through a ``RefsList``, "is null" means at least one related object has a
    null there; on a single value a missing related object counts as null.
    """
    if wanted and path.multi:
        return Condition(path, "isnull")
    present = Condition(path, "notnull")
    return Not(present) if wanted else present


def _boolean(path: Path, value: Any, from_text: bool) -> bool:
    if isinstance(value, bool):
        return value
    if from_text and isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise InvalidFilter(
        f"$null on {path.text!r} takes true or false.", details(field=path.text, value=value)
    )


def _list(path: Path, op: str, value: Any, from_text: bool) -> list[Any]:
    if from_text and isinstance(value, str):
        values: list[Any] = value.split(",") if value else []
    elif isinstance(value, list):
        values = value
    else:
        raise InvalidFilter(
            f"{op} on {path.text!r} takes a list.", details(field=path.text, value=value)
        )
    if len(values) > MAX_IN:
        raise InvalidFilter(
            f"{op} on {path.text!r} holds more than {MAX_IN} values.", details(field=path.text)
        )
    return values


def _typed(path: Path, field: ma.Field | None, value: Any, from_text: bool, op: str) -> Any:
    """``value`` converted by the field's own type (an id for ids and relations)."""
    if value is None or (from_text and value == "null" and field is None):
        return None
    if isinstance(value, (dict, list)):
        raise InvalidFilter(
            f"{op} on {path.text!r} takes a single value.", details(field=path.text, value=value)
        )
    if field is None:
        # An id, like an Integer field, takes its digits as a string too (a URL's
        # ids, a JWT's "sub").
        if isinstance(value, str) and _DIGITS.fullmatch(value) and len(value) < 25:
            value = int(value)
        try:
            return check_id(value)
        except ValueError as exc:
            raise InvalidFilter(
                f"Invalid value for {path.text!r}: {exc}.", details(field=path.text, value=value)
            ) from None
    typed = value
    if not isinstance(value, (dt.date, dt.time, uuid.UUID)):
        try:
            typed = field._deserialize(value, path.field, None)
        except ValidationError as exc:
            reason = " ".join(_flatten(exc.messages))
            raise InvalidFilter(
                f"Invalid value for {path.text!r}: {reason}", details(field=path.text, value=value)
            ) from None
    typed, problem = storable(typed)
    if problem:
        raise InvalidFilter(
            f"Invalid value for {path.text!r}: {problem}", details(field=path.text, value=value)
        )
    if isinstance(field, ma.UUID):
        typed = str(typed)
    return typed


# ``$re`` takes the part of regular expression syntax that SQLite (Python's re),
# PostgreSQL and MariaDB read alike, and nothing that can backtrack badly.
_RE_TOKEN = re.compile(
    r"""\\[.^$|?*+()\[\]{}\\/\-]   # an escaped metacharacter
    | \\[dDwWsS]                  # a class shorthand
    | \[\^?\]?(?:[^\]\\]|\\.)*\]  # a bracket expression
    | \{\d+(?:,\d*)?\}            # a bounded repeat
    | [.^$|?*+()]                 # an operator
    | [^\\\[\]{}.^$|?*+()]        # a literal character
    """,
    re.VERBOSE,
)


def check_pattern(path: Path, pattern: str) -> None:
    """Refuse a ``$re`` pattern outside the portable subset.

    :raises BadRequest: naming the field and what is not allowed.
    """

    def refuse(reason: str) -> InvalidPattern:
        return InvalidPattern(
            f"Invalid $re pattern for {path.text!r}: {reason}.",
            details(field=path.text, pattern=pattern),
        )

    if len(pattern) > MAX_PATTERN:
        raise refuse(f"longer than {MAX_PATTERN} characters")
    position = _check_tokens(pattern, refuse)
    if position != len(pattern):
        raise refuse(f"{pattern[position : position + 10]!r} is not in the portable syntax")
    try:
        program = compile_pattern(pattern)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        raise refuse(reason.decode() if isinstance(reason, bytes) else str(reason)) from None
    if program.programsize > MAX_PROGRAM:
        raise refuse(f"it compiles to a matcher of {program.programsize} steps, over {MAX_PROGRAM}")


def _re2_options() -> Any:
    options = re2.Options()
    options.log_errors = False  # an error is raised, and told to the client
    options.never_capture = True
    return options


_RE2_OPTIONS = _re2_options()


@functools.lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> Any:
    """``pattern`` compiled by RE2, which matches in time linear in the value (it
    never backtracks). Its ``\\d``, ``\\w`` and ``\\s`` are ASCII classes, as
    on PostgreSQL and MariaDB (``\\s`` with the vertical tab, as there).

    :raises re2.error: for a pattern RE2 cannot read.
    """
    return re2.compile(_RE2_SPACE.sub(_posix_space, pattern), _RE2_OPTIONS)


#: An escape, a bracket expression, or any other character: the escapes ``\s`` and
#: ``\S``, alone or in a bracket expression, are read as such.
_RE2_SPACE = re.compile(r"\\.|\[\^?\]?(?:\\.|[^\]\\])*\]?|.", re.DOTALL)


#: The ASCII classes ``\\d``, ``\\w`` and ``\\s`` stand for, inside a bracket
#: expression (and their complements outside one).
_ASCII_CLASSES = {"d": "0-9", "w": "0-9A-Za-z_", "s": "\\t\\n\\x0b\\f\\r "}


def ascii_classes(pattern: str) -> str:
    """``pattern`` with ``\\d``, ``\\w`` and ``\\s`` (and ``\\D``, ``\\W``,
    ``\\S`` outside brackets) spelt as ASCII bracket expressions, for a matcher
    that reads them by Unicode (MariaDB's)."""

    def expand(match: re.Match[str]) -> str:
        token = match.group()
        if token.startswith("["):
            return re.sub(r"\\.", lambda m: _ASCII_CLASSES.get(m[0][1], m[0]), token)
        if token[:1] == "\\" and token[1:].lower() in _ASCII_CLASSES:
            negated = "^" if token[1].isupper() else ""
            return f"[{negated}{_ASCII_CLASSES[token[1].lower()]}]"
        return token

    return _RE2_SPACE.sub(expand, pattern)


def _posix_space(match: re.Match[str]) -> str:
    """RE2's ``\\s`` leaves out the vertical tab: its ``[:space:]`` does not."""
    token = match.group()
    if token in ("\\s", "\\S"):
        return "[[:space:]]" if token == "\\s" else "[[:^space:]]"
    if token.startswith("["):
        return re.sub(
            r"\\.", lambda m: {"\\s": "[:space:]", "\\S": "[:^space:]"}.get(m[0], m[0]), token
        )
    return token


def _check_tokens(pattern: str, refuse: Callable[[str], InvalidPattern]) -> int:
    """Walk ``pattern`` token by token, refusing what is not portable or may
    match slowly; return where the portable syntax ends."""
    position = 0
    depth = 0
    quantified_group = [False]  # per open group: does it hold a quantifier?
    alternatives = [0]  # per open group: how many "|" it holds itself
    branching = [False]  # per open group: does it hold a "|", in a nested group too?
    cost = _Cost()
    previous = ""
    for match in _RE_TOKEN.finditer(pattern):
        if match.start() != position:
            break
        token = match.group()
        position = match.end()
        if token.startswith("[") and ("[:" in token or "[=" in token or "[." in token):
            raise refuse("POSIX classes like [:alpha:] are not portable")
        if token.startswith("["):
            _check_brackets(token, refuse)
        if token == "(":
            if pattern.startswith("(?", match.start()):
                raise refuse("(?...) groups are not portable")
            depth += 1
            quantified_group.append(False)
            alternatives.append(0)
            branching.append(False)
        elif token == ")":
            if depth == 0:
                raise refuse("unbalanced parenthesis")
            depth -= 1
            inner = quantified_group.pop()
            quantified_group[-1] = quantified_group[-1] or inner
            choices = alternatives.pop()
            branches = branching.pop() or choices > 0
            branching[-1] = branching[-1] or branches
            cost.choose(choices + 1, refuse)
            previous = ")" + ("*" if inner else "") + ("|" if branches else "")
            continue
        elif token == "|":
            alternatives[-1] += 1
        elif token in ("*", "+", "?") or token.startswith("{"):
            if previous in ("", "|", "(", "^", "$", "*", "+", "?") or previous[:1] == "{":
                raise refuse("a repeat must follow something to repeat (no lazy or nested repeats)")
            if previous.startswith(")") and len(previous) > 1:
                # Both make the number of ways to match grow exponentially.
                raise refuse("a repeated group may hold neither a repeat nor alternatives")
            cost.add(token, refuse)
            quantified_group[-1] = True
        previous = token
    if depth and position == len(pattern):
        raise refuse("unbalanced parenthesis")
    cost.choose(alternatives[0] + 1, refuse)
    return position


#: The escapes a bracket expression may hold: metacharacters, \d, \w and \s.
_BRACKET_ESCAPE = re.compile(r"\\[^.^$|?*+()\[\]{}\\/\-dws]")


def _check_brackets(token: str, refuse: Callable[[str], InvalidPattern]) -> None:
    """Refuse what a bracket expression holds that databases read differently."""
    inner = token.replace("\\\\", "")  # escaped backslashes are plain characters
    if re.search(r"\\[DWS]", inner):
        raise refuse(r"\D, \W and \S are not portable inside [...]: use [^...]")
    escape = _BRACKET_ESCAPE.search(inner)
    if escape:
        raise refuse(f"{escape.group()!r} is not in the portable syntax")
    if re.search(r"\\[dws]-[^\]]|[^\[^]-\\[dws]", inner):
        raise refuse(r"a class like \d cannot be the end of a range")


class _Cost:
    """How many ways the repeats and alternatives of a pattern seen so far may
    match: a backtracking matcher may try each of them."""

    def __init__(self) -> None:
        self.wide = 0
        self.ways = 1

    def choose(self, ways: int, refuse: Callable[[str], InvalidPattern]) -> None:
        """Count a group of ``ways`` alternatives."""
        self.ways *= ways
        if self.ways > REPEAT_BUDGET:
            raise refuse(self.too_many)

    @property
    def too_many(self) -> str:
        return (
            "its repeats and alternatives may combine in too many ways (the ranges of the "
            f"repeats besides the widest, and the numbers of alternatives, multiply to over "
            f"{REPEAT_BUDGET})"
        )

    def add(self, token: str, refuse: Callable[[str], InvalidPattern]) -> None:
        """Count repeat ``token``; refuse it if the pattern's cost gets unbounded."""
        low, high = _repeat_range(token)
        if high is not None and high > 255:
            raise refuse("repeat counts go up to 255")
        if high is None or high - low > WIDE_REPEAT:
            self.wide += 1
            if self.wide > 1:
                # Each wide repeat multiplies the ways a backtracking matcher
                # (MariaDB's) tries to match by the length of the value.
                raise refuse(
                    f"at most one wide repeat (*, +, {{m,}} or {{m,n}} with n - m over "
                    f"{WIDE_REPEAT}) per pattern"
                )
        else:
            self.choose(high - low + 1, refuse)


def _repeat_range(token: str) -> tuple[int, int | None]:
    """The fewest and most times a repeat token matches (None: no most)."""
    if token in ("*", "+", "?"):
        return (1 if token == "+" else 0), (1 if token == "?" else None)
    low, comma, high = token[1:-1].partition(",")
    if not comma:
        return int(low), int(low)
    return int(low), (int(high) if high else None)


# -- sort, fields, counts ------------------------------------------------------------------


def parse_sort(
    collection: Collection, sort: Iterable[str] | str | None, *, hidden: Hidden | None = None
) -> list[SortKey]:
    """Sort keys from field paths, ``-path`` for descending (``jar.name``, ``-id``).

    :raises BadRequest: for an unknown (or ``hidden``) field or one that cannot be
        sorted on.
    """
    if sort is None:
        return []
    if isinstance(sort, str):
        sort = sort.split(",")
    if not isinstance(sort, list | tuple):
        raise InvalidSort("The sort must be a list of field paths.", details(sort=sort))
    keys: list[SortKey] = []
    seen: set[str] = set()
    for item in sort:
        if not isinstance(item, str) or not item.lstrip("-"):
            raise InvalidSort(
                f"Invalid sort key {item!r}: expected a field path, '-' for descending.",
                details(sort=item),
            )
        descending = item.startswith("-")
        text = item[1:] if descending else item
        path = resolve_path(collection, text, purpose="sort", hidden=hidden)
        key = ".".join(step.name for step in path.steps) + "." + path.field
        if key in seen:
            raise InvalidSort(f"{path.text!r} is sorted on twice.", details(field=path.text))
        seen.add(key)
        keys.append(SortKey(path, descending))
    return keys


Selection = dict[str, "Selection | None"]


def parse_fields(
    collection: Collection, fields: Iterable[str] | str | None, *, hidden: Hidden | None = None
) -> Selection | None:
    """The sparse-fields selection of ``fields`` (``type``, ``jar.name``), or None for all.

    A path through a relation selects the relation and, inside its expansion,
    the named fields. The id is always shown.
    :raises BadRequest: for an unknown (or ``hidden``) field.
    """
    if fields is None:
        return None
    if isinstance(fields, str):
        fields = [part for part in fields.split(",") if part]
    if not isinstance(fields, list | tuple) or not all(isinstance(f, str) for f in fields):
        raise InvalidParameter(
            "'fields' must be a list of field paths.", details(parameter="fields")
        )
    selection: Selection = {}
    for text in fields:
        current, node = collection, selection
        segments = text.split(".")
        if len(segments) > MAX_PATH:
            raise InvalidParameter(f"Path {text!r} is too long.", details(parameter="fields"))
        for index, segment in enumerate(segments):
            if segment == "id" and index == len(segments) - 1:
                break
            name = current.by_key.get(segment)
            if name is None or (hidden is not None and hidden(current, name)):
                raise UnknownField(
                    f"Unknown field {segment!r} in fields={text!r}.",
                    details(field=text, collection=current.name),
                )
            last = index == len(segments) - 1
            relation = current.relations.get(name)
            if relation is None:
                if not last:
                    raise InvalidParameter(
                        f"fields={text!r}: {segment!r} is not a relation.",
                        details(parameter="fields"),
                    )
                node[name] = None
                break
            if last:
                node.setdefault(name, None)
                break
            child = node.get(name)
            if child is None:
                child = node[name] = {}
            current, node = relation.target, child
    return selection


COUNT_MODES = ("exact", "estimate", "none")


def check_count(name: str, value: Any, *, maximum: int = MAX_ID, setting: str | None = None) -> int:
    """``value`` if it is an integer from 0 to ``maximum``.

    :param setting: the server setting behind ``maximum``, named in the message.
    :raises BadRequest: naming the parameter (and the setting, if any).
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidParameter(
            f"Parameter {name!r} must be a non-negative integer.",
            details(parameter=name, value=value),
        )
    if value > maximum:
        where = f" ({setting}={maximum})" if setting else f" ({maximum})"
        raise LimitExceeded(
            f"Parameter {name!r} is {value}, over the server's maximum{where}.",
            {"parameter": name, "value": _printable(value), "maximum": maximum, "setting": setting},
        )
    return value


# -- HTTP query strings ----------------------------------------------------------------------


def parse_args(
    collection: Collection,
    args: Iterable[tuple[str, list[str]]],
    *,
    max_depth: int | None = None,
    hidden: Hidden | None = None,
) -> dict[str, Any]:
    """Keyword arguments for ``get`` from a query string's ``(name, values)`` pairs.

    Flat filters (``?jar=1&year.$gte=2000``) and a JSON ``?filter={...}`` combine.
    ``hidden(collection, name)`` tells the fields the caller may not read: to
    them, such a field does not exist.

    :raises BadRequest: for an unknown, repeated or malformed parameter.
    """
    result: dict[str, Any] = {}
    flat: list[Node] = []
    flat_keys: set[str] = set()
    parsing = _Parsing(from_text=False, hidden=hidden)
    for name, values in args:
        if len(values) != 1:
            raise InvalidParameter(
                f"Parameter {name!r} is given {len(values)} times.", details(parameter=name)
            )
        (value,) = values
        if name in ("depth", "limit", "offset"):
            if not _DIGITS.fullmatch(value):
                raise InvalidParameter(
                    f"Parameter {name!r} must be a non-negative integer, not {value[:50]!r}.",
                    details(parameter=name, value=value),
                )
            # Anything this long is over every maximum; don't parse thousands of digits.
            result[name] = int(value) if len(value) <= 30 else 10**30
            check_count(name, result[name])
        elif name in ("sort", "fields"):
            result[name] = [part for part in value.split(",")] if value else []
        elif name == "count":
            if value not in COUNT_MODES:
                raise InvalidParameter(
                    f"Parameter 'count' is one of {', '.join(COUNT_MODES)}.",
                    details(parameter="count", value=value),
                )
            result["count"] = value
        elif name in ("after", "before"):
            result[name] = value
        elif name == "filter":
            result["filter_json"] = _json_filter(value)
        else:
            text, dollar, operator = name.rpartition(".$")
            path_text = text if dollar else name
            head = path_text.split(".", 1)[0]
            field = collection.by_key.get(head)
            if head != "id" and (field is None or hidden and hidden(collection, field)):
                raise UnknownParameter(
                    f"Unknown query parameter {name!r}: not one of {', '.join(RESERVED)} "
                    f"nor a field of {collection.name}.",
                    details(parameter=name),
                )
            path = resolve_path(collection, path_text, hidden=hidden)
            op = "$" + operator if dollar else "$eq"
            parsing.count(path)
            flat.append(condition(collection, path, op, value, from_text=True))
            flat_keys.add(path_text)
    nodes = list(flat)
    json_filter = result.pop("filter_json", None)
    if json_filter is not None:
        nodes.append(_parse_group(collection, json_filter, parsing, 0))
    if nodes:
        result["filter_"] = nodes[0] if len(nodes) == 1 else And(tuple(nodes))
    if max_depth is not None and "depth" in result:
        check_count("depth", result["depth"], maximum=max_depth, setting="BACKO_MAX_DEPTH")
    return result


def parse_json(text: str | bytes) -> Any:
    """``text`` parsed as JSON is defined (RFC 8259): ``NaN``, ``Infinity`` and
    numbers too large for a float are not JSON, and nothing could send them back.

    :raises ValueError: if ``text`` is not JSON.
    """
    return json.loads(text, parse_constant=_not_json, parse_float=_finite)


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    number = float(text)
    if number in (float("inf"), float("-inf")):
        raise ValueError(f"{text[:30]} is too large a number")
    return number


def _json_filter(value: str) -> Any:
    try:
        parsed = parse_json(value)
    except (ValueError, RecursionError):
        raise InvalidFilter(
            "Parameter 'filter' is not valid JSON.", details(parameter="filter")
        ) from None
    if not isinstance(parsed, dict):
        raise InvalidFilter(
            "Parameter 'filter' must be a JSON object of field paths to values.",
            details(parameter="filter"),
        )
    return parsed


# -- helpers -----------------------------------------------------------------------------


def _printable(value: Any) -> Any:
    """``value`` as it may appear in a JSON error body."""
    if isinstance(value, str):
        return value[:100].encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, bool | float) or value is None:
        return value
    if isinstance(value, int):
        return value if -(2**63) <= value <= MAX_ID else str(value)[:30]
    return repr(value)[:100]


def _flatten(messages: Any) -> list[str]:
    if isinstance(messages, str):
        return [messages]
    if isinstance(messages, Mapping):
        return [m for value in messages.values() for m in _flatten(value)]
    return [m for value in messages for m in _flatten(value)]

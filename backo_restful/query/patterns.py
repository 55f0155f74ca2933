"""The portable ``$re`` patterns: the part of regular expression syntax that
SQLite (Python's re), PostgreSQL and MariaDB read alike, matched by RE2."""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from typing import Any

import re2

from ..exceptions import InvalidPattern
from ._utils import details
from .paths import Path

#: The longest ``$re`` pattern, in characters.
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

    :raises InvalidPattern: naming the field and what is not allowed.
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
    groups = _Groups(refuse)
    for match in _RE_TOKEN.finditer(pattern):
        if match.start() != position:
            break
        position = match.end()
        groups.read(match.group(), option=pattern.startswith("(?", match.start()))
    if groups.depth and position == len(pattern):
        raise refuse("unbalanced parenthesis")
    groups.cost.choose(groups.alternatives[0] + 1, refuse)
    return position


class _Groups:
    """The tokens of a pattern read so far: its open groups (the outermost, the
    whole pattern, first) and what each holds."""

    def __init__(self, refuse: Callable[[str], InvalidPattern]) -> None:
        self.refuse = refuse
        self.quantified = [False]  # per open group: does it hold a quantifier?
        self.alternatives = [0]  # per open group: how many "|" it holds itself
        self.branching = [False]  # per open group: does it hold a "|", in a nested group too?
        self.cost = _Cost()
        self.previous = ""

    @property
    def depth(self) -> int:
        """How many groups are open."""
        return len(self.quantified) - 1

    def read(self, token: str, *, option: bool) -> None:
        """Take the next token (``option``: a ``(`` that starts ``(?``)."""
        if token.startswith("["):
            _check_brackets(token, self.refuse)
        if token == "(":
            if option:
                raise self.refuse("(?...) groups are not portable")
            self.quantified.append(False)
            self.alternatives.append(0)
            self.branching.append(False)
        elif token == ")":
            self._close()
            return
        elif token == "|":
            self.alternatives[-1] += 1
        elif token in ("*", "+", "?") or token.startswith("{"):
            self._repeat(token)
        self.previous = token

    def _close(self) -> None:
        if self.depth == 0:
            raise self.refuse("unbalanced parenthesis")
        inner = self.quantified.pop()
        self.quantified[-1] = self.quantified[-1] or inner
        choices = self.alternatives.pop()
        branches = self.branching.pop() or choices > 0
        self.branching[-1] = self.branching[-1] or branches
        self.cost.choose(choices + 1, self.refuse)
        self.previous = ")" + ("*" if inner else "") + ("|" if branches else "")

    def _repeat(self, token: str) -> None:
        previous = self.previous
        if previous in ("", "|", "(", "^", "$", "*", "+", "?") or previous[:1] == "{":
            raise self.refuse(
                "a repeat must follow something to repeat (no lazy or nested repeats)"
            )
        if previous.startswith(")") and len(previous) > 1:
            # Both make the number of ways to match grow exponentially.
            raise self.refuse("a repeated group may hold neither a repeat nor alternatives")
        self.cost.add(token, self.refuse)
        self.quantified[-1] = True


#: The escapes a bracket expression may hold: metacharacters, \d, \w and \s.
_BRACKET_ESCAPE = re.compile(r"\\[^.^$|?*+()\[\]{}\\/\-dws]")


def _check_brackets(token: str, refuse: Callable[[str], InvalidPattern]) -> None:
    """Refuse what a bracket expression holds that databases read differently."""
    if "[:" in token or "[=" in token or "[." in token:
        raise refuse("POSIX classes like [:alpha:] are not portable")
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

"""The filter tree: :class:`Condition` leaves under :class:`And`, :class:`Or`
and :class:`Not` nodes, which storage compiles to SQL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .paths import Path


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


def paths_of(node: Node | None) -> list[Path]:
    """The paths a filter tree tests."""
    if node is None:
        return []
    if isinstance(node, And | Or):
        return [path for part in node.nodes for path in paths_of(part)]
    if isinstance(node, Not):
        return paths_of(node.node)
    return [node.path]

"""The query language: filters, sort keys, sparse fields and paging, checked and typed.

The engine turns ``filter_`` into a tree of :class:`Condition`, :class:`And`,
:class:`Or` and :class:`Not` nodes, ``sort`` into :class:`SortKey` objects and
``fields`` into a selection; storage compiles them to SQL. :func:`parse_args` turns
an HTTP query string into the same keyword arguments. Every unknown or malformed
parameter is a :class:`~backo_restful.exceptions.BadRequest` that names it.

One module per concern: :mod:`.paths` (field paths), :mod:`.nodes` (the filter
tree), :mod:`.conditions` (one typed condition), :mod:`.filters`
(``filter_``), :mod:`.patterns` (portable ``$re``), :mod:`.sort` (``sort`` and
``fields``) and :mod:`.args` (query strings and counts).
"""

from __future__ import annotations

from .args import COUNT_MODES as COUNT_MODES
from .args import RESERVED as RESERVED
from .args import check_count as check_count
from .args import parse_args as parse_args
from .args import parse_json as parse_json
from .conditions import MAX_IN as MAX_IN
from .conditions import OPERATORS as OPERATORS
from .conditions import condition as condition
from .conditions import operators_of as operators_of
from .conditions import typed_value as typed_value
from .filters import MAX_CONDITIONS as MAX_CONDITIONS
from .filters import MAX_NESTING as MAX_NESTING
from .filters import MAX_RELATION_STEPS as MAX_RELATION_STEPS
from .filters import parse_filter as parse_filter
from .nodes import And as And
from .nodes import Condition as Condition
from .nodes import Node as Node
from .nodes import Not as Not
from .nodes import Or as Or
from .nodes import paths_of as paths_of
from .paths import MAX_PATH as MAX_PATH
from .paths import Hidden as Hidden
from .paths import Path as Path
from .paths import field_of as field_of
from .paths import resolve_path as resolve_path
from .patterns import MAX_PATTERN as MAX_PATTERN
from .patterns import MAX_PROGRAM as MAX_PROGRAM
from .patterns import REPEAT_BUDGET as REPEAT_BUDGET
from .patterns import WIDE_REPEAT as WIDE_REPEAT
from .patterns import ascii_classes as ascii_classes
from .patterns import check_pattern as check_pattern
from .patterns import compile_pattern as compile_pattern
from .sort import Selection as Selection
from .sort import SortKey as SortKey
from .sort import parse_fields as parse_fields
from .sort import parse_sort as parse_sort

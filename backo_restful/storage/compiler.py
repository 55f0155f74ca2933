"""Filters, sorts, cursors and scopes compiled into peewee expressions and SQL.

The compiler layer of :class:`~backo_restful.storage.PeeweeStorage`: a filter tree
(:mod:`backo_restful.query`) becomes a condition on the collection's table, with
semi-joins for paths through relations; a sort becomes ``ORDER BY`` terms and the
joins it needs; a cursor's position becomes a keyset condition. Each related
collection with a scope (:data:`Scopes`) shows only the objects it lets through.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import peewee

from ..exceptions import DeclarationError, InvalidCursor
from ..model import Collection, DataModel, LinkStorage, RelationInfo
from ..query import And, Condition, Node, Not, Or, SortKey
from ._utils import Scopes, attr, field_name, scope_of
from .schema import Schema, converter

_COMPARISONS = {
    "eq": operator.eq,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}

#: A join a sort needs: ``(source, alias, on)``, for ``join_from``.
Join = tuple[Any, Any, Any]


@dataclass(frozen=True, slots=True)
class Statements:
    """What every read of a collection's rows starts from, written once."""

    #: ``SELECT <every column>`` (as :meth:`Schema._columns` names them).
    head: str
    #: `` FROM <table> AS t1``.
    source: str
    #: The row of one id (its one parameter).
    by_id: str
    #: ``SELECT COUNT(*) FROM <table> AS t1`` and ``SELECT 1 FROM <table> AS t1``.
    count_all: str
    count_one: str
    #: The name and converter (None: none needed) of each column of ``head``.
    converters: list[tuple[str, Any]]
    #: The names of those columns when none needs a converter.
    plain: list[str] | None


class Columns:
    """The columns of a collection's table (or of an alias of it) by field name:
    what the ``sql=`` of a computed field takes (``columns.price_cents``)."""

    __slots__ = ("_collection", "_source")

    def __init__(self, collection: Collection, source: Any) -> None:
        self._collection = collection
        self._source = source

    def __getattr__(self, name: str) -> Any:
        collection = self._collection
        relation = collection.relations.get(name)
        if name == "id":
            column = self._source.id
        elif name in collection.scalars or (relation is not None and _is_fk_here(relation)):
            column = getattr(self._source, attr(name))
        else:
            raise AttributeError(f"{collection.name} has no stored field {name!r}")
        # Uncoerced: peewee would convert the other operand by this column's type
        # (``price_cents / 100.0`` would divide by the integer 100).
        return column.coerce(False)


class Compiler(Schema):
    """Filter, sort and cursor compilation on the tables of :class:`Schema`."""

    #: The statements of each collection built once (see :meth:`_sql`).
    _statements: dict[str, Statements]

    def attach(self, model: DataModel) -> None:
        """:meth:`Schema.attach`, and a check of the ``sql=`` of computed fields.

        :raises DeclarationError: for one that does not give an SQL expression
            of the collection's columns.
        """
        super().attach(model)
        for collection in model.collections.values():
            for name, computed in collection.computed.items():
                if computed.sql is None:
                    continue
                try:
                    expression = self.field_sql(collection, self.table(collection), name)
                except Exception as exc:  # whatever the declared function raises
                    raise DeclarationError(
                        f"sql= of the computed field fails: {type(exc).__name__}: {exc}",
                        collection=collection.name,
                        field=name,
                    ) from exc
                if not isinstance(expression, peewee.Node):
                    raise DeclarationError(
                        "sql= of the computed field must give a peewee expression",
                        collection=collection.name,
                        field=name,
                    )

    def field_sql(self, collection: Collection, source: Any, name: str) -> Any:
        """The SQL of field ``name`` (or ``"id"``) of ``collection`` on ``source``
        (its table or an alias): a column, or a computed field's expression."""
        if name == "id":
            return source.id
        computed = collection.computed.get(name)
        if computed is not None and computed.sql is not None:
            return computed.sql(Columns(collection, source))
        return getattr(source, attr(name))

    def _sql(self, collection: Collection) -> Statements:
        """The statements every read of ``collection`` starts from."""
        statements = self._statements.get(collection.name)
        if statements is None:
            table = self.table(collection)
            rows = table.select(*self._columns(collection))
            select = rows.sql()[0]
            cut = select.rindex(" FROM ")
            converters = [
                (field_name(name), converter(field)) for name, field in table._meta.fields.items()
            ]
            plain = all(read is None for _, read in converters)
            statements = self._statements[collection.name] = Statements(
                head=select[:cut],
                source=select[cut:],
                by_id=rows.where(table.id == 0).sql()[0],
                count_all=table.select(peewee.fn.COUNT(peewee.SQL("*"))).sql()[0],
                count_one=table.select(peewee.SQL("1")).sql()[0],
                converters=converters,
                plain=[name for name, _ in converters] if plain else None,
            )
        return statements

    def _context(self, collection: Collection) -> Any:
        """A context to write SQL in, where the collection's table is ``t1`` as
        in the statements of the reads."""
        ctx = self.db.get_sql_context()
        ctx.alias_manager[self.table(collection)._meta.table]  # the first table seen: t1
        # As inside a SELECT: a subquery in the filter is written in parentheses.
        ctx.scope_normal(
            converter=None, in_expr=False, in_function=False, in_projection=False,
            bare_subquery=False, subquery=True,
        )  # fmt: skip
        return ctx

    def _filtered(
        self, collection: Collection, where: Node | None, scope: Node | None, scopes: Scopes | None
    ) -> tuple[str, list[Any]]:
        """`` WHERE ...`` (or nothing) of ``where`` and ``scope``, as SQL and its
        parameters."""
        conditions = self._conditions(collection, where, scope, scopes)
        if not conditions:
            return "", []
        ctx = self._context(collection)
        ctx.literal(" WHERE ").sql(functools.reduce(operator.and_, conditions))
        sql, params = ctx.query()
        return sql, list(params)

    def _conditions(
        self, collection: Collection, where: Node | None, scope: Node | None, scopes: Scopes | None
    ) -> list[Any]:
        conditions = []
        if where is not None:
            conditions.append(self._where(collection, where, scopes))
        if scope is not None:
            conditions.append(self._where(collection, scope))
        return conditions

    @staticmethod
    def sort_row_keys(sort: Sequence[SortKey], scopes: Scopes | None = None) -> list[str]:
        """Where a row of :meth:`select` holds each sort-key value (the id last)."""
        names = []
        for index, key in enumerate(sort):
            steps = key.path.steps
            if not steps and not key.path.computed:
                names.append(key.path.field)
            elif key_column(key, scopes):
                names.append(steps[0].name)  # the key column, selected already
            else:
                names.append(f"_k{index}")
        if not any(k.path.field == "id" and not k.path.steps for k in sort):
            names.append("id")
        return names

    # -- sorts ----------------------------------------------------------------

    def _sort_keys(
        self, collection: Collection, sort: Sequence[SortKey], scopes: Scopes | None
    ) -> tuple[list[Join], list[tuple[Any, bool]]]:
        """The joins ``sort`` needs, and its ``(expression, descending)`` keys, the
        id last. Paths through a ``Ref`` are LEFT JOINs; a related object outside
        its scope joins as none."""
        table = self.table(collection)
        joined: dict[tuple[str, ...], Any] = {}
        joins: list[Join] = []
        keys = [
            (self._sort_key(collection, key, scopes, joined, joins), key.descending) for key in sort
        ]
        if not any(k.path.field == "id" and not k.path.steps for k in sort):
            # The id breaks ties in the direction of the last key, so that an index
            # on that key (which ends with the id) serves the whole order.
            keys.append((table.id, bool(sort) and sort[-1].descending))
        return joins, keys

    def _sort_key(
        self,
        collection: Collection,
        key: SortKey,
        scopes: Scopes | None,
        joined: dict[tuple[str, ...], Any],
        joins: list[Join],
    ) -> Any:
        """The expression of one sort key, adding the joins it needs to ``joins``
        (``joined``: the alias of each path joined already)."""
        source: Any = self.table(collection)
        prefix: tuple[str, ...] = ()
        steps = key.path.steps
        last: RelationInfo | None = None
        if key.path.field == "id" and steps and _key_of(steps[-1], scopes):
            last, steps = steps[-1], steps[:-1]  # sort on the key column, no join
        for step in steps:
            prefix += (step.name,)
            alias = joined.get(prefix)
            if alias is None:
                alias = joined[prefix] = self._sort_join(step, source, scopes, len(joined), joins)
            source = alias
        if last is not None:
            return getattr(source, attr(last.name))
        owner = steps[-1].target if steps else collection
        return self.field_sql(owner, source, key.path.field)

    def _sort_join(
        self, step: RelationInfo, source: Any, scopes: Scopes | None, number: int, joins: list[Join]
    ) -> Any:
        """Join the target of ``step`` to ``source`` (as alias ``j<number>``)."""
        alias = self.table(step.target).alias(f"j{number}")
        if _is_fk_here(step):
            on = getattr(source, attr(step.name)) == alias.id
        else:  # one-to-one, the key is in the target's table
            on = getattr(alias, attr(step.reverse.name)) == source.id
        visible = self._visible(step.target, scopes)
        if visible is not None:
            on = on & alias.id.in_(visible)
        joins.append((source, alias, on))
        return alias

    # -- filters --------------------------------------------------------------

    def _where(
        self,
        collection: Collection,
        node: Node,
        scopes: Scopes | None = None,
        negated: bool = False,
    ) -> Any:
        """The SQL condition of a filter tree.

        Under an odd number of ``Not`` every leaf is made two-valued (``x IS NOT
        NULL AND ...``), so that a null value or a missing related object matches
        the complement; elsewhere SQL's own null handling already gives that.
        """
        if isinstance(node, And | Or):
            parts = [self._where(collection, n, scopes, negated) for n in node.nodes]
            if len(parts) == 1:
                return parts[0]
            if not parts:
                return peewee.SQL("1 = 1" if isinstance(node, And) else "1 = 0")
            # One flat list, not a nest of pairs: SQLite's parser has a small stack.
            glue = " AND " if isinstance(node, And) else " OR "
            return peewee.NodeList(parts, glue=glue, parens=True)
        if isinstance(node, Not):
            return ~self._where(collection, node.node, scopes, not negated)
        return self._through(collection, node.path.steps, node, negated, scopes)

    def _visible(self, collection: Collection, scopes: Scopes | None) -> Any:
        """The ids of ``collection`` its scope lets through (a subquery), or None
        when it has no scope."""
        scope = scope_of(collection, scopes)
        if scope is None:
            return None
        table = self.table(collection)
        return table.select(table.id).where(self._where(collection, scope))

    def _within(self, step: RelationInfo, inner: Any, scopes: Scopes | None) -> Any:
        """``inner`` on ``step``'s target, limited to the objects its scope lets through."""
        scope = scope_of(step.target, scopes)
        return inner if scope is None else inner & self._where(step.target, scope)

    def _through(
        self,
        collection: Collection,
        steps: tuple[RelationInfo, ...],
        node: Condition,
        guard: bool,
        scopes: Scopes | None = None,
        source: Any = None,
    ) -> Any:
        """``node`` on ``collection`` when its path still has ``steps`` to go: semi-joins.

        ``source`` is the table (or the alias of it) the condition tests. A related
        object outside its scope (``scopes``) is no related object.
        """
        source = self.table(collection) if source is None else source
        if not steps:
            if node.path.field == "id":
                return self._leaf(source.id, node, guard=False)
            return self._leaf(self.field_sql(collection, source, node.path.field), node, guard)
        if len(steps) > 1:
            return self._chain(steps, node, guard, scopes, source)
        (step,) = steps
        if node.path.field == "id" and node.op == "isnull" and not _is_fk_here(step):
            # A to-many relation is null when it holds no (visible) object.
            some = Condition(node.path, "notnull", None)
            return ~self._through(collection, steps, some, False, scopes, source)
        if _is_fk_here(step):
            return self._through_key(step, node, guard, scopes, source)
        target = self.table(step.target)
        if step.storage is LinkStorage.FK_THERE:
            back = self.column(step.target, step.reverse.name)
            inner = self._within(step, self._through(step.target, (), node, False, scopes), scopes)
            return source.id.in_(target.select(back).where(back.is_null(False) & inner))
        mine, theirs = self._join_columns(step)
        if node.path.field == "id" and scope_of(step.target, scopes) is None:
            query = mine.model.select(mine).where(self._leaf(theirs, node, guard=False))
            return source.id.in_(query)
        inner = self._within(step, self._through(step.target, (), node, False, scopes), scopes)
        links = mine.model.select(mine).join(target, on=(theirs == target.id)).where(inner)
        return source.id.in_(links)

    def _through_key(
        self, step: RelationInfo, node: Condition, guard: bool, scopes: Scopes | None, source: Any
    ) -> Any:
        """:meth:`_through` of one ``fk_here`` step: on the key column."""
        fk = getattr(source, attr(step.name))
        at_id = node.path.field == "id"
        if at_id and scope_of(step.target, scopes) is None:
            return self._leaf(fk, node, guard=guard)
        if at_id and node.op == "isnull":
            # No related object, or one the caller cannot see.
            return fk.is_null() | ~fk.in_(self._visible(step.target, scopes))
        # Inside the subquery, null means "no match": SQL's own rule is right there.
        target = self.table(step.target)
        inner = self._within(step, self._through(step.target, (), node, False, scopes), scopes)
        linked = fk.in_(target.select(target.id).where(inner))
        return (fk.is_null(False) & linked) if guard else linked

    def _chain(
        self,
        steps: tuple[RelationInfo, ...],
        node: Condition,
        guard: bool,
        scopes: Scopes | None,
        source: Any,
    ) -> Any:
        """A path of several steps: one subquery joins the tables of every step but
        the last, whose condition is tested on the last table joined.

        One subquery per step would nest as deep as the path is long, and SQLite's
        parser overflows its stack on long paths inside nested groups.
        """
        tables = [self.table(step.target).alias(f"_p{n}") for n, step in enumerate(steps[:-1])]
        outer, query, conditions = self._chain_start(steps[0], tables[0], source)
        for n, step in enumerate(steps[1:-1], start=1):
            query = self._chain_step(query, step, n, tables[n - 1], tables[n])
        for step, table in zip(steps[:-1], tables, strict=True):
            visible = self._visible(step.target, scopes)
            if visible is not None:
                conditions.append(table.id.in_(visible))
        last = self._through(steps[-2].target, steps[-1:], node, False, scopes, tables[-1])
        linked = outer.in_(query.where(*conditions, last))
        return (outer.is_null(False) & linked) if guard and _is_fk_here(steps[0]) else linked

    def _chain_start(
        self, first: RelationInfo, table: Any, source: Any
    ) -> tuple[Any, Any, list[Any]]:
        """The column of ``source`` a chain's subquery gives, the subquery's start
        from the first step's ``table``, and its first conditions."""
        if _is_fk_here(first):
            return getattr(source, attr(first.name)), table.select(table.id), []
        if first.storage is LinkStorage.FK_THERE:
            key = getattr(table, attr(first.reverse.name))
            return source.id, table.select(key), [key.is_null(False)]
        mine, theirs = self._join_alias(first, 0)
        return source.id, mine.model.select(mine).join(table, on=(theirs == table.id)), []

    def _chain_step(self, query: Any, step: RelationInfo, n: int, previous: Any, here: Any) -> Any:
        """``query`` joined from table ``previous`` through ``step`` to ``here``."""
        if _is_fk_here(step):
            return query.join_from(previous, here, on=getattr(previous, attr(step.name)) == here.id)
        if step.storage is LinkStorage.FK_THERE:
            on = getattr(here, attr(step.reverse.name)) == previous.id
            return query.join_from(previous, here, on=on)
        mine, theirs = self._join_alias(step, n)
        query = query.join_from(previous, mine.model, on=(mine == previous.id))
        return query.join_from(mine.model, here, on=(theirs == here.id))

    def _join_alias(self, relation: RelationInfo, number: int) -> tuple[Any, Any]:
        """The (this side, other side) columns of an alias of ``relation``'s join table."""
        mine, theirs = self._join_columns(relation)
        alias = mine.model.alias(f"_l{number}")
        return getattr(alias, mine.name), getattr(alias, theirs.name)

    def _leaf(self, column: Any, node: Condition, guard: bool) -> Any:
        op, value = node.op, node.value
        if op == "notnull":
            return column.is_null(False)
        if op == "isnull":
            return column.is_null()
        # A computed field's expression takes its values as they are.
        db_value = column.db_value if isinstance(column, peewee.Field) else _as_is
        if op == "in":
            if not value:
                return peewee.SQL("1 = 0")
            expression = column.in_([db_value(v) for v in value])
        elif op in _COMPARISONS:
            expression = _COMPARISONS[op](column, db_value(value))
        else:
            expression = self._match(column, op, value)
        return (column.is_null(False) & expression) if guard else expression

    def _match(self, column: Any, op: str, value: Any) -> Any:
        """A text operator of a filter on ``column``."""
        if op == "contains":
            return self.dialect.position(column, value) > 0
        if op == "icontains":
            lower = self.dialect.lower
            return self.dialect.position(lower(column), lower(peewee.Value(value))) > 0
        if op == "startswith":
            return peewee.fn.SUBSTR(column, 1, len(value)) == value
        if op == "re":
            self._state().patterns = True
            return self.dialect.regexp(column, value)
        raise AssertionError(f"unknown operator {op}")


def _as_is(value: Any) -> Any:
    return value


def _is_fk_here(relation: RelationInfo) -> bool:
    return relation.storage is LinkStorage.FK_HERE


def _key_of(relation: RelationInfo, scopes: Scopes | None) -> bool:
    """Whether the id of ``relation``'s object is its key column (no scope hides
    any of them)."""
    return _is_fk_here(relation) and scope_of(relation.target, scopes) is None


def key_column(key: SortKey, scopes: Scopes | None) -> bool:
    """Whether ``key`` sorts on a key column of the table itself (``sort=jar``)."""
    steps = key.path.steps
    return len(steps) == 1 and key.path.field == "id" and _key_of(steps[0], scopes)


def order_by(keys: list[tuple[Any, bool]], plain: list[bool]) -> list[Any]:
    """The ORDER BY terms of ``keys`` (see :func:`ordering`)."""
    return [ordering(expr, desc, bare) for (expr, desc), bare in zip(keys, plain, strict=True)]


def ordering(expression: Any, descending: bool, plain: bool) -> Any:
    """``expression`` in an ORDER BY: nulls last ascending and first descending.

    ``plain`` leaves the NULLS clause out: where that is the database's own order
    (:attr:`Dialect.nulls_sort_high`), and for columns that hold no null here, so
    that an index serves the order.
    """
    if descending:
        return expression.desc() if plain else expression.desc(nulls="FIRST")
    return expression.asc() if plain else expression.asc(nulls="LAST")


def non_null(where: Node | None) -> set[str]:
    """The fields of the collection itself that every row matching ``where`` holds
    a value in: those a comparison of the top-level AND tests (a comparison is
    never true for null; ``$ne``, ``$nin`` and ``$not`` are left out, they match it)."""
    if where is None:
        return set()
    if isinstance(where, And):
        return set().union(*(non_null(node) for node in where.nodes))
    if isinstance(where, Or) and where.nodes:
        return set.intersection(*(non_null(node) for node in where.nodes))
    if isinstance(where, Condition) and not where.path.steps and where.op != "isnull":
        return {where.path.field} if where.path.field != "id" else set()
    return set()


def after(keys: Sequence[tuple[Any, bool]], values: Sequence[Any], known: Sequence[bool]) -> Any:
    """Rows strictly after ``values`` in the order of ``keys`` (nulls last ascending,
    first descending): an OR, over each key, of "equal so far, then after".
    ``known`` tells which keys hold no null in the rows read.

    Where the first key's column holds no null after the position, the condition
    also bounds that column, so that an index on it seeks the position instead of
    scanning from the start.

    :raises InvalidCursor: if ``values`` do not match ``keys``.
    """
    if len(values) != len(keys):
        raise InvalidCursor("The cursor does not match this sort.")
    bound = None
    (first, descending), value = keys[0], values[0]
    if value is not None and (descending or known[0]):
        bound = first <= value if descending else first >= value
    clauses = []
    equal: list[Any] = []
    for (expression, descending), value, non_null_key in zip(keys, values, known, strict=True):
        beyond = _beyond(expression, descending, value, non_null_key)
        if beyond is not None:
            clauses.append(functools.reduce(operator.and_, [*equal, beyond]))
        equal.append(expression.is_null() if value is None else expression == value)
    if not clauses:
        return peewee.SQL("1 = 0")
    condition = functools.reduce(operator.or_, clauses)
    return condition if bound is None else bound & condition


def _beyond(expression: Any, descending: bool, value: Any, known: bool) -> Any:
    """``expression`` strictly after ``value`` in its direction (None: nothing is)."""
    if value is None:
        return expression.is_null(False) if descending else None
    if descending:
        return expression < value
    if known:
        return expression > value
    return (expression > value) | expression.is_null()

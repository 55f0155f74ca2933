"""Reading rows: pages, counts, estimates, rows by id and the links of relations.

The read layer of :class:`~backo_restful.storage.PeeweeStorage`. The most frequent
statements (a page of one table, a row by id, a read by ids) are written once per
collection and reused; their rows come back as dicts of field name to value.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import peewee

from ..model import Collection, LinkStorage, RelationInfo
from ..query import Node, SortKey
from ._utils import Scopes, chunks
from .compiler import Compiler, Join, after, non_null, order_by

#: Where the ids go in a statement built once (see Reads._by_ids).
_IDS = "(__backo_ids__)"


@dataclass(frozen=True, slots=True)
class _Page:
    """What :meth:`Reads.select` is asked (see there)."""

    collection: Collection
    where: Node | None
    sort: Sequence[SortKey]
    limit: int | None
    offset: int | None
    after: Sequence[Any] | None
    reverse: bool
    scope: Node | None
    scopes: Scopes | None
    #: Count the matches too, at most this many (``(None,)``: all); None: no count.
    counting: tuple[int | None] | None = None


@dataclass(frozen=True, slots=True)
class _Order:
    """A page's order: its ``(expression, descending)`` keys, which of them hold
    no null, and which need no ``NULLS`` clause."""

    keys: list[tuple[Any, bool]]
    non_null: list[bool]
    plain: list[bool]


class Reads(Compiler):
    """Every read of the storage."""

    #: What a read by ids reads -> its SQL before and after the ids.
    _id_plans: dict[tuple[Any, ...], tuple[str, str]]
    #: (collection, (column, descending, without NULLS clause)...) -> ORDER BY.
    _orders: dict[tuple[Any, ...], tuple[str, list[Any]]]

    def select(
        self,
        collection: Collection,
        where: Node | None = None,
        sort: Sequence[SortKey] = (),
        limit: int | None = None,
        offset: int | None = None,
        *,
        after: Sequence[Any] | None = None,
        reverse: bool = False,
        scope: Node | None = None,
        scopes: Scopes | None = None,
    ) -> list[dict[str, Any]]:
        """Rows of ``collection`` matching ``where``, in ``sort`` order then by id.

        Each row also holds the values of sort keys read through joins, under the
        names :meth:`sort_row_keys` gives. ``after`` takes a row's sort-key values
        (the id last): the rows strictly after that position (keyset paging).
        ``reverse`` reads the same order backwards. ``scope`` is the caller's
        scope of ``collection`` (a trusted filter, whose own paths see every
        object); ``scopes`` limits the related objects that paths in ``where`` and
        the sort see (see :data:`Scopes`).
        """
        page = _Page(collection, where, sort, limit, offset, after, reverse, scope, scopes)
        return self._select(page)[0]

    def select_counted(
        self,
        collection: Collection,
        where: Node | None = None,
        sort: Sequence[SortKey] = (),
        limit: int | None = None,
        offset: int | None = None,
        *,
        after: Sequence[Any] | None = None,
        reverse: bool = False,
        scope: Node | None = None,
        scopes: Scopes | None = None,
        count_limit: int | None = None,
    ) -> tuple[list[dict[str, Any]], int | None]:
        """:meth:`select`, and :meth:`count` of every match of ``where`` and
        ``scope`` (``count_limit``: the count's ``limit``; None counts them all).

        The count rides in the same statement as the page where the page reads
        the collection's table alone: one snapshot, no transaction needed. It is
        None when the page came back empty (no row to carry it).
        """
        page = _Page(
            collection, where, sort, limit, offset, after, reverse, scope, scopes, (count_limit,)
        )
        return self._select(page)

    def _select(self, page: _Page) -> tuple[list[dict[str, Any]], int | None]:
        table = self.table(page.collection)
        joins, keys = self._sort_keys(page.collection, page.sort, page.scopes)
        # Columns the filter proves non-null need no NULLS clause: an index on the
        # column then serves the whole order, and a cursor's position seeks it.
        scalars = page.collection.scalars
        proven = [
            self.column(page.collection, name) for name in non_null(page.where) if name in scalars
        ]
        known = [expr is table.id or any(expr is c for c in proven) for expr, _ in keys]
        plain = [self.dialect.nulls_sort_high or k for k in known]
        if page.reverse:
            keys = [(expr, not descending) for expr, descending in keys]
        order = _Order(keys, known, plain)
        # A computed key is selected too, for the cursors: peewee writes that.
        if not joins and not any(key.path.computed for key in page.sort):
            return self._select_rows(page, order)
        rows = self._select_joined(page, order, joins)
        if page.counting is None:
            return rows, None
        total = self.count(
            page.collection,
            page.where,
            limit=page.counting[0],
            scope=page.scope,
            scopes=page.scopes,
        )
        return rows, total

    def _select_joined(self, page: _Page, order: _Order, joins: list[Join]) -> list[dict[str, Any]]:
        """:meth:`_select` of a sort through joined tables, built by peewee."""
        collection = page.collection
        query = self.table(collection).select(*self._columns(collection))
        for source, alias, on in joins:
            query = query.join_from(source, alias, peewee.JOIN.LEFT_OUTER, on=on)
        names = self.sort_row_keys(page.sort, page.scopes)
        joined = [
            expr.alias(name)
            for name, (expr, _) in zip(names, order.keys, strict=True)
            if name.startswith("_k")
        ]
        if joined:
            query = query.select_extend(*joined)
        conditions = self._conditions(collection, page.where, page.scope, page.scopes)
        if page.after is not None:
            conditions.append(after(order.keys, page.after, order.non_null))
        if conditions:
            query = query.where(*conditions)
        query = query.order_by(*order_by(order.keys, order.plain))
        limit = self._limit(page)
        if limit is not None:
            query = query.limit(limit)
        if page.offset:
            query = query.offset(page.offset)
        return self._run(query.dicts())

    def _limit(self, page: _Page) -> int | None:
        """The ``LIMIT`` of ``page``: its own, or one that keeps every row where
        the database has no ``OFFSET`` without a ``LIMIT``."""
        if page.limit is None and page.offset:
            return self.dialect.limit_all
        return page.limit

    def _select_rows(self, page: _Page, order: _Order) -> tuple[list[dict[str, Any]], int | None]:
        """:meth:`_select` of a statement on the collection's table alone, with
        the count as one more column when counting: put together from the SQL of
        :meth:`_sql` and an ``ORDER BY`` built once per sort, around the filter's."""
        collection = page.collection
        order_sql, order_params = self._order_sql(collection, order)
        sql, params = self._filtered(collection, page.where, page.scope, page.scopes)
        statements = self._sql(collection)
        head = statements.head
        if page.counting is not None:
            total_sql, total_params = self._count_sql(collection, sql, params, page.counting[0])
            head = f"{head}, ({total_sql}) AS _total"
            params = total_params + params
        ctx = self._context(collection)
        if page.after is not None:
            ctx.literal(" AND " if sql else " WHERE ")
            ctx.sql(after(order.keys, page.after, order.non_null))
        ctx.literal(order_sql)
        limit = self._limit(page)
        if limit is not None:
            ctx.literal(f" LIMIT {int(limit)}")
        if page.offset:
            ctx.literal(f" OFFSET {int(page.offset)}")
        rest, more = ctx.query()
        rows = self._execute(head + statements.source + sql + rest, params + more + order_params)
        # (The count, when asked, is the last column: _dicts leaves it out.)
        total = None if page.counting is None or not rows else int(rows[0][-1] or 0)
        return self._dicts(collection, rows), total

    def _order_sql(self, collection: Collection, order: _Order) -> tuple[str, list[Any]]:
        """`` ORDER BY ...`` of ``order``, written once per collection and shape."""
        shape = (
            collection.name,
            *((e.name, d, b) for (e, d), b in zip(order.keys, order.plain, strict=True)),
        )
        sql = self._orders.get(shape)
        if sql is None:
            ctx = self._context(collection)
            ctx.literal(" ORDER BY ").sql(peewee.CommaNodeList(order_by(order.keys, order.plain)))
            sql = self._orders[shape] = ctx.query()
        return sql

    # -- counts ---------------------------------------------------------------

    def count(
        self,
        collection: Collection,
        where: Node | None = None,
        *,
        limit: int | None = None,
        scope: Node | None = None,
        scopes: Scopes | None = None,
    ) -> int:
        """How many rows of ``collection`` match ``where``.

        With ``limit``, the database stops after ``limit + 1`` rows: the result is
        exact up to ``limit``, and ``limit + 1`` means "more than ``limit``".
        """
        sql, params = self._filtered(collection, where, scope, scopes)
        ((total,),) = self._execute(*self._count_sql(collection, sql, params, limit))
        return int(total or 0)

    def _count_sql(
        self, collection: Collection, where: str, params: list[Any], limit: int | None
    ) -> tuple[str, list[Any]]:
        """The statement of :meth:`count` on the filter ``where`` (SQL, as
        :meth:`_filtered` writes it) and its parameters.

        Without a filter, where the database counts a whole table fast (SQLite,
        from the pages of its smallest index: 10 000 rows in a few microseconds,
        where counting them one by one takes a few hundred), a table whose ids
        (which its rows never outnumber) stay within ``limit`` is counted whole.
        """
        statements = self._sql(collection)
        if limit is None:
            return statements.count_all + where, list(params)
        bounded = (
            f"SELECT COUNT(*) FROM ({statements.count_one}{where} LIMIT {int(limit) + 1}) AS _rows"
        )
        if where or not self.dialect.fast_table_count:
            return bounded, list(params)
        name = self.table(collection)._meta.table_name
        return (
            f'SELECT CASE WHEN (SELECT COALESCE(MAX("id"), 0) FROM "{name}") <= {int(limit)} '
            f'THEN (SELECT COUNT(*) FROM "{name}") ELSE ({bounded}) END',
            [],
        )

    def estimate(
        self,
        collection: Collection,
        where: Node | None = None,
        scope: Node | None = None,
        scopes: Scopes | None = None,
    ) -> int | None:
        """The database's own estimate of :meth:`count`, or None where it has none."""
        conditions = self._conditions(collection, where, scope, scopes)
        return self.dialect.estimate(self.table(collection), conditions)

    # -- rows by id -----------------------------------------------------------

    def fetch_one(self, collection: Collection, id_: int) -> dict[str, Any] | None:
        """The row of ``collection`` with this id, or None.

        The most frequent read: its SQL is built once per collection, and its
        values converted as :meth:`fetch` converts them.
        """
        row = self.db.execute_sql(self._sql(collection).by_id, (id_,)).fetchone()
        return None if row is None else self._dicts(collection, [row])[0]

    def fetch(
        self,
        collection: Collection,
        ids: Iterable[int],
        *,
        limit: int | None = None,
        scope: Node | None = None,
    ) -> list[dict[str, Any]]:
        """Rows of ``collection`` with these ids, by id (at most ``limit`` of them;
        only those matching ``scope``)."""
        table = self.table(collection)
        rows: list[dict[str, Any]] = []

        def query(ids: Any) -> Any:
            query = table.select(*self._columns(collection)).where(table.id.in_(ids))
            if scope is not None:
                query = query.where(self._where(collection, scope))
            return query.order_by(table.id)

        for chunk in chunks(sorted(set(ids))):
            room = None if limit is None else limit - len(rows)
            found = self._by_ids(("fetch", collection.name), query, chunk, scope, room)
            rows.extend(self._dicts(collection, found))
            if limit is not None and len(rows) >= limit:
                break
        return rows

    def _by_ids(
        self,
        key: tuple[Any, ...],
        build: Callable[[Any], Any],
        ids: Sequence[int],
        scope: Node | None,
        limit: int | None,
    ) -> list[tuple[Any, ...]]:
        """Run ``build(ids)``, a query on the rows whose ids are in ``ids``, at most
        ``limit`` rows: its SQL is built once per ``key`` and number of ids,
        unless a ``scope`` (with values of its own) takes part."""
        if scope is not None:
            query = build(ids)
            if limit is not None:
                query = query.limit(limit)
            return self._execute(*query.sql())
        plan = self._id_plans.get(key)
        if plan is None:
            sql, _ = build(peewee.SQL(_IDS)).sql()
            head, _, tail = sql.partition(_IDS)
            plan = self._id_plans[key] = head, tail
        marks = ", ".join([self.db.param] * len(ids))
        sql = f"{plan[0]}({marks}){plan[1]}"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return self._execute(sql, list(ids))

    def _dicts(
        self, collection: Collection, rows: list[tuple[Any, ...]], skip: int = 0
    ) -> list[dict[str, Any]]:
        """Rows read from :meth:`_columns` (after ``skip`` other columns, before
        any other) as dicts of field name to value, converted as peewee would."""
        statements = self._sql(collection)
        if skip:
            rows = [row[skip:] for row in rows]
        if statements.plain is not None:  # ints and texts: as read
            return [dict(zip(statements.plain, row, strict=False)) for row in rows]
        converters = statements.converters
        return [
            {
                name: value if read is None else read(value)
                for (name, read), value in zip(converters, row, strict=False)
            }
            for row in rows
        ]

    def existing_ids(
        self, collection: Collection, ids: Iterable[int], *, scope: Node | None = None
    ) -> set[int]:
        """Which of ``ids`` exist (and match ``scope``)."""
        table = self.table(collection)
        found: set[int] = set()
        for chunk in chunks(sorted(set(ids))):
            query = table.select(table.id).where(table.id.in_(chunk))
            if scope is not None:
                query = query.where(self._where(collection, scope))
            found.update(row for (row,) in self._run(query.tuples()))
        return found

    # -- links ----------------------------------------------------------------

    def links(
        self,
        relation: RelationInfo,
        ids: Iterable[int],
        *,
        with_rows: bool = False,
        limit: int | None = None,
        scope: Node | None = None,
    ) -> list[tuple[int, int, dict[str, Any] | None]]:
        """``(owner id, related id, related row or None)`` for owners ``ids``.

        Ordered by related id, at most ``limit`` of them, only related objects
        matching ``scope``. For an ``fk_here`` relation the related id is the
        owner's own column; the others are read from the target table or the join
        table in one statement per chunk of ids.
        """
        target = self.table(relation.target)
        result: list[tuple[int, int, dict[str, Any] | None]] = []
        columns = self._columns(relation.target) if with_rows else [target.id]

        def query(ids: Any) -> Any:
            query = self._links_query(relation, columns, ids)
            if scope is not None:
                query = query.where(self._where(relation.target, scope))
            return query.order_by(target.id)

        key = ("links", relation.collection.name, relation.name, with_rows)
        for chunk in chunks(sorted(set(ids))):
            room = None if limit is None else limit - len(result)
            rows = self._by_ids(key, query, chunk, scope, room)
            if with_rows:
                objects = self._dicts(relation.target, rows, skip=1)
                result.extend(
                    (row[0], obj["id"], obj) for row, obj in zip(rows, objects, strict=True)
                )
            else:
                result.extend((owner, id_, None) for owner, id_ in rows)
            if limit is not None and len(result) >= limit:
                break
        return result

    def _links_query(self, relation: RelationInfo, columns: list[Any], ids: Any) -> Any:
        """The owner id (as ``_owner``) and ``columns`` of the objects ``relation``
        links owners ``ids`` to."""
        target = self.table(relation.target)
        if relation.storage is LinkStorage.FK_HERE:
            # Aliased: the owner's table may be the target's own.
            owner_table = self.table(relation.collection).alias("_owner_row")
            fk = getattr(owner_table, self.column(relation.collection, relation.name).name)
            return (
                owner_table.select(owner_table.id.alias("_owner"), *columns)
                .join(target, on=(fk == target.id))
                .where(owner_table.id.in_(ids))
            )
        if relation.storage is LinkStorage.FK_THERE:
            back = self.column(relation.target, relation.reverse.name)
            return target.select(back.alias("_owner"), *columns).where(back.in_(ids))
        mine, theirs = self._join_columns(relation)
        return (
            mine.model.select(mine.alias("_owner"), *columns)
            .join(target, on=(theirs == target.id))
            .where(mine.in_(ids))
        )

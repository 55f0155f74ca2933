"""Reading: every read of a collection is built here, with its caller's scope,
and expanded to its depth by :meth:`Reading.render`."""

from __future__ import annotations

from typing import Any

from .. import paging
from ..access import right
from ..exceptions import NotFound
from ..model import Collection, LinkStorage, RelationInfo
from ..paging import Page
from ..query import And, Condition, Node, Selection
from .call import Budget
from .computing import Computing
from .options import ID_PATH, ReadPlan

#: Marks a relation in an output layout.
RELATION = object()

#: ``(output key, field name, serializer)`` of each shown field (see :meth:`Reading._layout`).
Layout = list[tuple[str, str, Any]]
#: Owner id -> a relation's value, and owner id -> how many objects and ids it shows.
Related = tuple[dict[int, Any], dict[int, int]]


class Reading(Computing):
    """Reads of one call: objects, pages, and their expansion."""

    # -- one object, one page ------------------------------------------------------

    def read_one(self, plan: ReadPlan, id_: int) -> Any:
        """Object ``id_`` as ``plan`` shows it.

        :raises NotFound: if it does not match (or is outside the caller's scope).
        """
        collection = plan.collection
        self.budget = Budget(plan.max_objects)
        if plan.where is None and plan.scope is None:
            row = self.storage.fetch_one(collection, id_)
            rows = [] if row is None else [row]
        else:
            by_id: Node = Condition(ID_PATH, "eq", id_)
            by_id = by_id if plan.where is None else And((by_id, plan.where))
            rows = self.storage.select(collection, by_id, scope=plan.scope, scopes=plan.scopes)
        if not rows:
            raise NotFound(collection.name, id_)
        return self.render(collection, rows, plan.depth, plan.selection)[0]

    def read_page(self, plan: ReadPlan) -> tuple[list[Any], bool, list[Any], Any]:
        """The rows of one page, whether more follow, the objects shown, and the
        page's ``(total, method)``."""
        collection, limit, offset = plan.collection, plan.limit, plan.offset
        self.budget = Budget(plan.max_objects)  # each attempt counts from zero
        end = None if limit is None else limit + 1  # one row more: is there a next page?
        counted = None
        if plan.count == "none":
            rows = self.storage.select(
                collection, plan.where, plan.keys, end, offset,
                after=plan.position, reverse=plan.reverse, scope=plan.scope, scopes=plan.scopes,
            )  # fmt: skip
        else:
            rows, counted = self.storage.select_counted(
                collection, plan.where, plan.keys, end, offset,
                after=plan.position, reverse=plan.reverse, scope=plan.scope, scopes=plan.scopes,
                count_limit=None if plan.count == "exact" else plan.count_limit,
            )  # fmt: skip
        more = limit is not None and len(rows) > limit
        rows = rows[:limit] if limit is not None else rows
        if plan.reverse:
            rows.reverse()
        if plan.count != "none" and plan.position is None and not more and (rows or not offset):
            # The page holds every match from the first (or the last) one on.
            total: Any = ((offset or 0) + len(rows), "exact")
        else:
            total = self._total(plan, counted)
        items = self.render(collection, rows, plan.depth, plan.selection)
        return rows, more, items, total

    def page_of(self, plan: ReadPlan, found: tuple[list[Any], bool, list[Any], Any]) -> Page:
        """The :class:`Page` of what :meth:`read_page` ``found``."""
        rows, more, items, (total, method) = found
        if plan.before is not None:
            has_previous, has_next = more, plan.before != paging.END
        else:
            has_previous = plan.after is not None or bool(plan.offset)
            has_next = more
        return Page(
            items=items,
            total=total,
            total_method=method,
            next=self._cursor(plan, rows[-1]) if has_next and rows else None,
            previous=self._cursor(plan, rows[0]) if has_previous and rows else None,
            limit=plan.limit,
            offset=plan.offset,
        )

    def _total(self, plan: ReadPlan, counted: int | None) -> tuple[int | None, str | None]:
        """The ``(total, method)`` of a page (see :meth:`Engine.page`), from
        ``counted`` when the page's statement counted already."""
        if plan.count == "none":
            return None, None
        limit, collection = plan.count_limit, plan.collection
        if counted is None:
            bound = None if plan.count == "exact" else limit
            counted = self.storage.count(
                collection, plan.where, limit=bound, scope=plan.scope, scopes=plan.scopes
            )
        if plan.count == "exact" or counted <= limit:
            return counted, "exact"
        estimate = self.storage.estimate(collection, plan.where, plan.scope, plan.scopes)
        if estimate is not None and estimate > limit:
            return estimate, "estimate"
        return limit, "at-least"

    def _cursor(self, plan: ReadPlan, row: dict[str, Any]) -> str:
        values = [row[name] for name in self.storage.sort_row_keys(plan.keys, plan.scopes)]
        return paging.encode(plan.collection, plan.keys, values)

    def snapshot(self, plan: ReadPlan) -> bool:
        """Whether the read of ``plan`` needs a transaction of its own: when it is
        more than one statement."""
        joins = plan.count != "none" and any(key.path.steps for key in plan.keys)
        return joins or self.reads_more(plan.collection, plan.depth, plan.selection)

    def reads_more(self, collection: Collection, depth: int, selection: Selection | None) -> bool:
        """Whether showing objects of ``collection`` at ``depth`` reads more than
        their rows (related objects, links stored elsewhere, scopes)."""
        if depth == 0:
            return False
        for relation in collection.relations.values():
            if selection is not None and relation.name not in selection:
                continue
            if depth > 1 or relation.storage is not LinkStorage.FK_HERE:
                return True
            if self.scope(relation.target) is not None:
                return True
        return False

    # -- expansion -----------------------------------------------------------------

    def reread(self, collection: Collection, ids: list[int]) -> list[Any]:
        """Objects ``ids`` as a write answers them (depth 1, in the order of ``ids``)."""
        self.budget = Budget()
        rows = {row["id"]: row for row in self.storage.fetch(collection, ids)}
        shown = self.render(collection, list(rows.values()), 1)
        rendered = dict(zip(rows, shown, strict=True))
        return [rendered[id_] for id_ in ids]

    def render(
        self,
        collection: Collection,
        rows: list[dict[str, Any]],
        depth: int,
        selection: Selection | None = None,
    ) -> list[Any]:
        """Expand ``rows`` to ``depth``: one statement per relation per level.

        ``selection`` (from ``fields=``) names the fields to show, and inside the
        relations it names, theirs; relations it leaves out are not read at all.

        :raises LimitExceeded: if the answer would show more objects than the
            call's budget allows, counting every object and every id of a
            relation as many times as it is shown; found before the answer is
            built, reading at most one row more than the budget.
        """
        objects, sizes = self._expand(collection, rows, depth, selection)
        self.budget.check(sum(sizes))
        return objects

    def _expand(
        self,
        collection: Collection,
        rows: list[dict[str, Any]],
        depth: int,
        selection: Selection | None,
    ) -> tuple[list[Any], list[int]]:
        """:meth:`render` without the final check: the objects, and how many
        objects and ids each one shows (itself included)."""
        self.budget.take(len(rows))
        if depth == 0 or not rows:
            return [row["id"] for row in rows], [1] * len(rows)
        ids = [row["id"] for row in rows]
        plan = self._layout(collection)
        if selection is not None:
            plan = [step for step in plan if step[1] in selection]
        checks: dict[str, Any] = {}
        if self.access is not None:
            # Fields the caller may never read are left out; the others that
            # depend on the object are checked on each object.
            rules = {name: right(collection, name, "can_read") for _, name, _ in plan}
            plan = [step for step in plan if rules[step[1]] is not False]
            checks = {name: rule for name, rule in rules.items() if callable(rule)}
        shown = {name for _, name, _ in plan}
        self.add_computed(collection, rows, [name for name in collection.computed if name in shown])
        related: dict[str, Related] = {}
        for relation in collection.relations.values():
            if relation.name in shown:
                inner = None if selection is None else selection[relation.name]
                # Only the objects whose relation the caller may read are expanded
                # (and counted against the budget).
                owners = self._readers(rows, checks.get(relation.name))
                owner_ids = ids if owners is rows else [row["id"] for row in owners]
                related[relation.name] = self._related(relation, owners, owner_ids, depth, inner)
        if not checks:
            return _assemble(rows, ids, plan, related)
        return self._checked(rows, plan, related, checks)

    def _readers(self, rows: list[dict[str, Any]], rule: Any) -> list[dict[str, Any]]:
        """Those of ``rows`` whose field of read right ``rule`` the caller may read."""
        if rule is None or self.access is None:
            return rows
        return [row for row in rows if rule(self.access.auth, row)]

    def _checked(
        self,
        rows: list[dict[str, Any]],
        plan: Layout,
        related: dict[str, Related],
        checks: dict[str, Any],
    ) -> tuple[list[Any], list[int]]:
        """:meth:`_expand`'s objects when fields are shown or not object by object
        (``checks``: field name -> read right)."""
        auth = self.access.auth if self.access is not None else {}
        result = []
        sizes = []
        for row in rows:
            id_ = row["id"]
            obj = {"id": id_}
            size = 1
            for key, name, serialize in plan:
                if name in checks and not checks[name](auth, row):
                    continue
                if serialize is RELATION:
                    values, counts = related[name]
                    obj[key] = values[id_]
                    size += counts.get(id_, 0)
                else:
                    obj[key] = row[name] if serialize is None else serialize(row[name])
            result.append(obj)
            sizes.append(size)
        return result, sizes

    def _layout(self, collection: Collection) -> Layout:
        """``(output key, field name, serializer)`` of each shown field, in order.

        The serializer is None where the stored value is already the JSON value,
        and :data:`RELATION` for relations.
        """
        layouts = self.engine.layouts
        layout = layouts.get(collection.name)
        if layout is None:
            serializers = dict(self.storage.serializers(collection))
            layout = []
            for name, field in collection.schema.fields.items():
                if field.load_only:
                    continue
                if name in collection.relations:
                    serialize = RELATION
                else:  # a computed field's row holds its JSON value (see add_computed)
                    serialize = serializers.get(name)
                layout.append((collection.external_name(name), name, serialize))
            layouts[collection.name] = layout
        return layout

    def _related(
        self,
        relation: RelationInfo,
        rows: list[dict[str, Any]],
        ids: list[int],
        depth: int,
        selection: Selection | None,
    ) -> Related:
        """Owner id -> the relation's value (ids, or objects at ``depth - 1``), and
        owner id -> how many objects and ids that value shows.

        A related object outside the caller's scope is no related object.
        """
        if relation.storage is LinkStorage.FK_HERE:
            return self._related_here(relation, rows, depth, selection)
        target = relation.target
        budget = self.budget
        # Read at most one link more than the budget: enough to know it is exceeded.
        triples = self.storage.links(
            relation, ids, with_rows=depth > 1, limit=budget.room(), scope=self.scope(target)
        )
        if depth == 1:
            budget.take(len(triples))
            shown: dict[int, Any] = {rid: rid for _, rid, _ in triples}
            size = dict.fromkeys(shown, 1)
        else:
            unique = [row for row in {rid: row for _, rid, row in triples}.values() if row]
            objects, sizes = self._expand(target, unique, depth - 1, selection)
            shown, size = _by_id(unique, objects), _by_id(unique, sizes)
        related: dict[int, Any]
        related = {id_: [] for id_ in ids} if relation.multi else dict.fromkeys(ids)
        counts = dict.fromkeys(ids, 0)
        for owner, rid, _ in triples:
            if relation.multi:
                related[owner].append(shown[rid])
            else:
                related[owner] = shown[rid]
            counts[owner] += size[rid]
        return related, counts

    def _related_here(
        self,
        relation: RelationInfo,
        rows: list[dict[str, Any]],
        depth: int,
        selection: Selection | None,
    ) -> Related:
        """:meth:`_related` for a relation stored in the owners' own rows."""
        target = relation.target
        scope = self.scope(target)
        links = {row["id"]: row[relation.name] for row in rows}
        wanted = {v for v in links.values() if v is not None}
        if depth == 1:
            if scope is not None and wanted:
                visible = self.storage.existing_ids(target, wanted, scope=scope)
                links = {owner: (v if v in visible else None) for owner, v in links.items()}
            counts = {owner: 1 for owner, value in links.items() if value is not None}
            self.budget.take(len(counts))
            return links, counts
        targets = self.storage.fetch(target, wanted, limit=self.budget.room(), scope=scope)
        objects, sizes = self._expand(target, targets, depth - 1, selection)
        expanded, weight = _by_id(targets, objects), _by_id(targets, sizes)
        values = {owner: expanded.get(value) for owner, value in links.items()}
        return values, {owner: weight.get(value, 0) for owner, value in links.items()}


def _assemble(
    rows: list[dict[str, Any]],
    ids: list[int],
    plan: Layout,
    related: dict[str, Related],
) -> tuple[list[Any], list[int]]:
    """:meth:`Reading._expand`'s objects when every object shows the same
    fields: built column by column."""
    keys = ["id"]
    columns: list[list[Any]] = [ids]
    sizes = [1] * len(rows)
    for key, name, serialize in plan:
        keys.append(key)
        if serialize is RELATION:
            values, counts = related[name]
            columns.append([values[id_] for id_ in ids])
            sizes = [size + counts.get(id_, 0) for size, id_ in zip(sizes, ids, strict=True)]
        elif serialize is None:
            columns.append([row[name] for row in rows])
        else:
            columns.append([serialize(row[name]) for row in rows])
    objects = [dict(zip(keys, values, strict=True)) for values in zip(*columns, strict=True)]
    return objects, sizes


def _by_id(rows: list[dict[str, Any]], rendered: list[Any]) -> dict[int, Any]:
    return {row["id"]: shown for row, shown in zip(rows, rendered, strict=True)}

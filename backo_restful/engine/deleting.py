"""Deleting: the plan of a delete (which objects go, which lose a link, which
refuse) from the delete strategies of the relations, then its writes."""

from __future__ import annotations

from ..exceptions import Conflict, NotEmpty, RequiredRelation
from ..model import Collection, DataModel, DeleteStrategy, LinkStorage, RelationInfo
from .writing import Writing


class _Plan:
    """What one delete does: the objects it deletes (``doomed``), the keys it
    nulls in objects it leaves (``unlinks``), the objects that lose a link
    (``losing``, for their audit fields), and what is left to look at."""

    def __init__(self, collection: Collection, ids: set[int]) -> None:
        self.doomed: dict[str, set[int]] = {collection.name: set(ids)}
        self.pending = [(collection, set(ids))]
        self.unlinks: list[tuple[RelationInfo, set[int]]] = []
        self.losing: list[tuple[Collection, set[int]]] = []


class Deleting(Writing):
    """Deletes of one call, with their cascades."""

    def delete_object(self, collection: Collection, id_: int) -> None:
        """Delete object ``id_`` (locked): see :meth:`delete_objects`."""
        self.delete_objects(collection, {id_})

    def delete_objects(self, collection: Collection, ids: set[int]) -> None:
        """Delete objects ``ids`` (locked), applying the delete strategies to all
        of them at once: the statements do not grow with the number of objects.

        :raises Conflict: (:class:`NotEmpty`, :class:`RequiredRelation`) if a
            strategy refuses the delete.
        :raises Forbidden: if the caller may not delete or change an object the
            delete reaches.
        """
        plan = _Plan(collection, ids)
        while plan.pending:
            current, ids = plan.pending.pop()
            for relation in current.relations.values():
                gone = plan.doomed.setdefault(relation.target.name, set())
                if relation.storage is LinkStorage.FK_HERE:
                    self._leave_target(plan, current, ids, relation, gone)
                else:
                    self._follow(plan, current, ids, relation, gone)
        if self.events_on:
            self.before_delete(plan.doomed)
        self._leave_behind(plan)
        self._unlink_doomed(plan.doomed)
        for name in self.engine.delete_order:
            if plan.doomed.get(name):
                self.remove(self.model.collections[name], plan.doomed[name])

    def _leave_target(
        self,
        plan: _Plan,
        current: Collection,
        ids: set[int],
        relation: RelationInfo,
        gone: set[int],
    ) -> None:
        """Objects ``ids`` go: the objects their keys point at lose a link, or
        refuse when they require it."""
        if relation.reverse.multi or not relation.reverse.required:
            # The other side simply loses a link.
            if relation.target.options.get("audit"):
                plan.losing.append((relation.target, self.linked_ids(relation, ids)))
            return
        partners = self.linked_ids(relation, ids) - gone
        if partners:
            raise self._refused(current, ids, relation, partners, RequiredRelation)

    def _follow(
        self,
        plan: _Plan,
        current: Collection,
        ids: set[int],
        relation: RelationInfo,
        gone: set[int],
    ) -> None:
        """Objects ``ids`` go: apply the delete strategy of ``relation`` (stored in
        the objects it links to, or in a join table) to those."""
        linked = self.linked_ids(relation, ids) - gone
        if not linked:
            return
        strategy = relation.on_delete or DeleteStrategy.UNLINK_REFERENCED_ITEMS
        if strategy is DeleteStrategy.MUST_BE_EMPTY:
            raise self._refused(current, ids, relation, linked, NotEmpty)
        if strategy is DeleteStrategy.DELETE_REFERENCED_ITEMS:
            # Locked before their own links are read: none can be added after.
            linked = self.storage.lock(relation.target, linked)
            self.may_change(relation.target, linked, "delete")
            gone |= linked
            plan.pending.append((relation.target, linked))
            return
        if relation.storage is LinkStorage.FK_THERE:
            if relation.reverse.required:
                raise self._refused(current, ids, relation, linked, RequiredRelation)
            plan.unlinks.append((relation.reverse, linked))
        plan.losing.append((relation.target, linked))

    def _leave_behind(self, plan: _Plan) -> None:
        """Unlink the objects a delete leaves (their keys to deleted objects), and
        record in the audit fields of those that lose a link that it changed them."""
        doomed = plan.doomed
        for back, ids in plan.unlinks:
            survivors = ids - doomed.get(back.collection.name, set())
            if survivors:
                # Where they still point at a deleted object: one may have moved on.
                doomed_targets = doomed.get(back.target.name, set())
                self.set_link(back, survivors, None, linked_to=doomed_targets)
        for target, ids in plan.losing:
            self.touch(target, ids - doomed.get(target.name, set()))

    def _unlink_doomed(self, doomed: dict[str, set[int]]) -> None:
        """Remove the links between deleted objects: join table rows, and keys
        that would stop a row from being deleted before its target."""
        for name, ids in doomed.items():
            if not ids:
                continue
            for relation in self.model.collections[name].relations.values():
                if relation.storage is LinkStorage.M2M:
                    self.remove_links(relation, ids, None)
                elif (
                    relation.storage is LinkStorage.FK_HERE
                    and not relation.required
                    and doomed.get(relation.target.name)
                ):
                    self.set_link(relation, ids, None)

    def _refused(
        self,
        collection: Collection,
        ids: set[int],
        relation: RelationInfo,
        linked: set[int],
        error: type[NotEmpty | RequiredRelation],
    ) -> Conflict:
        if len(ids) > 1:  # name only those the links hold back
            ids = {owner for owner, rid, _ in self.storage.links(relation, ids) if rid in linked}
        which = ", ".join(map(str, sorted(ids)))
        shown = self.visible_ids(relation.target, linked)  # hidden ones are not named
        others = ", ".join(map(str, sorted(shown)))
        if len(shown) < len(linked):
            others = f"{others} and others" if shown else "objects"
        if error is NotEmpty:
            reason = (
                f"{relation.target.name} {others} still linked through {relation.key} "
                "(delete strategy MUST_BE_EMPTY)"
            )
        else:
            reason = f"{relation.target.name} {others} requires a {relation.reverse.key}"
        return error(
            f"Cannot delete {collection.name} {which}: {reason}.",
            {
                "collection": collection.name,
                "ids": sorted(ids),
                "field": relation.key,
                "linked": {"collection": relation.target.name, "ids": sorted(shown)},
            },
        )


def delete_order(model: DataModel) -> list[str]:
    """Collections ordered so rows holding a required key go before their targets."""
    order: list[str] = []
    state: dict[str, int] = {}

    def holders(name: str) -> list[str]:
        """The collections holding a required key to ``name``."""
        return [
            other.name
            for other in model.collections.values()
            for relation in other.relations.values()
            if relation.storage is LinkStorage.FK_HERE
            and relation.required
            and relation.target.name == name
            and other.name != name
        ]

    def visit(name: str) -> None:
        if state.get(name):
            return  # done, or a cycle of required keys (impossible to fill anyway)
        state[name] = 1
        for other in holders(name):  # they must be deleted first
            visit(other)
        order.append(name)
        state[name] = 2

    for name in model.collections:
        visit(name)
    return order

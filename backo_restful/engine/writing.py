"""Writing: creating and changing objects with their links, both sides of each
relation kept in step. Every write reaches the storage through :class:`Changes`."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..access import managed_fields, unguarded
from ..exceptions import Forbidden, RequiredRelation, UniqueViolation
from ..model import Collection, LinkStorage, Loaded, NewObject, RelationInfo
from ..storage import to_storable
from .call import missing_objects
from .changes import Changes
from .guard import PENDING, as_created

#: A link a nested object gets from the object that encloses it: (field, value).
Link = tuple[str, Any]


class Writing(Changes):
    """Creates and updates of one call."""

    def foreign_keys_check(self, collection: Collection, data: dict[str, Any]) -> bool:
        """Whether creating ``data`` may leave the check of its links to the
        database's foreign keys, without reading the objects it links to first.

        So it may when ``data`` only sets links stored in its own row, to objects
        that any number of others may link to, which the caller may all see, and
        the database enforces those keys. Where writes lock rows, one link at
        most: the foreign key then locks one row, which cannot deadlock.
        """
        named = 0
        for relation in collection.relations.values():
            value = data.get(relation.name)
            if value is None:
                continue
            if (
                relation.storage is not LinkStorage.FK_HERE
                or not relation.reverse.multi
                or isinstance(value, NewObject)
                or not self.storage.enforces(relation)
                or self.scope(relation.target) is not None
            ):
                return False
            named += 1
        return named <= 1 or not self.storage.row_locks

    def plain_update(self, collection: Collection, data: dict[str, Any]) -> bool:
        """Whether PATCH ``data`` is one UPDATE giving the row back: plain values
        of fields that are not unique, nothing for the guard to check."""
        return (
            (self.access is None or unguarded(collection))
            and bool(data)
            and all(
                name in collection.scalars and not collection.scalars[name].metadata.get("unique")
                for name in data
            )
        )

    def patch_row(self, collection: Collection, id_: int, data: dict[str, Any]) -> dict[str, Any]:
        """Apply a :meth:`plain_update` PATCH; the row as written.

        :raises NotFound: if there is no such object.
        """
        values = scalar_values(collection, data)
        for name, value in self._audit(collection, create=False).items():
            values.setdefault(name, value)  # trusted code only: guarded otherwise
        row = self.update_returning(collection, id_, values)
        if row is None:
            raise missing_objects(collection, {id_})
        return row

    # -- creating ------------------------------------------------------------------

    def create(
        self,
        collection: Collection,
        data: dict[str, Any],
        *,
        id_: int | None = None,
        link: Link | None = None,
        returning: bool = False,
        check_links: bool = True,
    ) -> tuple[int, dict[str, Any] | None]:
        """Insert one object with its relations; ``link`` sets a key from the
        enclosing object. Its id, and the row as written when ``returning`` asks
        and nothing is written after the INSERT (no relation stored elsewhere is
        set): the row the INSERT returns is then the one a read would find.

        ``check_links=False`` leaves the check that linked objects exist to the
        database's foreign keys (see :meth:`foreign_keys_check`)."""
        server: dict[str, Any] = {}
        access = None if unguarded(collection) else self.access
        if access is not None:
            self.refuse_early(collection, "create")  # nested objects too
            server = self._owner_values(collection, access)
            if link is not None:
                # The enclosing object sets the link: checked as if the data gave it.
                data = _given(data, link[0], link[1], collection.relations[link[0]].multi)
            self.guard_computed(collection, data, None, as_created(data, server), access)
        data = self.computed_writes(collection, data, None)
        if access is not None:
            access.require(collection, "create", as_created(data, server))
            data = self._guard(collection, data, None, server, access)
        values = scalar_values(collection, data)
        later, fresh = self._keys_of_create(collection, data, values, link, check_links)
        # Keys the caller sets (not the server's, not the enclosing object's).
        own_keys = {k: v for k, v in values.items() if link is None or k != link[0]}
        self._check_keys(collection, None, own_keys, fresh)
        values.update(server)
        for name, value in self._audit(collection, create=True).items():
            values.setdefault(name, value)
        self._check_unique(collection, values, id_)
        if returning and not later and id_ is None:
            row = self.insert_returning(collection, values)
            return row["id"], row
        new_id = self.insert(collection, values, id_)
        for relation, value in later:
            self._assign(relation, new_id, value, creating=True)
        return new_id, None

    def _keys_of_create(
        self,
        collection: Collection,
        data: dict[str, Any],
        values: dict[str, Any],
        link: Link | None,
        check_links: bool,
    ) -> tuple[list[tuple[RelationInfo, Any]], set[int]]:
        """Set in ``values`` the keys of the relations stored in the new row; the
        relations set after the INSERT, and the ids of objects created for keys."""
        later = []
        fresh: set[int] = set()
        for relation in collection.relations.values():
            here = relation.storage is LinkStorage.FK_HERE
            if link is not None and relation.name == link[0]:
                if here:
                    values[relation.name] = link[1]
                # Otherwise the enclosing object stores the link.
            elif relation.name not in data:
                continue
            elif not here:
                later.append((relation, data[relation.name]))
            else:
                value = data[relation.name]
                if check_links or value is None:
                    values[relation.name] = self._target_for(relation, value, None)
                else:
                    values[relation.name] = value
                if isinstance(value, NewObject):
                    fresh.add(values[relation.name])
        return later, fresh

    # -- updating ------------------------------------------------------------------

    def update_object(
        self, collection: Collection, id_: int, data: dict[str, Any], *, replace: bool
    ) -> None:
        """Write ``data`` to object ``id_``; ``replace`` resets the fields it does
        not give, except those the server sets or the caller may not change."""
        keep = self._kept(collection, id_) if replace else managed_fields(collection)
        values = {}
        for name, field in collection.scalars.items():
            if name in data:
                values[name] = to_storable(field, data[name])
            elif replace and name not in keep:
                values[name] = None
        for name, value in self._audit(collection, create=False).items():
            values.setdefault(name, value)
        later = []
        fresh: set[int] = set()
        for relation, value in _relations_set(collection, id_, data, replace, keep):
            if relation.storage is LinkStorage.FK_HERE:
                values[relation.name] = self._target_for(relation, value, id_)
                if isinstance(value, NewObject):
                    fresh.add(values[relation.name])
            else:
                later.append((relation, value))
        self._check_keys(collection, id_, values, fresh)
        self._check_unique(collection, values, id_)
        self.update(collection, id_, values)
        for relation, value in later:
            self._assign(relation, id_, value, creating=False)

    def _kept(self, collection: Collection, id_: int) -> set[str]:
        """The fields a PUT of object ``id_`` leaves as they are: those the server
        sets, and those the caller may not read or change."""
        keep = managed_fields(collection)
        access = self.access
        if access is None or unguarded(collection):
            return keep
        stored = self.stored(collection, id_)
        return keep | {
            name
            for name in collection.schema.fields
            if not (
                access.can_read(collection, name, stored)
                and access.can_modify(collection, name, stored)
            )
        }

    def _check_keys(
        self,
        collection: Collection,
        id_: int | None,
        values: dict[str, Any],
        fresh: set[int],
    ) -> None:
        """Check the keys a write sets: a link is part of both objects, so the
        objects a key pointed at and will point at change too (except ``fresh``
        ones, created by this write and checked as they were).

        A key that points at an object the caller cannot see is left as it is
        where the write would null it (to the caller it was null already), and
        cannot be pointed elsewhere.
        """
        changed = [
            relation
            for relation in collection.relations.values()
            if relation.storage is LinkStorage.FK_HERE and relation.name in values
        ]
        if self.access is None or not changed:
            return
        stored = self.stored(collection, id_) if id_ is not None else {}
        for relation in changed:
            old, new = stored.get(relation.name), values[relation.name]
            if old == new:
                continue
            if old is not None and not self.visible_ids(relation.target, {old}):
                if new is None:
                    del values[relation.name]
                    continue
                raise _hidden_link(collection, relation)
            touched = {target for target in (old, new) if target is not None} - fresh
            self.may_change(relation.target, touched, "update", relation.reverse.name)
            self.touch(relation.target, touched)

    def _check_unique(
        self, collection: Collection, values: dict[str, Any], id_: int | None
    ) -> None:
        """Refuse a value a unique field already holds elsewhere, naming the field.

        The database's unique index still decides under concurrency (also a 409).
        """
        for name in collection.unique:
            value = values.get(name)
            if value is None:
                continue
            other = self.storage.taken(collection, name, value, id_)
            if other is not None:
                key = collection.external_name(name)
                details = {"collection": collection.name, "field": key, "id": other}
                holder = f"{collection.name} {other}"
                if not self.visible_ids(collection, {other}):  # not named to the caller
                    del details["id"]
                    holder = f"Another {collection.name}"
                raise UniqueViolation(
                    f"{holder} already has this {key}: it must be unique.", details
                )

    # -- links ---------------------------------------------------------------------

    def _target_for(self, relation: RelationInfo, value: Any, owner: int | None) -> int | None:
        """The id a key column takes for ``value`` (creating or stealing as needed)."""
        if value is None:
            return None
        if isinstance(value, NewObject):
            # Created linked to ``owner``: checked as if it gave the link itself.
            back = (relation.reverse.name, PENDING if owner is None else owner)
            return self.create(relation.target, value.data, link=back)[0]
        self.lock_existing(relation.target, [value])
        if not relation.reverse.multi:
            # One-to-one: the target leaves its previous partner.
            previous = [
                row for row, _ in self.storage.rows_linked_to(relation, [value]) if row != owner
            ]
            if previous:
                self._release(relation, previous, value)
        return value

    def _release(self, relation: RelationInfo, ids: list[int], target: int) -> None:
        """Null the key column of rows ``ids`` where it still points at
        ``target``, unless the relation is required.

        Those objects change: the caller must be allowed to update each of them.
        """
        self.may_change(relation.collection, ids, "update", relation.name)
        self.touch(relation.collection, ids)
        if relation.required:
            raise RequiredRelation(
                f"{relation.collection.name} {', '.join(map(str, sorted(ids)))} "
                f"would lose its required {relation.key}.",
                {
                    "collection": relation.collection.name,
                    "field": relation.key,
                    "ids": sorted(ids),
                },
            )
        # Read before they were locked: one may have moved on since, and keeps its link.
        self.set_link(relation, ids, None, linked_to={target})

    def _assign(self, relation: RelationInfo, owner: int, value: Any, *, creating: bool) -> None:
        """Set a relation whose link is not a column of the owner's table."""
        items = value if relation.multi else ([] if value is None else [value])
        ids = [item for item in items if not isinstance(item, NewObject)]
        new = [item for item in items if isinstance(item, NewObject)]
        self.lock_existing(relation.target, ids)
        if relation.storage is LinkStorage.M2M:
            self._assign_m2m(relation, owner, ids, new, creating=creating)
            return
        back = relation.reverse
        current = set() if creating else self._held(relation, owner, bool(items))
        removed = current - set(ids)
        if removed:
            self._release(back, sorted(removed), owner)
        added = set(ids) - current
        if added:
            self._take(relation, owner, added)
        for item in new:
            self.create(relation.target, item.data, link=(back.name, owner))

    def _held(self, relation: RelationInfo, owner: int, setting: bool) -> set[int]:
        """The objects ``owner`` links to now through ``relation`` (stored in their
        rows) that the caller sees.

        :raises Forbidden: if a one-to-one link to a hidden object would change.
        """
        current = {row for row, _ in self.storage.rows_linked_to(relation.reverse, [owner])}
        if self.scope(relation.target) is None or not current:
            return current
        # Links to objects the caller cannot see are neither shown nor changed.
        visible = self.visible_ids(relation.target, current)
        if current - visible and not relation.multi and setting:
            raise _hidden_link(relation.collection, relation)
        return visible

    def _take(self, relation: RelationInfo, owner: int, added: set[int]) -> None:
        """Link ``owner`` to objects ``added`` through ``relation`` (stored in their rows)."""
        back = relation.reverse
        if not relation.multi and relation.required:
            taken = [row for row, target in self._partners(back, added) if target != owner]
            if taken:
                raise RequiredRelation(
                    f"{relation.target.name} {taken[0]} belongs to another "
                    f"{relation.collection.name}, which requires its {relation.key}.",
                    {"collection": relation.target.name, "id": taken[0]},
                )
        self.may_change(relation.target, added, "update", back.name)
        if not relation.multi:
            # One-to-one: the added object leaves its previous holder.
            holders = {held for _, held in self._partners(back, added) if held != owner}
            self.may_change(relation.collection, holders, "update", relation.name)
            self.touch(relation.collection, holders)
        self.touch(relation.target, added)
        self.set_link(back, added, owner)

    def _assign_m2m(
        self,
        relation: RelationInfo,
        owner: int,
        ids: list[int],
        new: list[NewObject],
        *,
        creating: bool,
    ) -> None:
        """:meth:`_assign` for a relation stored in a join table."""
        back = relation.reverse
        current = set()
        if not creating:
            current = self.linked_ids(relation, [owner], self.scope(relation.target))
        changed = (current - set(ids)) | (set(ids) - current)
        # A link is part of both objects: the others change too.
        self.may_change(relation.target, changed, "update", back.name)
        self.touch(relation.target, changed)
        created = {
            self.create(relation.target, item.data, link=(back.name, owner))[0] for item in new
        }
        wanted = set(ids) | created
        if current - wanted:
            self.remove_links(relation, [owner], current - wanted)
        if wanted - current:
            self.add_links(relation, owner, wanted - current)

    def _partners(self, relation: RelationInfo, ids: set[int]) -> list[tuple[int, int]]:
        """``(row, target)`` for rows ``ids`` whose key column is set."""
        return [(owner, rid) for owner, rid, _ in self.storage.links(relation, ids)]


def _hidden_link(collection: Collection, relation: RelationInfo) -> Forbidden:
    key = collection.external_name(relation.name)
    return Forbidden(
        f"{key} of this {collection.name} links to an object you may not change.",
        {"collection": collection.name, "field": key},
    )


def _relations_set(
    collection: Collection, id_: int, data: dict[str, Any], replace: bool, keep: set[str]
) -> list[tuple[RelationInfo, Any]]:
    """``(relation, value)`` for each relation an update of object ``id_`` sets."""
    result = []
    for relation in collection.relations.values():
        if relation.name in data:
            value = data[relation.name]
        elif replace and relation.name not in keep:
            value = [] if relation.multi else None
            if relation.target is collection and _holds(data.get(relation.reverse.name), id_):
                # The request links the object to itself from the other side:
                # this side holds that link too.
                value = [id_] if relation.multi else id_
        else:
            continue
        result.append((relation, value))
    return result


def scalar_values(collection: Collection, data: Mapping[str, Any]) -> dict[str, Any]:
    """The storable values of the scalar fields ``data`` gives."""
    return {
        name: to_storable(field, data[name])
        for name, field in collection.scalars.items()
        if name in data
    }


def _given(data: dict[str, Any], name: str, value: Any, multi: bool) -> Loaded:
    """``data`` with field ``name`` set to ``value`` (the only item of a list
    field), as given by the client."""
    given = data.given if isinstance(data, Loaded) else frozenset(data)
    loaded = Loaded({**data, name: [value] if multi else value})
    loaded.given = given | {name}
    return loaded


def _holds(value: Any, id_: int) -> bool:
    """Whether a relation's ``value`` (an id, or a list) links to object ``id_``."""
    return value == id_ or (isinstance(value, list) and id_ in value)

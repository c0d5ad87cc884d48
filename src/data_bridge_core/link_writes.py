"""The flush's writes of many-to-many links: what changed, turned into statements.

`ClaimedLinks` takes the link changes recorded on the owners (`link_changes`)
and copies of the whole lists of owners the flush inserts before it sends
anything (a change made while it runs is left for the next flush), then
sends at most one statement of each kind per relationship (`link_sql`): the DELETE of an owner's
links outside a list assigned unread, the DELETE of the pairs removed, the
INSERT ... ON CONFLICT DO NOTHING of the pairs added. `delete_links_of` clears
the links of owners about to be deleted. Both report the link rows they
delete, so that link objects the session holds leave it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from data_bridge_core.errors import InvalidStateError
from data_bridge_core.link_changes import LinkChanges, changes_for
from data_bridge_core.schema.relation import LINKED, MANY_TO_MANY, RelationshipDeclaration
from data_bridge_core.schema.table import Table, TableInfo, table_info
from data_bridge_core.state import InstanceState, own_state

if TYPE_CHECKING:
    from data_bridge_core.statement_runner import StatementRunner

# Called with (association model, key of a link row deleted).
Forget = Callable[[type[Table], Any], None]


class LinkWrites:
    """The link rows one flush writes for one many-to-many, as (owner key, target key)."""

    def __init__(self, rel: RelationshipDeclaration) -> None:
        self.rel = rel
        _, self.owner_key, _, self.target_key = rel.link_columns
        self.replacing: list[tuple[Any, list[Any]]] = []
        self.adding: dict[tuple[Any, Any], None] = {}
        self.removing: dict[tuple[Any, Any], None] = {}

    def _pairs(self, owner: Table, targets: Iterable[Table]) -> list[tuple[Any, Any]]:
        key = owner.__dict__[self.owner_key.name]
        name = self.target_key.name
        pairs = []
        for target in targets:
            target_value = target.__dict__.get(name)
            if target_value is None:
                raise InvalidStateError(
                    f"{self.rel!r}: a {type(target).__name__} in the list has no key; "
                    "add it to the session"
                )
            pairs.append((key, target_value))
        return pairs

    def replace(self, owner: Table, targets: list[Table]) -> None:
        """The owner's links become exactly ``targets`` (the others are deleted)."""
        keys = [target for _, target in self._pairs(owner, targets)]
        self.replacing.append((owner.__dict__[self.owner_key.name], keys))

    def add(self, owner: Table, targets: Iterable[Table]) -> None:
        self.adding.update(dict.fromkeys(self._pairs(owner, targets)))

    def remove(self, owner: Table, targets: Iterable[Table]) -> None:
        self.removing.update(dict.fromkeys(self._pairs(owner, targets)))

    @staticmethod
    def columns(pairs: Iterable[tuple[Any, Any]]) -> list[list[Any]]:
        """(owner keys, target keys): the two array parameters of a link statement."""
        owners: list[Any] = []
        targets: list[Any] = []
        for owner, target in pairs:
            owners.append(owner)
            targets.append(target)
        return [owners, targets]

    async def run(self, runner: StatementRunner, forget: Forget) -> None:
        sql = self.rel.link_sql
        association = self.rel.association
        assert association is not None
        composite = table_info(association).composite
        removed_rows: list[Any] = []
        for owner_key, target_keys in self.replacing:
            result = await runner.run_statement(sql.delete_all_but, [owner_key, target_keys])
            removed_rows.extend(result.rows)
        if self.removing:
            result = await runner.run_statement(sql.delete_pairs, self.columns(self.removing))
            removed_rows.extend(result.rows)
        for row in removed_rows:
            forget(association, tuple(row) if composite else row[0])
        if self.adding:
            adding = self.adding
            await runner.run_statement(
                sql.insert_pairs, self.columns(adding), bulk_rows=len(adding)
            )


class ClaimedLinks:
    """The link changes one flush writes, taken off their owners before it sends anything.

    Another task of the session may change links while the flush awaits (assignment
    and ``add()`` / ``remove()`` are synchronous and take no lock): what it records
    then lands on the owner again, for the next flush, and never on what this flush
    holds. `restore` gives a failed flush's claim back to the owners.
    """

    __slots__ = ("lists", "stored")

    def __init__(self) -> None:
        # Stored owners: their recorded changes, detached from their state.
        self.stored: list[tuple[Table, InstanceState, dict[str, LinkChanges]]] = []
        # Owners this flush inserts (no links yet): a copy of each many-to-many list
        # (the list itself may change meanwhile), and the changes they held.
        self.lists: list[
            tuple[Table, InstanceState, dict[str, list[Table]], dict[str, LinkChanges] | None]
        ] = []

    def __bool__(self) -> bool:
        return bool(self.stored or self.lists)

    @classmethod
    def take(cls, objects: Iterable[Table], inserting: set[int]) -> ClaimedLinks:
        """Claim the link changes of ``objects``; ``inserting`` holds the ids of those
        this flush inserts, whose whole lists are linked."""
        claim = cls()
        for obj in dict.fromkeys(objects):
            state = own_state(obj)
            if state is None:
                continue
            if id(obj) in inserting:
                relations = state.relations
                if not relations:
                    continue
                relationships = table_info(type(obj)).relationships
                lists = {
                    name: list(value)
                    for name, value in relations.items()
                    if isinstance(value, list)
                    and (rel := relationships.get(name)) is not None
                    and rel.direction == MANY_TO_MANY
                }
                if lists:
                    claim.lists.append((obj, state, lists, state.links))
                    state.links = None
            elif state.links:
                claim.stored.append((obj, state, state.links))
                state.links = None
        return claim

    async def write(self, runner: StatementRunner, forget: Forget) -> list[Table]:
        """Send the claimed changes, at most one statement of each kind per relationship.

        Returns the owners inserted by this flush whose lists changed while it ran:
        the difference is recorded on them, for the next flush.
        """
        work: dict[RelationshipDeclaration, LinkWrites] = {}

        def writes_of(rel: RelationshipDeclaration) -> LinkWrites:
            writes = work.get(rel)
            if writes is None:
                writes = work[rel] = LinkWrites(rel)
            return writes

        for obj, _, lists, held in self.lists:
            relationships = table_info(type(obj)).relationships
            for name, listed in lists.items():
                changes = held.get(name) if held is not None else None
                extra = changes.to_link() if changes is not None else ()
                writes_of(relationships[name]).add(obj, [*listed, *extra])
        for obj, _, links in self.stored:
            relationships = table_info(type(obj)).relationships
            for name, changes in links.items():
                writes = writes_of(relationships[name])
                if changes.members is not None:
                    writes.replace(obj, changes.members)
                writes.add(obj, changes.to_link())
                writes.remove(obj, changes.to_unlink())
        for writes in work.values():
            await writes.run(runner, forget)
        for _, state, links in self.stored:
            loaded_via = state.loaded_via
            if loaded_via is not None:
                newer = state.links or {}
                for name in links:
                    if name in loaded_via and name not in newer:  # else changed since: unwritten
                        loaded_via[name] = LINKED
        return self._changed_meanwhile()

    def _changed_meanwhile(self) -> list[Table]:
        """Record, on the owners this flush inserted, how their lists differ from the
        copies it wrote (changed by another task before the owner was stored)."""
        changed: list[Table] = []
        for obj, state, lists, _ in self.lists:
            relations = state.relations or {}
            for name, written in lists.items():
                now = relations.get(name)
                if not isinstance(now, list):
                    continue  # forgotten meanwhile: nothing the session shows differs
                before = {id(item) for item in written}
                after = {id(item) for item in now}
                added = [item for item in now if id(item) not in before]
                removed = [item for item in written if id(item) not in after]
                if not (added or removed):
                    continue
                changes = changes_for(state, name)
                for item in added:
                    changes.link(item)
                for item in removed:
                    changes.unlink(item)
                changed.append(obj)
        return changed

    def restore(self) -> list[Table]:
        """The flush failed: give each owner its claimed changes back, under the ones
        recorded since (those are the last word). Returns the owners."""
        owners: list[Table] = []
        for obj, state, links in self.stored:
            _give_back(state, links)
            owners.append(obj)
        for obj, state, _, held in self.lists:
            if held:
                _give_back(state, held)
            owners.append(obj)
        return owners


def _give_back(state: InstanceState, claimed: dict[str, LinkChanges]) -> None:
    newer = state.links
    if newer:
        for name, changes in newer.items():
            older = claimed.get(name)
            if older is None:
                claimed[name] = changes
            else:
                older.then(changes)
    state.links = claimed


async def delete_links_of(
    runner: StatementRunner, forget: Forget, info: TableInfo, objects: list[Table]
) -> None:
    """Before rows of ``info`` are deleted: the association rows of their many-to-many lists."""
    for rel in info.relationships.values():
        if rel.direction != MANY_TO_MANY:
            continue
        association = rel.association
        assert association is not None
        owner_key = rel.link_columns[1]
        composite = table_info(association).composite
        keys = [o.__dict__[owner_key.name] for o in objects]
        result = await runner.run_statement(rel.link_sql.delete_of_owners, [keys])
        for row in result.rows:
            forget(association, tuple(row) if composite else row[0])

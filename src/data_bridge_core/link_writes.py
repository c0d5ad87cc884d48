"""The flush's writes of many-to-many links: what changed, turned into statements.

`write_links` reads the link changes recorded on the owners (`link_changes`)
and the whole lists of owners this flush inserted, and sends at most one
statement of each kind per relationship (`link_sql`): the DELETE of an owner's
links outside a list assigned unread, the DELETE of the pairs removed, the
INSERT ... ON CONFLICT DO NOTHING of the pairs added. `delete_links_of` clears
the links of owners about to be deleted. Both report the link rows they
delete, so that link objects the session holds leave it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from data_bridge_core.errors import InvalidStateError
from data_bridge_core.schema.relation import LINKED, MANY_TO_MANY, RelationshipDeclaration
from data_bridge_core.schema.table import Table, TableInfo, table_info
from data_bridge_core.state import InstanceState, own_state

if TYPE_CHECKING:
    from data_bridge_core.unit_of_work import StatementRunner

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


async def write_links(
    runner: StatementRunner, forget: Forget, objects: list[Table], inserted: set[int]
) -> None:
    """Write the many-to-many links of ``objects`` changed since the last flush.

    ``inserted`` holds the ids of the owners this flush inserted: they have no
    links yet, so their whole lists are added.
    """
    work: dict[RelationshipDeclaration, LinkWrites] = {}
    written: list[tuple[InstanceState, str]] = []
    for obj in dict.fromkeys(objects):
        state = own_state(obj)
        if state is None:
            continue
        relationships = table_info(type(obj)).relationships
        new_owner = id(obj) in inserted
        if new_owner and state.relations:
            names = [
                name
                for name in state.relations
                if (rel := relationships.get(name)) is not None and rel.direction == MANY_TO_MANY
            ]
        elif state.links:
            names = list(state.links)
        else:
            continue
        for name in names:
            rel = relationships[name]
            writes = work.get(rel)
            if writes is None:
                writes = work[rel] = LinkWrites(rel)
            changes = state.links.get(name) if state.links is not None else None
            if new_owner:
                listed = state.relations.get(name) if state.relations is not None else None
                writes.add(obj, [*(listed or ()), *(changes.to_link() if changes else ())])
            elif changes is not None:
                if changes.members is not None:
                    writes.replace(obj, changes.members)
                writes.add(obj, changes.to_link())
                writes.remove(obj, changes.to_unlink())
            written.append((state, name))
    for writes in work.values():
        await writes.run(runner, forget)
    for state, name in written:
        if state.links is not None:
            state.links.pop(name, None)
            if not state.links:
                state.links = None
        if state.loaded_via is not None and name in state.loaded_via:
            state.loaded_via[name] = LINKED


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

"""What the next flush writes to a many-to-many's association table, per owner.

Assigning a list, ``add()`` and ``remove()`` record here the links they
change; the flush takes them off the owner before it sends anything (a
change made meanwhile is recorded afresh, for the next flush) and turns them
into INSERTs and DELETEs of exactly those links (`data_bridge_core.link_sql`).
A rollback forgets them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from data_bridge_core.state import InstanceState

if TYPE_CHECKING:
    from data_bridge_core.schema.table import Table


class LinkChanges:
    """The links of one object's many-to-many list changed since the last flush.

    Either a whole list (``members``: assigned while the stored list was never
    read, so the links become exactly these), or the last word on each target
    (``wanted``: True to link it, False to unlink it). Each write is idempotent,
    so it does not matter whether the link existed: the last call wins.
    """

    __slots__ = ("members", "wanted")

    def __init__(self) -> None:
        self.members: list[Table] | None = None
        self.wanted: dict[int, tuple[Table, bool]] = {}

    def replace(self, members: list[Table]) -> None:
        self.members = list(members)
        self.wanted.clear()

    def link(self, target: Table) -> None:
        members = self.members
        if members is None:
            self.wanted[id(target)] = (target, True)
        elif not any(m is target for m in members):
            members.append(target)

    def unlink(self, target: Table) -> None:
        members = self.members
        if members is None:
            self.wanted[id(target)] = (target, False)
        else:
            members[:] = [m for m in members if m is not target]

    def decided_from_other_side(self, target: Table, linked: bool) -> None:
        """The same pair was just linked (or unlinked) from the other side: that word is the
        last one, so this side must not write the opposite at the flush."""
        if self.members is not None:
            self.link(target) if linked else self.unlink(target)
        else:
            self.wanted.pop(id(target), None)

    def then(self, newer: LinkChanges) -> None:
        """``newer`` was recorded after these changes: apply it on top (its word is the last)."""
        if newer.members is not None:
            self.replace(newer.members)
            return
        for target, linked in newer.wanted.values():
            self.link(target) if linked else self.unlink(target)

    def to_link(self) -> list[Table]:
        if self.members is not None:
            return self.members
        return [target for target, linked in self.wanted.values() if linked]

    def to_unlink(self) -> list[Table]:
        return [target for target, linked in self.wanted.values() if not linked]


def changes_for(state: InstanceState, name: str) -> LinkChanges:
    """The changes of relationship ``name`` of the object with ``state`` (made on first need)."""
    links = state.links
    if links is None:
        links = state.links = {}
    changes = links.get(name)
    if changes is None:
        changes = links[name] = LinkChanges()
    return changes

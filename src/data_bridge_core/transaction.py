"""The transaction log: what a rollback must undo in memory, level by level.

The database undoes its own rows; this log undoes what the session's objects
show. Every write of a transaction reports here (through the `ChangeLog`
protocol of the identity map): the first value of each field an object had
before the change, the objects inserted (with the columns the database
filled), the objects deleted, and the keys of rows changed in bulk while no
object held them. A savepoint opens a new level; releasing it merges the
level into its parent, rolling back to it restores just that level.
"""

from __future__ import annotations

from typing import Any

from data_bridge_core.identity import IdentityMap, identity_key
from data_bridge_core.schema.table import Table, TableInfo, table_info
from data_bridge_core.state import STATE_KEY, InstanceState, state_of
from data_bridge_core.unit_of_work import UnitOfWork


class LogLevel:
    """What one transaction, or one savepoint in it, changed."""

    __slots__ = ("changes", "deleted", "inserted", "name", "stale")

    def __init__(self, name: str | None) -> None:
        self.name = name  # the savepoint's name; None for the transaction itself
        # Object -> {field: value before its first change in this level}.
        self.changes: dict[Table, dict[str, Any]] = {}
        # Object -> columns the database generated for it (cleared by a rollback).
        self.inserted: dict[Table, tuple[str, ...]] = {}
        self.deleted: dict[Table, None] = {}
        self.stale: set[tuple[type[Table], Any]] = set()

    def merge_into(self, parent: LogLevel) -> None:
        for obj, saved in self.changes.items():
            older = parent.changes.get(obj)
            if older is None:
                parent.changes[obj] = saved
            else:
                for name, value in saved.items():
                    older.setdefault(name, value)  # the parent's value is the older one
        parent.inserted.update(self.inserted)
        parent.deleted.update(self.deleted)
        parent.stale |= self.stale


class TransactionLog:
    """The levels of the open transaction, innermost last (a `ChangeLog`)."""

    def __init__(self) -> None:
        self.levels = [LogLevel(None)]

    # -- ChangeLog ---------------------------------------------------------------------

    def record_change(self, obj: Table, name: str, old: Any) -> None:
        changes = self.levels[-1].changes
        saved = changes.get(obj)
        if saved is None:
            changes[obj] = {name: old}
        elif name not in saved:
            saved[name] = old

    def record_inserted(self, obj: Table, generated: tuple[str, ...]) -> None:
        self.levels[-1].inserted[obj] = generated

    def record_inserted_batch(self, objects: list[Table], generated: tuple[str, ...]) -> None:
        """`record_inserted` for a batch of one INSERT (one C-level update, no call per row)."""
        self.levels[-1].inserted.update(dict.fromkeys(objects, generated))

    def record_deleted(self, obj: Table) -> None:
        self.levels[-1].deleted[obj] = None

    def record_stale(self, model: type[Table], key: Any) -> None:
        self.levels[-1].stale.add((model, key))

    # -- savepoints ----------------------------------------------------------------------

    @property
    def untouched(self) -> bool:
        """Nothing recorded since the transaction began: a rollback has nothing to undo
        in memory (beyond the unit of work's unflushed changes)."""
        if len(self.levels) > 1:
            return False
        level = self.levels[0]
        return not (level.changes or level.inserted or level.deleted or level.stale)

    @property
    def in_savepoint(self) -> bool:
        return len(self.levels) > 1

    def begin_savepoint(self, name: str) -> LogLevel:
        level = LogLevel(name)
        self.levels.append(level)
        return level

    def is_open(self, level: LogLevel) -> bool:
        return any(open_level is level for open_level in self.levels)

    def release(self, level: LogLevel) -> None:
        """The savepoint was released: its changes now belong to the enclosing level."""
        while self.levels[-1] is not level:  # inner savepoints released with it
            self.levels.pop().merge_into(self.levels[-1])
        self.levels.pop().merge_into(self.levels[-1])

    # -- undo ----------------------------------------------------------------------------

    def roll_back(
        self,
        level: LogLevel,
        identity: IdentityMap,
        work: UnitOfWork,
        *,
        forget_relations: bool = True,
    ) -> None:
        """Undo ``level`` (and the levels inside it) in memory; they are closed.

        ``forget_relations=False``: the caller detaches every object right after
        and drops their relationship values in the same pass.
        """
        while self.levels[-1] is not level:
            self.levels.pop().merge_into(self.levels[-1])
        if level.name is None:
            self.levels[-1] = LogLevel(None)  # the transaction itself: a fresh log
        else:
            self.levels.pop()
        _restore(level, identity, work)
        if forget_relations:
            # Relationship values may describe rows that no longer exist: load them again.
            identity.forget_relations()

    def committed(self) -> None:
        """The transaction committed: deleted objects leave, the log starts again."""
        for level in self.levels:
            for obj in level.deleted:
                state_of(obj).owner = None
        self.levels = [LogLevel(None)]


def _restore(level: LogLevel, identity: IdentityMap, work: UnitOfWork) -> None:
    work.discard_unflushed()
    for obj, saved in level.changes.items():
        obj.__dict__.update(saved)
        state_of(obj).changed = None
    for obj in level.deleted:
        if obj in level.inserted:
            continue  # inserted and deleted in the same span: it never existed
        state = state_of(obj)
        state.deleted = False
        state.persistent = True
        identity.put(obj)
    # Only inserted rows need the index (reading it would index a loaded batch).
    held = identity.by_model if level.inserted else {}
    infos: dict[type[Table], TableInfo] = {}
    for obj, generated in level.inserted.items():
        # identity.discard(obj), inlined with the model's mapping looked up once: a
        # large flush rolled back passes here per row (modified and related were
        # cleared above).
        d = obj.__dict__
        model = type(obj)
        found = held.get(model)
        if found is not None:
            info = infos.get(model)
            if info is None:
                info = infos[model] = table_info(model)
            key = identity_key(info, d)
            if found.get(key) is obj:
                del found[key]
        for name in generated:  # back to "the database will assign it"
            d[name] = None
        state = getattr(obj, STATE_KEY)  # state_of inlined
        if state.__class__ is not InstanceState:
            state = state_of(obj)
        state.persistent = False
        state.deleted = False
        state.owner = None
    for model, key in level.stale:
        loaded = identity.get(model, key)
        if loaded is not None and loaded not in level.changes:
            # Loaded after a bulk change: its values are the rolled-back ones.
            identity.detach(loaded)

"""The unit of work: what the next flush writes, and the writes that must share its log.

It holds the objects added (pending) and marked for deletion; the identity
map holds the modified ones, and each object's state its changed links.
The flush itself is `flush.Flush`; ``session.upsert()`` writes through
`upsert_writes`, bulk ``Query.update()`` / ``.delete()`` through
`bulk_writes`: all of them start here, so that every write of a transaction
lands in the one log its rollback restores from.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from data_bridge_core.bulk_writes import bulk_delete, bulk_update
from data_bridge_core.errors import InvalidStateError
from data_bridge_core.flush import Flush
from data_bridge_core.identity import ChangeLog, IdentityMap
from data_bridge_core.schema.table import Table
from data_bridge_core.state import STATE_KEY, InstanceState, state_of
from data_bridge_core.statement_runner import CLOSED, StatementRunner
from data_bridge_core.upsert import UpsertPlan
from data_bridge_core.upsert_writes import refuse_unwritten_relations, write_upsert
from data_bridge_core.written_rows import show_database_values

MISSING_OBJ = object()


class UnitOfWork:
    """Pending and deleted objects of one session: what its next flush writes."""

    def __init__(self, identity: IdentityMap, log: ChangeLog, runner: StatementRunner) -> None:
        self.identity = identity
        self.log = log
        self.runner = runner
        self.pending: dict[Table, None] = {}
        self.deleted: dict[Table, None] = {}
        # The new objects an upsert() is about to write (ids): the flush before it must not
        # insert them through the cascade, nor write what points to them (see `Flush`).
        self.upserting: set[int] = set()

    @property
    def has_changes(self) -> bool:
        identity = self.identity
        return bool(self.pending or identity.modified or self.deleted or identity.related)

    # -- registration -------------------------------------------------------------

    def add(self, obj: Table) -> None:
        """Schedule a new object for INSERT, or re-attach a detached persistent one."""
        identity = self.identity
        state = getattr(obj, STATE_KEY)  # state_of inlined: add_all() passes here per object
        if state.__class__ is not InstanceState:
            state = state_of(obj)
        if state.owner is identity:
            self.deleted.pop(obj, None)
            return
        if state.owner is not None:
            raise InvalidStateError(f"{obj!r} belongs to another session")
        if state.persistent:
            current = identity.get(type(obj), identity.key_of(obj))
            if current is not None and current is not obj:
                raise InvalidStateError(f"another object with the identity of {obj!r} is loaded")
            identity.put(obj)
            if state.changed:
                identity.modified[obj] = None
            if state.links:  # links changed before it was detached: written at the next flush
                identity.related[obj] = None
            return
        if state.deleted:
            raise InvalidStateError(f"{obj!r} was deleted")
        state.owner = identity
        self.pending[obj] = None
        if state.relations:
            identity.related[obj] = None

    def add_all(self, objects: Iterable[Table]) -> None:
        """`add` of each object in turn; a new object's case inlined (W4 adds 1,000)."""
        identity = self.identity
        pending = self.pending
        related = identity.related
        for obj in objects:
            if not isinstance(obj, Table) or (state := getattr(obj, STATE_KEY, None)) is None:
                raise TypeError(f"add() takes model instances, got {obj!r}")
            if (
                state.__class__ is InstanceState
                and state.owner is None
                and not state.persistent
                and not state.deleted
            ):
                state.owner = identity
                pending[obj] = None
                if state.relations:
                    related[obj] = None
            else:
                self.add(obj)

    def delete(self, obj: Table) -> None:
        """Mark an object for DELETE at the next flush (a pending one is just dropped)."""
        state = state_of(obj)
        if state.owner is not self.identity:
            raise InvalidStateError(f"{obj!r} is not in this session")
        if obj in self.pending:
            del self.pending[obj]
            state.owner = None
            return
        self.deleted[obj] = None

    def expunge(self, obj: Table) -> None:
        """Detach one object from the session."""
        state = state_of(obj)
        if state.owner is not self.identity:
            raise InvalidStateError(f"{obj!r} is not in this session")
        self.pending.pop(obj, None)
        self.deleted.pop(obj, None)
        if state.persistent:
            self.identity.discard(obj)
        self.identity.modified.pop(obj, None)
        self.identity.related.pop(obj, None)
        state.owner = None

    def forget(self, model: type[Table], key: Any) -> None:
        """A row was deleted in the database: its object leaves the identity map."""
        found = self.identity.by_model.get(model)
        obj = found.pop(key, None) if found is not None else None
        if obj is not None:
            state = state_of(obj)
            state.persistent = False
            state.deleted = True
            self.identity.modified.pop(obj, None)
            self.deleted.pop(obj, None)
            # It keeps its owner until commit, so that a rollback can bring it back.
            self.log.record_deleted(obj)

    def detach(self) -> None:
        """The session closed: drop its runner, which points back at this unit of work."""
        self.runner = CLOSED

    def discard_unflushed(self) -> None:
        """Forget every change not yet written (the transaction they were for is gone)."""
        for obj in self.pending:
            state_of(obj).owner = None
        for obj in self.identity.modified:
            state_of(obj).changed = None
        for obj in self.identity.related:
            state_of(obj).links = None
        self.pending.clear()
        self.deleted.clear()
        self.identity.modified.clear()
        self.identity.related.clear()

    def apply_loaded(self, obj: Table, values: dict[str, Any]) -> None:
        """Put freshly read column values on ``obj`` (``Session.refresh``), logging the old."""
        state = state_of(obj)
        show_database_values(self.log, obj, values.items())
        state.changed = None
        state.relations = None
        state.loaded_via = None
        self.identity.modified.pop(obj, None)

    # -- writes ---------------------------------------------------------------------

    async def flush(self) -> None:
        """Write pending inserts, changed columns and deletes, in foreign-key order."""
        await Flush(self).run()

    def take_for_upsert(self, objects: list[Table]) -> None:
        """Check new objects for `upsert`; pending ones are written by it, not by a flush."""
        identity = self.identity
        for obj in objects:
            state = state_of(obj)
            if state.persistent:
                raise InvalidStateError(
                    f"upsert() writes new objects; a {type(obj).__name__} object is already in "
                    "the database: "
                    "set its attributes and flush instead"
                )
            if state.owner is not None and state.owner is not identity:
                raise InvalidStateError(
                    f"upsert(): a {type(obj).__name__} object belongs to another session"
                )
            refuse_unwritten_relations(obj)
        for obj in objects:
            if self.pending.pop(obj, MISSING_OBJ) is not MISSING_OBJ:
                state_of(obj).owner = None
        self.upserting = {id(obj) for obj in objects}

    def upsert_done(self) -> None:
        """The upsert ran (or failed): a flush may cascade to those objects again."""
        self.upserting = set()

    async def upsert(self, plan: UpsertPlan, objects: list[Table]) -> int:
        """Write ``objects`` with ``INSERT ... ON CONFLICT``; returns the rows written."""
        return await write_upsert(self.runner, self.identity, self.log, plan, objects)

    async def bulk_update(
        self, model: type[Table], statement: str, params: Sequence[Any], names: tuple[str, ...]
    ) -> int:
        """``Query.update()``: see `bulk_writes.bulk_update`."""
        return await bulk_update(
            self.runner, self.identity, self.log, model, statement, params, names
        )

    async def bulk_delete(self, model: type[Table], statement: str, params: Sequence[Any]) -> int:
        """``Query.delete()``: see `bulk_writes.bulk_delete`."""
        return await bulk_delete(self.runner, self.identity, self.forget, model, statement, params)

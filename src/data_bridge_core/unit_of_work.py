"""The unit of work: what the next flush writes, and the flush itself.

It holds the objects added (pending) and marked for deletion; the identity
map holds the modified ones. `UnitOfWork.flush` writes them in foreign-key
order (referenced tables first for inserts, last for deletes), copying
foreign keys from related objects just before each write. Bulk
``Query.update()`` / ``.delete()`` run here too, so that every write of a
transaction lands in the one log its rollback restores from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from psycopg.rows import RowFactory

from data_bridge_core.ddl import dependency_order
from data_bridge_core.dml import delete_statement, plan_inserts, update_params, update_statement
from data_bridge_core.errors import DatabaseError, InvalidStateError
from data_bridge_core.identity import ChangeLog, IdentityMap, identity_key
from data_bridge_core.schema.relation import MANY_TO_ONE, ONE_TO_MANY
from data_bridge_core.schema.table import Table, table_info
from data_bridge_core.state import InstanceState, own_state, state_of


class StatementResult(Protocol):
    rows: list[Any]
    rowcount: int


class StatementRunner(Protocol):
    """The session's one way to run SQL (`Session.run_statement`)."""

    async def run_statement(
        self,
        statement: str,
        params: Sequence[Any] | None = None,
        *,
        batch: bool = False,
        row_factory: RowFactory[Any] | None = None,
        bulk_rows: int | None = None,
    ) -> StatementResult: ...


def _has_relations(obj: Table) -> bool:
    """True when the object holds relationship values (its own state has some)."""
    state = own_state(obj)
    return state is not None and bool(state.relations)


def related_objects(obj: Table) -> list[Table]:
    """Objects assigned to the relationships of ``obj`` (for save cascades)."""
    state = own_state(obj)
    if state is None or not state.relations:
        return []
    found: list[Table] = []
    for value in state.relations.values():
        if isinstance(value, list):
            found.extend(value)
        elif value is not None:
            found.append(value)
    return found


def pull_foreign_keys(obj: Table) -> None:
    """Copy the primary key of each related many-to-one object into ``obj``'s FK column."""
    state = own_state(obj)
    if state is None or not state.relations:
        return
    info = table_info(type(obj))
    for name, value in state.relations.items():
        rel = info.relationships.get(name)
        if rel is None or value is None or rel.direction != MANY_TO_ONE:
            continue
        target_pk = value.__dict__.get(table_info(rel.target).primary_key.name)
        if target_pk is not None and obj.__dict__.get(rel.fk.name) != target_pk:
            setattr(obj, rel.fk.name, target_pk)


def push_foreign_keys(obj: Table) -> None:
    """Copy ``obj``'s primary key into the FK column of the children it was given."""
    state = own_state(obj)
    if state is None or not state.relations:
        return
    info = table_info(type(obj))
    pk = obj.__dict__.get(info.primary_key.name)
    if pk is None:
        return
    for name, value in state.relations.items():
        rel = info.relationships.get(name)
        if rel is None or rel.direction != ONE_TO_MANY or value is None:
            continue
        for child in value if isinstance(value, list) else [value]:
            if child.__dict__.get(rel.fk.name) != pk:
                setattr(child, rel.fk.name, pk)


class UnitOfWork:
    """Pending and deleted objects of one session, and the flush that writes them."""

    def __init__(self, identity: IdentityMap, log: ChangeLog, runner: StatementRunner) -> None:
        self.identity = identity
        self.log = log
        self.runner = runner
        self.pending: dict[Table, None] = {}
        self.deleted: dict[Table, None] = {}

    @property
    def has_changes(self) -> bool:
        identity = self.identity
        return bool(self.pending or identity.modified or self.deleted or identity.related)

    # -- registration -------------------------------------------------------------

    def add(self, obj: Table) -> None:
        """Schedule a new object for INSERT, or re-attach a detached persistent one."""
        identity = self.identity
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
            return
        if state.deleted:
            raise InvalidStateError(f"{obj!r} was deleted")
        state.owner = identity
        self.pending[obj] = None
        if state.relations:
            identity.related[obj] = None

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

    def discard_unflushed(self) -> None:
        """Forget every change not yet written (the transaction they were for is gone)."""
        for obj in self.pending:
            state_of(obj).owner = None
        for obj in self.identity.modified:
            state_of(obj).changed = None
        self.pending.clear()
        self.deleted.clear()
        self.identity.modified.clear()
        self.identity.related.clear()

    # -- bulk statements of Query.update() / Query.delete() ------------------------

    async def bulk_update(
        self, model: type[Table], statement: str, params: Sequence[Any], values: dict[str, Any]
    ) -> int:
        """Run an ``UPDATE ... RETURNING key`` and show the new values on loaded objects."""
        result = await self.runner.run_statement(statement, params)
        found = self.identity.by_model.get(model)
        log = self.log
        for (key,) in result.rows:
            obj = found.get(key) if found is not None else None
            if obj is None:
                log.record_stale(model, key)  # loaded later, it must not outlive a rollback
                continue
            d = obj.__dict__
            for name, value in values.items():
                old = d.get(name)
                if old != value or type(old) is not type(value):
                    log.record_change(obj, name, old)
                    d[name] = value
        return len(result.rows)

    async def bulk_delete(self, model: type[Table], statement: str, params: Sequence[Any]) -> int:
        """Run a ``DELETE ... RETURNING key``; the matching loaded objects leave the session."""
        result = await self.runner.run_statement(statement, params)
        for (key,) in result.rows:
            self.forget(model, key)
        return len(result.rows)

    def apply_loaded(self, obj: Table, values: dict[str, Any]) -> None:
        """Put freshly read column values on ``obj`` (``Session.refresh``), logging the old."""
        d = obj.__dict__
        state = state_of(obj)
        for name, value in values.items():
            old = d.get(name)
            if old != value or type(old) is not type(value):
                self.log.record_change(obj, name, old)
                d[name] = value
        state.changed = None
        state.relations = None
        state.loaded_via = None
        self.identity.modified.pop(obj, None)

    # -- flush ----------------------------------------------------------------------

    def _cascade(self) -> None:
        """Add new objects reachable from the session's objects through relationships."""
        # Only objects holding relationship values can reach others.
        stack = [*self.identity.related, *(o for o in self.pending if _has_relations(o))]
        seen: set[int] = set()
        while stack:
            obj = stack.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            for other in related_objects(obj):
                state: InstanceState = state_of(other)
                if state.owner is None and not state.persistent and not state.deleted:
                    self.add(other)
                    stack.append(other)

    async def flush(self) -> None:
        """Write pending inserts, changed columns and deletes, in foreign-key order."""
        self._cascade()
        related = self.identity.related
        by_model: dict[type[Table], list[Table]] = {}
        for obj in self.pending:
            by_model.setdefault(type(obj), []).append(obj)
        for obj in related:
            pull_foreign_keys(obj)
        models = (
            set(by_model)
            | {type(o) for o in self.identity.modified}
            | {type(o) for o in self.deleted}
        )
        order = dependency_order(sorted(models, key=lambda m: m.__name__))
        for model in order:
            objects = by_model.get(model)
            if not objects:
                continue
            linked = [obj for obj in objects if _has_relations(obj)]
            for obj in linked:
                pull_foreign_keys(obj)
            await self._insert(model, objects)
            for obj in linked:
                push_foreign_keys(obj)
        for obj in list(related):
            if state_of(obj).persistent:
                push_foreign_keys(obj)
        await self._update_modified(order)
        await self._delete_marked(order)
        related.clear()

    async def _insert(self, model: type[Table], objects: list[Table]) -> None:
        info = table_info(model)
        held = self.identity.model_map(model)
        run = self.runner.run_statement
        record_inserted = self.log.record_inserted
        for batch in plan_inserts(model, objects):
            if len(batch.objects) > 1 and batch.bulk_sql is not None:
                result = await run(
                    batch.bulk_sql, batch.column_arrays(), bulk_rows=len(batch.objects)
                )
                returned = batch.bulk_returned
                rows = batch.match_returned(result.rows) if result.rows else result.rows
            else:
                params = batch.params()
                if len(params) == 1:
                    result = await run(batch.sql, params[0])
                else:
                    result = await run(batch.sql, params, batch=True)
                returned, rows = batch.returned, result.rows
            names = [c.name for c in returned]
            if names:
                if len(rows) != len(batch.objects):
                    raise DatabaseError(
                        f"INSERT into {info.name} returned {len(rows)} rows for "
                        f"{len(batch.objects)} objects"
                    )
                for obj, row in zip(batch.objects, rows, strict=True):
                    obj.__dict__.update(zip(names, row, strict=True))
            generated = tuple(c.name for c in batch.returned)  # cleared again by a rollback
            for obj in batch.objects:
                state = state_of(obj)
                state.persistent = True
                state.changed = None
                held[identity_key(info, obj.__dict__)] = obj
                record_inserted(obj, generated)
                del self.pending[obj]

    async def _update_modified(self, order: list[type[Table]]) -> None:
        groups: dict[tuple[type[Table], tuple[str, ...]], list[Table]] = {}
        for obj in self.identity.modified:
            state = state_of(obj)
            if not state.changed or obj in self.deleted:
                continue
            pull_foreign_keys(obj)
            fields = tuple(sorted(state.changed))
            groups.setdefault((type(obj), fields), []).append(obj)
        rank = {m: i for i, m in enumerate(order)}
        for (model, fields), objects in sorted(groups.items(), key=lambda g: rank.get(g[0][0], 0)):
            info = table_info(model)
            statement = update_statement(info, fields)
            rows = [update_params(info, fields, o) for o in objects]
            if len(rows) == 1:
                result = await self.runner.run_statement(statement, rows[0])
            else:
                result = await self.runner.run_statement(statement, rows, batch=True)
            if len(result.rows) != len(objects):
                raise InvalidStateError(
                    f"UPDATE of {info.name} matched {len(result.rows)} of {len(objects)} rows: "
                    "a row was deleted by someone else"
                )
            for obj in objects:
                state_of(obj).changed = None
        self.identity.modified.clear()

    async def _delete_marked(self, order: list[type[Table]]) -> None:
        if not self.deleted:
            return
        by_model: dict[type[Table], list[Table]] = {}
        for obj in self.deleted:
            by_model.setdefault(type(obj), []).append(obj)
        for model in reversed(order):
            objects = by_model.get(model)
            if not objects:
                continue
            info = table_info(model)
            keys = [identity_key(info, o.__dict__) for o in objects]
            await self.runner.run_statement(
                delete_statement(info), [keys], bulk_rows=len(keys) if len(keys) > 1 else None
            )
            for key in keys:
                self.forget(model, key)
        self.deleted.clear()

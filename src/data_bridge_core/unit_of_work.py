"""The unit of work: what the next flush writes, and the flush itself.

It holds the objects added (pending) and marked for deletion; the identity
map holds the modified ones. `UnitOfWork.flush` writes them in foreign-key
order (referenced tables first for inserts, last for deletes), copying
foreign keys from related objects just before each write. Bulk
``Query.update()`` / ``.delete()`` run here too, so that every write of a
transaction lands in the one log its rollback restores from.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from psycopg.rows import RowFactory

from data_bridge_core.ddl import dependency_order
from data_bridge_core.dml import (
    delete_params,
    delete_statement,
    plan_inserts,
    update_params,
    update_statement,
)
from data_bridge_core.errors import (
    DatabaseError,
    InvalidStateError,
    SessionClosedError,
    UnsupportedOperationError,
)
from data_bridge_core.identity import ChangeLog, IdentityMap, identity_key
from data_bridge_core.link_writes import delete_links_of, write_links
from data_bridge_core.schema.relation import (
    MANY_TO_MANY,
    MANY_TO_ONE,
    ONE_TO_MANY,
)
from data_bridge_core.schema.table import Table, table_info
from data_bridge_core.state import STATE_KEY, InstanceState, own_state, state_of
from data_bridge_core.upsert import UPSERT_CHUNK_ROWS, UpsertPlan

MISSING_OBJ = object()


class StatementResult(Protocol):
    rows: list[Any]
    rowcount: int


def show_database_values(log: ChangeLog, obj: Table, values: Iterable[tuple[str, Any]]) -> None:
    """Put column values the database returned on a loaded ``obj``; each one that
    differs (in value, or in type: ``1`` and ``1.0``) is logged first, so that a
    rollback puts the old one back."""
    d = obj.__dict__
    for name, value in values:
        old = d.get(name)
        if old != value or type(old) is not type(value):
            log.record_change(obj, name, old)
            d[name] = value


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


def _holding_relations(objects: Iterable[Table]) -> list[Table]:
    """The objects holding relationship values (their own state has some), without a
    Python call per object: a flush passes over every pending object this way three times."""
    return [
        obj
        for obj in objects
        if (state := getattr(obj, STATE_KEY)).__class__ is InstanceState and state.relations
    ]


def related_objects(obj: Table) -> list[Table]:
    """Objects assigned to the relationships of ``obj`` (for save cascades)."""
    state = own_state(obj)
    if state is None or not (state.relations or state.links):
        return []
    found: list[Table] = []
    for value in (state.relations or {}).values():
        if isinstance(value, list):
            found.extend(value)
        elif value is not None:
            found.append(value)
    if state.links:  # linked by add() to a list never read
        for changes in state.links.values():
            found.extend(changes.to_link())
    return found


def _refuse_unwritten_relations(obj: Table) -> None:
    """Upsert writes columns: refuse related objects it would silently leave out."""
    state = own_state(obj)
    if state is None or not state.relations:
        return
    info = table_info(type(obj))
    model = info.model.__name__
    for name, value in state.relations.items():
        rel = info.relationships.get(name)
        if rel is None or not value:
            continue
        if rel.direction == MANY_TO_ONE:
            if value.__dict__.get(table_info(rel.target).primary_key.name) is None:
                raise UnsupportedOperationError(
                    f"upsert() writes columns only; {model}.{name} holds a new "
                    f"{rel.target.__name__} without a key: add it and flush first"
                )
            continue  # a stored target is only its key, which the row carries
        raise UnsupportedOperationError(
            f"upsert() writes columns only; {model}.{name} was given objects it would not "
            f"write: upsert the {model} objects first, then link them and flush"
        )


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


class _ClosedRunner:
    """The runner of a closed session's unit of work: nothing runs any more."""

    async def run_statement(self, *args: Any, **kwargs: Any) -> StatementResult:
        raise SessionClosedError()


_CLOSED = _ClosedRunner()


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
        self.runner = _CLOSED

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

    # -- bulk statements of Query.update() / Query.delete() ------------------------

    async def bulk_update(
        self, model: type[Table], statement: str, params: Sequence[Any], names: tuple[str, ...]
    ) -> int:
        """Run an ``UPDATE ... RETURNING key, <names>`` and show the new values on loaded objects.

        The new values are read back (not taken from the call) because a value
        may be computed by PostgreSQL (``views = views + 1``).
        """
        result = await self.runner.run_statement(statement, params)
        found = self.identity.by_model.get(model)
        log = self.log
        width = len(table_info(model).primary_keys)
        for row in result.rows:
            key = row[0] if width == 1 else tuple(row[:width])
            new = row[width:]
            obj = found.get(key) if found is not None else None
            if obj is None:
                log.record_stale(model, key)  # loaded later, it must not outlive a rollback
                continue
            show_database_values(log, obj, zip(names, new, strict=True))
        return len(result.rows)

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
            _refuse_unwritten_relations(obj)
        for obj in objects:
            if self.pending.pop(obj, MISSING_OBJ) is not MISSING_OBJ:
                state_of(obj).owner = None

    async def upsert(self, plan: UpsertPlan, objects: list[Table]) -> int:
        """Write ``objects`` with ``INSERT ... ON CONFLICT``; returns the rows written."""
        for obj in objects:
            pull_foreign_keys(obj)
        written = 0
        for batch in plan_inserts(plan.info.model, objects):
            generated = tuple(c.name for c in batch.returned)
            for start in range(0, len(batch.objects), UPSERT_CHUNK_ROWS):
                chunk = batch.objects[start : start + UPSERT_CHUNK_ROWS]
                params = [value for row in batch.params_of(chunk) for value in row]
                result = await self.runner.run_statement(
                    plan.statement(batch.columns, len(chunk)), params
                )
                written += self._absorb_upserted(plan, chunk, result.rows, generated)
        return written

    def _absorb_upserted(
        self, plan: UpsertPlan, objects: list[Table], rows: list[Any], generated: tuple[str, ...]
    ) -> int:
        """Put each returned row on the object at its position; returns the rows written.

        Two objects whose keys the server stores alike (``"ab"`` and ``"ab "`` in a
        ``char(4)``) both join the one row they wrote; the first one gets it (rows come
        in position order), the other was skipped by ``DO NOTHING``.
        """
        info = plan.info
        names = info.field_names
        identity = self.identity
        log = self.log
        written: set[tuple[Any, ...]] = set()
        for row in rows:
            key = plan.key_of_row(row)
            if key in written:
                continue
            written.add(key)
            obj = objects[row[-1] - 1]
            values, inserted = row[:-2], row[-2]
            obj.__dict__.update(zip(names, values, strict=True))
            state = state_of(obj)
            state.persistent = True
            state.changed = None
            held = identity.get(info.model, identity.key_of(obj))
            if held is not None and held is not obj:
                # Merged into the held object (a rollback puts its old values back);
                # `obj` is a detached copy of the row: linked to an object, it stands
                # for the row, and it is never inserted again.
                show_database_values(log, held, zip(names, values, strict=True))
                continue
            identity.put(obj)
            # Rolled back, the object leaves the session; an inserted one also loses
            # the columns the database filled.
            log.record_inserted(obj, generated if inserted else ())
        return len(written)

    async def bulk_delete(self, model: type[Table], statement: str, params: Sequence[Any]) -> int:
        """Run a ``DELETE ... RETURNING key``; the matching loaded objects leave the session."""
        result = await self.runner.run_statement(statement, params)
        composite = table_info(model).composite
        held = self.identity.by_model.get(model, {})
        keys = [tuple(row) if composite else row[0] for row in result.rows]
        gone = [obj for obj in (held.get(key) for key in keys) if obj is not None]
        for key in keys:
            self.forget(model, key)
        self._drop_from_loaded_lists(gone)
        return len(result.rows)

    def _drop_from_loaded_lists(self, gone: Sequence[Table]) -> None:
        """Deleted rows leave the loaded lists of held objects (``user.posts``, ``tag.articles``).

        A rollback forgets every loaded list, so one that reads the row again
        loads it from the database then.
        """
        if not gone:
            return
        ids = {id(obj) for obj in gone}
        models = {type(obj) for obj in gone}
        for model, held in self.identity.by_model.items():
            names = [
                rel.name
                for rel in table_info(model).relationships.values()
                if rel.direction in (ONE_TO_MANY, MANY_TO_MANY) and rel.target in models
            ]
            if not names:
                continue
            for obj in held.values():
                state = own_state(obj)
                if state is None or not state.relations:
                    continue
                for name in names:
                    value = state.relations.get(name)
                    if isinstance(value, list):
                        if any(id(item) in ids for item in value):
                            value[:] = [item for item in value if id(item) not in ids]
                    elif value is not None and id(value) in ids:  # a one-to-one
                        state.relations[name] = None

    def apply_loaded(self, obj: Table, values: dict[str, Any]) -> None:
        """Put freshly read column values on ``obj`` (``Session.refresh``), logging the old."""
        state = state_of(obj)
        show_database_values(self.log, obj, values.items())
        state.changed = None
        state.relations = None
        state.loaded_via = None
        self.identity.modified.pop(obj, None)

    # -- flush ----------------------------------------------------------------------

    def _cascade(self) -> list[Table]:
        """Add new objects reachable from the session's objects through relationships;
        the pending objects holding relationship values are returned (objects the
        cascade adds that hold some are in ``identity.related``, as `add` notes them)."""
        # Only objects holding relationship values can reach others.
        holding = _holding_relations(self.pending)
        stack = [*self.identity.related, *holding]
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
        return holding

    async def flush(self) -> None:
        """Write pending inserts, changed columns and deletes, in foreign-key order."""
        holding = self._cascade()
        related = self.identity.related
        # Objects that may hold assigned many-to-many lists (their links are written
        # once every insert is done, so new targets have their keys).
        linking = [*related, *holding]
        inserting = {id(o) for o in self.pending}  # no links can exist for these yet
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
            # A model without relationships: its objects hold no relationship values.
            linked = _holding_relations(objects) if table_info(model).relationships else ()
            for obj in linked:
                pull_foreign_keys(obj)
            await self._insert(model, objects)
            for obj in linked:
                push_foreign_keys(obj)
        for obj in list(related):
            if state_of(obj).persistent:
                push_foreign_keys(obj)
        if linking:
            await write_links(self.runner, self.forget, linking, inserting)
        await self._update_modified(order)
        await self._delete_marked(order)
        related.clear()

    async def _insert(self, model: type[Table], objects: list[Table]) -> None:
        info = table_info(model)
        held = self.identity.model_map(model)
        run = self.runner.run_statement
        record_inserted_batch = self.log.record_inserted_batch
        pending = self.pending
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
                d = obj.__dict__
                state = getattr(obj, STATE_KEY)  # state_of inlined: this runs per row
                if state.__class__ is not InstanceState:
                    state = state_of(obj)
                state.persistent = True
                state.changed = None
                held[identity_key(info, d)] = obj
                del pending[obj]
            record_inserted_batch(batch.objects, generated)

    async def _update_modified(self, order: list[type[Table]]) -> None:
        groups: dict[tuple[type[Table], tuple[str, ...]], list[Table]] = {}
        for obj in self.identity.modified:
            state = state_of(obj)
            if not state.changed or obj in self.deleted:
                continue
            pull_foreign_keys(obj)
            fields = tuple(sorted(state.changed))
            groups.setdefault((type(obj), fields), []).append(obj)
        # Claimed before the first UPDATE is sent: a change another task of the session
        # makes while they run marks its object again, for the next flush to write.
        for objects in groups.values():
            for obj in objects:
                state_of(obj).changed = None
        self.identity.modified.clear()
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

    async def _delete_marked(self, order: list[type[Table]]) -> None:
        if not self.deleted:
            return
        by_model: dict[type[Table], list[Table]] = {}
        marked = list(self.deleted)  # one marked while the DELETEs run waits for the next flush
        for obj in marked:
            by_model.setdefault(type(obj), []).append(obj)
        for model in reversed(order):
            objects = by_model.get(model)
            if not objects:
                continue
            info = table_info(model)
            keys = [identity_key(info, o.__dict__) for o in objects]
            await delete_links_of(self.runner, self.forget, info, objects)
            await self.runner.run_statement(
                delete_statement(info),
                delete_params(info, keys),
                bulk_rows=len(keys) if len(keys) > 1 else None,
            )
            for key in keys:
                self.forget(model, key)
            self._drop_from_loaded_lists(objects)
        for obj in marked:
            self.deleted.pop(obj, None)

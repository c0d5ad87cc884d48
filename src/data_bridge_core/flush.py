"""One flush: what the unit of work holds, written in foreign-key order.

`Flush.run` adds the new objects reachable from the session's objects
(cascade), claims what it writes, then sends the INSERTs (referenced tables
first), the many-to-many links, the UPDATEs of changed columns and the
DELETEs (referencing tables first), copying foreign keys from related objects
just before each write.

Everything is claimed before the first statement is sent: another task of
the session may change objects while the flush awaits (assignments and
``add()`` are synchronous and take no lock), and what it changes is marked
again, for the next flush, instead of being dropped by this one.
"""

from __future__ import annotations

from collections import deque
from itertools import groupby, repeat
from operator import attrgetter, itemgetter
from typing import Any, Protocol

from data_bridge_core.ddl import dependency_order
from data_bridge_core.dml import (
    delete_params,
    delete_statement,
    explain_changed_json,
    loaded_rows,
    plan_inserts,
    update_params,
    update_statement,
)
from data_bridge_core.errors import DatabaseError, InvalidStateError
from data_bridge_core.foreign_keys import (
    holding_relations,
    insert_levels,
    pull_foreign_keys,
    push_foreign_keys,
    related_objects,
)
from data_bridge_core.identity import ChangeLog, IdentityMap, identity_key
from data_bridge_core.link_writes import ClaimedLinks, delete_links_of
from data_bridge_core.schema.table import Table, table_info
from data_bridge_core.state import STATE_KEY, InstanceState, own_state, state_of
from data_bridge_core.statement_runner import StatementRunner
from data_bridge_core.written_rows import drop_from_loaded_lists


class FlushSource(Protocol):
    """What a flush writes from, and reports to (the `UnitOfWork`)."""

    identity: IdentityMap
    log: ChangeLog
    runner: StatementRunner
    pending: dict[Table, None]
    deleted: dict[Table, None]
    upserting: set[int]

    def add(self, obj: Table) -> None: ...

    def forget(self, model: type[Table], key: Any) -> None: ...


class Flush:
    """One flush of a unit of work (see the module docstring)."""

    __slots__ = ("identity", "work")

    def __init__(self, work: FlushSource) -> None:
        self.work = work
        self.identity = work.identity

    async def run(self) -> None:
        waiting = self._wait_for_upsert() if self.work.upserting else None
        try:
            await self._run(waiting.blocked if waiting is not None else set())
        finally:
            if waiting is not None:
                waiting.give_back(self.work)

    def _wait_for_upsert(self) -> WaitingForUpsert:
        """Take out of this flush the objects pointing to ones an upsert is about to write,
        directly or through other such objects: they are written by the next flush, once
        those have their keys (a cascade would insert them without the upsert)."""
        work = self.work
        identity = self.identity
        waiting = WaitingForUpsert(work.upserting)
        blocked = waiting.blocked
        candidates = [*holding_relations(work.pending), *identity.related]
        # With the new objects the cascade would add: one may point to an upserted one.
        known = {id(obj) for obj in candidates}
        stack = list(candidates)
        while stack:
            for other in related_objects(stack.pop()):
                state = state_of(other)
                if id(other) in known or state.owner is not None or state.persistent:
                    continue
                known.add(id(other))
                candidates.append(other)
                stack.append(other)
        found = True
        while found:
            found = False
            for obj in candidates:
                if id(obj) not in blocked and any(
                    id(other) in blocked for other in related_objects(obj)
                ):
                    blocked.add(id(obj))
                    waiting.take(work, obj)
                    found = True
        return waiting

    async def _run(self, blocked: set[int]) -> None:
        holding = self._cascade(blocked)
        identity = self.identity
        related = list(identity.related)
        identity.related.clear()
        claimed = [*related, *holding]
        # No links can exist yet for the objects inserted (only looked up when some
        # object holds relationship values).
        inserting = {id(o) for o in self.work.pending} if claimed else set()
        # Their links are written once every insert is done, so new targets have keys.
        links = ClaimedLinks.take(claimed, inserting)
        try:
            await self._write(related, links)
        except BaseException:
            # What it claimed is unwritten again (a rollback then forgets all of it).
            for obj in (*related, *links.restore()):
                state = own_state(obj)
                if state is not None and state.owner is identity:
                    identity.related[obj] = None
            raise

    def _cascade(self, blocked: set[int]) -> list[Table]:
        """Add new objects reachable from the session's objects through relationships,
        but those in ``blocked`` (ids; see `_wait_for_upsert`); the pending objects holding
        relationship values are returned (objects the cascade adds that hold some are in
        ``identity.related``, as `add` notes them)."""
        # Only objects holding relationship values can reach others.
        holding = holding_relations(self.work.pending)
        stack = [*self.identity.related, *holding]
        add = self.work.add
        seen = set(blocked)  # written by the upsert, or after it: not here
        while stack:
            obj = stack.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            for other in related_objects(obj):
                if id(other) in seen:
                    continue
                state: InstanceState = state_of(other)
                if state.owner is None and not state.persistent and not state.deleted:
                    add(other)
                    stack.append(other)
        return holding

    async def _write(self, related: list[Table], links: ClaimedLinks) -> None:
        work = self.work
        by_model: dict[type[Table], list[Table]] = {}
        # Runs of objects of one model at a time (C-level; one run per model usually).
        for model, run in groupby(work.pending, type):
            group = by_model.get(model)
            if group is None:
                by_model[model] = list(run)
            else:
                group.extend(run)
        for obj in related:
            pull_foreign_keys(obj)
        models = set(by_model)
        models.update(type(o) for o in self.identity.modified)
        models.update(type(o) for o in work.deleted)
        order = dependency_order(sorted(models, key=lambda m: m.__name__))
        for model in order:
            objects = by_model.get(model)
            if not objects:
                continue
            if not table_info(model).relationships:
                # A model without relationships: its objects hold no relationship values.
                await self._insert(model, objects)
                continue
            # Parents first when new rows of a table point to each other.
            for level in insert_levels(model, objects):
                linked = holding_relations(level)
                for obj in linked:
                    pull_foreign_keys(obj)
                await self._insert(model, level)
                for obj in linked:
                    push_foreign_keys(obj)
        for obj in related:
            if state_of(obj).persistent:
                push_foreign_keys(obj)
        if links:
            for obj in await links.write(self.work.runner, work.forget):
                self.identity.related[obj] = None
        await self._update_modified(order)
        await self._delete_marked(order)

    async def _insert(self, model: type[Table], objects: list[Table]) -> None:
        info = table_info(model)
        held = self.identity.model_map(model)
        run = self.work.runner.run_statement
        record_inserted_batch = self.work.log.record_inserted_batch
        pending = self.work.pending
        for batch in plan_inserts(model, objects):
            objs = batch.objects
            # Every pass below over the batch is a C-level map, but one: the loop
            # setting each object's state (W4 inserts 1,000 objects a flush).
            dicts = batch.dicts or list(map(_dict_of, objs))
            try:
                if len(objs) > 1 and batch.bulk_sql is not None:
                    arrays = batch.column_arrays(dicts)
                    result = await run(batch.bulk_sql, arrays, bulk_rows=len(objs))
                    returned, loads = batch.bulk_returned, batch.plan.bulk_loads
                    rows = batch.match_returned(result.rows, dicts) if result.rows else result.rows
                else:
                    params = batch.params()
                    if len(params) == 1:
                        result = await run(batch.sql, params[0])
                    else:
                        result = await run(batch.sql, params, batch=True)
                    returned, rows, loads = batch.returned, result.rows, batch.plan.loads
            except Exception as exc:
                explain_changed_json(model, batch.columns, dicts, exc)
                raise
            if loads:
                rows = loaded_rows(rows, loads)  # an int field over numeric reads an int
            if returned:
                if len(rows) != len(objs):
                    raise DatabaseError(
                        f"INSERT into {info.name} returned {len(rows)} rows for {len(objs)} objects"
                    )
                if len(returned) == 1:
                    name = returned[0].name
                    for d, value in zip(dicts, map(_FIRST, rows), strict=True):
                        d[name] = value
                else:
                    names = [c.name for c in returned]
                    for d, row in zip(dicts, rows, strict=True):
                        d.update(zip(names, row, strict=True))
            for obj, state in zip(objs, map(_STATE, dicts), strict=True):
                if state.__class__ is not InstanceState:
                    state = state_of(obj)
                state.persistent = True
                state.changed = None
            # The identity map and the pending set, without a Python step per object
            # (a composite key's getter gives the tuple of its columns).
            keys = map(itemgetter(*info.key_names), dicts)
            held.update(zip(keys, objs, strict=True))
            deque(map(pending.pop, objs, repeat(None)), maxlen=0)
            # Cleared again by a rollback (the database assigned them).
            record_inserted_batch(objs, tuple(c.name for c in batch.returned))

    async def _update_modified(self, order: list[type[Table]]) -> None:
        groups: dict[tuple[type[Table], tuple[str, ...]], list[Table]] = {}
        deleted = self.work.deleted
        for obj in self.identity.modified:
            state = state_of(obj)
            if not state.changed or obj in deleted:
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
                result = await self.work.runner.run_statement(statement, rows[0])
            else:
                result = await self.work.runner.run_statement(statement, rows, batch=True)
            if len(result.rows) != len(objects):
                raise InvalidStateError(
                    f"UPDATE of {info.name} matched {len(result.rows)} of {len(objects)} rows: "
                    "a row was deleted by someone else"
                )

    async def _delete_marked(self, order: list[type[Table]]) -> None:
        deleted = self.work.deleted
        if not deleted:
            return
        forget = self.work.forget
        by_model: dict[type[Table], list[Table]] = {}
        marked = list(deleted)  # one marked while the DELETEs run waits for the next flush
        for obj in marked:
            by_model.setdefault(type(obj), []).append(obj)
        for model in reversed(order):
            objects = by_model.get(model)
            if not objects:
                continue
            info = table_info(model)
            keys = [identity_key(info, o.__dict__) for o in objects]
            await delete_links_of(self.work.runner, forget, info, objects)
            await self.work.runner.run_statement(
                delete_statement(info),
                delete_params(info, keys),
                bulk_rows=len(keys) if len(keys) > 1 else None,
            )
            for key in keys:
                forget(model, key)
            drop_from_loaded_lists(self.identity, objects)
        for obj in marked:
            deleted.pop(obj, None)


_dict_of = attrgetter("__dict__")
_FIRST = itemgetter(0)
_STATE = itemgetter(STATE_KEY)


class WaitingForUpsert:
    """Objects a flush leaves for the next one (see `Flush._wait_for_upsert`)."""

    __slots__ = ("blocked", "pending", "related")

    def __init__(self, upserting: set[int]) -> None:
        # Ids of the objects upserted and of those waiting for them (new ones included).
        self.blocked = set(upserting)
        self.pending: list[Table] = []
        self.related: list[Table] = []

    def take(self, work: FlushSource, obj: Table) -> None:
        if work.pending.pop(obj, _ABSENT) is not _ABSENT:
            self.pending.append(obj)
        if work.identity.related.pop(obj, _ABSENT) is not _ABSENT:
            self.related.append(obj)

    def give_back(self, work: FlushSource) -> None:
        for obj in self.pending:
            work.pending[obj] = None
        for obj in self.related:
            work.identity.related[obj] = None


_ABSENT = object()

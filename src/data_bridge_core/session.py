"""`Session`: a unit of work with an identity map, on one pooled connection.

The session takes a connection from the engine's pool on first use (psycopg
opens the transaction implicitly) and gives it back at commit, rollback or
close. Inside ``async with Session(...)`` it is the *current* session of the
task, which ``User.get()`` / ``User.find()`` use.
"""

from __future__ import annotations

import weakref
from collections.abc import AsyncIterator, Callable, Sequence
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, Self, TypeVar

from psycopg import AsyncConnection
from psycopg.rows import RowFactory

from data_bridge_core.engine import Engine
from data_bridge_core.errors import (
    DatabaseError,
    InvalidStateError,
    NoSessionError,
    SessionClosedError,
)
from data_bridge_core.execution import Result, SessionConnection
from data_bridge_core.query import Query
from data_bridge_core.schema.table import (
    STATE_KEY,
    InstanceState,
    ResultInfo,
    Table,
    own_state,
    state_of,
    table_info,
)
from data_bridge_core.unit_of_work import (
    dependency_order,
    plan_inserts,
    pull_foreign_keys,
    push_foreign_keys,
    related_objects,
    update_params,
    update_statement,
)

M = TypeVar("M", bound=Table)

_current: ContextVar[Session | None] = ContextVar("data_bridge_current_session", default=None)


def _has_relations(obj: Table) -> bool:
    """True when the object holds relationship values (its own state has some)."""
    state = own_state(obj)
    return state is not None and bool(state.relations)


def current_session() -> Session:
    """The session of the running ``async with Session(...)`` block."""
    session = _current.get()
    if session is None:
        raise NoSessionError(
            "no current session: run this inside `async with Session(...)`, "
            "or use session.get()/session.find() explicitly"
        )
    return session


class Session:
    """A unit of work on one engine; see docs/usage.md for the full semantics."""

    def __init__(self, bind: Engine | str, *, autoflush: bool = True) -> None:
        if isinstance(bind, str):
            self._engine: Engine | None = None
            self._dsn: str | None = bind
        elif isinstance(bind, Engine):
            self._engine = bind
            self._dsn = None
        else:
            raise TypeError(f"Session() takes an Engine or a connection string, got {bind!r}")
        self.autoflush_enabled = autoflush
        # The connection of the open transaction and everything run on it.
        self._execution = SessionConnection(lambda: self.engine, self._check_open)
        self._closed = False
        self._token: Token[Session | None] | None = None
        self._identity: dict[type[Table], dict[Any, Table]] = {}
        self._pending: dict[Table, None] = {}
        self._dirty: dict[Table, None] = {}
        self._deleted: dict[Table, None] = {}
        # Objects whose relationships were assigned (for cascades and FK sync).
        self._related: dict[Table, None] = {}
        # Objects with values to restore on rollback; objects inserted/deleted in this transaction.
        self._touched: dict[Table, None] = {}
        # (object, columns the database generated for it) inserted in this transaction.
        self._inserted_in_tx: list[tuple[Table, list[str]]] = []
        # Shared states of hydrated rows, detached at close; weak, so a long session
        # does not keep one per query after its rows are gone.
        self._results: weakref.WeakSet[ResultInfo] = weakref.WeakSet()
        self._flush_batch = 0
        self._deleted_in_tx: list[Table] = []

    # -- read-only state ------------------------------------------------------

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            assert self._dsn is not None
            self._engine = Engine.for_dsn(self._dsn)
        return self._engine

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    @property
    def dirty_count(self) -> int:
        return len(self._dirty)

    @property
    def deleted_count(self) -> int:
        return len(self._deleted)

    @property
    def in_transaction(self) -> bool:
        return self._conn is not None

    @property
    def last_flush_batch_size(self) -> int:
        """Rows written by the largest batched statement of the last flush (0: none batched)."""
        return self._flush_batch

    @property
    def transaction_started_ns(self) -> int | None:
        """``time.perf_counter_ns()`` when the open transaction began (None: no transaction)."""
        return self._tx_started_ns if self._conn is not None else None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def has_changes(self) -> bool:
        return bool(self._pending or self._dirty or self._deleted or self._related)

    def __contains__(self, obj: object) -> bool:
        state = getattr(obj, "__dict__", {}).get(STATE_KEY)
        return state is not None and state.session is self

    def __len__(self) -> int:
        return sum(len(m) for m in self._identity.values()) + len(self._pending)

    # -- context manager and lifecycle seams -------------------------------------------

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if exc_type is not None and self._conn is not None:
                await self.rollback()
        finally:
            await self.close()

    async def open(self) -> None:
        """Make this session the current one of the running task."""
        self._check_open()
        if self._token is None:
            self._token = _current.set(self)

    async def close(self) -> None:
        """Roll back anything uncommitted, give the connection back, detach all objects."""
        if self._closed:
            return
        detached = False
        try:
            if self._conn is not None:
                await self._end_transaction(commit=False)
                self._reset_after_rollback(detach=True)
                detached = True
        finally:
            self._closed = True
            for result in self._results:
                result.session = None  # detaches every row still sharing it
            self._results.clear()
            if not detached:
                for model_map in self._identity.values():
                    for obj in model_map.values():
                        own = own_state(obj)
                        if own is not None:
                            own.session = None
            for obj in self._pending:
                state_of(obj).session = None
            self._identity.clear()
            self._pending.clear()
            self._dirty.clear()
            self._deleted.clear()
            self._related.clear()
            self._touched.clear()
            if self._token is not None:
                try:
                    _current.reset(self._token)
                except ValueError:  # closed from another context than the one that opened it
                    if _current.get() is self:
                        _current.set(None)
                self._token = None

    def _check_open(self) -> None:
        if self._closed:
            raise SessionClosedError("this session is closed; open a new Session")

    # -- connection and SQL ---------------------------------------------------------------

    @property
    def _conn(self) -> AsyncConnection[Any] | None:
        """The connection of the open transaction (None: no transaction)."""
        return self._execution.conn

    @property
    def _tx_started_ns(self) -> int:
        return self._execution.started_ns

    async def _connection(self) -> AsyncConnection[Any]:
        """The transaction's connection (taken from the pool once, for every task)."""
        execution = self._execution
        return execution.conn or await execution.acquire()

    async def _end_transaction(self, *, commit: bool) -> None:
        """Commit or roll back; the transaction's streams close, the connection goes back."""
        await self._execution.end(commit=commit)

    async def execute(self, statement: str, params: Sequence[Any] | None = None) -> Result:
        """Run one raw SQL statement (``%s`` placeholders, values in ``params``).

        The public way to send SQL of your own; it runs in the session's
        transaction like every ORM statement. Returns a `Result` (iterate it,
        or read ``.rows`` and ``.rowcount``).
        """
        if not isinstance(statement, str):
            raise TypeError(f"execute() takes SQL text, got {type(statement).__name__}")
        self._check_open()
        return await self.run_statement(statement, params)

    async def run_statement(
        self,
        statement: str,
        params: Sequence[Any] | None = None,
        *,
        batch: bool = False,
        row_factory: RowFactory[Any] | None = None,
        bulk_rows: int | None = None,
    ) -> Result:
        """Run one SQL statement (``%s`` placeholders) in the session's transaction.

        With ``batch=True``, ``params`` is a sequence of parameter rows sent in
        one pipeline; the rows each statement returns are concatenated.
        ``bulk_rows`` tells observers that this one statement writes that many
        rows from column arrays (the flush's ``INSERT ... SELECT FROM unnest``).
        """
        if batch:
            param_rows = list(params or ())
            self._flush_batch = max(self._flush_batch, len(param_rows))
            return await self._execution.run(
                statement, param_rows, True, row_factory, len(param_rows)
            )
        if bulk_rows is not None:
            self._flush_batch = max(self._flush_batch, bulk_rows)
        return await self._execution.run(statement, params, False, row_factory, bulk_rows)

    # -- hydration ---------------------------------------------------------------------

    def hydrator(
        self, model: type[M], result_size: int, *, unique_rows: bool = False
    ) -> Callable[[Sequence[Any]], M]:
        """A function turning one row (in column order) into the session's instance.

        ``unique_rows``: the result cannot hold a primary key twice (a SELECT of
        one table); when the session holds no object of the model yet, no row
        can already be in the identity map and the lookup per row is skipped.
        """
        info = table_info(model)
        names = info.field_names
        pk_index = info.pk_index
        identity = self._identity.get(model)
        if identity is None:
            identity = self._identity[model] = {}
        # Every row shares this object as its state until it needs its own.
        result = ResultInfo(result_size, self)
        self._results.add(result)
        new = object.__new__

        def hydrate(values: Sequence[Any]) -> M:
            pk = values[pk_index]
            obj = identity.get(pk)
            if obj is not None:
                return obj  # type: ignore[return-value]
            obj = new(model)
            d = obj.__dict__
            d.update(zip(names, values, strict=False))  # the SELECT lists these columns
            d[STATE_KEY] = result
            identity[pk] = obj
            return obj

        def hydrate_new(values: Sequence[Any]) -> M:
            obj = new(model)
            d = obj.__dict__
            d.update(zip(names, values, strict=False))
            d[STATE_KEY] = result
            identity[values[pk_index]] = obj
            return obj

        chosen = hydrate_new if unique_rows and not identity else hydrate
        chosen.result = result  # type: ignore[attr-defined]
        return chosen

    async def load_rows(self, model: type[M], statement: str, params: Sequence[Any]) -> list[M]:
        """Execute a SELECT of ``model``'s columns and return identity-mapped instances."""
        hydrate = self.hydrator(model, 0, unique_rows=True)
        result = await self.run_statement(statement, params, row_factory=lambda _cur: hydrate)
        rows: list[M] = result.rows
        hydrate.result.size = len(rows)  # type: ignore[attr-defined]
        return rows

    def stream_rows(
        self, model: type[M], statement: str, params: Sequence[Any], batch_size: int
    ) -> AsyncIterator[M]:
        """Like `load_rows`, through a server-side cursor (not routed through `execute`).

        The stream belongs to the open transaction: ending it (commit, rollback,
        close) closes the stream, and resuming it afterwards raises.
        """
        hydrate = self.hydrator(model, batch_size)
        return self._execution.stream(statement, params, max(batch_size, 1), lambda _cur: hydrate)

    def identity_lookup(self, model: type[M], pk: Any) -> M | None:
        model_map = self._identity.get(model)
        if model_map is None:
            return None
        return model_map.get(pk)  # type: ignore[return-value]

    def forget(self, model: type[Table], pk: Any) -> None:
        """Drop a row deleted in the database from the identity map."""
        model_map = self._identity.get(model)
        obj = model_map.pop(pk, None) if model_map is not None else None
        if obj is not None:
            state: InstanceState = state_of(obj)
            state.persistent = False
            state.deleted = True
            self._dirty.pop(obj, None)
            self._deleted.pop(obj, None)
            self._deleted_in_tx.append(obj)

    # -- queries ------------------------------------------------------------------------

    def find(self, model: type[M], *filters: Any) -> Query[M]:
        """A query on ``model`` in this session: ``session.find(User).filter(...)``."""
        self._check_open()
        query = Query(model, self)
        return query.filter(*filters) if filters else query

    async def get(self, model: type[M], pk: Any) -> M | None:
        """The row with that primary key: from the identity map, or one SELECT."""
        self._check_open()
        pk_column = table_info(model).primary_key
        pk_column.check(pk)
        model_map = self._identity.get(model)
        if model_map is not None:
            obj = model_map.get(pk)
            if obj is not None:
                return obj  # type: ignore[return-value]
        rows = await Query(model, self).filter(pk_column == pk).limit(1).to_list()
        return rows[0] if rows else None

    # -- unit of work -----------------------------------------------------------------------

    def add(self, obj: Table) -> None:
        """Schedule a new object for INSERT (objects linked to it follow at flush)."""
        self._check_open()
        if not isinstance(obj, Table) or STATE_KEY not in obj.__dict__:
            raise TypeError(f"add() takes model instances, got {obj!r}")
        state = state_of(obj)
        if state.session is self:
            if obj in self._deleted:
                del self._deleted[obj]
            return
        if state.session is not None:
            raise InvalidStateError(f"{obj!r} belongs to another session")
        if state.persistent:
            # A detached persistent object: re-attach it.
            pk = obj.__dict__[table_info(type(obj)).primary_key.name]
            current = self.identity_lookup(type(obj), pk)
            if current is not None and current is not obj:
                raise InvalidStateError(f"another object with the identity of {obj!r} is loaded")
            state.session = self
            self._identity.setdefault(type(obj), {})[pk] = obj
            if state.changed:
                self._dirty[obj] = None
            return
        if state.deleted:
            raise InvalidStateError(f"{obj!r} was deleted")
        state.session = self
        self._pending[obj] = None
        if state.relations:
            self._related[obj] = None

    def add_all(self, objects: Sequence[Table]) -> None:
        for obj in objects:
            self.add(obj)

    async def delete(self, obj: Table) -> None:
        """Mark an object for DELETE at the next flush (a pending one is just dropped)."""
        self._check_open()
        if not isinstance(obj, Table) or STATE_KEY not in obj.__dict__:
            raise TypeError(f"delete() takes model instances, got {obj!r}")
        state = state_of(obj)
        if state.session is not self:
            raise InvalidStateError(f"{obj!r} is not in this session")
        if obj in self._pending:
            del self._pending[obj]
            state.session = None
            return
        self._deleted[obj] = None

    def expunge(self, obj: Table) -> None:
        """Detach one object from the session."""
        state: InstanceState = state_of(obj)
        if state.session is not self:
            raise InvalidStateError(f"{obj!r} is not in this session")
        for registry in (self._pending, self._dirty, self._deleted, self._related, self._touched):
            registry.pop(obj, None)
        if state.persistent:
            pk = obj.__dict__[table_info(type(obj)).primary_key.name]
            self._identity.get(type(obj), {}).pop(pk, None)
        state.session = None

    def _note_modified(self, obj: Table) -> None:
        self._dirty[obj] = None
        self._touched[obj] = None

    def _note_related(self, obj: Table) -> None:
        self._related[obj] = None

    async def autoflush(self) -> None:
        """Flush before a query when there are changes (and autoflush is on)."""
        if self.autoflush_enabled and (
            self._pending or self._dirty or self._deleted or self._related
        ):
            await self.flush()

    def _cascade(self) -> None:
        """Add new objects reachable from the session's objects through relationships."""
        # Only objects holding relationship values can reach others.
        stack = [*self._related, *(o for o in self._pending if _has_relations(o))]
        seen: set[int] = set()
        while stack:
            obj = stack.pop()
            if id(obj) in seen:
                continue
            seen.add(id(obj))
            for other in related_objects(obj):
                state: InstanceState = state_of(other)
                if state.session is None and not state.persistent and not state.deleted:
                    self.add(other)
                    stack.append(other)

    async def flush(self) -> None:
        """Write pending inserts, changed columns and deletes, in foreign-key order."""
        self._check_open()
        if not (self._pending or self._dirty or self._deleted or self._related):
            return
        self._flush_batch = 0
        try:
            await self._flush()
        except BaseException:
            # The transaction is aborted: roll it back so the database is as it was.
            try:
                await self._end_transaction(commit=False)
            finally:
                self._reset_after_rollback()
            raise

    async def _flush(self) -> None:
        self._cascade()
        pending = list(self._pending)
        by_model: dict[type[Table], list[Table]] = {}
        for obj in pending:
            by_model.setdefault(type(obj), []).append(obj)
        for obj in self._related:
            pull_foreign_keys(obj)
        models = set(by_model) | {type(o) for o in self._dirty} | {type(o) for o in self._deleted}
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
        for obj in list(self._related):
            if state_of(obj).persistent:
                push_foreign_keys(obj)
        await self._update_dirty(order)
        await self._delete_marked(order)
        self._related.clear()

    async def _insert(self, model: type[Table], objects: list[Table]) -> None:
        info = table_info(model)
        identity = self._identity.setdefault(model, {})
        for batch in plan_inserts(model, objects):
            if len(batch.objects) > 1 and batch.bulk_sql is not None:
                result = await self.run_statement(
                    batch.bulk_sql, batch.column_arrays(), bulk_rows=len(batch.objects)
                )
                returned = batch.bulk_returned
                rows = batch.match_returned(result.rows) if result.rows else result.rows
            else:
                params = batch.params()
                if len(params) == 1:
                    result = await self.run_statement(batch.sql, params[0])
                else:
                    result = await self.run_statement(batch.sql, params, batch=True)
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
            generated = [c.name for c in batch.returned]  # cleared again by a rollback
            for obj in batch.objects:
                state: InstanceState = state_of(obj)
                state.persistent = True
                state.inserted_in_tx = True
                state.changed = None
                identity[obj.__dict__[info.primary_key.name]] = obj
                self._inserted_in_tx.append((obj, generated))
                del self._pending[obj]

    async def _update_dirty(self, order: list[type[Table]]) -> None:
        groups: dict[tuple[type[Table], tuple[str, ...]], list[Table]] = {}
        for obj in self._dirty:
            state: InstanceState = state_of(obj)
            if not state.changed or obj in self._deleted:
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
                result = await self.run_statement(statement, rows[0])
            else:
                result = await self.run_statement(statement, rows, batch=True)
            if len(result.rows) != len(objects):
                raise InvalidStateError(
                    f"UPDATE of {info.name} matched {len(result.rows)} of {len(objects)} rows: "
                    "a row was deleted by someone else"
                )
            for obj in objects:
                state_of(obj).changed = None
        self._dirty.clear()

    async def _delete_marked(self, order: list[type[Table]]) -> None:
        if not self._deleted:
            return
        by_model: dict[type[Table], list[Table]] = {}
        for obj in self._deleted:
            by_model.setdefault(type(obj), []).append(obj)
        for model in reversed(order):
            objects = by_model.get(model)
            if not objects:
                continue
            info = table_info(model)
            pks = [o.__dict__[info.primary_key.name] for o in objects]
            await self.run_statement(
                f"DELETE FROM {info.quoted_name} WHERE {info.primary_key.ident} = ANY(%s)",
                [pks],
                bulk_rows=len(pks) if len(pks) > 1 else None,
            )
            for pk in pks:
                self.forget(model, pk)
        self._deleted.clear()

    async def commit(self) -> None:
        """Flush, then commit the transaction and give the connection back."""
        self._check_open()
        await self.flush()
        await self._end_transaction(commit=True)
        for obj in self._touched:
            state_of(obj).original = None
        for obj, _ in self._inserted_in_tx:
            state_of(obj).inserted_in_tx = False
        for obj in self._deleted_in_tx:
            state_of(obj).session = None
        self._touched.clear()
        self._inserted_in_tx.clear()
        self._deleted_in_tx.clear()

    async def rollback(self) -> None:
        """Roll the transaction back and undo its effects on the session's objects."""
        self._check_open()
        try:
            await self._end_transaction(commit=False)
        finally:
            self._reset_after_rollback()

    def _reset_after_rollback(self, *, detach: bool = False) -> None:
        for obj in self._deleted_in_tx:
            state: InstanceState = state_of(obj)
            if state.inserted_in_tx:
                continue  # inserted and deleted in the same transaction: it never existed
            state.deleted = False
            state.persistent = True
            pk = obj.__dict__[table_info(type(obj)).primary_key.name]
            self._identity.setdefault(type(obj), {})[pk] = obj
        for obj, generated in self._inserted_in_tx:
            state = state_of(obj)
            info = table_info(type(obj))
            self._identity.get(type(obj), {}).pop(obj.__dict__.get(info.primary_key.name), None)
            for name in generated:  # back to "the database will assign it"
                obj.__dict__[name] = None
            state.persistent = False
            state.deleted = False
            state.inserted_in_tx = False
            state.session = None
        for obj in self._pending:
            state_of(obj).session = None
        for obj in self._touched:
            state = state_of(obj)
            if state.original:
                obj.__dict__.update(state.original)
            state.original = None
            state.changed = None
        # Relationship values may describe rows that no longer exist: load them again.
        # (One pass over the identity map, inlined: it visits every loaded row.)
        for model_map in self._identity.values():
            for obj in model_map.values():
                own = obj.__dict__[STATE_KEY]
                if own.__class__ is InstanceState:  # a shared state holds no relations
                    own.relations = None
                    own.loaded_via = None
                    if detach:
                        own.session = None
        for registry in (self._pending, self._dirty, self._deleted, self._related, self._touched):
            registry.clear()
        self._inserted_in_tx.clear()
        self._deleted_in_tx.clear()

    def __repr__(self) -> str:
        status = "closed" if self._closed else ("in transaction" if self._conn else "idle")
        return f"<Session {status} pending={self.pending_count} dirty={self.dirty_count}>"

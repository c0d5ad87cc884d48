"""`Session`: the public face of a unit of work on one pooled connection.

The session takes a connection from the engine's pool on first use (psycopg
opens the transaction implicitly: *autobegin*) and gives it back at commit,
rollback or close. Inside ``async with Session(...)`` it is the *current*
session of the task, which ``User.get()`` / ``User.find()`` use.

The session keeps the seams (docs/extension-points.md) and delegates the
rest: objects by identity to `identity.IdentityMap`, rows to objects to
`hydration`, what to write and the flush to `unit_of_work.UnitOfWork`, what
a rollback restores to `transaction.TransactionLog`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Sequence
from contextvars import Token
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from psycopg import AsyncConnection
from psycopg.pq import TransactionStatus
from psycopg.rows import RowFactory

from data_bridge_core.context import current, current_session
from data_bridge_core.engine import Engine
from data_bridge_core.errors import (
    InvalidStateError,
    PendingRollbackError,
    SessionClosedError,
    described,
)
from data_bridge_core.execution import Result, SessionConnection, execute
from data_bridge_core.hydration import (
    by_name_row_factory,
    hydrate_rows,
    hydrating_row_factory,
    make_hydrator,
)
from data_bridge_core.identity import IdentityMap
from data_bridge_core.operation_lock import OperationLock
from data_bridge_core.savepoints import NestedTransaction
from data_bridge_core.schema.table import Table, new_query, table_info
from data_bridge_core.state import STATE_KEY, InstanceState, state_of
from data_bridge_core.transaction import LogLevel, TransactionLog
from data_bridge_core.unit_of_work import UnitOfWork
from data_bridge_core.upsert import UpsertPlan

if TYPE_CHECKING:
    from data_bridge_core.query import Query

__all__ = ["NestedTransaction", "Result", "Session", "current_session"]

M = TypeVar("M", bound=Table)

_savepoint_names = itertools.count(1)


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
        # One operation at a time, whatever the number of tasks using the session.
        self._operation = OperationLock()
        # The connection of the open transaction and everything run on it.
        self._execution = SessionConnection(lambda: self.engine, self._check_open, self._operation)
        self._closed = False
        self._token: Token[Session | None] | None = None
        self._log = TransactionLog()
        self._identity = IdentityMap(self, self._log)
        self._work = UnitOfWork(self._identity, self._log, self)
        # The error of a failed flush: the session refuses work until rollback().
        self._failed: BaseException | None = None
        self._flush_batch = 0
        self._flush_pipeline = 0

    # -- read-only state ------------------------------------------------------

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            assert self._dsn is not None
            self._engine = Engine.for_dsn(self._dsn)
        return self._engine

    @property
    def pending_count(self) -> int:
        return len(self._work.pending)

    @property
    def dirty_count(self) -> int:
        return len(self._identity.modified)

    @property
    def deleted_count(self) -> int:
        return len(self._work.deleted)

    @property
    def in_transaction(self) -> bool:
        return self._conn is not None

    @property
    def last_flush_batch_size(self) -> int:
        """Rows written by the largest batched statement of the last flush (0: none batched)."""
        return self._flush_batch

    @property
    def last_flush_pipeline_size(self) -> int:
        """Statements the last flush sent in its largest pipelined batch (0: none): a
        batch of several statements, unlike one bulk INSERT writing several rows."""
        return self._flush_pipeline

    @property
    def transaction_started_ns(self) -> int | None:
        """``time.perf_counter_ns()`` when the open transaction began (None: no transaction)."""
        execution = self._execution
        return execution.started_ns if execution.conn is not None else None

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def has_changes(self) -> bool:
        return self._work.has_changes

    @property
    def operation_lock(self) -> OperationLock:
        """The lock every operation of the session holds (re-entrant for its task).

        ``async with session.operation_lock:`` runs several steps as one
        operation: no other task of the session runs a statement, flush or
        commit in between (the terminal methods of `Query` do this).
        """
        return self._operation

    @property
    def unit_of_work(self) -> UnitOfWork:
        """What the next flush writes (``Query.update()``/``.delete()`` run through it)."""
        return self._work

    def __contains__(self, obj: object) -> bool:
        state = getattr(obj, "__dict__", {}).get(STATE_KEY)
        if state is None or state.owner is not self._identity:
            return False
        return not isinstance(state, InstanceState) or not state.deleted  # deleted: gone

    def __len__(self) -> int:
        return len(self._identity) + len(self._work.pending)

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
            if exc_type is not None and (self._conn is not None or self._failed is not None):
                await self.rollback()
        finally:
            await self.close()

    async def open(self) -> None:
        """Make this session the current one of the running task."""
        self._check_open()
        if self._token is None:
            self._token = current.set(self)

    async def close(self) -> None:
        """Roll back anything uncommitted, give the connection back, detach all objects.

        It waits for an operation another task of the session is running (a
        commit ends as it would have, and reports its true outcome), and it
        finishes even when this task is cancelled meanwhile (the cancellation
        is raised afterwards): the connection always goes back to the pool.
        """
        if self._closed:
            return
        operation = self._operation
        cancelled = await operation.acquire_to_finish()
        try:
            if not self._closed:  # another task may have closed it meanwhile
                await self._close_now()
        finally:
            operation.release()
        if cancelled:
            raise asyncio.CancelledError

    async def _close_now(self) -> None:
        rolled_back = False
        try:
            if self._conn is not None:
                rolled_back = True
                try:
                    await self._execution.end(commit=False, closing=True)
                finally:
                    log = self._log
                    # A session that only read recorded nothing: no log level to undo
                    # (the unflushed changes are discarded below either way).
                    if not log.untouched:
                        log.roll_back(
                            log.levels[0], self._identity, self._work, forget_relations=False
                        )
        finally:
            self._closed = True
            self._failed = None
            self._work.discard_unflushed()
            self._identity.clear(forget_relations=rolled_back)
            # The parts point back at the session; cutting those links lets reference
            # counting free a closed session instead of the garbage collector.
            self._execution.detach()
            self._identity.forget_session()
            self._work.detach()
            if self._token is not None:
                try:
                    current.reset(self._token)
                except ValueError:  # closed from another context than the one that opened it
                    if current.get() is self:
                        current.set(None)
                self._token = None

    def _check_open(self) -> None:
        if self._closed:
            raise SessionClosedError()

    def _quiet(self) -> bool:
        """No operation running (in any task), nothing to autoflush, no failed flush: a
        read's one statement is then its whole operation (see `Query.to_list`)."""
        return (
            not self._operation._depth  # `busy`, read without a property call
            and self._failed is None
            and not (self.autoflush_enabled and self._work.has_changes)
        )

    def _check_usable(self) -> None:
        """Closed, or a failed flush not yet rolled back: refuse to go on."""
        if self._closed:
            raise SessionClosedError()
        if self._failed is not None:
            raise PendingRollbackError(self._failed) from self._failed

    # -- connection and SQL ---------------------------------------------------------------

    @property
    def _conn(self) -> AsyncConnection[Any] | None:
        """The connection of the open transaction (None: no transaction)."""
        return self._execution.conn

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
        self._check_usable()
        return await self.run_statement(statement, params)

    async def run_statement(
        self,
        statement: str,
        params: Sequence[Any] | None = None,
        *,
        batch: bool = False,
        row_factory: RowFactory[Any] | None = None,
        bulk_rows: int | None = None,
        read: bool = False,
    ) -> Result:
        """Run one SQL statement (``%s`` placeholders) in the session's transaction.

        With ``batch=True``, ``params`` is a sequence of parameter rows sent in
        one pipeline; the rows each statement returns are concatenated.
        ``bulk_rows`` tells observers that this one statement writes that many
        rows from column arrays (the flush's ``INSERT ... SELECT FROM unnest``).
        ``read=True`` says the statement is one of the ORM's own SELECTs, which
        change nothing; a transaction that ran only those ends with COMMIT when the
        session closes (`SessionConnection.end`). Anything else, SQL of your own
        included, leaves the default: the transaction then ends with ROLLBACK.
        """
        if not read:
            self._execution.wrote = True
        async with self._operation:  # re-entrant: free inside the task's own operation
            if batch:
                param_rows = list(params or ())
                self._flush_batch = max(self._flush_batch, len(param_rows))
                self._flush_pipeline = max(self._flush_pipeline, len(param_rows))
                return await self._execution.run(
                    statement, param_rows, True, row_factory, len(param_rows)
                )
            if bulk_rows is not None:
                self._flush_batch = max(self._flush_batch, bulk_rows)
            conn = self._execution.conn
            if conn is not None:  # the transaction is open: SessionConnection.run's own case
                return await execute(conn, statement, params, False, row_factory, bulk_rows)
            return await self._execution.run(statement, params, False, row_factory, bulk_rows)

    @contextlib.asynccontextmanager
    async def exclusive_connection(self) -> AsyncIterator[AsyncConnection[Any] | None]:
        """``async with session.exclusive_connection() as conn:`` the open transaction's
        connection, for a tool's statements of its own (``query_plans.generic_plan``).

        While the block runs no other task of the session runs anything (it
        holds the session's operation lock), so statements sent there form
        one unit no flush, statement or commit of another task can fall
        into. ``conn`` is None when there is no transaction, or it is aborted
        by an error, or the session is closed or failed: a tool then sends
        nothing. Statements on ``conn`` bypass ``run_statement`` and its
        wrappers; leave the transaction as healthy as you found it (use a
        savepoint you roll back).
        """
        async with self._operation:
            conn = self._execution.conn
            if (
                conn is None
                or self._closed
                or self._failed is not None
                or conn.info.transaction_status != TransactionStatus.INTRANS
            ):
                yield None
            else:
                self._execution.wrote = True  # a tool's own SQL: never ended with COMMIT
                yield conn

    # -- loading ------------------------------------------------------------------------

    def hydrator(
        self, model: type[M], result_size: int, *, unique_rows: bool = False
    ) -> Callable[[Sequence[Any]], M]:
        """A function turning one row (in column order) into the session's instance."""
        return make_hydrator(self._identity, model, result_size, unique_rows=unique_rows)

    async def load_rows(self, model: type[M], statement: str, params: Sequence[Any]) -> list[M]:
        """Execute a SELECT of ``model``'s columns and return identity-mapped instances."""
        if self._failed is not None:
            raise PendingRollbackError(self._failed) from self._failed
        # Fetched as tuples (psycopg builds them in C), then made objects by one loop.
        result = await self.run_statement(statement, params, read=True)
        return hydrate_rows(self._identity, model, result.rows, unique_rows=True)

    async def load_keyed_rows(
        self, model: type[M], statement: str, params: Sequence[Any]
    ) -> list[tuple[Any, M]]:
        """Like `load_rows` for a SELECT whose first column is a key and the rest
        ``model``'s columns (a many-to-many's parent key): (key, instance) pairs."""
        self._check_usable()
        hydrating = hydrating_row_factory(self._identity, model)

        def pairs(cursor: Any) -> Callable[[Sequence[Any]], tuple[Any, M]]:
            hydrate = hydrating(cursor)
            return lambda values: (values[0], hydrate(values[1:]))

        result = await self.run_statement(statement, params, row_factory=pairs, read=True)
        rows: list[tuple[Any, M]] = result.rows
        return rows

    async def from_sql(
        self, model: type[M], statement: str, params: Sequence[Any] | None = None
    ) -> list[M]:
        """Model instances from your own SELECT, through the identity map.

        The statement must return every column of ``model`` (by name, in any
        order; extra columns are ignored): ``SELECT users.* FROM users JOIN ...``.
        A row already in the session comes back as the session's object,
        unchanged, as with any query.
        """
        if not isinstance(statement, str):
            raise TypeError(f"from_sql() takes SQL text, got {type(statement).__name__}")
        async with self._operation:
            return await self._from_sql(model, statement, params)

    async def _from_sql(
        self, model: type[M], statement: str, params: Sequence[Any] | None
    ) -> list[M]:
        self._check_usable()
        await self.autoflush()
        by_name = by_name_row_factory(self._identity, model)
        result = await self.run_statement(statement, params, row_factory=by_name)
        rows: list[M] = result.rows
        return rows

    async def stream_rows(
        self, model: type[M], statement: str, params: Sequence[Any], batch_size: int
    ) -> AsyncGenerator[M, None]:
        """Like `load_rows`, through a server-side cursor (not routed through `execute`).

        The stream belongs to the open transaction: ending it (commit, rollback,
        close) closes the stream, and resuming it afterwards raises
        `InvalidStateError`.
        """
        # A stream is read for its size: its rows are stored compactly.
        hydrate = make_hydrator(self._identity, model, batch_size, compact=True)
        rows = self._execution.stream(statement, params, max(batch_size, 1), lambda _cur: hydrate)
        async with contextlib.aclosing(rows):  # closing this stream closes the cursor at once
            async for obj in rows:
                yield obj

    def held_objects(self, model: type[M]) -> list[M]:
        """Every object of ``model`` the session holds (no SQL)."""
        return list(self._identity.by_model.get(model, {}).values())  # type: ignore[arg-type]

    def identity_lookup(self, model: type[M], pk: Any) -> M | None:
        """The object of that identity the session holds, or None (no SQL)."""
        return self._identity.get(model, pk)  # type: ignore[return-value]

    # -- queries ------------------------------------------------------------------------

    def find(self, model: type[M], *filters: Any) -> Query[M]:
        """A query on ``model`` in this session: ``session.find(User).filter(...)``."""
        self._check_open()
        query: Query[M] = new_query(model, self)
        return query.filter(*filters) if filters else query

    async def get(self, model: type[M], pk: Any) -> M | None:
        """The row with that primary key: from the identity map, or one SELECT.

        A composite key is a tuple, in the order the key columns are declared:
        ``session.get(ArticleTag, (article_id, tag_id))``.
        """
        if self._closed or self._failed is not None:
            self._check_usable()
        info = table_info(model)
        if info.composite:
            info.check_key(pk, "get()")
        else:
            info.primary_key.check(pk)  # check_key's one-column case, without its call
        obj = self._identity.get(model, pk)
        if obj is not None:
            return obj  # type: ignore[return-value]
        if info.composite:
            query: Query[M] = new_query(model, self).filter(
                *(c == v for c, v in zip(info.primary_keys, pk, strict=True))
            )
            query = query.limit(1)
        else:
            # Through Query.to_list (the seam instrumentations wrap), built without
            # filter()/limit()'s checks and copies: the condition is the model's own key.
            query = new_query(model, self)._by_key(pk)
        rows = await query.to_list()
        return rows[0] if rows else None

    async def refresh(self, obj: Table) -> None:
        """Reload the object's columns from the database (after a flush of pending changes).

        Changes not yet flushed are flushed first (autoflush); loaded
        relationship values are dropped and load again when awaited. A rollback
        puts back the values the object had before.
        """
        if not isinstance(obj, Table) or STATE_KEY not in obj.__dict__:
            raise TypeError(f"refresh() takes a model instance, got {obj!r}")
        async with self._operation:
            await self._refresh(obj)

    async def _refresh(self, obj: Table) -> None:
        self._check_usable()
        state = state_of(obj)
        if state.owner is not self._identity or not state.persistent:
            raise InvalidStateError(f"refresh() takes a persistent object of this session: {obj!r}")
        await self.autoflush()
        info = table_info(type(obj))
        key = self._identity.key_of(obj)
        statement = f"SELECT {info.select_list} FROM {info.quoted_name} WHERE {info.key_where}"
        result = await self.run_statement(statement, info.key_params(key), read=True)
        if not result.rows:
            raise InvalidStateError(f"{obj!r} no longer exists in the database")
        row = result.rows[0]
        if info.loaders:
            row = info.loaded_row(row)  # converted before the object changes at all
        self._work.apply_loaded(obj, dict(zip(info.field_names, row, strict=True)))

    # -- registration -------------------------------------------------------------------

    def add(self, obj: Table) -> None:
        """Schedule a new object for INSERT (objects linked to it follow at flush)."""
        self._check_open()
        if not isinstance(obj, Table) or STATE_KEY not in obj.__dict__:
            raise TypeError(f"add() takes model instances, got {obj!r}")
        self._work.add(obj)

    async def upsert(
        self, objects: Iterable[Table], *, on: Sequence[str], update: Sequence[str]
    ) -> int:
        """``INSERT ... ON CONFLICT (on) DO UPDATE SET <update> = EXCLUDED...``; rows written.

        ``update=()`` means ``DO NOTHING``: rows whose key exists are skipped.
        Every object written (inserted or updated) gets the row's values,
        database-assigned keys included, and joins the session. The session's
        changes are flushed first, except objects pointing to the ones upserted:
        those are written by the next flush, with the upserted rows' keys.
        """
        async with self._operation:
            return await self._upsert(list(objects), on, update)

    async def _upsert(self, objects: list[Table], on: Sequence[str], update: Sequence[str]) -> int:
        self._check_usable()
        if not objects:
            return 0
        model = type(objects[0])
        for obj in objects:
            if type(obj) is not model or STATE_KEY not in obj.__dict__:
                raise TypeError(
                    "upsert() takes new objects of one model, got "
                    f"{described(obj)} with {described(objects[0])}"
                )
        plan = UpsertPlan(table_info(model), on, update)
        plan.check_distinct(objects)
        self._work.take_for_upsert(objects)
        try:
            # Written first, except what points to the objects upserted: it waits for
            # their keys (the next flush), so that each is written once, by the upsert.
            await self.autoflush()
            return await self._work.upsert(plan, objects)
        finally:
            self._work.upsert_done()

    def add_all(self, objects: Sequence[Table]) -> None:
        self._check_open()
        self._work.add_all(objects)  # add() of each, a new object's case inlined

    async def delete(self, obj: Table) -> None:
        """Mark an object for DELETE at the next flush (a pending one is just dropped)."""
        self._check_open()
        if not isinstance(obj, Table) or STATE_KEY not in obj.__dict__:
            raise TypeError(f"delete() takes model instances, got {obj!r}")
        self._work.delete(obj)

    def expunge(self, obj: Table) -> None:
        """Detach one object from the session."""
        self._work.expunge(obj)

    # -- flush, commit, rollback, savepoints ----------------------------------------------

    async def autoflush(self) -> None:
        """Flush before a query when there are changes (and autoflush is on)."""
        if self._failed is not None:
            raise PendingRollbackError(self._failed) from self._failed
        if self.autoflush_enabled and self._work.has_changes:
            await self.flush()

    async def flush(self) -> None:
        """Write pending inserts, changed columns and deletes, in foreign-key order.

        When a statement fails the transaction is rolled back (to the innermost
        savepoint, when one is open, by the end of its block) and the session
        refuses further work with `PendingRollbackError` until ``rollback()``.
        """
        async with self._operation:  # what it writes, it writes once: no other task flushes
            self._check_usable()
            if not self._work.has_changes:
                return
            self._flush_batch = self._flush_pipeline = 0
            try:
                await self._work.flush()
            except BaseException as exc:
                await self._flush_failed(exc)
                raise

    async def _flush_failed(self, exc: BaseException) -> None:
        self._failed = exc
        if not self._log.in_savepoint:  # else the savepoint's block rolls back to it
            await self._abandon_transaction(exc)

    async def _abandon_transaction(self, exc: BaseException) -> None:
        """The transaction is aborted: roll it back; the session waits for rollback()."""
        try:
            await self._end_transaction(commit=False)
        finally:
            self._rolled_back()
            self._failed = exc

    async def commit(self) -> None:
        """Flush, then commit the transaction and give the connection back."""
        async with self._operation:
            self._check_usable()
            await self.flush()
            try:
                await self._end_transaction(commit=True)
            except BaseException:
                self._rolled_back()  # not committed: the objects show the database again
                raise
            self._log.committed()

    async def rollback(self) -> None:
        """Roll the transaction back and undo its effects on the session's objects."""
        async with self._operation:
            self._check_open()
            try:
                await self._end_transaction(commit=False)
            finally:
                self._rolled_back()

    def _rolled_back(self) -> None:
        """The whole transaction is gone: objects show what the database holds."""
        self._log.roll_back(self._log.levels[0], self._identity, self._work)
        self._failed = None

    def begin_nested(self) -> NestedTransaction:
        """``async with session.begin_nested():`` runs its block in a SAVEPOINT.

        Pending changes are flushed first. When the block raises (a failed flush
        included), the database rolls back to the savepoint, the objects changed
        inside get their values back, and the exception propagates; the outer
        transaction stays usable. Otherwise the block's changes are flushed and
        the savepoint released.
        """
        self._check_usable()
        return NestedTransaction(self, self._log)

    async def savepoint(self) -> LogLevel:
        """Flush, then ``SAVEPOINT``: the level `release_savepoint` or
        `rollback_to_savepoint` ends. ``begin_nested()`` calls these three; they are
        seams (one operation each) rather than API to call by hand."""
        async with self._operation:
            self._check_usable()
            await self.flush()
            name = f"data_bridge_sp_{next(_savepoint_names)}"
            await self.run_statement(f"SAVEPOINT {name}")
            return self._log.begin_savepoint(name)

    async def release_savepoint(self, level: LogLevel) -> None:
        """Flush the block's changes, then ``RELEASE SAVEPOINT`` (rolled back to it
        when that flush fails)."""
        async with self._operation:
            if not self._log.is_open(level):
                return  # the whole transaction was committed or rolled back inside the block
            try:
                await self.flush()
            except BaseException:
                await self.rollback_to_savepoint(level)
                raise
            failed = self._failed
            if failed is not None:  # a flush failed inside and its error was caught there
                await self.rollback_to_savepoint(level)
                raise PendingRollbackError(failed) from failed
            await self.run_statement(f"RELEASE SAVEPOINT {level.name}")
            self._log.release(level)

    async def rollback_to_savepoint(self, level: LogLevel) -> None:
        """``ROLLBACK TO SAVEPOINT`` and release it; the objects get their values back."""
        async with self._operation:
            if not self._log.is_open(level):
                return
            try:
                await self.run_statement(f"ROLLBACK TO SAVEPOINT {level.name}")
                await self.run_statement(f"RELEASE SAVEPOINT {level.name}")
            except BaseException as exc:
                # The savepoint could not be reached: the whole transaction is lost.
                await self._abandon_transaction(exc)
                raise
            self._log.roll_back(level, self._identity, self._work)
            self._failed = None

    def __repr__(self) -> str:
        status = "closed" if self._closed else ("in transaction" if self._conn else "idle")
        return f"<Session {status} pending={self.pending_count} dirty={self.dirty_count}>"

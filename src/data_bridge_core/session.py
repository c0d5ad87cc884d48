"""`Session`: a unit of work with an identity map, on one pooled connection.

The session takes a connection from the engine's pool on first use (psycopg
opens the transaction implicitly) and gives it back at commit, rollback or
close. Inside ``async with Session(...)`` it is the *current* session of the
task, which ``User.get()`` / ``User.find()`` use.
"""

from __future__ import annotations

import itertools
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from contextvars import ContextVar, Token
from types import TracebackType
from typing import Any, Self, TypeVar

import psycopg
from psycopg import AsyncConnection
from psycopg.pq import ExecStatus
from psycopg.rows import RowFactory

from data_bridge_core.engine import Engine
from data_bridge_core.errors import (
    DatabaseError,
    InvalidStateError,
    NoSessionError,
    SessionClosedError,
    UnsupportedOperationError,
    wrap_database_error,
)
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
from data_bridge_core.upsert import CHUNK_ROWS, UpsertPlan

M = TypeVar("M", bound=Table)

_current: ContextVar[Session | None] = ContextVar("data_bridge_current_session", default=None)
_cursor_names = itertools.count(1)


TUPLES_OK = ExecStatus.TUPLES_OK


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


class Result:
    """What `Session.execute` and `Session.run_statement` return: the rows, in order."""

    __slots__ = ("batch_size", "rowcount", "rows", "statement")

    def __init__(
        self, rows: list[Any], rowcount: int, statement: str, batch_size: int | None
    ) -> None:
        self.rows = rows
        self.rowcount = rowcount
        self.statement = statement
        self.batch_size = batch_size

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, index: int) -> Any:
        return self.rows[index]

    def __repr__(self) -> str:
        return f"<Result rows={len(self.rows)} rowcount={self.rowcount}>"


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
        self._conn: AsyncConnection[Any] | None = None
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
        self._tx_started_ns = 0
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

    async def _connection(self) -> AsyncConnection[Any]:
        conn = self._conn
        if conn is None:
            self._check_open()
            conn = self._conn = await self.engine.acquire()
            self._tx_started_ns = time.perf_counter_ns()  # autobegin: the transaction starts
        return conn

    async def _end_transaction(self, *, commit: bool) -> None:
        conn = self._conn
        if conn is None:
            return
        self._conn = None
        try:
            if commit:
                await conn.commit()
            else:
                await conn.rollback()
        except psycopg.Error as exc:
            raise wrap_database_error(exc) from exc
        finally:
            await self.engine.release(conn)

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
        conn = self._conn or await self._connection()
        cur = conn.cursor(row_factory=row_factory) if row_factory is not None else conn.cursor()
        try:
            if batch:
                param_rows = list(params or ())
                self._flush_batch = max(self._flush_batch, len(param_rows))
                await cur.executemany(statement, param_rows, returning=True)
                rows: list[Any] = []
                rowcount = 0
                while True:
                    if cur.description is not None:
                        rows.extend(await cur.fetchall())
                    rowcount += max(cur.rowcount, 0)
                    if not cur.nextset():
                        break
                return Result(rows, rowcount, statement, len(param_rows))
            if bulk_rows is not None:
                self._flush_batch = max(self._flush_batch, bulk_rows)
            await cur.execute(statement, params if params is not None else (), binary=True)
            # pgresult.status is a plain read; cur.description builds column objects.
            result = cur.pgresult
            rows = await cur.fetchall() if result and result.status == TUPLES_OK else []
            return Result(rows, cur.rowcount, statement, bulk_rows)
        except psycopg.Error as exc:
            raise wrap_database_error(exc) from exc
        finally:
            await cur.close()

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
        self._check_open()
        await self.autoflush()
        info = table_info(model)
        hydrate = self.hydrator(model, 0)

        def by_name(cur: Any) -> Callable[[Sequence[Any]], M]:
            returned = [c.name for c in cur.description or ()]
            missing = [n for n in info.field_names if n not in returned]
            if missing:
                raise UnsupportedOperationError(
                    f"from_sql({model.__name__}, ...): the statement does not return the "
                    f"column(s) {', '.join(missing)}; select them all, as in "
                    f"SELECT {info.name}.* FROM {info.name} ..."
                )
            positions = [returned.index(n) for n in info.field_names]
            if positions == list(range(len(positions))):
                return hydrate
            return lambda values: hydrate([values[i] for i in positions])

        result = await self.run_statement(statement, params, row_factory=by_name)
        rows: list[M] = result.rows
        hydrate.result.size = len(rows)  # type: ignore[attr-defined]
        return rows

    async def stream_rows(
        self, model: type[M], statement: str, params: Sequence[Any], batch_size: int
    ) -> AsyncIterator[M]:
        """Like `load_rows`, through a server-side cursor (not routed through `execute`)."""
        conn = await self._connection()
        hydrate = self.hydrator(model, batch_size)
        name = f"data_bridge_stream_{next(_cursor_names)}"
        try:
            async with conn.cursor(name, row_factory=lambda _cur: hydrate) as cur:
                cur.itersize = max(batch_size, 1)
                await cur.execute(statement, params)
                async for obj in cur:
                    yield obj
        except psycopg.Error as exc:
            raise wrap_database_error(exc) from exc

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

    async def upsert(
        self, objects: Sequence[Table], *, on: Sequence[str], update: Sequence[str]
    ) -> int:
        """``INSERT ... ON CONFLICT (on) DO UPDATE SET <update> = EXCLUDED...``; rows written.

        ``update=()`` means ``DO NOTHING``: rows whose key exists are skipped.
        Every object written (inserted or updated) gets the row's values,
        database-assigned keys included, and joins the session.
        """
        self._check_open()
        objects = list(objects)
        if not objects:
            return 0
        model = type(objects[0])
        for obj in objects:
            if type(obj) is not model or STATE_KEY not in obj.__dict__:
                raise TypeError(
                    f"upsert() takes new objects of one model, got {obj!r} with {objects[0]!r}"
                )
            state = state_of(obj)
            if state.persistent:
                raise InvalidStateError(
                    f"upsert() writes new objects; {obj!r} is already in the database: "
                    "set its attributes and flush instead"
                )
            if state.session is not None and state.session is not self:
                raise InvalidStateError(f"{obj!r} belongs to another session")
        plan = UpsertPlan(table_info(model), on, update)
        plan.check_distinct(objects)
        for obj in objects:  # written here, not by the autoflush below
            self._pending.pop(obj, None)
            state_of(obj).session = None
        await self.autoflush()
        written = 0
        for obj in objects:
            pull_foreign_keys(obj)
        for batch in plan_inserts(model, objects):
            inserted_names = [c.name for c in batch.returned]
            for start in range(0, len(batch.objects), CHUNK_ROWS):
                chunk = batch.objects[start : start + CHUNK_ROWS]
                params = [value for row in batch.params_of(chunk) for value in row]
                result = await self.run_statement(
                    plan.statement(batch.columns, len(chunk)), params
                )
                self._absorb_upserted(plan, chunk, result.rows, inserted_names)
                written += len(result.rows)
        return written

    def _absorb_upserted(
        self, plan: UpsertPlan, objects: list[Table], rows: list[Any], generated: list[str]
    ) -> None:
        info = plan.info
        names = info.field_names
        by_key = {plan.key_of(obj): obj for obj in objects}
        identity = self._identity.setdefault(info.model, {})
        for row in rows:
            obj = by_key[plan.key_of_row(row)]
            values, inserted = row[:-1], row[-1]
            pk = values[info.pk_index]
            loaded = identity.get(pk)
            obj.__dict__.update(zip(names, values, strict=True))
            if loaded is not None and loaded is not obj:
                # The row was already loaded: that object shows the new values
                # (restored if the transaction rolls back); `obj` stays detached.
                state = state_of(loaded)
                for name, value in zip(names, values, strict=True):
                    old = loaded.__dict__.get(name)
                    if old != value:
                        if state.original is None:
                            state.original = {}
                        state.original.setdefault(name, old)
                        loaded.__dict__[name] = value
                        self._touched[loaded] = None
                continue
            state = state_of(obj)
            state.session = self
            state.persistent = True
            state.inserted_in_tx = bool(inserted)
            state.changed = None
            identity[pk] = obj
            # Rolled back, the object leaves the session (and loses the keys it was given).
            self._inserted_in_tx.append((obj, generated if inserted else []))

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

"""`Engine`: a psycopg connection pool plus schema management.

The pool is opened lazily on first use, inside the running event loop, so an
Engine can be created at import time (as web apps do). ``Session(dsn)``
shares one Engine per DSN and event loop through `Engine.for_dsn`; those
engines are disposed when their loop shuts down.

The pool opens connections in background tasks, where a failure would only
be logged and a waiting session would see a bare timeout. The engine watches
every connection attempt (its pool's connection class reports back): while no
connection is open, a session waiting for one fails as soon as an attempt
fails, with that attempt's error as the cause.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import os
import types
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Generator
from typing import TYPE_CHECKING, Any, ClassVar, Self

import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from data_bridge_core import ddl
from data_bridge_core.ddl import dependency_order
from data_bridge_core.errors import DatabaseError, wrap_database_error
from data_bridge_core.introspection import check_tables
from data_bridge_core.schema.table import Table

if TYPE_CHECKING:
    from data_bridge_core.migrations.plan import Step

# `Engine.migrate` runs `data_bridge_core.migrations`, a layer above: it installs
# itself here when imported (the package's __init__ imports it).
MigrateHook = Callable[["Engine", "str | os.PathLike[str]", "str | None"], Awaitable[list["Step"]]]
_migrate_hook: MigrateHook | None = None


def install_migrate_hook(hook: MigrateHook) -> None:
    global _migrate_hook
    _migrate_hook = hook


class Engine:
    """A connection pool on one PostgreSQL database.

    ``min_size``/``max_size``/``timeout`` configure the pool; any other keyword
    is passed to ``psycopg.AsyncConnection.connect`` (for example
    ``prepare_threshold=None`` behind PgBouncer in transaction mode, or
    ``options="-c search_path=myschema"``).
    """

    _live: ClassVar[weakref.WeakSet[Engine]] = weakref.WeakSet()
    _shared: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _SharedEngines]] = (
        weakref.WeakKeyDictionary()
    )

    def __init__(
        self,
        dsn: str,
        *,
        min_size: int = 1,
        max_size: int = 10,
        timeout: float = 30.0,
        name: str | None = None,
        **connect_kwargs: Any,
    ) -> None:
        if not isinstance(dsn, str) or not dsn:
            raise TypeError(f"Engine() takes a connection string, got {dsn!r}")
        if min_size < 0 or max_size < 1 or min_size > max_size:
            raise ValueError(
                f"pool sizes must satisfy 0 <= min_size <= max_size and max_size >= 1, "
                f"got min_size={min_size}, max_size={max_size}"
            )
        try:
            params = conninfo_to_dict(dsn)
        except psycopg.ProgrammingError as exc:
            raise ValueError(f"invalid connection string: {exc}") from exc
        self.dsn = dsn
        database = params.get("dbname") or params.get("user")
        address = params.get("host") or params.get("hostaddr")
        self.database: str | None = str(database) if database else None
        self.server_address: str | None = str(address) if address else None
        port = params.get("port")
        self.server_port = int(port) if port and str(port).isdigit() else 5432
        self.pool_name = name or (
            f"{self.server_address or 'localhost'}:{self.server_port}/{self.database or ''}"
        )
        self.min_size = min_size
        self.max_size = max_size
        self.connect_kwargs = connect_kwargs
        self._pool: AsyncConnectionPool[AsyncConnection[Any]] | None = None
        self._open_lock: asyncio.Lock | None = None
        self._timeout = timeout
        self._disposed = False
        # What the pool's connection attempts reported: the last failure (None
        # after a success), the connections opened (weakly: the pool owns them),
        # and the future that sessions waiting for a connection watch.
        self._connect_error: psycopg.Error | None = None
        self._opened: weakref.WeakSet[AsyncConnection[Any]] = weakref.WeakSet()
        self._next_failure: asyncio.Future[psycopg.Error] | None = None
        Engine._live.add(self)

    # -- pool ----------------------------------------------------------------

    @property
    def pool(self) -> AsyncConnectionPool[AsyncConnection[Any]] | None:
        """The psycopg pool (None until the engine is first used)."""
        return self._pool

    @classmethod
    def live_engines(cls) -> list[Engine]:
        return [e for e in cls._live if not e._disposed]

    @classmethod
    def for_dsn(cls, dsn: str) -> Engine:
        """The Engine shared by every ``Session(dsn)`` of the running event loop.

        It is disposed when the loop shuts down (``asyncio.run()`` cancelling
        the tasks left), so the program can end.
        """
        loop = asyncio.get_running_loop()
        shared = cls._shared.get(loop)
        if shared is None:
            shared = cls._shared[loop] = _SharedEngines(loop)
        engine = shared.engines.get(dsn)
        if engine is None or engine._disposed:
            engine = shared.engines[dsn] = cls(dsn)
        return engine

    async def _open(self) -> AsyncConnectionPool[AsyncConnection[Any]]:
        if self._disposed:
            raise DatabaseError(f"engine {self.pool_name} was disposed")
        if self._open_lock is None:
            self._open_lock = asyncio.Lock()
        async with self._open_lock:
            if self._pool is None:
                pool: AsyncConnectionPool[AsyncConnection[Any]] = AsyncConnectionPool(
                    self.dsn,
                    min_size=self.min_size,
                    max_size=self.max_size,
                    timeout=self._timeout,
                    kwargs=self.connect_kwargs,
                    name=self.pool_name,
                    connection_class=_reporting_connection_class(self),
                    open=False,
                )
                # The pool's tasks copy the context they start in: start them in an
                # empty one, not the caller's (the first session and the request's
                # span would otherwise live as long as the pool).
                loop = asyncio.get_running_loop()
                await loop.create_task(pool.open(wait=False), context=contextvars.Context())
                self._pool = pool
        return self._pool

    async def acquire(self) -> AsyncConnection[Any]:
        """A connection from the pool (give it back with `release`)."""
        pool = self._pool or await self._open()
        if self._connect_error is not None or not self._opened:
            return await self._acquire_watching(pool)
        try:
            return await pool.getconn()
        except PoolTimeout as exc:
            raise self._no_connection(exc) from (self._connect_error or exc)
        except psycopg.Error as exc:
            raise wrap_database_error(exc) from exc

    async def _acquire_watching(
        self, pool: AsyncConnectionPool[AsyncConnection[Any]]
    ) -> AsyncConnection[Any]:
        """`acquire` while connecting fails or has not worked yet.

        Waits as `acquire` does, but the next failed attempt to connect ends
        the wait, with that attempt's error, when no connection is open to
        come back to the pool.
        """
        task = asyncio.current_task()
        failure = self._next_failure
        if failure is None or failure.done():
            failure = self._next_failure = asyncio.get_running_loop().create_future()
        waiting = True
        interrupted = False

        def interrupt(_: asyncio.Future[psycopg.Error]) -> None:
            nonlocal interrupted
            if waiting and task is not None:  # the callback may run after getconn returned
                interrupted = True
                task.cancel()

        failure.add_done_callback(interrupt)
        try:
            return await pool.getconn()  # on cancellation the pool keeps what it was handing over
        except asyncio.CancelledError:
            if interrupted and task is not None and task.uncancel() == 0:
                error = failure.result()
                raise DatabaseError(
                    f"cannot connect to {self.pool_name}: {str(error).strip()}",
                    getattr(error, "sqlstate", None),
                ) from error
            raise
        except PoolTimeout as exc:
            raise self._no_connection(exc) from (self._connect_error or exc)
        except psycopg.Error as exc:
            raise wrap_database_error(exc) from exc
        finally:
            waiting = False
            failure.remove_done_callback(interrupt)

    def _no_connection(self, exc: PoolTimeout) -> DatabaseError:
        message = f"no connection available from pool {self.pool_name} within {self._timeout}s"
        if self._connect_error is not None:
            message += f"; the last attempt to connect failed: {str(self._connect_error).strip()}"
        return DatabaseError(f"{message} ({exc})")

    def _connected(self, conn: AsyncConnection[Any]) -> None:
        self._connect_error = None
        self._opened.add(conn)

    def _connect_failed(self, error: psycopg.Error) -> None:
        self._connect_error = error
        if any(not conn.closed for conn in self._opened):
            return  # a connection in use may come back: sessions keep waiting for it
        failure, self._next_failure = self._next_failure, None
        if failure is not None and not failure.done():
            failure.set_result(error)

    async def release(self, conn: AsyncConnection[Any]) -> None:
        """Give a connection back to the pool (a closed one is replaced by a new one).

        The return always completes: a cancellation that arrives meanwhile
        waits for it, then is raised. (Interrupted half-way, ``putconn`` would
        leave the connection neither in the pool nor closed, and the pool
        one connection short for good.)
        """
        pool = self._pool
        if pool is None:  # disposed meanwhile
            await conn.close()
            return
        putting = pool.putconn(conn)
        try:
            # Its first step, run here: an idle connection and an uncontended pool
            # finish without suspending, and nothing can interrupt what never waits.
            waiting = putting.send(None)
        except StopIteration:
            return
        # It waits (for the pool's lock, or a connection to close): the rest runs in
        # a task of its own, which a cancellation of this one cannot reach.
        finishing = asyncio.ensure_future(_finish(putting, waiting))
        cancelled = False
        while not finishing.done():
            try:
                await asyncio.shield(finishing)
            except asyncio.CancelledError:
                if finishing.cancelled():  # the loop is shutting down: nothing to wait for
                    break
                cancelled = True
        if cancelled:
            raise asyncio.CancelledError
        if not finishing.cancelled():
            finishing.result()  # its own error, if any

    async def dispose(self) -> None:
        """Close the pool; the engine cannot be used afterwards."""
        self._disposed = True
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _dispose_at_loop_shutdown(self) -> None:
        """`dispose` while the loop cancels every task left, the pool's own tasks included."""
        self._disposed = True
        pool, self._pool = self._pool, None
        if pool is None:
            return
        # pool.close() waits for its worker tasks, and gives up on the first one
        # cancelled before it closes the idle connections: close those first.
        while pool.get_stats().get("pool_available"):
            conn = await pool.getconn()
            await conn.close()
        with contextlib.suppress(asyncio.CancelledError):  # a worker's, not this task's
            await pool.close()

    # -- schema --------------------------------------------------------------

    async def create_all(self, *models: type[Table]) -> None:
        """CREATE TABLE IF NOT EXISTS for each model (and its indexes), referenced tables first.

        In the same transaction every table is then checked against its model:
        a table that existed without a column of the model (or with one of
        another type) raises `SchemaMismatchError`, and nothing of this call
        is created.
        """
        ordered = dependency_order(models)
        statements = [s for m in ordered for s in ddl.create_table(m)]
        conn = await self.acquire()
        try:
            async with conn.transaction():
                for statement in statements:
                    await conn.execute(statement, ())
                await check_tables(conn, ordered)
        except psycopg.Error as exc:
            raise wrap_database_error(exc) from exc
        finally:
            await self.release(conn)

    async def drop_all(self, *models: type[Table]) -> None:
        """DROP TABLE IF EXISTS ... CASCADE for each model, dependent tables first."""
        statements = [ddl.drop_table(m) for m in reversed(dependency_order(models))]
        await self._run_ddl(statements)

    async def migrate(
        self, directory: str | os.PathLike[str] = "migrations", *, to: str | None = None
    ) -> list[Step]:
        """Apply the migrations of ``directory`` up to version ``to`` (None: the latest).

        Returns the steps run (`data_bridge_core.migrations.Step`). See
        docs/migrations.md; raises `MigrationError` (a failed statement,
        an edited applied migration, an unknown version).
        """
        # Installed by data_bridge_core.migrations, which the package imports.
        assert _migrate_hook is not None
        return await _migrate_hook(self, directory, to)

    async def _run_ddl(self, statements: list[str]) -> None:
        conn = await self.acquire()
        try:
            async with conn.transaction():
                for statement in statements:
                    await conn.execute(statement, ())
        except psycopg.Error as exc:
            raise wrap_database_error(exc) from exc
        finally:
            await self.release(conn)

    def __repr__(self) -> str:
        return f"<Engine {self.pool_name} pool={self.min_size}..{self.max_size}>"


class _SharedEngines:
    """The engines `Engine.for_dsn` made on one event loop; disposed when the loop shuts down.

    A task waits for the end of the loop: ``asyncio.run()`` (and any runner)
    cancels the tasks left before closing the loop, and this one then closes
    the pools, whose own tasks would otherwise keep the loop waiting.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.engines: dict[str, Engine] = {}
        self._loop = loop
        # Referenced here: a pending task nobody holds could be garbage-collected.
        self._closer = loop.create_task(
            self._dispose_at_shutdown(), name="data-bridge: dispose shared engines"
        )

    async def _dispose_at_shutdown(self) -> None:
        try:
            await self._loop.create_future()  # never set: only cancellation ends the wait
        except asyncio.CancelledError:
            Engine._shared.pop(self._loop, None)
            engines, self.engines = list(self.engines.values()), {}
            for engine in engines:
                await engine._dispose_at_loop_shutdown()
            raise


async def _finish(started: Coroutine[Any, Any, None], waiting: Any) -> None:
    """Run a coroutine whose first step already ran (and is waiting on ``waiting``)."""
    await _resumed(started, waiting)


@types.coroutine
def _resumed(started: Coroutine[Any, Any, None], waiting: Any) -> Generator[Any, Any, None]:
    # What ``await`` does for the coroutine, from its second step on: hand what it
    # waits on to the running task, pass back what the task sends or throws.
    while True:
        try:
            sent = yield waiting
        except BaseException as exc:  # thrown in by the task: passed on
            try:
                waiting = started.throw(exc)
            except StopIteration:
                return
        else:
            try:
                waiting = started.send(sent)
            except StopIteration:
                return


def _reporting_connection_class(engine: Engine) -> type[AsyncConnection[Any]]:
    """A connection class for the engine's pool that reports each attempt to the engine."""
    ref = weakref.ref(engine)

    class ReportingConnection(AsyncConnection[Any]):
        @classmethod
        async def connect(cls, conninfo: str = "", **kwargs: Any) -> Self:
            try:
                conn = await super().connect(conninfo, **kwargs)
            except asyncio.CancelledError:
                # psycopg_pool's worker task catches CancelledError around this
                # call and waits for more work, so the loop's shutdown would wait
                # for it forever: cancel it again, its next await ends it.
                task = asyncio.current_task()
                if task is not None:
                    task.cancel()
                raise
            except psycopg.Error as exc:
                owner = ref()
                if owner is not None:
                    owner._connect_failed(exc)
                raise
            owner = ref()
            if owner is not None:
                owner._connected(conn)
            return conn

    return ReportingConnection

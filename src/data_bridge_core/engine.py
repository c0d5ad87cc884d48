"""`Engine`: a psycopg connection pool plus schema management.

The pool is opened lazily on first use, inside the running event loop, so an
Engine can be created at import time (as web apps do). ``Session(dsn)``
shares one Engine per DSN and event loop through `Engine.for_dsn`.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import Any, ClassVar

import psycopg
from psycopg import AsyncConnection
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from data_bridge_core import ddl
from data_bridge_core.ddl import dependency_order
from data_bridge_core.errors import DatabaseError, wrap_database_error
from data_bridge_core.introspection import check_tables
from data_bridge_core.schema.table import Table


class Engine:
    """A connection pool on one PostgreSQL database.

    ``min_size``/``max_size``/``timeout`` configure the pool; any other keyword
    is passed to ``psycopg.AsyncConnection.connect`` (for example
    ``prepare_threshold=None`` behind PgBouncer in transaction mode, or
    ``options="-c search_path=myschema"``).
    """

    _live: ClassVar[weakref.WeakSet[Engine]] = weakref.WeakSet()
    _shared: ClassVar[weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, Engine]]] = (
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
        """The Engine shared by every ``Session(dsn)`` of the running event loop."""
        loop = asyncio.get_running_loop()
        engines = cls._shared.setdefault(loop, {})
        engine = engines.get(dsn)
        if engine is None or engine._disposed:
            engine = engines[dsn] = cls(dsn)
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
                    open=False,
                )
                await pool.open(wait=False)
                self._pool = pool
        return self._pool

    async def acquire(self) -> AsyncConnection[Any]:
        """A connection from the pool (give it back with `release`)."""
        pool = self._pool or await self._open()
        try:
            return await pool.getconn()
        except PoolTimeout as exc:
            raise DatabaseError(
                f"no connection available from pool {self.pool_name} within {self._timeout}s: {exc}"
            ) from exc
        except psycopg.Error as exc:
            raise wrap_database_error(exc) from exc

    async def release(self, conn: AsyncConnection[Any]) -> None:
        if self._pool is not None:
            await self._pool.putconn(conn)

    async def dispose(self) -> None:
        """Close the pool; the engine cannot be used afterwards."""
        self._disposed = True
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

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

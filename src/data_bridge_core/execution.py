"""One session's connection: taken lazily, statements and streams on it, the transaction's end.

`SessionConnection` is everything a `Session` does with its pooled
connection. The rules it keeps:

- One acquisition per transaction, whatever the number of tasks using the
  session: the first statement takes the connection under a lock, later
  statements share it (psycopg's connection lock runs them one at a time).
- A pooled connection can be dead (the server restarted since it went back to
  the pool). When the transaction's first statement finds it so, nothing of
  the transaction has run: the connection is discarded and the statement runs
  on another one.
- Streams (server-side cursors) belong to the transaction: ending it closes
  them, and a stream's own clean-up never touches a connection that has gone
  back to the pool.
- Only a connection known to be idle goes back to the pool; one in an unknown
  state (an interrupted COMMIT, a lost server) is closed instead, so the next
  user never inherits half a transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Coroutine, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import psycopg
from psycopg import AsyncConnection, AsyncServerCursor
from psycopg.pq import ExecStatus, Format, TransactionStatus
from psycopg.rows import RowFactory

from data_bridge_core.errors import (
    DatabaseError,
    InvalidStateError,
    SessionClosedError,
    wrap_database_error,
)

if TYPE_CHECKING:
    from data_bridge_core.engine import Engine
    from data_bridge_core.operation_lock import OperationLock

R = TypeVar("R")

TUPLES_OK = ExecStatus.TUPLES_OK
IDLE = TransactionStatus.IDLE
INERROR = TransactionStatus.INERROR
INTRANS = TransactionStatus.INTRANS

_cursor_names = itertools.count(1)


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


async def execute(
    conn: AsyncConnection[Any],
    statement: str,
    params: Sequence[Any] | None,
    batch: bool,
    row_factory: RowFactory[Any] | None,
    batch_size: int | None,
) -> Result:
    """Run one statement on ``conn`` (a batch: ``params`` holds parameter rows, pipelined)."""
    try:
        # Inside the try: a connection lost earlier in the transaction fails right here.
        cur = conn.cursor(row_factory=row_factory) if row_factory is not None else conn.cursor()
    except psycopg.Error as exc:
        raise wrap_database_error(exc) from exc
    try:
        if batch:
            # Rows come back in binary as every other statement's do: a real's text
            # ("0.1") reads as another double than its binary value, a NaN loses its bits.
            cur.format = Format.BINARY
            await cur.executemany(statement, params or (), returning=True)
            rows: list[Any] = []
            rowcount = 0
            while True:
                if cur.description is not None:
                    rows.extend(await cur.fetchall())
                rowcount += max(cur.rowcount, 0)
                if not cur.nextset():
                    break
            return Result(rows, rowcount, statement, batch_size)
        # No parameters (None): psycopg sends the text as written, a literal % included.
        await cur.execute(statement, params, binary=True)
        # pgresult.status is a plain read; cur.description builds column objects.
        result = cur.pgresult
        rows = await cur.fetchall() if result and result.status == TUPLES_OK else []
        return Result(rows, cur.rowcount, statement, batch_size)
    except psycopg.Error as exc:
        raise wrap_database_error(exc) from exc
    # The cursor is not closed: a client-side cursor holds no server resource, and
    # dropping it frees its result as close() would (one coroutine less per statement).


class _OpenStream:
    """A server-side cursor of the open transaction; ``ended`` once the transaction is over."""

    __slots__ = ("cursor", "ended")

    def __init__(self, cursor: AsyncServerCursor[Any]) -> None:
        self.cursor = cursor
        self.ended = False


async def _itself(conn: AsyncConnection[Any]) -> AsyncConnection[Any]:
    return conn


def _stream_ended() -> InvalidStateError:
    return InvalidStateError(
        "the transaction of this stream ended (commit() or rollback() inside the loop), "
        "which closed its server-side cursor: end the transaction after the loop, or "
        "read the rows with to_list() first"
    )


def _session_closed() -> NoReturn:
    raise SessionClosedError()


class SessionConnection:
    """The pooled connection of one session's open transaction, and what runs on it.

    ``engine`` gives the session's engine (resolved on first use: the
    connection-string form needs the running loop); ``check_open`` raises when
    the session is closed; ``operation`` is the session's operation lock,
    which a stream takes for each of its round trips.
    """

    __slots__ = (
        "_check_open",
        "_engine",
        "_lock",
        "_operation",
        "_owner_engine",
        "_streams",
        "conn",
        "started_ns",
        "wrote",
    )

    def __init__(
        self,
        engine: Callable[[], Engine],
        check_open: Callable[[], None],
        operation: OperationLock,
    ) -> None:
        self._engine = engine
        self._check_open = check_open
        self._operation = operation
        # The engine the connection came from: it goes back there even after the
        # session detached its callbacks (a close racing the end of a commit).
        self._owner_engine: Engine | None = None
        self.conn: AsyncConnection[Any] | None = None
        self.started_ns = 0  # time.perf_counter_ns() when the transaction began
        # Whether the transaction ran anything but the ORM's own SELECTs (the session
        # sets it; a transaction that did not is ended with COMMIT at close, see `end`).
        self.wrote = False
        self._lock: asyncio.Lock | None = None  # guards taking the connection
        self._streams: dict[_OpenStream, None] = {}

    # -- taking the connection --------------------------------------------------------

    async def acquire(self) -> AsyncConnection[Any]:
        """The transaction's connection, taken from the pool if there is none yet."""
        conn = self.conn
        if conn is not None:
            return conn
        return await self._begin(_itself)

    async def _begin(self, first: Callable[[AsyncConnection[Any]], Awaitable[R]]) -> R:
        """Take a connection and run the transaction's first statement, ``first``, on it.

        Other tasks of the session wait on the lock meanwhile, then share the
        connection this one took.
        """
        lock = self._lock
        if lock is None:
            lock = self._lock = asyncio.Lock()
        async with lock:
            conn = self.conn
            if conn is not None:  # another task of the session took it while this one waited
                return await first(conn)
            self._check_open()
            engine = self._engine()
            # Each dead connection met is discarded, so max_size + 1 tries reach a live one.
            attempts = engine.max_size + 1
            while True:
                attempts -= 1
                started = time.perf_counter_ns()
                conn = await engine.acquire()
                self._owner_engine = engine
                try:
                    result = await first(conn)
                except BaseException as exc:
                    if not conn.closed:
                        self._own(conn, started)  # a live transaction: its owner ends it
                        raise
                    await engine.release(conn)  # the pool replaces a closed connection
                    if attempts and isinstance(exc, DatabaseError):
                        continue  # dead before the transaction did anything: use another
                    raise
                self._own(conn, started)
                return result

    def detach(self) -> None:
        """The session closed: drop the callbacks into it (see `Session.close`)."""
        self._engine = self._check_open = _session_closed

    def _own(self, conn: AsyncConnection[Any], started_ns: int) -> None:
        self.conn = conn
        self.started_ns = started_ns  # autobegin: the transaction starts with the connection

    # -- statements ---------------------------------------------------------------------

    def run(
        self,
        statement: str,
        params: Sequence[Any] | None,
        batch: bool,
        row_factory: RowFactory[Any] | None,
        batch_size: int | None,
    ) -> Coroutine[Any, Any, Result]:
        """Run one statement in the transaction (not a coroutine itself: no extra frame)."""
        conn = self.conn
        if conn is None:
            return self._begin(
                lambda c: execute(c, statement, params, batch, row_factory, batch_size)
            )
        return execute(conn, statement, params, batch, row_factory, batch_size)

    async def stream(
        self,
        statement: str,
        params: Sequence[Any],
        batch_size: int,
        row_factory: RowFactory[Any],
    ) -> AsyncGenerator[Any, None]:
        """The rows of one SELECT through a server-side cursor, ``batch_size`` per round trip."""
        name = f"data_bridge_stream_{next(_cursor_names)}"

        async def declare(conn: AsyncConnection[Any]) -> AsyncServerCursor[Any]:
            try:
                cursor = conn.cursor(name, row_factory=row_factory)
            except psycopg.Error as exc:  # the connection was lost earlier in the transaction
                raise wrap_database_error(exc) from exc
            try:
                # Binary rows, as find() reads them (a real's text reads as another double).
                await cursor.execute(statement, params, binary=True)
            except psycopg.Error as exc:
                # The transaction is aborted (or the connection gone): this sends nothing.
                with contextlib.suppress(psycopg.Error):
                    await cursor.close()
                raise wrap_database_error(exc) from exc
            return cursor

        async with self._operation:
            conn = self.conn
            cursor = await (declare(conn) if conn is not None else self._begin(declare))
        if cursor.connection is not self.conn:
            # Another task of the session ended the transaction meanwhile: the
            # cursor is gone, and the connection may serve someone else already.
            raise _stream_ended()
        stream = _OpenStream(cursor)
        self._streams[stream] = None
        try:
            while True:
                if stream.ended:
                    raise _stream_ended()
                try:
                    async with self._operation:  # a round trip no other task's falls into
                        if stream.ended:
                            raise _stream_ended()
                        rows = await cursor.fetchmany(batch_size)
                except psycopg.Error as exc:
                    if stream.ended:
                        raise _stream_ended() from exc
                    raise wrap_database_error(exc) from exc
                if not rows:
                    return
                for row in rows:
                    yield row
                    if stream.ended:
                        raise _stream_ended()
        finally:
            # Left early, failed or read to the end. When the transaction already
            # ended, the cursor went with it and the connection may be someone
            # else's by now: do nothing then (this can run late, from the
            # event loop's clean-up of an abandoned generator).
            if not stream.ended:
                stream.ended = True
                del self._streams[stream]
                try:
                    async with self._operation:
                        await cursor.close()
                except psycopg.Error as exc:
                    raise wrap_database_error(exc) from exc

    # -- the end of the transaction ---------------------------------------------------------

    async def end(self, *, commit: bool, closing: bool = False) -> None:
        """Commit or roll back, close the transaction's streams, give the connection back.

        ``closing``: the session closes without a commit. A transaction that ran
        only the ORM's own SELECTs (``wrote`` unset) then ends with COMMIT: it
        changed nothing, so COMMIT ends it exactly as ROLLBACK would (locks and
        snapshot released alike), and psycopg keeps its prepared statements,
        which it forgets, with a ``DEALLOCATE ALL``, at every ROLLBACK.

        A rollback never raises: when it fails (the connection broke, or was
        interrupted), the connection is closed, which ends the transaction on
        the server.
        A commit on a transaction aborted by an earlier error raises (SQLSTATE
        25P02) instead of letting the server turn it into a silent rollback.
        """
        conn = self.conn
        if conn is None:
            return
        self.conn = None
        read_only = closing and not self.wrote
        self.wrote = False
        streams = self._streams
        if streams:
            self._streams = {}
            for stream in streams:
                stream.ended = True  # their generators' clean-up must not touch conn any more
        try:
            if commit:
                if conn.pgconn.transaction_status == INERROR:
                    await conn.rollback()
                    raise DatabaseError(
                        "the transaction was aborted by an earlier error and cannot be "
                        "committed; nothing was written (roll back, then retry)",
                        "25P02",
                    )
                await conn.commit()
            elif conn.closed:
                pass
            elif read_only and conn.pgconn.transaction_status == INTRANS:
                await conn.commit()  # a failure is handled as a failed rollback's, below
            else:
                await conn.rollback()
        except psycopg.Error as exc:
            if commit:
                await self._give_back(conn, streams)
                raise wrap_database_error(exc) from exc
            # A failed rollback: closing the connection ends the transaction on the server.
            await conn.close()
            await self._give_back(conn, streams)
        except BaseException:
            # Cancelled (maybe twice) or interrupted: the clean-up must not replace
            # this exception, and the connection goes back only if it is idle.
            await self._give_back(conn, streams)
            raise
        else:
            await self._give_back(conn, streams)

    async def _give_back(
        self, conn: AsyncConnection[Any], streams: dict[_OpenStream, None]
    ) -> None:
        """Return an idle connection to the pool; close one in any other state first."""
        try:
            if not conn.closed and conn.pgconn.transaction_status != IDLE:
                await conn.close()  # state unknown (interrupted mid-statement): never reuse it
            for stream in streams:
                # The transaction is over: psycopg marks the cursor closed without I/O.
                await stream.cursor.close()
        except psycopg.Error:
            await conn.close()
        finally:
            engine, self._owner_engine = self._owner_engine, None
            if engine is not None:
                await engine.release(conn)
            else:  # never the case: a connection is only owned with its engine
                await conn.close()

"""`OperationLock`: one operation of a session at a time, whatever the number of tasks.

A session shared by tasks (``asyncio.gather`` on one session) runs each
whole operation alone: a flush, a query with its autoflush, a commit, a
rollback, a close, a savepoint step, a statement. Operations nest (a commit
flushes, a query autoflushes, a lazy load runs a statement), so the lock is
re-entrant for the task that holds it; other tasks wait their turn, first
come first served.

The uncontended case is the common one (one task per session), so taking
the lock awaits nothing: ``async with lock`` then costs two plain calls, no
coroutine and no future.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Generator
from types import TracebackType
from typing import Any

__all__ = ["OperationLock"]

_current_task = asyncio.current_task


class _Ready:
    """An awaitable that is already done (awaiting it suspends nothing)."""

    __slots__ = ()

    def __await__(self) -> Generator[Any, None, None]:
        return iter(())  # type: ignore[return-value]


_READY = _Ready()


class OperationLock:
    """A re-entrant, task-owned lock around a session's operations (see module docstring)."""

    __slots__ = ("_depth", "_owner", "_waiters")

    def __init__(self) -> None:
        self._owner: asyncio.Task[Any] | None = None
        self._depth = 0
        self._waiters: deque[tuple[asyncio.Task[Any] | None, asyncio.Future[None]]] = deque()

    @property
    def held(self) -> bool:
        """True when the running task holds the lock (inside one of its operations)."""
        return self._owner is not None and self._owner is _current_task()

    @property
    def busy(self) -> bool:
        """True while any task holds the lock."""
        return self._depth > 0

    def __aenter__(self) -> Awaitable[None]:
        # A plain method returning an awaitable: uncontended, nothing is created.
        task = _current_task()
        owner = self._owner
        if owner is None and not self._depth:
            self._owner = task
            self._depth = 1
            return _READY
        if owner is task:
            self._depth += 1
            return _READY
        return self._wait(task)

    def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Awaitable[None]:
        self.release()
        return _READY

    async def _wait(self, task: asyncio.Task[Any] | None) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (task, waiter)
        self._waiters.append(entry)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed over as this task was cancelled: pass it on
            else:
                with contextlib.suppress(ValueError):  # skipped by a release already
                    self._waiters.remove(entry)
            raise

    def release(self) -> None:
        """Leave one level; the last one hands the lock to the first task waiting."""
        self._depth -= 1
        if self._depth:
            return
        waiters = self._waiters
        while waiters:
            task, waiter = waiters.popleft()
            if not waiter.done():  # a cancelled waiter is done already: skip it
                self._owner = task
                self._depth = 1
                waiter.set_result(None)
                return
        self._owner = None

    async def acquire_to_finish(self) -> bool:
        """Take the lock even if the task is cancelled while it waits (``close()`` must
        run); True when a cancellation arrived meanwhile: the caller raises it when done."""
        cancelled = False
        while True:
            try:
                await self.__aenter__()
            except asyncio.CancelledError:
                cancelled = True
                continue
            return cancelled

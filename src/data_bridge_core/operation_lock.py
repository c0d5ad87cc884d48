"""`OperationLock`: one operation of a session at a time, whatever the number of tasks.

A session shared by tasks (``asyncio.gather`` on one session) runs each
whole operation alone: a flush, a query with its autoflush, a commit, a
rollback, a close, a savepoint step, a statement. Operations nest (a commit
flushes, a query autoflushes, a lazy load runs a statement), so the lock is
re-entrant for the task that holds it; other tasks wait their turn, first
come first served.

The uncontended case is the common one (one task per session), so taking
the lock awaits nothing: ``async with lock`` then costs two plain calls and
two awaits of one shared, finished future (C code), no coroutine and no new
future.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections import deque
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Any

__all__ = ["OperationLock"]

_running_loop = asyncio.get_running_loop  # C; raises outside a loop, as current_task() does


def _task_lookup() -> Callable[[asyncio.AbstractEventLoop], asyncio.Task[Any] | None]:
    """The running task of a loop, read without a Python frame where possible.

    Python 3.11's ``asyncio.current_task`` is Python code (a frame per call,
    two per statement here) over the C module's dict of current tasks; 3.12
    made it C. Both give the same task.
    """
    by_loop = getattr(asyncio.tasks, "_current_tasks", None)
    if sys.version_info < (3, 12) and isinstance(by_loop, dict):
        lookup: Callable[[asyncio.AbstractEventLoop], asyncio.Task[Any] | None] = by_loop.get
        return lookup
    return asyncio.current_task


_task_of = _task_lookup()


def _current_task() -> asyncio.Task[Any] | None:
    return _task_of(_running_loop())


def _done_future() -> asyncio.Future[None]:
    """A future that is already done: awaiting it suspends nothing and runs no Python
    code (the C future's iterator returns its result at once, on any loop).

    It belongs to no running loop: `OperationLock` hands it out only to be
    awaited (``async with``), never to be wrapped in a task (``wait_for``).
    """
    loop = asyncio.BaseEventLoop()  # no selector and no sockets: only to make the future
    try:
        done: asyncio.Future[None] = loop.create_future()
        done.set_result(None)
    finally:
        loop.close()
    return done


_READY = _done_future()


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
        task = _task_of(_running_loop())
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
        depth = self._depth
        if depth > 1:  # leaving a nested operation of the same task
            self._depth = depth - 1
        elif not self._waiters:  # the outermost, nobody waiting: release() inlined
            self._depth = 0
            self._owner = None
        else:
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

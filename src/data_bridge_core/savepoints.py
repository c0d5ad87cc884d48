"""`NestedTransaction`: the ``async with session.begin_nested():`` block.

It only calls the session's three savepoint seams (`Session.savepoint`,
`Session.release_savepoint`, `Session.rollback_to_savepoint`), each one
operation of the session, and reads the transaction's log to know whether
its savepoint is still open (a commit or rollback inside the block ends it).
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Self

from data_bridge_core.transaction import LogLevel, TransactionLog

if TYPE_CHECKING:
    from data_bridge_core.session import Session

__all__ = ["NestedTransaction"]


class NestedTransaction:
    """What ``session.begin_nested()`` returns: ``async with`` it to run a savepoint."""

    __slots__ = ("_level", "_log", "session")

    def __init__(self, session: Session, log: TransactionLog) -> None:
        self.session = session
        self._log = log
        self._level: LogLevel | None = None

    async def __aenter__(self) -> Self:
        self._level = await self.session.savepoint()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        level = self._level
        assert level is not None, "NestedTransaction used without `async with`"
        self._level = None
        if not self._log.is_open(level):
            return  # the whole transaction was committed or rolled back inside the block
        session = self.session
        if exc_type is None:
            await session.release_savepoint(level)
            return
        try:
            await session.rollback_to_savepoint(level)
        except Exception:
            # The savepoint could not be reached (the connection is lost): the block's
            # own error goes on, chained; the session refuses work until rollback().
            if exc is None or not isinstance(exc, Exception):
                raise

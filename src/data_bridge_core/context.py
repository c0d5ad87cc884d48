"""The session current in the running task (``async with Session(...)``).

It lives below the session so that the model API (``User.get()``) and the
query API can reach it without importing the session module.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import TYPE_CHECKING

from data_bridge_core.errors import NoSessionError

if TYPE_CHECKING:
    from data_bridge_core.session import Session

current: ContextVar[Session | None] = ContextVar("data_bridge_current_session", default=None)


def current_session() -> Session:
    """The session of the running ``async with Session(...)`` block."""
    session = current.get()
    if session is None:
        raise NoSessionError(
            "no current session: run this inside `async with Session(...)`, "
            "or use session.get()/session.find() explicitly"
        )
    return session

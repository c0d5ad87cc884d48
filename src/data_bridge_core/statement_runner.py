"""How the writers of the unit of work run SQL: through the session, behind a Protocol.

`UnitOfWork`, `Flush`, the upsert and the bulk writes send every statement
through one `StatementRunner` (the session's `run_statement` seam), so that a
lower layer never imports the session.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from psycopg.rows import RowFactory

from data_bridge_core.errors import SessionClosedError


class StatementResult(Protocol):
    rows: list[Any]
    rowcount: int


class StatementRunner(Protocol):
    """The session's one way to run SQL (`Session.run_statement`)."""

    async def run_statement(
        self,
        statement: str,
        params: Sequence[Any] | None = None,
        *,
        batch: bool = False,
        row_factory: RowFactory[Any] | None = None,
        bulk_rows: int | None = None,
    ) -> StatementResult: ...


class _ClosedRunner:
    """The runner of a closed session's unit of work: nothing runs any more."""

    async def run_statement(self, *args: Any, **kwargs: Any) -> StatementResult:
        raise SessionClosedError()


CLOSED = _ClosedRunner()

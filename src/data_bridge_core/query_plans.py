"""Generic query plans: what PostgreSQL would do for a read, without running it
and without any bound value.

`generic_plan(session, statement)` is a public, generic seam for tools that
want plans (the OpenTelemetry instrumentation's ``explain_threshold_ms``
uses it). It talks to the session's connection directly, never through
``Session.run_statement``, so a wrapper patched on that seam does not see
(or time, or comment) the EXPLAIN.

How the plan stays free of values on PostgreSQL 15 (which has no
``EXPLAIN (GENERIC_PLAN)``): the statement's ``%s`` placeholders become
``$1..$n``, it is PREPAREd, and ``EXPLAIN EXECUTE`` runs with every
parameter NULL under ``plan_cache_mode = force_generic_plan``, so the
planner never sees a value and prints ``$n``. Plain EXPLAIN only plans:
nothing executes, no row is read or locked.

It all happens inside a savepoint that is rolled back, so the
``plan_cache_mode`` change ends with it and a statement PostgreSQL refuses
to prepare leaves the transaction as healthy as it was. Only a transaction
that is open and healthy is used: idle, aborted or busy connections give
``None``.

The three round trips run inside ``Session.exclusive_connection()``, which
holds the session's operation lock: no statement of another task of the
session can fall between the SAVEPOINT and its ROLLBACK TO (it would be
undone with the plan's savepoint), and no commit or rollback runs meanwhile.
Plans are taken on the session's own connection rather than on another one
from the pool: the statement may read tables the transaction created or
changed, and a second connection per plan could exhaust a small pool (or
wait forever on a pool of one).
"""

from __future__ import annotations

import itertools
import re
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import pq

from data_bridge_core.errors import wrap_database_error

if TYPE_CHECKING:
    from data_bridge_core.session import Session

_PLACEHOLDER = re.compile(r"%(%|s|b|t|\()")
_READ_START = re.compile(r"^\s*(SELECT|WITH)\b", re.IGNORECASE)
_WRITE_WORD = re.compile(r"\b(INSERT|UPDATE|DELETE|MERGE|TRUNCATE)\b", re.IGNORECASE)
_names = itertools.count(1)


def is_read(statement: str) -> bool:
    """True for one SELECT, or one WITH query without a data-modifying part.

    (``SELECT ... FOR UPDATE`` is a read here: a plain EXPLAIN takes no lock.)
    Text with a ``;`` before its end is refused: the PREPARE goes through the
    simple query protocol, which would run a second command after it.
    """
    match = _READ_START.match(statement)
    if match is None or ";" in statement.rstrip().rstrip(";"):
        return False
    return match.group(1).upper() == "SELECT" or not _WRITE_WORD.search(statement)


def numbered_placeholders(statement: str) -> tuple[str, int] | None:
    """``%s``-style SQL as server-side ``$n`` SQL and its parameter count;
    None for named placeholders (``%(name)s``), which this seam does not take."""
    count = 0

    def number(match: re.Match[str]) -> str:
        nonlocal count
        kind = match.group(1)
        if kind == "%":
            return "%"
        if kind == "(":
            raise LookupError
        count += 1
        return f"${count}"

    try:
        return _PLACEHOLDER.sub(number, statement), count
    except LookupError:
        return None


async def generic_plan(session: Session, statement: str) -> str | None:
    """The generic plan of a read statement (``%s`` placeholders), as EXPLAIN prints it.

    ``None`` when the statement is not a read, uses named placeholders, the
    session has no healthy open transaction, or PostgreSQL cannot prepare
    the statement without parameter types. Raises `DatabaseError` only if the
    connection itself fails (then the transaction is as broken as it would be
    anyway).
    """
    if not is_read(statement):
        return None
    numbered = numbered_placeholders(statement)
    if numbered is None:
        return None
    sql, count = numbered
    sql = sql.rstrip().rstrip(";")
    async with session.exclusive_connection() as conn:
        if conn is None:
            return None
        try:
            return await _explain(conn, sql, count)
        except psycopg.Error as exc:
            raise wrap_database_error(exc) from exc


async def _explain(conn: psycopg.AsyncConnection[Any], sql: str, count: int) -> str | None:
    name = f"data_bridge_plan_{next(_names)}"
    arguments = f"({', '.join(['NULL'] * count)})" if count else ""
    cur = conn.cursor()
    prepared = False
    try:
        # Statements without parameters go through the simple query protocol:
        # one round trip for the savepoint, the setting and the PREPARE.
        await cur.execute(
            "SAVEPOINT data_bridge_plan; SET LOCAL plan_cache_mode = force_generic_plan; "
            f"PREPARE {name} AS {sql}"
        )
        prepared = True
        await cur.execute(f"EXPLAIN EXECUTE {name}{arguments}")
        return "\n".join(str(row[0]) for row in await cur.fetchall())
    except psycopg.errors.Error as exc:
        if isinstance(exc, psycopg.OperationalError):
            raise
        return None
    finally:
        # Undo the setting (and any error) first; a prepared statement outlives
        # a rollback, so it is deallocated on its own.
        cleanup = "ROLLBACK TO SAVEPOINT data_bridge_plan; RELEASE SAVEPOINT data_bridge_plan"
        if prepared:
            cleanup += f"; DEALLOCATE {name}"
        if conn.info.transaction_status in (
            pq.TransactionStatus.INTRANS,
            pq.TransactionStatus.INERROR,
        ):
            await cur.execute(cleanup)
        await cur.close()

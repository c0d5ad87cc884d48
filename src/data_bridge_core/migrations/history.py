"""The history table and the advisory lock: which migrations are applied, and who may apply.

``data_bridge_migrations`` (in the current schema) holds one row per applied
migration: version, name, the file's checksum, its state (``applied``, or
``running`` while a non-transactional migration runs) and when. Every read
that decides what to apply happens after `lock`, in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from data_bridge_core.migrations.files import DOWNGRADE, Migration
from data_bridge_core.migrations.introspect import HISTORY_TABLE

__all__ = ["APPLIED", "HISTORY_TABLE", "RUNNING", "HistoryRow"]
from data_bridge_core.session import Session

APPLIED, RUNNING = "applied", "running"

TABLE_DDL = (
    f"CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (\n"
    "  version text PRIMARY KEY,\n"
    "  name text NOT NULL,\n"
    "  checksum text NOT NULL,\n"
    f"  state text NOT NULL DEFAULT '{APPLIED}',\n"
    "  applied_at timestamptz NOT NULL DEFAULT now()\n"
    ")"
)
# Transaction-level (released at COMMIT/ROLLBACK, so it works through PgBouncer's
# transaction mode); one key per database and schema: other schemas do not wait.
LOCK = "SELECT pg_advisory_xact_lock(hashtext('data_bridge_migrations:' || current_schema()))"
_READ = f"SELECT version, name, checksum, state FROM {HISTORY_TABLE} ORDER BY version"
_EXISTS = f"SELECT to_regclass('{HISTORY_TABLE}') IS NOT NULL"
_RECORD = (
    f"INSERT INTO {HISTORY_TABLE} (version, name, checksum, state) VALUES (%s, %s, %s, %s) "
    "ON CONFLICT (version) DO UPDATE SET name = EXCLUDED.name, checksum = EXCLUDED.checksum, "
    "state = EXCLUDED.state, applied_at = now()"
)
_FORGET = f"DELETE FROM {HISTORY_TABLE} WHERE version = %s"
_SET_STATE = f"UPDATE {HISTORY_TABLE} SET state = %s WHERE version = %s"


@dataclass(frozen=True)
class HistoryRow:
    version: str
    name: str
    checksum: str
    state: str


async def lock(session: Session) -> None:
    """Wait for the schema's migration lock; the session's transaction holds it until it ends."""
    await session.execute(LOCK)


async def ensure_table(session: Session) -> None:
    await session.execute(TABLE_DDL)


async def read(session: Session, *, check_exists: bool = False) -> dict[str, HistoryRow]:
    """The rows by version (``check_exists``: empty when the table does not exist yet)."""
    if check_exists and not (await session.execute(_EXISTS)).rows[0][0]:
        return {}
    return {r[0]: HistoryRow(*r) for r in (await session.execute(_READ)).rows}


async def record(session: Session, migration: Migration, direction: str, state: str) -> None:
    """Record a step: an upgrade (or any ``running`` mark) writes the row, a finished
    downgrade deletes it."""
    if direction == DOWNGRADE and state == APPLIED:
        await session.execute(_FORGET, [migration.version])
    else:
        values = [migration.version, migration.name, migration.checksum, state]
        await session.execute(_RECORD, values)


async def abandon(session: Session, migration: Migration, direction: str) -> None:
    """A non-transactional step failed: its ``running`` mark goes (an upgrade is not
    recorded, a downgrade leaves the migration applied)."""
    if direction == DOWNGRADE:
        await session.execute(_SET_STATE, [APPLIED, migration.version])
    else:
        await session.execute(_FORGET, [migration.version])


def record_sql(migration: Migration, direction: str) -> str:
    """`record`'s statement with its values inlined (for `migrate --sql`)."""
    if direction == DOWNGRADE:
        return sql.SQL(_FORGET.replace("%s", "{}")).format(migration.version).as_string(None)
    values = (migration.version, migration.name, migration.checksum, APPLIED)
    return sql.SQL(_RECORD.replace("%s", "{}")).format(*values).as_string(None)

"""``Query.update()`` / ``Query.delete()``: one statement, and its rows shown on the session.

They run through the unit of work (`UnitOfWork.bulk_update`,
`UnitOfWork.bulk_delete`), so that every write of a transaction lands in the
one log its rollback restores from.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from data_bridge_core.dml import loaded_rows, returned_loads
from data_bridge_core.identity import ChangeLog, IdentityMap
from data_bridge_core.link_writes import Forget
from data_bridge_core.schema.table import Table, table_info
from data_bridge_core.statement_runner import StatementRunner
from data_bridge_core.written_rows import drop_from_loaded_lists, show_database_values


async def bulk_update(
    runner: StatementRunner,
    identity: IdentityMap,
    log: ChangeLog,
    model: type[Table],
    statement: str,
    params: Sequence[Any],
    names: tuple[str, ...],
) -> int:
    """Run an ``UPDATE ... RETURNING key, <names>`` and show the new values on loaded objects.

    The new values are read back (not taken from the call) because a value
    may be computed by PostgreSQL (``views = views + 1``).
    """
    result = await runner.run_statement(statement, params)
    found = identity.by_model.get(model)
    info = table_info(model)
    width = len(info.primary_keys)
    # Keys and values read as the fields hold them (an int field over numeric).
    loads = returned_loads([*info.primary_keys, *(info.columns[name] for name in names)])
    rows = loaded_rows(result.rows, loads) if loads else result.rows
    for row in rows:
        key = row[0] if width == 1 else tuple(row[:width])
        new = row[width:]
        obj = found.get(key) if found is not None else None
        if obj is None:
            log.record_stale(model, key)  # loaded later, it must not outlive a rollback
            continue
        show_database_values(log, obj, zip(names, new, strict=True))
    return len(result.rows)


async def bulk_delete(
    runner: StatementRunner,
    identity: IdentityMap,
    forget: Forget,
    model: type[Table],
    statement: str,
    params: Sequence[Any],
) -> int:
    """Run a ``DELETE ... RETURNING key``; the matching loaded objects leave the session."""
    result = await runner.run_statement(statement, params)
    composite = table_info(model).composite
    held = identity.by_model.get(model, {})
    keys = [tuple(row) if composite else row[0] for row in result.rows]
    gone = [obj for obj in (held.get(key) for key in keys) if obj is not None]
    for key in keys:
        forget(model, key)
    drop_from_loaded_lists(identity, gone)
    return len(result.rows)

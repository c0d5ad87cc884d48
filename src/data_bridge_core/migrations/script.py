"""`migrate --sql`: the steps of a plan as the SQL script `migrate` would run."""

from __future__ import annotations

from collections.abc import Sequence

from data_bridge_core.migrations import history
from data_bridge_core.migrations.operations import Execute, RunPython
from data_bridge_core.migrations.plan import Step


def script(steps: Sequence[Step]) -> str:
    """Runnable as is (psql): the history table, then per migration its transaction."""
    out = [
        "-- data-bridge migrate --sql: what `data-bridge migrate` would run",
        f"{history.TABLE_DDL};",
        "",
    ]
    for step in steps:
        migration = step.migration
        out.append(f"-- {step}")
        if migration.needs_review:
            out.append("-- it still has a '# REVIEW:' line: migrate refuses it until removed")
        transactional = migration.transactional
        if transactional:
            out += ["BEGIN;", f"{history.LOCK};"]
        else:
            out.append("-- transactional = False: each statement commits on its own")
        for op in migration.operations(step.direction):
            if isinstance(op, RunPython):
                out.append(f"-- {op.describe()}: Python, runs here (not shown)")
            elif isinstance(op, Execute):
                out.append(f"{op.script()};")
            else:
                out += [f"{statement};" for statement in op.statements()]
        out.append(f"{history.record_sql(migration, step.direction)};")
        if transactional:
            out.append("COMMIT;")
        out.append("")
    if not steps:
        out.append("-- nothing to apply")
    return "\n".join(out) + "\n"

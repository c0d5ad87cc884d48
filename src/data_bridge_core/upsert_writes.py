"""``session.upsert()``'s writes: its objects checked, sent in chunks, matched back.

`upsert.py` builds the ``INSERT ... ON CONFLICT`` text; here each chunk is
sent and every returned row is matched to the object at its position: a new
row joins the session, a row the session already holds is merged into the
held object (a rollback puts its old values back). The objects ``DO NOTHING``
skipped get the stored row, read by a second statement.
"""

from __future__ import annotations

from typing import Any

from data_bridge_core.dml import explain_changed_json, plan_inserts
from data_bridge_core.errors import UnsupportedOperationError
from data_bridge_core.foreign_keys import pull_foreign_keys
from data_bridge_core.identity import ChangeLog, IdentityMap
from data_bridge_core.schema.relation import MANY_TO_ONE
from data_bridge_core.schema.table import Table, table_info
from data_bridge_core.state import own_state, state_of
from data_bridge_core.statement_runner import StatementRunner
from data_bridge_core.upsert import UPSERT_CHUNK_ROWS, UpsertPlan
from data_bridge_core.written_rows import show_database_values


def refuse_unwritten_relations(obj: Table) -> None:
    """Upsert writes columns: refuse related objects it would silently leave out."""
    state = own_state(obj)
    if state is None or not state.relations:
        return
    info = table_info(type(obj))
    model = info.model.__name__
    for name, value in state.relations.items():
        rel = info.relationships.get(name)
        if rel is None or not value:
            continue
        if rel.direction == MANY_TO_ONE:
            if value.__dict__.get(table_info(rel.target).primary_key.name) is None:
                raise UnsupportedOperationError(
                    f"upsert() writes columns only; {model}.{name} holds a new "
                    f"{rel.target.__name__} without a key: add it and flush first"
                )
            continue  # a stored target is only its key, which the row carries
        raise UnsupportedOperationError(
            f"upsert() writes columns only; {model}.{name} was given objects it would not "
            f"write: upsert the {model} objects first, then link them and flush"
        )


async def write_upsert(
    runner: StatementRunner,
    identity: IdentityMap,
    log: ChangeLog,
    plan: UpsertPlan,
    objects: list[Table],
) -> int:
    """Write ``objects`` with ``INSERT ... ON CONFLICT``; returns the rows written.

    Objects whose row ``DO NOTHING`` skipped are read back by a second statement
    (only then): the existing row wins, and they show it (`_absorb_existing`).
    """
    for obj in objects:
        pull_foreign_keys(obj)
    written = 0
    for batch in plan_inserts(plan.info.model, objects):
        generated = tuple(c.name for c in batch.returned)
        for start in range(0, len(batch.objects), UPSERT_CHUNK_ROWS):
            chunk = batch.objects[start : start + UPSERT_CHUNK_ROWS]
            try:
                params = [value for row in batch.params_of(chunk) for value in row]
                statement = plan.statement(batch.columns, len(chunk))
                result = await runner.run_statement(statement, params)
            except Exception as exc:
                explain_changed_json(plan.info.model, batch.columns, _dicts(chunk), exc)
                raise
            rows, skipped = _absorb_upserted(identity, log, plan, chunk, result.rows, generated)
            written += rows
            if skipped:
                statement = plan.existing_statement(len(skipped))
                found = await runner.run_statement(statement, plan.key_params(skipped))
                _absorb_existing(identity, log, plan, skipped, found.rows)
    return written


def _dicts(objects: list[Table]) -> list[dict[str, Any]]:
    return [obj.__dict__ for obj in objects]


def _join(identity: IdentityMap, plan: UpsertPlan, obj: Table, values: Any) -> Table | None:
    """Put a row's values on ``obj``, now persistent, and into the session unless the
    session holds another object for that row: then that object is returned, and
    ``obj`` is a detached copy of the row (linked to an object, it stands for the
    row, and it is never inserted again)."""
    info = plan.info
    if info.loaders:
        values = info.loaded_row(values)  # an int field over numeric reads an int
    obj.__dict__.update(zip(info.field_names, values, strict=True))
    state = state_of(obj)
    state.persistent = True
    state.changed = None
    held = identity.get(info.model, identity.key_of(obj))
    if held is not None and held is not obj:
        return held
    identity.put(obj)
    return None


def _absorb_upserted(
    identity: IdentityMap,
    log: ChangeLog,
    plan: UpsertPlan,
    objects: list[Table],
    rows: list[Any],
    generated: tuple[str, ...],
) -> tuple[int, list[Table]]:
    """Put each returned row on the object at its position; returns the rows written
    and the objects no row came back for (``DO NOTHING`` skipped them).

    Two objects whose keys the server compares equal although Python does not (a
    ``citext`` or case-insensitive collation: ``"Ab"`` and ``"ab"``) both match the one
    row they wrote; the first one gets it (rows come in position order), the other
    was skipped by ``DO NOTHING``. (Keys equal in Python are refused before SQL.)
    """
    names = plan.info.field_names
    written: set[tuple[Any, ...]] = set()
    absorbed: set[int] = set()
    for row in rows:
        key = plan.key_of_row(row)
        if key in written:
            continue
        written.add(key)
        position = row[-1] - 1
        absorbed.add(position)
        obj = objects[position]
        held = _join(identity, plan, obj, row[:-2])
        if held is not None:
            # Merged into the held object (a rollback puts its old values back).
            show_database_values(log, held, ((n, obj.__dict__[n]) for n in names))
            continue
        # Rolled back, the object leaves the session; an inserted one also loses
        # the columns the database filled.
        log.record_inserted(obj, generated if row[-2] else ())
    if len(absorbed) == len(objects):
        return len(written), []
    return len(written), [obj for i, obj in enumerate(objects) if i not in absorbed]


def _absorb_existing(
    identity: IdentityMap, log: ChangeLog, plan: UpsertPlan, objects: list[Table], rows: list[Any]
) -> None:
    """Put each stored row on the skipped object at its position (the row wins).

    A row the session holds is left as it is (a read never overwrites a held
    object) and the object passed becomes a detached copy of it. An object whose
    row is gone by now (deleted since) stays new.
    """
    for row in rows:
        obj = objects[row[-1] - 1]
        if _join(identity, plan, obj, row[:-1]) is None:
            log.record_inserted(obj, ())  # rolled back, it leaves the session again

"""Autogenerate: the models compared with the live schema, written as the next migration."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from data_bridge_core.engine import Engine
from data_bridge_core.migrations.diff import Hazard, diff, hazards, reverse_all, review_notes
from data_bridge_core.migrations.files import Migration
from data_bridge_core.migrations.introspect import live_schema, model_schema
from data_bridge_core.migrations.operations import Operation
from data_bridge_core.migrations.render import next_version, render, write
from data_bridge_core.migrations.state import SchemaState
from data_bridge_core.schema.table import Table


@dataclass
class Generated:
    """What `Migrator.make` wrote."""

    path: Path
    version: str
    operations: list[Operation]
    hazards: list[Hazard]
    review: list[str]


async def differences(
    engine: Engine, models: Sequence[type[Table]]
) -> tuple[list[Operation], SchemaState]:
    """The upgrade the models need from the live schema, and the live schema.

    Both are read in one transaction that is rolled back: nothing is written.
    """
    conn = await engine.acquire()
    try:
        async with conn.transaction(force_rollback=True):
            current = await live_schema(conn)
            desired = await model_schema(conn, models)
    finally:
        await engine.release(conn)
    return diff(current, desired), current


def write_migration(
    directory: Path,
    existing: Sequence[Migration],
    message: str,
    operations: list[Operation],
    current: SchemaState,
) -> Generated:
    """The next migration file: the operations, their reverse, hazards and REVIEW notes."""
    found = hazards(operations, current)
    review = review_notes(operations)
    version = next_version(existing)
    text = render(message, operations, reverse_all(operations), found, review)
    return Generated(write(directory, version, message, text), version, operations, found, review)

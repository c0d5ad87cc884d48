"""Which migrations to run, in which direction, from the history to a target version."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from data_bridge_core.migrations.errors import EditedMigrationError, MigrationError
from data_bridge_core.migrations.files import DOWNGRADE, UPGRADE, Migration
from data_bridge_core.migrations.history import APPLIED, HistoryRow
from data_bridge_core.migrations.introspect import HISTORY_TABLE

ZERO = "zero"  # `--to zero`: every migration unapplied (Django's spelling)


@dataclass(frozen=True)
class Step:
    """One migration to apply, ``upgrade`` or ``downgrade``."""

    migration: Migration
    direction: str

    def __str__(self) -> str:
        return f"{self.migration.label} ({self.direction})"


def target(migrations: Sequence[Migration], to: str | None, directory: Path) -> int:
    """The version number ``to`` names (None: the latest; ``zero``: 0); MigrationError
    for one the directory does not have."""
    if to is None:
        return int(migrations[-1].version) if migrations else 0
    if to == ZERO:
        return 0
    if to.isdigit():
        for migration in migrations:
            if int(migration.version) == int(to):
                return int(to)
    known = ", ".join(m.version for m in migrations) or "none"
    raise MigrationError(
        f"no migration has version {to!r} in {directory} (known: {known}; "
        f"'{ZERO}' unapplies them all)"
    )


def plan(
    migrations: Sequence[Migration],
    rows: dict[str, HistoryRow],
    to: str | None,
    directory: Path,
) -> list[Step]:
    """The steps from the recorded history to version ``to``: the downgrades of applied
    migrations above it (newest first), then the upgrades of the others up to it.

    Refuses a history that names a migration the directory lacks, and an
    applied migration whose file changed since (`EditedMigrationError`).
    """
    by_version = {m.version: m for m in migrations}
    for row in rows.values():
        if row.version not in by_version:
            raise MigrationError(
                f"the database has migration {row.version}_{row.name} applied, but "
                f"{directory} has no file for it (wrong directory, or a file deleted)"
            )
    for row in rows.values():
        migration = by_version[row.version]
        if row.state == APPLIED and row.checksum != migration.checksum:
            raise EditedMigrationError(
                f"migration {migration.label} was edited after it was applied "
                f"({migration.path} no longer matches the checksum recorded in "
                f"{HISTORY_TABLE}): restore the file and write a new migration for the change"
            )
    limit = target(migrations, to, directory)
    down = [
        Step(m, DOWNGRADE)
        for m in reversed(migrations)
        if m.version in rows and int(m.version) > limit
    ]
    up = [Step(m, UPGRADE) for m in migrations if m.version not in rows and int(m.version) <= limit]
    return down + up

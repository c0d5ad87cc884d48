"""The operations that turn one schema into another, and the hazards among them.

`diff(current, desired)` compares two `SchemaState` values and returns the
operations of an upgrade, in an order PostgreSQL accepts: foreign keys and
indexes that go are dropped first, then constraints and columns, then tables;
new tables, columns and column changes follow, then keys, indexes and
foreign keys. The downgrade is the reverse of each operation, in reverse
order (`reverse_all`), so it restores everything the catalog shows.

Objects are matched by name: a renamed column or table looks like a drop and
an add; `review_notes` says where that may be so, and the renderer writes a
``# REVIEW:`` comment that the runner refuses to apply until it is removed.

`hazards` names the classic production risks of an upgrade (see
docs/migrations.md): a NOT NULL column added without a default to an existing
table, a type change that rewrites the table, a column dropped while the
running code still maps it, a plain CREATE INDEX on an existing table.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from data_bridge_core.migrations.operations import (
    AddColumn,
    AddForeignKey,
    AddPrimaryKey,
    AddUnique,
    AlterColumnDefault,
    AlterColumnIdentity,
    AlterColumnNullable,
    AlterColumnType,
    CreateIndex,
    CreateTable,
    DropColumn,
    DropForeignKey,
    DropIndex,
    DropPrimaryKey,
    DropTable,
    DropUnique,
    Operation,
    table_spec,
)
from data_bridge_core.migrations.state import ColumnSpec, SchemaState


def diff(current: SchemaState, desired: SchemaState) -> list[Operation]:
    """The upgrade from ``current`` to ``desired``."""
    drop_fks: list[Operation] = []
    drop_indexes: list[Operation] = []
    drop_keys: list[Operation] = []
    drop_columns: list[Operation] = []
    drop_tables: list[Operation] = []
    create_tables: list[Operation] = []
    add_columns: list[Operation] = []
    alter_columns: list[Operation] = []
    add_keys: list[Operation] = []
    create_indexes: list[Operation] = []
    add_fks: list[Operation] = []

    for name in sorted(current.tables.keys() - desired.tables.keys()):
        old = current.tables[name]
        drop_fks += [DropForeignKey(name, old.foreign_keys[k]) for k in sorted(old.foreign_keys)]
        drop_indexes += [DropIndex(name, old.indexes[k]) for k in sorted(old.indexes)]
        drop_tables.append(DropTable(name, *table_spec(old)))
    for name in sorted(desired.tables.keys() - current.tables.keys()):
        new = desired.tables[name]
        create_tables.append(CreateTable(name, *table_spec(new)))
        create_indexes += [CreateIndex(name, new.indexes[k]) for k in sorted(new.indexes)]
        add_fks += [AddForeignKey(name, new.foreign_keys[k]) for k in sorted(new.foreign_keys)]

    for name in sorted(current.tables.keys() & desired.tables.keys()):
        old, new = current.tables[name], desired.tables[name]
        for k in sorted(old.foreign_keys):
            if new.foreign_keys.get(k) != old.foreign_keys[k]:
                drop_fks.append(DropForeignKey(name, old.foreign_keys[k]))
        for k in sorted(new.foreign_keys):
            if old.foreign_keys.get(k) != new.foreign_keys[k]:
                add_fks.append(AddForeignKey(name, new.foreign_keys[k]))
        for k in sorted(old.indexes):
            if new.indexes.get(k) != old.indexes[k]:
                drop_indexes.append(DropIndex(name, old.indexes[k]))
        for k in sorted(new.indexes):
            if old.indexes.get(k) != new.indexes[k]:
                create_indexes.append(CreateIndex(name, new.indexes[k]))
        for k in sorted(old.unique):
            if new.unique.get(k) != old.unique[k]:
                drop_keys.append(DropUnique(name, old.unique[k]))
        for k in sorted(new.unique):
            if old.unique.get(k) != new.unique[k]:
                add_keys.append(AddUnique(name, new.unique[k]))
        if old.primary_key != new.primary_key:
            if old.primary_key is not None:
                drop_keys.append(DropPrimaryKey(name, old.primary_key))
            if new.primary_key is not None:
                add_keys.append(AddPrimaryKey(name, new.primary_key))
        for column in old.columns:
            if column not in new.columns:
                drop_columns.append(DropColumn(name, old.columns[column]))
        for column in new.columns:
            if column not in old.columns:
                add_columns.append(AddColumn(name, new.columns[column]))
            elif old.columns[column] != new.columns[column]:
                alter_columns += _alter_column(name, old.columns[column], new.columns[column])

    return (
        drop_fks
        + drop_indexes
        + drop_keys
        + drop_columns
        + drop_tables
        + create_tables
        + add_columns
        + alter_columns
        + add_keys
        + create_indexes
        + add_fks
    )


def _alter_column(table: str, old: ColumnSpec, new: ColumnSpec) -> list[Operation]:
    """One column's changes, in an order that works both ways (see `reverse_all`):
    the default goes before a type change and comes back after it, an identity is
    dropped before and added after (it needs NOT NULL)."""
    name = old.name
    steps: list[Operation] = []
    retype = old.type != new.type
    if old.default is not None and (retype or old.default != new.default):
        steps.append(AlterColumnDefault(table, name, None, old.default))
    if old.identity and not new.identity:
        steps.append(AlterColumnIdentity(table, name, False))
    if retype:
        steps.append(AlterColumnType(table, name, new.type, old.type))
    if old.nullable != new.nullable:
        steps.append(AlterColumnNullable(table, name, new.nullable))
    if new.identity and not old.identity:
        steps.append(AlterColumnIdentity(table, name, True))
    if new.default is not None and (retype or old.default != new.default):
        steps.append(AlterColumnDefault(table, name, new.default, None))
    return steps


def reverse_all(operations: Sequence[Operation]) -> list[Operation]:
    """The downgrade of an upgrade: each operation's reverse, last first."""
    return [op.reverse() for op in reversed(operations)]


# -- what autogenerate cannot know ------------------------------------------------------


def review_notes(operations: Sequence[Operation]) -> list[str]:
    """Drops and adds that may be renames: autogenerate writes them as drop + add,
    which loses the data. Each note is written as a ``# REVIEW:`` line."""
    notes = []
    dropped: dict[str, list[ColumnSpec]] = {}
    added: dict[str, list[ColumnSpec]] = {}
    for op in operations:
        if isinstance(op, DropColumn):
            dropped.setdefault(op.table, []).append(op.column)
        elif isinstance(op, AddColumn):
            added.setdefault(op.table, []).append(op.column)
    for table in sorted(dropped.keys() & added.keys()):
        old = ", ".join(c.name for c in dropped[table])
        new = ", ".join(c.name for c in added[table])
        notes.append(
            f"{table}: column(s) {old} dropped and {new} added. If this is a rename, replace "
            f"the drop and the add with op.execute('ALTER TABLE ... RENAME COLUMN ... TO ...') "
            f"(drop + add loses the column's data)."
        )
    dropped_tables = [op.table for op in operations if isinstance(op, DropTable)]
    created_tables = [op.table for op in operations if isinstance(op, CreateTable)]
    if dropped_tables and created_tables:
        notes.append(
            f"table(s) {', '.join(dropped_tables)} dropped and {', '.join(created_tables)} "
            f"created. If this is a rename, replace them with "
            f"op.execute('ALTER TABLE ... RENAME TO ...') (drop + create loses the rows)."
        )
    return notes


# -- production hazards -----------------------------------------------------------------


@dataclass(frozen=True)
class Hazard:
    """A risk of one operation on a production database: what and what to do."""

    operation: Operation
    message: str

    def __str__(self) -> str:
        return f"{self.operation.describe()}: {self.message}"


# Type changes PostgreSQL makes without rewriting the table (binary-coercible or
# a relaxed modifier); every other change rewrites it under an ACCESS EXCLUSIVE lock.
_VARCHAR = re.compile(r"^character varying(?:\((\d+)\))?$")
_NUMERIC = re.compile(r"^numeric(?:\((\d+),(\d+)\))?$")
_NO_REWRITE = {
    ("character varying", "text"),
    ("text", "character varying"),
    ("cidr", "inet"),
    ("timestamp without time zone", "timestamp with time zone"),  # only with TimeZone UTC
}


def rewrites_table(old: str, new: str) -> bool:
    """False when PostgreSQL can change ``old`` to ``new`` without rewriting the table."""
    if (old, new) in _NO_REWRITE:
        return old.startswith("timestamp")
    old_v, new_v = _VARCHAR.match(old), _VARCHAR.match(new)
    if old_v and new_v:  # varchar(n) -> varchar(m >= n) or varchar: no rewrite
        return new_v.group(1) is not None and (
            old_v.group(1) is None or int(new_v.group(1)) < int(old_v.group(1))
        )
    if old_v and new == "text":
        return False
    old_n, new_n = _NUMERIC.match(old), _NUMERIC.match(new)
    if old_n and new_n:  # more precision, same scale (or unconstrained): no rewrite
        if new_n.group(1) is None:
            return False
        if old_n.group(1) is None:
            return True
        return not (old_n.group(2) == new_n.group(2) and int(new_n.group(1)) >= int(old_n.group(1)))
    return True


def hazards(operations: Sequence[Operation], current: SchemaState) -> list[Hazard]:
    """The production hazards of an upgrade of the ``current`` schema."""
    found: list[Hazard] = []
    created = {op.table for op in operations if isinstance(op, CreateTable)}
    for op in operations:
        existing = op_table(op) in current.tables and op_table(op) not in created
        if isinstance(op, AddColumn) and existing:
            column = op.column
            if not column.nullable and column.default is None and not column.identity:
                found.append(
                    Hazard(
                        op,
                        "NOT NULL without a default on an existing table: fails when the "
                        "table has rows. Add it nullable, backfill, then set NOT NULL; or "
                        "give it a server_default.",
                    )
                )
        elif isinstance(op, AlterColumnType) and existing and rewrites_table(op.old_type, op.type):
            found.append(
                Hazard(
                    op,
                    "rewrites the whole table under an ACCESS EXCLUSIVE lock (reads and "
                    "writes wait). On a large table, add a new column, backfill in batches, "
                    "then switch.",
                )
            )
        elif isinstance(op, AlterColumnNullable) and existing and not op.nullable:
            found.append(
                Hazard(
                    op,
                    "scans the whole table under an ACCESS EXCLUSIVE lock and fails if a row "
                    "holds NULL: backfill first.",
                )
            )
        elif isinstance(op, DropColumn) and existing:
            found.append(
                Hazard(
                    op,
                    "the running version of the application still maps this column and "
                    "selects it: deploy the code without it first, then apply this "
                    "migration (the data is lost; the downgrade restores the column, empty).",
                )
            )
        elif isinstance(op, DropTable):
            found.append(
                Hazard(op, "drops the table and its rows (the downgrade recreates it, empty).")
            )
        elif isinstance(op, CreateIndex) and existing and not op.concurrently:
            found.append(
                Hazard(
                    op,
                    "blocks writes to the table while the index builds. On a large table use "
                    "op.create_index(..., concurrently=True) in a migration with "
                    "transactional = False.",
                )
            )
    return found


def op_table(op: Operation) -> str | None:
    table = getattr(op, "table", None)
    return table if isinstance(table, str) else None

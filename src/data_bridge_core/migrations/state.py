"""A schema as the catalog describes it: tables, columns, keys, indexes, foreign keys.

Both sides of a comparison are read from PostgreSQL's catalog into these
values (`introspect`): the live schema, and the models' schema created in a
rolled-back transaction. Types and defaults are the server's own spelling
(``format_type``, ``pg_get_expr``), so equal declarations compare equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ColumnSpec:
    """One column: SQL type, NOT NULL or not, default expression, identity."""

    name: str
    type: str
    nullable: bool = True
    default: str | None = None
    identity: bool = False


@dataclass(frozen=True)
class KeySpec:
    """A named PRIMARY KEY or UNIQUE constraint on some columns (in order)."""

    name: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class IndexSpec:
    """A plain (not constraint-backed) index on columns (in order)."""

    name: str
    columns: tuple[str, ...]
    unique: bool = False


@dataclass(frozen=True)
class ForeignKeySpec:
    """A FOREIGN KEY constraint; ``on_delete`` None is NO ACTION (the default)."""

    name: str
    columns: tuple[str, ...]
    ref_table: str
    ref_columns: tuple[str, ...]
    on_delete: str | None = None


@dataclass
class TableState:
    name: str
    columns: dict[str, ColumnSpec] = field(default_factory=dict)
    primary_key: KeySpec | None = None
    unique: dict[str, KeySpec] = field(default_factory=dict)
    indexes: dict[str, IndexSpec] = field(default_factory=dict)
    foreign_keys: dict[str, ForeignKeySpec] = field(default_factory=dict)

    def comparable(self) -> tuple[object, ...]:
        """Everything compared, column order aside (PostgreSQL cannot reorder columns)."""
        return (
            self.name,
            sorted(self.columns.items()),
            self.primary_key,
            sorted(self.unique.items()),
            sorted(self.indexes.items()),
            sorted(self.foreign_keys.items()),
        )


@dataclass
class SchemaState:
    tables: dict[str, TableState] = field(default_factory=dict)

    def comparable(self) -> list[tuple[object, ...]]:
        return [self.tables[name].comparable() for name in sorted(self.tables)]

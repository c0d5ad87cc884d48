"""Planning ``session.upsert()``: ``INSERT ... ON CONFLICT (...) DO UPDATE / DO NOTHING``.

The unit of work executes the statements; this module checks the request
against the model and writes the SQL. Rows come back with ``RETURNING`` every column
and ``xmax = 0`` (true for a row this statement inserted, false for one it
updated), and are matched to their objects by the conflict key.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from data_bridge_core.errors import UnsupportedOperationError
from data_bridge_core.schema.column import ColumnInfo
from data_bridge_core.schema.table import Table, TableInfo

# Rows per statement: keeps the parameter count far below PostgreSQL's 65535.
UPSERT_CHUNK_ROWS = 500


class UpsertPlan:
    """The checked ``on`` and ``update`` columns of one upsert call."""

    def __init__(self, info: TableInfo, on: Sequence[str], update: Sequence[str]) -> None:
        model = info.model.__name__
        if isinstance(on, str) or isinstance(update, str):
            raise TypeError("upsert() takes tuples of field names: on=('email',), update=('name',)")
        if not on:
            raise ValueError("upsert() needs on=(...): the columns of a unique key")
        self.on = tuple(info.column(name, "upsert(on=...)").name for name in on)
        self.update = tuple(info.column(name, "upsert(update=...)").name for name in update)
        if not info.is_unique_key(self.on):
            raise UnsupportedOperationError(
                f"upsert(on={self.on!r}): {model} has no primary key or UNIQUE constraint on "
                "exactly these columns; declare Column(unique=True) or "
                f"Settings.unique = [{self.on!r}]"
            )
        for name in self.update:
            if info.columns[name].primary_key:
                raise UnsupportedOperationError(
                    f"upsert(update=...) cannot change the primary key {name!r}"
                )
        self.info = info
        self.on_index = tuple(info.field_names.index(name) for name in self.on)

    def statement(self, columns: tuple[ColumnInfo, ...], rows: int) -> str:
        info = self.info
        names = ", ".join(c.ident for c in columns)
        one_row = "(" + ", ".join(["%s"] * len(columns)) + ")"
        target = ", ".join(info.columns[name].ident for name in self.on)
        if self.update:
            sets = ", ".join(
                f"{info.columns[n].ident} = EXCLUDED.{info.columns[n].ident}" for n in self.update
            )
            action = f"DO UPDATE SET {sets}"
        else:
            action = "DO NOTHING"
        return (
            f"INSERT INTO {info.quoted_name} ({names}) VALUES {', '.join([one_row] * rows)} "
            f"ON CONFLICT ({target}) {action} RETURNING {info.select_list}, (xmax = 0)"
        )

    def key_of(self, obj: Table) -> tuple[Any, ...]:
        d = obj.__dict__
        return tuple(d[name] for name in self.on)

    def key_of_row(self, row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(row[i] for i in self.on_index)

    def check_distinct(self, objects: Sequence[Table]) -> None:
        """One statement cannot write a row twice: refuse two objects with the same key."""
        seen: set[tuple[Any, ...]] = set()
        for obj in objects:
            key = self.key_of(obj)
            if key in seen:
                raise ValueError(
                    f"upsert(): two {self.info.model.__name__} objects have the same "
                    f"{', '.join(self.on)}; pass each key once"
                )
            seen.add(key)

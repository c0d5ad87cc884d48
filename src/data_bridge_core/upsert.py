"""Planning ``session.upsert()``: ``INSERT ... ON CONFLICT (...) DO UPDATE / DO NOTHING``.

The unit of work executes the statements; this module checks the request
against the model and writes the SQL. Rows come back with ``RETURNING`` every column
and ``xmax = 0`` (true for a row this statement inserted, false for one it
updated), each with the position of the object it was written for.

That position comes from the server: the rows to write are a ``VALUES`` list
numbered 1..n, and each returned row is joined back to the entry whose key,
cast to the column's type, equals the key the row stored. Matching by the key
as sent would miss every key the server normalises (``char(4)`` pads,
``numeric(10,2)`` rounds).

``DO NOTHING`` returns no row for a conflict: the objects it skipped are read
back by `UpsertPlan.existing_statement`, so they show the row that won.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from data_bridge_core.errors import UnsupportedOperationError, ValidationError
from data_bridge_core.schema.column import ColumnInfo
from data_bridge_core.schema.relation import MANY_TO_ONE
from data_bridge_core.schema.table import Table, TableInfo, table_info
from data_bridge_core.state import own_state

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
        """The upsert of ``rows`` objects; each returned row ends with (inserted, position).

        Every value is cast to its column's type in the ``VALUES`` list, so the
        list is typed as the table is (an untyped one would read as text).
        """
        info = self.info
        names = ", ".join(c.ident for c in columns)
        casts = ", ".join(f"%s::{c.column_type.sql_type}" for c in columns)
        values = ", ".join(f"({casts}, {position})" for position in range(1, rows + 1))
        aliases = ", ".join(f"c{i}" for i in range(len(columns)))
        target = ", ".join(info.columns[name].ident for name in self.on)
        if self.update:
            sets = ", ".join(
                f"{info.columns[n].ident} = EXCLUDED.{info.columns[n].ident}" for n in self.update
            )
            action = f"DO UPDATE SET {sets}"
        else:
            action = "DO NOTHING"
        alias_of = {c.name: f"c{i}" for i, c in enumerate(columns)}
        # The key as the server stores it: cast (assigned) to the column's type. A
        # column RETURNING reads through read_sql (an inet as its text) is cast back
        # to its type too, so both sides compare as the column compares.
        match = " AND ".join(self._match(info.columns[name], alias_of[name]) for name in self.on)
        return (
            f"WITH v ({aliases}, ord) AS (VALUES {values}), "
            f"w AS (INSERT INTO {info.quoted_name} ({names}) SELECT {aliases} FROM v ORDER BY ord "
            f"ON CONFLICT ({target}) {action} "
            f'RETURNING {info.select_list}, (xmax = 0) AS "(inserted)") '
            f"SELECT w.*, v.ord FROM w JOIN v ON {match} ORDER BY v.ord"
        )

    def existing_statement(self, rows: int) -> str:
        """The stored rows of ``rows`` keys (``DO NOTHING`` skipped them); each returned
        row ends with the position of its key.

        A statement of its own, sent only when a row was skipped: under READ
        COMMITTED it also sees a row another transaction committed while the
        upsert ran, whose conflict made the upsert skip (the upsert's own
        snapshot would not show it).
        """
        info = self.info
        columns = [info.columns[name] for name in self.on]
        casts = ", ".join(f"%s::{c.column_type.sql_type}" for c in columns)
        values = ", ".join(f"({casts}, {position})" for position in range(1, rows + 1))
        aliases = ", ".join(f"c{i}" for i in range(len(columns)))
        # The table's own column (not read_sql's text) beside the key cast to its type:
        # compared as the unique constraint compares.
        match = " AND ".join(f"{c.quoted} = v.c{i}" for i, c in enumerate(columns))
        return (
            f"SELECT {info.select_list}, v.ord FROM {info.quoted_name} "
            f"JOIN (VALUES {values}) AS v ({aliases}, ord) ON {match} ORDER BY v.ord"
        )

    def key_params(self, objects: Sequence[Table]) -> list[Any]:
        """The ``on`` values of ``objects`` as `existing_statement` takes them."""
        adapters = [(name, self.info.columns[name].column_type.adapt) for name in self.on]
        params = []
        for obj in objects:
            d = obj.__dict__
            for name, adapt in adapters:
                value = d[name]
                params.append(adapt(value) if adapt is not None and value is not None else value)
        return params

    @staticmethod
    def _match(column: ColumnInfo, alias: str) -> str:
        sql_type = column.column_type.sql_type
        returned = f"w.{column.ident}"
        if column.column_type.read_sql is not None:
            returned = f"{returned}::{sql_type}"
        return f"{returned} = v.{alias}::{sql_type}"

    def key_of_row(self, row: Sequence[Any]) -> tuple[Any, ...]:
        return tuple(row[i] for i in self.on_index)

    def check_distinct(self, objects: Sequence[Table]) -> None:
        """Each object carries its key, and one key once: a row is matched back to
        its object by that key, and one statement cannot write a row twice."""
        info = self.info
        model = info.model.__name__
        keys = [self._key_before_flush(obj) for obj in objects]
        for index, name in enumerate(self.on):
            missing = sum(1 for key in keys if key[index] is None)
            if missing:
                if info.columns[name].database_generated:
                    why = (
                        "it is generated by the database, so those rows could only be "
                        "inserted; add new objects with session.add(), or give the key"
                    )
                else:
                    why = "a row without its key never conflicts and cannot be matched back"
                raise ValidationError(
                    model,
                    name,
                    f"has no value in {missing} object(s) passed to upsert(on={self.on!r}): {why}",
                )
        if len(set(keys)) != len(keys):
            raise ValueError(
                f"upsert(): two {model} objects have the same "
                f"{', '.join(self.on)}; pass each key once"
            )

    def _key_before_flush(self, obj: Table) -> tuple[Any, ...]:
        """The ``on`` values the upsert will send: a foreign key not set yet is taken
        from the stored object its many-to-one holds (the unit of work copies it)."""
        d = obj.__dict__
        key = tuple(d.get(name) for name in self.on)
        if None not in key:
            return key
        state = own_state(obj)
        if state is None or not state.relations:
            return key
        through: dict[str, Any] = {}
        for rel_name, value in state.relations.items():
            rel = self.info.relationships.get(rel_name)
            if rel is not None and value is not None and rel.direction == MANY_TO_ONE:
                # A new target (no key yet) stands for its future key; the unit of work
                # refuses it, naming the relationship.
                pk = value.__dict__.get(table_info(rel.target).primary_key.name)
                through[rel.fk.name] = value if pk is None else pk
        return tuple(
            through.get(name) if value is None else value
            for name, value in zip(self.on, key, strict=True)
        )

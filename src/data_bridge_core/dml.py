"""SQL of the writes: the INSERT batches of a flush, its UPDATE and DELETE statements.

Only SQL text and parameters are built here (identifiers come from the model,
every value is a parameter); the unit of work decides what to write and runs it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from operator import attrgetter, itemgetter, methodcaller
from typing import Any

from psycopg.types.json import Jsonb

from data_bridge_core.array_params import array_class
from data_bridge_core.errors import ValidationError
from data_bridge_core.schema.column import ColumnInfo
from data_bridge_core.schema.table import Table, TableInfo, table_info
from data_bridge_core.schema.types import json_problem


class InsertPlan:
    """The INSERT statements of one table for one column list, built once per list.

    A model's plans are kept on its `TableInfo` (``insert_plans``): a flush only
    groups its objects and fills in values.
    """

    __slots__ = (
        "bulk_loads",
        "bulk_returned",
        "bulk_sql",
        "columns",
        "getters",
        "info",
        "loads",
        "pk_given",
        "returned",
        "sql",
    )

    def __init__(self, info: TableInfo, columns: tuple[ColumnInfo, ...]) -> None:
        self.info = info
        self.columns = columns
        included = {c.name for c in columns}
        self.returned = tuple(
            c for c in info.columns.values() if c.name not in included and c.database_generated
        )
        # Columns the bulk INSERT returns: the primary key, then the generated ones.
        keys = info.primary_keys
        self.bulk_returned = (*keys, *(c for c in self.returned if not any(c is k for k in keys)))
        # The returned columns read as another type than their field's (`loaded_rows`).
        self.loads = returned_loads(self.returned)
        self.bulk_loads = returned_loads(self.bulk_returned)
        # Per column: reads its value out of an object's __dict__ (a C call), the
        # column type's adapter (None: psycopg's own adaptation) and the class sending
        # the column as one binary array (None: psycopg dumps the list).
        self.getters = tuple(
            (
                itemgetter(c.name),
                c.column_type.adapt,
                None
                if c.column_type.adapt is not None
                else array_class(c.column_type.python_type, c.column_type.sql_type),
            )
            for c in columns
        )
        names = ", ".join(c.ident for c in columns)
        values = ", ".join(["%s"] * len(columns))
        returning = ", ".join(c.read_sql(c.ident) for c in self.returned)
        if columns:
            self.sql = f"INSERT INTO {info.quoted_name} ({names}) VALUES ({values})"
        else:
            self.sql = f"INSERT INTO {info.quoted_name} DEFAULT VALUES"
        if returning:
            self.sql += f" RETURNING {returning}"
        self.bulk_sql = self._bulk_sql(names)

    def _bulk_sql(self, names: str) -> str | None:
        """One ``INSERT ... SELECT FROM unnest(column arrays)`` for the whole batch.

        The returned rows must be matched back to their objects. PostgreSQL does
        not promise RETURNING order, so the primary key is returned first: a key
        the objects carry is looked up; a key from an integer identity/sequence
        is assigned in the ``ORDER BY ord`` order, so sorting by it restores the
        input order (SQLAlchemy's insertmanyvalues relies on the same rule).
        Other generated keys (say a uuid server default) keep the per-row path.
        """
        pk = self.info.primary_key
        self.pk_given = False
        if not self.columns:
            return None
        # ColumnInfo overloads ==, so membership is tested by identity.
        self.pk_given = all(any(c is k for c in self.columns) for k in self.info.primary_keys)
        pk_generated = any(c is pk for c in self.returned)
        if not self.pk_given and not (pk_generated and pk.column_type.python_type is int):
            return None
        aliases = [f"c{i}" for i in range(len(self.columns))]
        # %b: arrays sent in binary are dumped about twice as fast as text ones.
        arrays = ", ".join(f"%b::{c.column_type.sql_type}[]" for c in self.columns)
        returning = ", ".join(c.read_sql(c.ident) for c in self.bulk_returned)
        return (
            f"INSERT INTO {self.info.quoted_name} ({names}) "
            f"SELECT {', '.join(aliases)} FROM unnest({arrays}) "
            f"WITH ORDINALITY AS v({', '.join(aliases)}, ord) ORDER BY ord "
            f"RETURNING {returning}"
        )


class InsertBatch:
    """Rows of one table that share the same column list: one (batched) INSERT."""

    __slots__ = ("dicts", "objects", "plan")

    def __init__(
        self,
        plan: InsertPlan,
        objects: list[Table] | None = None,
        dicts: list[dict[str, Any]] | None = None,
    ) -> None:
        self.plan = plan
        self.objects: list[Table] = [] if objects is None else objects
        # The objects' __dict__, in order, when planning already read them.
        self.dicts = dicts

    @property
    def columns(self) -> tuple[ColumnInfo, ...]:
        return self.plan.columns

    @property
    def returned(self) -> tuple[ColumnInfo, ...]:
        return self.plan.returned

    @property
    def bulk_returned(self) -> tuple[ColumnInfo, ...]:
        return self.plan.bulk_returned

    @property
    def sql(self) -> str:
        return self.plan.sql

    @property
    def bulk_sql(self) -> str | None:
        return self.plan.bulk_sql

    def params(self) -> list[list[Any]]:
        return self.params_of(self.objects)

    def params_of(self, objects: list[Table]) -> list[list[Any]]:
        """One parameter row per object, in the batch's column order."""
        adapters = [(c.name, c.column_type.adapt) for c in self.plan.columns]
        rows = []
        for obj in objects:
            d = obj.__dict__
            rows.append(
                [
                    (adapt(d[name]) if adapt is not None and d[name] is not None else d[name])
                    for name, adapt in adapters
                ]
            )
        return rows

    def column_arrays(self, dicts: list[dict[str, Any]]) -> list[Any]:
        """The batch as one array per column (the parameters of `bulk_sql`), from the
        objects' ``__dict__`` in order: one C-level pass per column, and a
        `ColumnArray` where the column's type has one (see `array_params`)."""
        arrays: list[Any] = []
        for get, adapt, array in self.plan.getters:
            values = list(map(get, dicts))
            if adapt is not None:
                values = [None if v is None else adapt(v) for v in values]
            arrays.append(values if array is None else array(values))
        return arrays

    def match_returned(self, rows: list[Any], dicts: list[dict[str, Any]]) -> list[Any]:
        """Rows of the bulk INSERT in the order of `objects` (see `InsertPlan._bulk_sql`)."""
        plan = self.plan
        info = plan.info
        if plan.pk_given and info.composite:
            width = len(info.primary_keys)
            by_tuple = {tuple(row[:width]): row for row in rows}
            return [by_tuple[identity_values(info, obj)] for obj in self.objects]
        if plan.pk_given:
            by_key = dict(zip(map(_FIRST, rows), rows, strict=True))
            return list(map(by_key.__getitem__, map(itemgetter(info.primary_key.name), dicts)))
        return sorted(rows, key=_FIRST)  # C-level key: no Python call per row


_FIRST = itemgetter(0)

Loads = tuple[tuple[int, Callable[[Any], Any]], ...]


def returned_loads(columns: Sequence[ColumnInfo]) -> Loads:
    """(position, load) of the columns of a RETURNING list whose values are converted to
    their field's type (an int field over numeric); empty for nearly every list."""
    return tuple(
        (index, column.load)
        for index, column in enumerate(columns)
        if column.column_type.load is not None
    )


def loaded_rows(rows: Sequence[Sequence[Any]], loads: Loads) -> list[list[Any]]:
    """``rows`` with each value at a position of ``loads`` converted (see `returned_loads`)."""
    converted = []
    for row in rows:
        values = list(row)
        for index, load in loads:
            values[index] = load(values[index])
        converted.append(values)
    return converted


def plan_inserts(model: type[Table], objects: list[Table]) -> list[InsertBatch]:
    """Group the new objects of one model by the columns their INSERT must name.

    Only database-generated columns can be left out (when they hold no value),
    so an object's group is decided by which of those few are None. The usual
    case, every object alike for each such column, is found without a Python
    step per object.
    """
    info = table_info(model)
    generated = [c.name for c in info.generated]
    if generated and objects:
        dicts = list(map(_dict_of, objects))
        key_of_all: list[bool] = []
        for name in generated:
            values = list(map(methodcaller("get", name), dicts))
            empty = values.count(None)
            if empty == len(values):
                key_of_all.append(True)
            elif empty == 0:
                key_of_all.append(False)
            else:
                break  # mixed: grouped object by object below
        else:
            return [InsertBatch(_plan(info, generated, tuple(key_of_all)), objects, dicts)]
    batches: dict[tuple[bool, ...], InsertBatch] = {}
    for obj in objects:
        d = obj.__dict__
        key = tuple([d.get(name) is None for name in generated])
        batch = batches.get(key)
        if batch is None:
            batch = batches[key] = InsertBatch(_plan(info, generated, key))
        batch.objects.append(obj)
    return list(batches.values())


_dict_of = attrgetter("__dict__")


def _plan(info: TableInfo, generated: list[str], empty: tuple[bool, ...]) -> InsertPlan:
    """The plan naming every column but the generated ones ``empty`` marks (cached)."""
    plan: InsertPlan | None = info.insert_plans.get(empty)
    if plan is None:
        omitted = {name for name, left_out in zip(generated, empty, strict=True) if left_out}
        columns = tuple(c for c in info.columns.values() if c.name not in omitted)
        plan = info.insert_plans[empty] = InsertPlan(info, columns)
    return plan


def identity_values(info: TableInfo, obj: Table) -> tuple[Any, ...]:
    d = obj.__dict__
    return tuple([d[name] for name in info.key_names])


def update_statement(info: TableInfo, fields: tuple[str, ...]) -> str:
    assignments = ", ".join(f"{info.columns[f].ident} = %s" for f in fields)
    pk = info.primary_key
    where = " AND ".join(f"{c.ident} = %s" for c in info.primary_keys)
    return f"UPDATE {info.quoted_name} SET {assignments} WHERE {where} RETURNING {pk.ident}"


def update_params(info: TableInfo, fields: tuple[str, ...], obj: Table) -> list[Any]:
    d = obj.__dict__
    params = [info.columns[f].bind(d[f]) for f in fields]
    params.extend(d[name] for name in info.key_names)
    return params


def delete_statement(info: TableInfo) -> str:
    """DELETE of the rows whose keys are in the array parameter(s) (see `delete_params`)."""
    if info.composite:
        names = ", ".join(c.ident for c in info.primary_keys)
        arrays = ", ".join(f"%s::{c.column_type.sql_type}[]" for c in info.primary_keys)
        return f"DELETE FROM {info.quoted_name} WHERE ({names}) IN (SELECT * FROM unnest({arrays}))"
    return f"DELETE FROM {info.quoted_name} WHERE {info.primary_key.ident} = ANY(%s)"


def delete_params(info: TableInfo, keys: list[Any]) -> list[Any]:
    """One array of keys; for a composite key, one array per key column."""
    if info.composite:
        return [list(column) for column in zip(*keys, strict=True)]
    return [keys]


def explain_changed_json(
    model: type[Table],
    columns: tuple[ColumnInfo, ...],
    dicts: list[dict[str, Any]],
    exc: Exception,
) -> None:
    """Raise the `ValidationError` of a JSON value changed in place since it was checked.

    Such a change is not tracked (docs/usage.md, Validation): a set put into a
    dict fails in json.dumps (a bare TypeError), a NaN at the server. Only a
    failed INSERT (a flush's, an upsert's) looks, so writes that succeed pay nothing.
    """
    for column in columns:
        if column.column_type.adapt is not Jsonb:
            continue
        for d in dicts:
            value = d.get(column.name)
            problem = None if value is None else json_problem(value)
            if problem:
                raise ValidationError(
                    model.__name__, column.name, f"{problem} (it was changed in place)"
                ) from exc

"""Read a schema from PostgreSQL's catalog, and the schema the models ask for.

`read_schema` reads one schema's tables: columns (``format_type``, NOT NULL,
``pg_get_expr`` of the default, identity), primary key, UNIQUE constraints,
plain indexes and foreign keys. It is the same catalog the check behind
`SchemaMismatchError` (`data_bridge_core.introspection`) reads, in full.

`model_schema` asks the server what the models mean: in a transaction that
is always rolled back, it creates the models' tables (with the DDL
`Engine.create_all` runs) in the connection's temporary schema and reads them
back with `read_schema`. Both sides of a comparison are then the server's own
spelling of types and defaults, so ``int8``/``bigint`` or ``now()``/``now()``
never show up as differences. Nothing is written to the live schema.

Expression and partial indexes, CHECK and EXCLUDE constraints, triggers,
views and other objects are not read: migrations leave them alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import AsyncConnection

from data_bridge_core import ddl
from data_bridge_core.ddl import dependency_order
from data_bridge_core.errors import wrap_database_error
from data_bridge_core.migrations.errors import MigrationError
from data_bridge_core.migrations.state import (
    ColumnSpec,
    ForeignKeySpec,
    IndexSpec,
    KeySpec,
    SchemaState,
    TableState,
)
from data_bridge_core.schema.table import Table, table_info

HISTORY_TABLE = "data_bridge_migrations"

_TABLES_SQL = """
SELECT c.relname FROM pg_class AS c
WHERE c.relnamespace = %(ns)s AND c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND c.relname <> %(history)s
ORDER BY c.relname
"""

_COLUMNS_SQL = """
SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), NOT a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.attidentity <> ''
FROM pg_class AS c
JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef AS d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE c.relnamespace = %(ns)s AND c.relkind IN ('r', 'p') AND NOT c.relispartition
ORDER BY c.relname, a.attnum
"""

_CONSTRAINTS_SQL = """
SELECT c.relname, k.conname, k.contype,
       ARRAY(SELECT a.attname FROM unnest(k.conkey) WITH ORDINALITY AS u(n, i)
             JOIN pg_attribute AS a ON a.attrelid = k.conrelid AND a.attnum = u.n ORDER BY u.i),
       f.relname,
       ARRAY(SELECT a.attname FROM unnest(k.confkey) WITH ORDINALITY AS u(n, i)
             JOIN pg_attribute AS a ON a.attrelid = k.confrelid AND a.attnum = u.n ORDER BY u.i),
       k.confdeltype
FROM pg_constraint AS k
JOIN pg_class AS c ON c.oid = k.conrelid
LEFT JOIN pg_class AS f ON f.oid = k.confrelid
WHERE c.relnamespace = %(ns)s AND k.contype IN ('p', 'u', 'f')
ORDER BY c.relname, k.conname
"""

# Plain indexes: not the ones behind a PRIMARY KEY / UNIQUE / EXCLUDE constraint,
# and not expression or partial indexes (left alone).
_INDEXES_SQL = """
SELECT t.relname, i.relname, x.indisunique,
       ARRAY(SELECT a.attname FROM unnest(x.indkey::int2[]) WITH ORDINALITY AS u(n, o)
             JOIN pg_attribute AS a ON a.attrelid = x.indrelid AND a.attnum = u.n ORDER BY u.o)
FROM pg_index AS x
JOIN pg_class AS i ON i.oid = x.indexrelid
JOIN pg_class AS t ON t.oid = x.indrelid
WHERE t.relnamespace = %(ns)s AND x.indexprs IS NULL AND x.indpred IS NULL
  AND NOT EXISTS (SELECT 1 FROM pg_constraint AS k
                  WHERE k.conindid = x.indexrelid AND k.contype IN ('p', 'u', 'x'))
ORDER BY t.relname, i.relname
"""

_ON_DELETE = {"r": "RESTRICT", "c": "CASCADE", "n": "SET NULL", "d": "SET DEFAULT"}


async def current_namespace(conn: AsyncConnection[Any]) -> int:
    """The OID of the schema unqualified names are created in (the first of ``search_path``)."""
    cursor = await conn.execute("SELECT current_schema()::regnamespace::oid")
    row = await cursor.fetchone()
    if row is None or row[0] is None:
        raise MigrationError(
            "no schema of the connection's search_path exists: create it, or set search_path"
        )
    return int(row[0])


async def read_schema(conn: AsyncConnection[Any], namespace: int) -> SchemaState:
    """The tables of one schema (by OID), as the catalog describes them."""
    params = {"ns": namespace, "history": HISTORY_TABLE}
    state = SchemaState()
    for (name,) in await (await conn.execute(_TABLES_SQL, params)).fetchall():
        state.tables[name] = TableState(name)
    for table, name, type_, nullable, default, identity in await (
        await conn.execute(_COLUMNS_SQL, params)
    ).fetchall():
        if table in state.tables:
            state.tables[table].columns[name] = ColumnSpec(name, type_, nullable, default, identity)
    for table, name, kind, columns, ref_table, ref_columns, on_delete in await (
        await conn.execute(_CONSTRAINTS_SQL, params)
    ).fetchall():
        if table not in state.tables:
            continue
        target = state.tables[table]
        if kind == "p":
            target.primary_key = KeySpec(name, tuple(columns))
        elif kind == "u":
            target.unique[name] = KeySpec(name, tuple(columns))
        else:
            target.foreign_keys[name] = ForeignKeySpec(
                name, tuple(columns), ref_table, tuple(ref_columns), _ON_DELETE.get(on_delete)
            )
    for table, name, unique, columns in await (await conn.execute(_INDEXES_SQL, params)).fetchall():
        if table in state.tables:
            state.tables[table].indexes[name] = IndexSpec(name, tuple(columns), unique)
    return state


async def live_schema(conn: AsyncConnection[Any]) -> SchemaState:
    """The schema the connection creates tables in (``current_schema()``)."""
    try:
        return await read_schema(conn, await current_namespace(conn))
    except psycopg.Error as exc:
        raise wrap_database_error(exc) from exc


async def model_schema(conn: AsyncConnection[Any], models: Sequence[type[Table]]) -> SchemaState:
    """The schema the models declare, as the server spells it (see the module's docstring).

    Runs in a transaction (a savepoint inside one) that is rolled back.
    Raises MigrationError for a foreign key to a table no model maps (the
    models' schema must be complete: pass every model).
    """
    names = {table_info(m).name for m in models}
    for model in models:
        for column, ref_table, _ in table_info(model).iter_foreign_keys():
            if ref_table not in names:
                raise MigrationError(
                    f"{model.__name__}.{column.name} references table {ref_table!r}, which none "
                    "of the models given maps: pass every model (each --models module)"
                )
    try:
        async with conn.transaction(force_rollback=True):
            # Transaction-local: the tables go to the temporary schema, names of the
            # usual search_path (functions of server defaults) still resolve.
            await conn.execute(
                "SELECT set_config('search_path', 'pg_temp, ' || current_setting('search_path'),"
                " true)"
            )
            for model in dependency_order(models):
                for statement in ddl.create_table(model):
                    await conn.execute(statement, ())
            cursor = await conn.execute("SELECT pg_my_temp_schema()::oid")
            row = await cursor.fetchone()
            assert row is not None
            return await read_schema(conn, int(row[0]))
    except psycopg.Error as exc:
        raise wrap_database_error(exc) from exc

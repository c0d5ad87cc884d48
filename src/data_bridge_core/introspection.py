"""What the database holds, compared with the models: the check behind `Engine.create_all`.

``CREATE TABLE IF NOT EXISTS`` leaves an existing table as it is, so a table
made by an older version of a model could lack a column the model now has.
`check_tables` reads the catalog for the models' tables and raises
`SchemaMismatchError` for the first table that lacks a model column or holds
one of another type. Extra columns in the database are fine.

Tables are found the way the ORM's own statements find them: by their
unqualified name through the connection's ``search_path`` (``to_regclass``).
Types are compared by OID, the declared one resolved by the server
(``to_regtype``), so spellings such as ``int8``/``bigint`` or
``varchar(20)``/``character varying`` agree; a type modifier (the ``20``) is
not compared, and a domain over the declared type is that type.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection, sql

from data_bridge_core.errors import SchemaMismatchError
from data_bridge_core.schema.table import Table, table_info

# One row per model column: its table's OID (NULL when the table does not
# exist), whether the table has the column, and both types when they differ.
_COLUMNS_SQL = """
SELECT m.ord, m.col, r.oid IS NOT NULL, a.attname IS NOT NULL,
       format_type(a.atttypid, NULL), format_type(t.oid, NULL),
       t.oid IS NULL OR a.atttypid = t.oid OR d.typbasetype = t.oid
FROM unnest(%s::int[], %s::text[], %s::text[], %s::text[]) AS m(ord, rel, col, declared)
LEFT JOIN LATERAL (SELECT to_regclass(m.rel)::oid AS oid) AS r ON true
LEFT JOIN LATERAL (SELECT to_regtype(m.declared)::oid AS oid) AS t ON true
LEFT JOIN pg_attribute AS a
  ON a.attrelid = r.oid AND a.attname = m.col AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_type AS d ON d.oid = a.atttypid AND d.typtype = 'd'
ORDER BY m.ord
"""


async def check_tables(conn: AsyncConnection[Any], models: Sequence[type[Table]]) -> None:
    """Raise SchemaMismatchError for the first existing table that does not fit its model.

    Tables that do not exist are skipped (creating them is the caller's job).
    """
    ords: list[int] = []
    relations: list[str] = []
    columns: list[str] = []
    declared: list[str] = []
    for index, model in enumerate(models):
        info = table_info(model)
        # The identifier as to_regclass parses it (no %% doubling: it is a parameter).
        relation = sql.Identifier(info.name).as_string(None)
        for column in info.columns.values():
            ords.append(index)
            relations.append(relation)
            columns.append(column.name)
            declared.append(column.column_type.sql_type)
    cursor = await conn.execute(_COLUMNS_SQL, (ords, relations, columns, declared))
    rows = await cursor.fetchall()
    missing: dict[int, list[str]] = {}
    mismatched: dict[int, dict[str, tuple[str, str]]] = {}
    for index, column, table_exists, present, found, expected, same in rows:
        if not table_exists:
            continue
        if not present:
            missing.setdefault(index, []).append(column)
        elif not same:
            mismatched.setdefault(index, {})[column] = (found, expected)
    for index, model in enumerate(models):
        if index in missing or index in mismatched:
            raise SchemaMismatchError(
                table_info(model).name, missing.get(index, []), mismatched.get(index)
            )

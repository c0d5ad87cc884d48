"""The schema as PostgreSQL's catalog shows it, read independently of the migrations code.

Columns from information_schema, constraints through pg_get_constraintdef,
indexes through pg_indexes: what a downgrade must restore exactly (column
order aside: PostgreSQL appends a column added back).
"""

from __future__ import annotations

from typing import Any

import psycopg
from database_server import dsn

_COLUMNS = """
SELECT table_name, column_name, data_type, character_maximum_length, numeric_precision,
       numeric_scale, is_nullable, column_default, is_identity, identity_generation
FROM information_schema.columns
WHERE table_schema = %(s)s AND table_name <> 'data_bridge_migrations'
ORDER BY table_name, column_name
"""
_CONSTRAINTS = """
SELECT c.relname, k.conname, pg_get_constraintdef(k.oid)
FROM pg_constraint AS k JOIN pg_class AS c ON c.oid = k.conrelid
WHERE k.connamespace = %(s)s::regnamespace AND c.relname <> 'data_bridge_migrations'
ORDER BY 1, 2
"""
_INDEXES = """
SELECT tablename, indexname, indexdef FROM pg_indexes
WHERE schemaname = %(s)s AND tablename <> 'data_bridge_migrations' ORDER BY 1, 2
"""
_TABLES = """
SELECT table_name FROM information_schema.tables
WHERE table_schema = %(s)s AND table_name <> 'data_bridge_migrations' ORDER BY 1
"""


async def snapshot(schema: str) -> dict[str, list[tuple[Any, ...]]]:
    async with await psycopg.AsyncConnection.connect(dsn(), autocommit=True) as conn:
        found = {}
        for name, query in (
            ("tables", _TABLES),
            ("columns", _COLUMNS),
            ("constraints", _CONSTRAINTS),
            ("indexes", _INDEXES),
        ):
            cursor = await conn.execute(query, {"s": schema})
            found[name] = await cursor.fetchall()
        return found


async def history(schema: str) -> list[tuple[str, str]]:
    async with await psycopg.AsyncConnection.connect(dsn(), autocommit=True) as conn:
        cursor = await conn.execute(
            f'SELECT version, state FROM "{schema}".data_bridge_migrations ORDER BY version'
        )
        return await cursor.fetchall()


async def run_sql(schema: str, statement: str) -> list[tuple[Any, ...]]:
    async with await psycopg.AsyncConnection.connect(
        dsn(), autocommit=True, options=f"-c search_path={schema}"
    ) as conn:
        cursor = await conn.execute(statement)
        return await cursor.fetchall() if cursor.description else []

"""Core test fixtures (see core_fixtures.py): `schema`, `engine`, `sql`."""

from core_fixtures import engine, schema, sql  # noqa: F401

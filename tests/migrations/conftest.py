"""Migration tests: each gets its own schema (core_fixtures' ``schema``), an engine whose
search_path is that schema (or, in the PgBouncer tier, PgBouncer as the schema's role)
and a migrations directory of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from core_fixtures import PGBOUNCER_DSN
from database_server import dsn
from psycopg.conninfo import make_conninfo

from data_bridge_core import Engine


def engine_for(schema: str) -> Engine:
    """An engine on the test's schema (through PgBouncer in that tier)."""
    if PGBOUNCER_DSN:
        through = make_conninfo(PGBOUNCER_DSN, user=schema)
        return Engine(through, min_size=0, max_size=3, prepare_threshold=None)
    return Engine(dsn(), min_size=0, max_size=3, options=f"-c search_path={schema}")


@pytest.fixture
async def migration_engine(schema: str) -> AsyncIterator[Engine]:
    engine = engine_for(schema)
    try:
        yield engine
    finally:
        await engine.dispose()


@pytest.fixture
def directory(tmp_path: Path) -> Path:
    return tmp_path / "migrations"

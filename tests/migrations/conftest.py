"""Migration tests: each gets its own schema (core_fixtures' ``schema``), an engine whose
search_path is that schema (or, in the PgBouncer tier, PgBouncer as the schema's role)
and a migrations directory of its own."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from migration_files import engine_for

from data_bridge_core import Engine


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

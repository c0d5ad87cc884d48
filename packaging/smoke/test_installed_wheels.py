"""Smoke test of the built wheels, installed (not editable) in a fresh virtual environment.

Run by scripts/ci-wheels.sh from a directory outside the repository, so that
every import comes from the installed wheels. The PostgreSQL is
DATA_BRIDGE_TEST_DSN (default postgresql://postgres@127.0.0.1:5432/test).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

import psycopg

import data_bridge_core
import opentelemetry_instrumentation_data_bridge
from data_bridge_core import Column, Engine, Session, Table

DSN = os.environ.get("DATA_BRIDGE_TEST_DSN", "postgresql://postgres@127.0.0.1:5432/test")


class Gadget(Table):
    id: int = Column(primary_key=True)
    name: str

    class Settings:
        table_name = "gadgets"


def test_both_packages_come_from_the_installed_wheels_not_the_repository() -> None:
    site = Path(sys.prefix)
    for module in (data_bridge_core, opentelemetry_instrumentation_data_bridge):
        assert Path(str(module.__file__)).is_relative_to(site), module.__file__
    for dist in ("data-bridge-core", "opentelemetry-instrumentation-data-bridge"):
        files = metadata.files(dist) or []
        assert any(f.name == "LICENSE" for f in files), dist
        assert metadata.version(dist) == "0.1.0"


def test_the_installed_data_bridge_command_runs() -> None:
    # The core's console script (docs/migrations.md), installed beside the interpreter.
    script = Path(sys.executable).with_name("data-bridge")
    result = subprocess.run(
        [str(script), "migrate", "--help"], capture_output=True, text=True, check=False, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "--to VERSION" in result.stdout


def test_the_installed_instrumentor_traces_a_query_on_the_test_database(db_spans: Any) -> None:
    schema = f"smoke_{uuid.uuid4().hex[:10]}"

    async def run() -> list[str]:
        engine = Engine(DSN, min_size=0, max_size=2, options=f"-c search_path={schema}")
        try:
            await engine.create_all(Gadget)
            async with Session(engine) as session:
                session.add_all([Gadget(name="a"), Gadget(name="b")])
                await session.commit()
            async with Session(engine) as session:
                found = await session.find(Gadget).order_by(Gadget.name.asc()).to_list()
            return [g.name for g in found]
        finally:
            await engine.dispose()

    with psycopg.connect(DSN, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        assert asyncio.run(run()) == ["a", "b"]
    finally:
        with psycopg.connect(DSN, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')
    names = [span.name for span in db_spans.spans]
    assert "db.session.commit" in names
    finds = db_spans.named("db.query.find")
    assert len(finds) == 1
    assert finds[0].attributes["db.collection.name"] == "gadgets"

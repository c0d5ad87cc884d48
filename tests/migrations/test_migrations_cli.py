"""The ``data-bridge`` command: makemigrations, migrate (--to, --sql), migrations check/list."""

from __future__ import annotations

import asyncio
import io
import os
import sys
import textwrap
from pathlib import Path

import pytest
from catalog_snapshot import history, run_sql
from database_server import dsn
from migration_files import three_migrations

from data_bridge_core.migrations.cli import run

MODELS_V1 = """
from data_bridge_core import Column, Table


class Author(Table):
    id: int = Column(primary_key=True)
    name: str

    class Settings:
        table_name = "authors"
"""

MODELS_V2 = (
    MODELS_V1
    + """    bio: str | None = None
"""
)


async def cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = await run(list(argv), out, err)
    return status, out.getvalue(), err.getvalue()


async def check(models: str, schema: str) -> tuple[int, str, str]:
    return await cli("migrations", "check", "--models", models, "--schema", schema)


@pytest.fixture
def project(tmp_path: Path, schema: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory, current, with two versions of a models module."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("DATA_BRIDGE_DSN", dsn())
    (tmp_path / f"v1_{schema}.py").write_text(textwrap.dedent(MODELS_V1))
    (tmp_path / f"v2_{schema}.py").write_text(textwrap.dedent(MODELS_V2))
    for name in (f"v1_{schema}", f"v2_{schema}"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    return tmp_path


async def test_the_workflow_from_makemigrations_to_check(project: Path, schema: str) -> None:
    status, out, _ = await cli(
        "makemigrations", "-m", "Create authors", "--models", f"v1_{schema}", "--schema", schema
    )
    assert status == 0
    assert out.splitlines() == [
        f"Created {os.path.join('migrations', '0001_create_authors.py')}",
        "  - create table authors",
    ]
    assert await cli("migrate", "--schema", schema) == (0, "Applied 0001_create_authors\n", "")
    assert await cli("migrate", "--schema", schema) == (0, "No migrations to apply.\n", "")
    status, out, _ = await check(f"v1_{schema}", schema)
    assert (status, out) == (0, "The database is migrated and matches the models.\n")

    # The model changes: check fails until a migration is generated and applied.
    status, out, _ = await check(f"v2_{schema}", schema)
    assert status == 1
    assert out.splitlines() == [
        "models differ: add column authors.bio",
        "Run `data-bridge makemigrations` for the model changes.",
    ]
    status, out, _ = await cli(
        "migrations", "new", "-m", "add bio", "--models", f"v2_{schema}", "--schema", schema
    )
    assert (status, out.splitlines()[-1]) == (0, "  - add column authors.bio")
    status, out, _ = await check(f"v2_{schema}", schema)
    assert (status, out.splitlines()[0]) == (1, "not applied: 0002_add_bio (upgrade)")

    status, out, _ = await cli("migrate", "--sql", "--schema", schema)
    assert status == 0
    assert "-- 0002_add_bio (upgrade)\nBEGIN;\n" in out
    assert 'ALTER TABLE "authors" ADD COLUMN "bio" text;\n' in out
    assert await history(schema) == [("0001", "applied")]  # --sql ran nothing

    assert await cli("migrate", "--schema", schema) == (0, "Applied 0002_add_bio\n", "")
    status, out, _ = await cli("migrations", "list", "--schema", schema)
    assert out == "[X] 0001_create_authors\n[X] 0002_add_bio\n"
    assert await cli("migrate", "--to", "0001", "--schema", schema) == (
        0,
        "Unapplied 0002_add_bio\n",
        "",
    )
    status, out, _ = await cli("migrations", "list", "--dir", "migrations", "--schema", schema)
    assert out == "[X] 0001_create_authors\n[ ] 0002_add_bio\n"


async def test_without_a_database_the_command_says_how_to_name_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("DATA_BRIDGE_DSN", raising=False)
    status, out, err = await cli("migrate")
    assert (status, out) == (2, "")
    assert err == "data-bridge: no database: pass --dsn or set DATA_BRIDGE_DSN\n"


async def test_a_failure_is_reported_on_stderr_with_status_1(project: Path, schema: str) -> None:
    status, _, err = await cli("migrate", "--schema", schema, "--dsn", dsn())
    assert (status, err) == (1, "data-bridge: no migrations directory migrations (see --dir)\n")
    (project / "migrations").mkdir()
    status, _, err = await cli("migrate", "--to", "0009", "--schema", schema, "--dsn", dsn())
    assert status == 1
    assert err.startswith("data-bridge: no migration has version '0009'")


@pytest.mark.slow
async def test_two_deploys_at_once_through_the_console_script_apply_each_migration_once(
    tmp_path: Path, schema: str
) -> None:
    directory = tmp_path / "migrations"
    three_migrations(directory)
    script = Path(sys.executable).with_name("data-bridge")
    argv = [str(script), "migrate", "--dsn", dsn(), "--schema", schema, "--dir", str(directory)]
    async with asyncio.timeout(120):
        processes = [
            await asyncio.create_subprocess_exec(
                *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
            )
            for _ in range(2)
        ]
        outputs = [await p.communicate() for p in processes]
    assert [p.returncode for p in processes] == [0, 0], outputs
    lines = [line for out, _ in outputs for line in out.decode().splitlines()]
    applied = sorted(line for line in lines if line.startswith("Applied"))
    assert applied == ["Applied 0001_log", "Applied 0002_entry", "Applied 0003_entry"]
    assert await run_sql(schema, "SELECT version FROM applied_log ORDER BY version") == [
        ("0002",),
        ("0003",),
    ]

"""Migration files written by hand for the runner's tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

from core_fixtures import PGBOUNCER_DSN
from database_server import dsn
from psycopg.conninfo import make_conninfo

from data_bridge_core import Engine


def write_migration(
    directory: Path, label: str, upgrade: str, downgrade: str = "", *, header: str = ""
) -> Path:
    """``directory/<label>.py``: ``upgrade()``/``downgrade()`` return the given list items."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{label}.py"
    path.write_text(
        "from data_bridge_core.migrations import operations as op\n"
        + textwrap.dedent(header)
        + "\n\ndef upgrade():\n    return [\n"
        + _items(upgrade)
        + "    ]\n\n\ndef downgrade():\n    return [\n"
        + (_items(downgrade) if downgrade else "")
        + "    ]\n"
    )
    return path


def _items(text: str) -> str:
    return textwrap.indent(textwrap.dedent(text).strip() + "\n", "        ")


def engine_for(schema: str) -> Engine:
    """An engine on the test's schema (through PgBouncer in that tier)."""
    if PGBOUNCER_DSN:
        through = make_conninfo(PGBOUNCER_DSN, user=schema)
        return Engine(through, min_size=0, max_size=3, prepare_threshold=None)
    return Engine(dsn(), min_size=0, max_size=3, options=f"-c search_path={schema}")


def three_migrations(directory: Path) -> None:
    """0001 creates a log table; 0002 and 0003 each add a row to it (and sleep a little,
    so that concurrent runs overlap)."""
    write_migration(
        directory,
        "0001_log",
        'op.execute("CREATE TABLE applied_log (version text NOT NULL)"),',
        'op.execute("DROP TABLE applied_log"),',
    )
    for version in ("0002", "0003"):
        write_migration(
            directory,
            f"{version}_entry",
            f"""
            op.execute("SELECT pg_sleep(0.2)"),
            op.execute("INSERT INTO applied_log VALUES ('{version}')"),
            """,
            f"op.execute(\"DELETE FROM applied_log WHERE version = '{version}'\"),",
        )

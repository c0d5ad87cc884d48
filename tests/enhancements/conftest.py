"""Tests of the reference's future enhancements: the instrumentation fixtures (SDK in
memory, blog schema; root conftest) and `instrument_with` (enhancements_fixtures.py)."""

from enhancements_fixtures import instrument_with  # noqa: F401

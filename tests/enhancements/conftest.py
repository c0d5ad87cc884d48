"""Tests of the reference's future enhancements reuse the instrumentation fixtures
(SDK in memory, blog schema) and add `instrument_with` (enhancements_fixtures.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "instrumentation"))

from conftest_shared import *  # noqa: F403
from enhancements_fixtures import instrument_with  # noqa: F401

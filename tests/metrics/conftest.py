"""Metrics tests reuse the instrumentation fixtures (SDK in memory, blog schema)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[1] / "instrumentation"))

from conftest_shared import *  # noqa: F403

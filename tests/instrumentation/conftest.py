"""Fixtures for instrumentation tests (defined in conftest_shared.py)."""

from conftest_shared import *  # noqa: F403

"""Timing wrappers for probes that time functions in place (see `bench.n1_flow`).

In a module of their own so that N+1 detection's call-site walk can be told
to pass over them, as over any library frame.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

CLOCK = time.perf_counter_ns


def timer_cost() -> float:
    """ns the timing wrapper adds around a call that does nothing."""
    spent = [0]
    wrapped = timed(lambda *args: None, spent)
    count = 20_000
    for _ in range(count):
        wrapped()
    return spent[0] / count


def timed(function: Callable[..., Any], spent: list[int]) -> Callable[..., Any]:
    """``function``, adding the ns each call takes to ``spent[0]``."""
    clock = CLOCK

    def call(*args: Any) -> Any:
        start = clock()
        try:
            return function(*args)
        finally:
            spent[0] += clock() - start

    return call


def counted(function: Callable[..., Any], calls: list[int]) -> Callable[..., Any]:
    """``function``, counting its calls in ``calls[0]`` (outside any timed window)."""

    def call(*args: Any) -> Any:
        calls[0] += 1
        return function(*args)

    return call

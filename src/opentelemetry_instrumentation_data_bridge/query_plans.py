"""Query plans on slow reads (the reference's Future Enhancement 6).

With ``instrument(explain_threshold_ms=100)``, a read statement (a SELECT of
``db.query.*`` or ``db.relationship.*``) that took longer than 100 ms gets a
``query_plan`` event on its span, attribute ``plan``: the plan text. Only
the span of the ORM operation that sent the read gets it (`sent_by_operation`),
never a caller's span, whatever its name.

What makes that safe to run in production:

- the plan is PostgreSQL's generic plan (`data_bridge_core.query_plans`):
  parameters stay ``$1..$n``, so no bound value is in it;
- plain EXPLAIN, never ANALYZE, and only of reads: the statement is
  planned, not run again;
- at most once per statement shape (its parameterized text) every
  `PLAN_INTERVAL_S` seconds in the process, so a slow endpoint does not
  double its load; the first slow run after the interval takes a new one;
- on the session's connection, right after the read, only when its
  transaction is open and healthy; inside a savepoint that is rolled back.

The EXPLAIN runs inside the operation's span (about one round trip plus
planning, measured in bench/README.md) before the ORM call returns.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Any

from data_bridge_core.query_plans import generic_plan, is_read
from opentelemetry_instrumentation_data_bridge.spans import sent_by_operation

PLAN_INTERVAL_S = 300.0
MAX_SHAPES = 2048  # remembered statement shapes (least recently planned forgotten first)
EVENT_NAME = "query_plan"
_PLANNED_SPANS = ("db.query.", "db.relationship.")


class QueryPlans:
    """Which slow reads get a plan, and when each shape was last planned."""

    def __init__(self, threshold_ms: float, interval_s: float = PLAN_INTERVAL_S) -> None:
        if isinstance(threshold_ms, bool) or not isinstance(threshold_ms, int | float):
            raise TypeError(f"explain_threshold_ms must be a number, got {threshold_ms!r}")
        if threshold_ms < 0:
            raise ValueError(f"explain_threshold_ms must be >= 0, got {threshold_ms!r}")
        self.threshold_ns = int(threshold_ms * 1e6)
        self.interval_ns = int(interval_s * 1e9)
        self._planned: OrderedDict[str, int] = OrderedDict()

    def wants(self, statement: str, span: Any, elapsed_ns: int) -> bool:
        """A slow read of an ORM span whose shape was not planned in the interval."""
        if elapsed_ns <= self.threshold_ns or not sent_by_operation(span):
            return False  # not our operation's span: a caller's span never gets a plan
        name = getattr(span, "name", "")
        if not name.startswith(_PLANNED_SPANS) or not is_read(statement):
            return False
        now = time.monotonic_ns()
        last = self._planned.get(statement)
        if last is not None and now - last < self.interval_ns:
            return False
        # Marked before the EXPLAIN runs: a shape PostgreSQL cannot plan is not retried either.
        self._planned[statement] = now
        self._planned.move_to_end(statement)
        if len(self._planned) > MAX_SHAPES:
            self._planned.popitem(last=False)
        return True

    async def add_plan(self, session: Any, statement: str, span: Any) -> None:
        plan = await generic_plan(session, statement)
        if plan:
            span.add_event(EVENT_NAME, {"plan": plan})


__all__ = ["EVENT_NAME", "MAX_SHAPES", "PLAN_INTERVAL_S", "QueryPlans"]

"""W2 (page of 100) and W6 (mixed request, instrumented or not) for callgrind counts.

Same method as ``bench.w4_instructions``: run N rounds and 0 rounds under
``valgrind --tool=callgrind`` and divide the difference by N::

    valgrind --tool=callgrind python bench/w2w6_instructions.py w2 50
    valgrind --tool=callgrind python bench/w2w6_instructions.py w2 0

Workloads: ``w1`` (200 gets by primary key in one session, as W1's round),
``w2``, ``w6`` (instrumented, recording, a batch exporter that
drops the spans), ``w6plain`` (W6 without instrumentation), ``w5`` and
``w5plain`` (W5's N+1 page, instrumented or not).

Run as a file with ``PYTHONPATH=<tree>/src:<tree>`` to count another tree.

Repeatable counts (2026-11-28): the whole-process count of the same code
moved by 5-10% between runs. Three causes, and what takes each out:

- garbage collections land at points that vary: the rounds run with the
  heap frozen and the collector off (done here);
- the span exporter's thread wakes on a wall-clock timer, and the main
  thread then pays for GIL hand-overs: ``OTEL_BSP_SCHEDULE_DELAY=100000000``
  and ``--separate-threads=yes`` (read the main thread's file, ``*-01``);
- CPython's type attribute cache is indexed by type version and the
  attribute name's address, so its misses depend on the memory layout,
  which any code change moves (runs of different code differed by
  30-60 k instructions per W6 request there alone): fix
  ``PYTHONHASHSEED``, run two or more seeds, and compare the counts
  without the inclusive cost of ``find_name_in_mro`` (``callgrind_annotate
  --inclusive=yes``), which is what the lookups that miss pay.

Same code, same seed: within 0.1%; different seeds: within 1%.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from typing import Any

from bench.schema import create_schema, drop_schema
from bench.systems import DataBridge


def _instrumented() -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor

    class NoopExporter(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(NoopExporter()))
    instrumentor = DataBridgeInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    return instrumentor


# W1's round: 200 distinct keys (bench.run draws them at random; fixed here).
W1_IDS = list(range(1, 1000, 5))


async def _rounds(schema: str, workload: str, rounds: int) -> None:
    instrumented = workload in ("w5", "w6")
    system = DataBridge("data_bridge", _instrumented if instrumented else None)
    await system.setup(schema)
    system.activate()
    # Collections land at points that vary between runs: none while counting.
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        # One warm-up round in both runs so first-use costs cancel out.
        for _ in range(rounds + 1):
            if workload == "w1":
                await system.w1(W1_IDS)
            elif workload == "w2":
                await system.w2()
            elif workload.startswith("w5"):
                await system.w5_lazy()
            else:
                await system.w6(1)
    finally:
        await system.teardown()


def main(argv: list[str]) -> int:
    workload, rounds = argv[0], int(argv[1])
    schema = create_schema()
    try:
        asyncio.run(_rounds(schema, workload, rounds))
    finally:
        drop_schema(schema)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

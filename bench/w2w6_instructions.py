"""W2 (page of 100) and W6 (mixed request, instrumented) for callgrind counts.

Same method as ``bench.w4_instructions``: run N rounds and 0 rounds under
``valgrind --tool=callgrind`` and divide the difference by N::

    valgrind --tool=callgrind python bench/w2w6_instructions.py w2 50
    valgrind --tool=callgrind python bench/w2w6_instructions.py w2 0

Run as a file with ``PYTHONPATH=<tree>/src:<tree>`` to count another tree.
"""

from __future__ import annotations

import asyncio
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


async def _rounds(schema: str, workload: str, rounds: int) -> None:
    system = DataBridge("data_bridge", _instrumented if workload == "w6" else None)
    await system.setup(schema)
    system.activate()
    try:
        # One warm-up round in both runs so first-use costs cancel out.
        for _ in range(rounds + 1):
            if workload == "w2":
                await system.w2()
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

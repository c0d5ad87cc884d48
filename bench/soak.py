"""A long run of W6 (the mixed request), instrumented, to show that memory does not grow.

``python -m bench.soak [--requests 100000]``: each request runs inside its
own root span (as a web framework would open it), with span recording, the
N+1 detector and the metrics on. Python's traced memory (tracemalloc) and
the process RSS are sampled at ten checkpoints; after warm-up both must stay
flat. The verdict compares the last checkpoint with the second one.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import sys
import time
import tracemalloc
from typing import Any

from bench.schema import USERS, create_schema, drop_schema
from bench.systems import DataBridge

# Allowed growth between the second and the last checkpoint: allocator noise,
# not a leak (a leak of one small object per request would be MBs at 100k).
TOLERANCE_BYTES = 512 * 1024


def _rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


async def soak(requests: int) -> dict[str, Any]:
    from opentelemetry.metrics import set_meter_provider
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor

    class NoopExporter(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(NoopExporter()))
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    set_meter_provider(meters)
    tracer = provider.get_tracer("soak")
    schema = create_schema()
    system = DataBridge("data_bridge instrumented")
    instrumentor = DataBridgeInstrumentor()
    checkpoints: list[dict[str, float]] = []
    try:
        await system.setup(schema)
        instrumentor.instrument(tracer_provider=provider, meter_provider=meters)
        tracemalloc.start()
        step = max(requests // 10, 1)
        started = time.perf_counter()
        for i in range(requests):
            with tracer.start_as_current_span("GET /mixed"):
                await system.w6(1 + i % USERS)
            if (i + 1) % step == 0:
                reader.get_metrics_data()  # collect, as a periodic exporter would
                provider.force_flush()  # empty the span queue: measure what stays
                gc.collect()
                checkpoints.append(
                    {
                        "requests": i + 1,
                        "traced_bytes": tracemalloc.get_traced_memory()[0],
                        "rss_kib": _rss_kib(),
                        "seconds": time.perf_counter() - started,
                    }
                )
        tracemalloc.stop()
    finally:
        instrumentor.uninstrument()
        await system.teardown()
        drop_schema(schema)
        provider.shutdown()
        meters.shutdown()
    growth = checkpoints[-1]["traced_bytes"] - checkpoints[1]["traced_bytes"]
    return {
        "requests": requests,
        "checkpoints": checkpoints,
        "growth_bytes": growth,
        "flat": growth <= TOLERANCE_BYTES,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__)
    parser.add_argument("--requests", type=int, default=100_000)
    args = parser.parse_args(argv)
    if args.requests < 20:
        parser.error("--requests must be at least 20 (ten checkpoints)")
    result = asyncio.run(soak(args.requests))
    print(f"{'requests':>9} {'traced MiB':>11} {'max RSS MiB':>12} {'seconds':>8}")
    for c in result["checkpoints"]:
        print(
            f"{c['requests']:>9} {c['traced_bytes'] / 2**20:>11.2f} "
            f"{c['rss_kib'] / 1024:>12.1f} {c['seconds']:>8.1f}"
        )
    verdict = "PASS" if result["flat"] else "FAIL"
    print(
        f"{verdict}  traced memory growth after warm-up: {result['growth_bytes'] / 1024:.0f} KiB "
        f"(allowed {TOLERANCE_BYTES // 1024} KiB)"
    )
    return 0 if result["flat"] else 1


if __name__ == "__main__":
    sys.exit(main())

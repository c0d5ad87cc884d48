"""Run the benchmark suite: ``python -m bench.run [--quick] [--rounds N] [--out DIR]``.

Every system runs every workload on the same schema in this one process;
each cell is the median of the rounds (per operation), and ratios are taken
within the run, so a noisy machine moves all systems together.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from bench import report
from bench.schema import USERS, create_schema, drop_schema
from bench.systems import DataBridge, RawPsycopg, SqlAlchemy

WORKLOADS = (
    "W1 get by pk",
    "W2 page of 100",
    "W3 5000 posts",
    "W4 insert 1000",
    "W5 N+1 page",
    "W5 selectinload page",
    "W6 mixed request",
)


def _providers() -> dict[str, Any]:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    class NoopExporter(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    recording = TracerProvider()
    recording.add_span_processor(BatchSpanProcessor(NoopExporter()))
    return {"recording": recording, "sampled_out": TracerProvider(sampler=ALWAYS_OFF)}


def _instrument_with(provider: Any) -> Any:
    def instrument() -> Any:
        from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor

        instrumentor = DataBridgeInstrumentor()
        instrumentor.instrument(tracer_provider=provider)
        return instrumentor

    return instrument


def build_systems(providers: dict[str, Any]) -> list[Any]:
    return [
        RawPsycopg(),
        DataBridge("data_bridge"),
        DataBridge("data_bridge instrumented", _instrument_with(providers["recording"])),
        DataBridge("data_bridge sampled out", _instrument_with(providers["sampled_out"])),
        DataBridge("data_bridge instr+uninstr", _instrument_with(providers["recording"]), True),
        SqlAlchemy("sqlalchemy"),
        SqlAlchemy("sqlalchemy instrumented", providers["recording"]),
    ]


async def _time(fn: Any, per: int, rounds: int) -> dict[str, float]:
    await fn()  # warm-up: prepared statements, caches
    samples = []
    for _ in range(rounds):
        start = time.perf_counter_ns()
        await fn()
        samples.append((time.perf_counter_ns() - start) / 1000 / per)
    return {"median_us": statistics.median(samples), "min_us": min(samples), "max_us": max(samples)}


async def run_system(system: Any, schema: str, rounds: int, ops: int) -> dict[str, Any]:
    await system.setup(schema)
    try:
        ids = [1 + (i * 37) % USERS for i in range(ops)]
        cells = {
            WORKLOADS[0]: await _time(lambda: system.w1(ids), len(ids), rounds),
            WORKLOADS[1]: await _time(system.w2, 1, rounds),
            WORKLOADS[2]: await _time(system.w3, 1, rounds),
            WORKLOADS[3]: await _time(lambda: system.w4(1000), 1, rounds),
            WORKLOADS[4]: await _time(system.w5_lazy, 1, rounds),
            WORKLOADS[5]: await _time(system.w5_eager, 1, rounds),
            WORKLOADS[6]: await _time(lambda: system.w6(ids[0]), 1, rounds),
        }
        cells[WORKLOADS[4]]["queries"] = await system.w5_lazy()
        cells[WORKLOADS[5]]["queries"] = await system.w5_eager()
        return cells
    finally:
        await system.teardown()


def span_floor(provider: Any, count: int) -> float:
    """µs for one bare SDK span with six attributes, on the recording provider."""
    tracer = provider.get_tracer("floor")
    attrs = {
        "db.system": "postgresql",
        "db.operation.name": "find",
        "db.collection.name": "users",
        "db.query.filters_count": 1,
        "db.query.limit": 1,
        "db.result.count": 1,
    }
    start = time.perf_counter_ns()
    for _ in range(count):
        with tracer.start_as_current_span("db.query.find", attributes=attrs):
            pass
    return (time.perf_counter_ns() - start) / 1000 / count


async def hydration_memory(schema: str) -> dict[str, int]:
    """tracemalloc peak of W3: raw tuples vs data_bridge objects."""
    raw, orm = RawPsycopg(), DataBridge("data_bridge")
    peaks = {}
    for name, system in (("raw psycopg", raw), ("data_bridge", orm)):
        await system.setup(schema)
        try:
            await system.w3()
            tracemalloc.start()
            await system.w3()
            peaks[name] = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
        finally:
            await system.teardown()
    return peaks


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    rounds = args.rounds or (2 if args.quick else 15)
    ops = 20 if args.quick else 200
    providers = _providers()
    schema = create_schema()
    try:
        results: dict[str, Any] = {}
        for system in build_systems(providers):
            if args.only and system.name not in args.only:
                continue
            results[system.name] = await run_system(system, schema, rounds, ops)
        floor = span_floor(providers["recording"], 200 if args.quick else 5000)
        memory = await hydration_memory(schema)
    finally:
        drop_schema(schema)
        for provider in providers.values():
            provider.shutdown()
    return {
        "rounds": rounds,
        "workloads": list(WORKLOADS),
        "results": results,
        "span_floor_us": floor,
        "memory_peak_bytes": memory,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a seconds-long smoke run")
    parser.add_argument("--rounds", type=int, default=0)
    parser.add_argument("--only", action="append", help="run only this system (repeatable)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = parser.parse_args(argv)
    data = asyncio.run(main_async(args))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(data, indent=2))
    print(report.table(data))
    print(report.targets(data))
    report.chart(data, args.out / "results.png")
    print(f"\nwritten: {args.out / 'results.json'}, {args.out / 'results.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

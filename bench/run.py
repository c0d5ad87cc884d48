"""Run the benchmark suite: ``python -m bench.run [--quick] [--rounds N] [--out DIR]``.

Every system runs every workload on the same schema in this one process;
each cell is the median of the rounds (per operation), and ratios are taken
within the run, so a noisy machine moves all systems together.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import sys
import time
import tracemalloc
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import n1_flow, overhead, peers, report
from bench.report import FLOOR_SYSTEM
from bench.schema import USERS, create_schema, drop_schema, server_version_of, vacuum
from bench.systems import DataBridge, RawPsycopg, SqlAlchemy

WORKLOADS = (
    "W1 get by pk",
    "W2 page of 100",
    "W3 5000 posts",
    "W4 insert 1000",
    "W5 N+1 page",
    "W5 selectinload page",
    "W6 mixed request",
    "W7 relational page",
    "W7 column selection",
    "W7 group by",
    "W8 eager page",
)


def _providers() -> tuple[dict[str, Any], Any]:
    """(the tracer providers, a function giving the spans the recording one exported)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    class CountingExporter(SpanExporter):
        """Drops the spans; counts them (spans per W8 page)."""

        exported = 0

        def export(self, spans: Any) -> SpanExportResult:
            self.exported += len(spans)
            return SpanExportResult.SUCCESS

    exporter = CountingExporter()
    recording = TracerProvider()
    recording.add_span_processor(BatchSpanProcessor(exporter))
    providers = {"recording": recording, "sampled_out": TracerProvider(sampler=ALWAYS_OFF)}
    return providers, lambda: exporter.exported


def _instrument_with(provider: Any) -> Any:
    def instrument() -> Any:
        from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor

        instrumentor = DataBridgeInstrumentor()
        instrumentor.instrument(tracer_provider=provider)
        return instrumentor

    return instrument


def build_systems(providers: dict[str, Any]) -> tuple[list[Any], list[str]]:
    """(the systems, one line per peer that is not installed here)."""
    installed_peers, skipped = peers.available(providers["recording"])
    ours = [
        RawPsycopg(),
        DataBridge("data_bridge"),
        DataBridge("data_bridge instrumented", _instrument_with(providers["recording"])),
        DataBridge("data_bridge sampled out", _instrument_with(providers["sampled_out"])),
        DataBridge("data_bridge instr+uninstr", _instrument_with(providers["recording"]), True),
        DataBridge(FLOOR_SYSTEM, bare_span_provider=providers["recording"]),
        SqlAlchemy("sqlalchemy"),
        SqlAlchemy("sqlalchemy instrumented", providers["recording"]),
    ]
    return ours + installed_peers, skipped


# W6 is timed over this many requests in a row: one request alone was the first
# after W5 in every round and its cell moved by 0.1-0.15 between runs of the same
# code (the sampled-out variant, which does more, came out faster than plain).
W6_REQUESTS = 10


async def _requests(request: Any, pk: int, count: int = W6_REQUESTS) -> None:
    for _ in range(count):
        await request(pk)


def _workloads(system: Any, ids: list[int]) -> list[tuple[str, Any, int]]:
    """(workload, coroutine function, operations per call) for one system."""
    return [
        (WORKLOADS[0], lambda: system.w1(ids), len(ids)),
        (WORKLOADS[1], system.w2, 1),
        (WORKLOADS[2], system.w3, 1),
        (WORKLOADS[3], lambda: system.w4(1000), 1),
        (WORKLOADS[4], system.w5_lazy, 1),
        (WORKLOADS[5], system.w5_eager, 1),
        (WORKLOADS[6], lambda: _requests(system.w6, ids[0]), W6_REQUESTS),
        (WORKLOADS[7], system.w7, 1),
        (WORKLOADS[8], system.w7_columns, 1),
        (WORKLOADS[9], system.w7_group, 1),
        (WORKLOADS[10], system.w8, 1),
    ]


async def run_interleaved(
    systems: list[Any],
    schema: str,
    rounds: int,
    ops: int,
    flush: Any = None,
    exported: Any = None,
) -> dict[str, dict[str, Any]]:
    """Every round runs every system once, in turn: a slow spell of the shared
    machine then lands on all systems alike instead of on whichever ran then."""
    ids = [1 + (i * 37) % USERS for i in range(ops)]
    samples: dict[str, dict[str, list[float]]] = {
        s.name: {w: [] for w in WORKLOADS} for s in systems
    }
    # Process CPU (every thread: a span processor's export thread counts) beside wall.
    cpu: dict[str, dict[str, list[float]]] = {s.name: {w: [] for w in WORKLOADS} for s in systems}
    for system in systems:
        await system.setup(schema)
    try:
        for round_no in range(rounds + 1):  # round 0 warms up (prepared statements, caches)
            for system in systems:
                vacuum(schema)  # each system starts from the same table, not a bloated one
                gc.collect()  # the previous system's garbage is not collected on this one's time
                system.activate()
                try:
                    for workload, run, per in _workloads(system, ids):
                        start_cpu = time.process_time_ns()
                        start = time.perf_counter_ns()
                        await run()
                        end = time.perf_counter_ns()
                        end_cpu = time.process_time_ns()
                        if round_no:
                            samples[system.name][workload].append((end - start) / 1000 / per)
                            cpu[system.name][workload].append((end_cpu - start_cpu) / 1000 / per)
                finally:
                    system.deactivate()
        paired = await overhead.w1_paired(systems, ids, max(rounds, 5), flush)
        results: dict[str, dict[str, Any]] = {"_paired": paired}
        if flush is not None and exported is not None:
            results["_eager"] = await overhead.eager_paired(
                systems, max(rounds, 5), flush, exported
            )
        for system in systems:
            system.activate()
            try:
                cells = {
                    w: {
                        "median_us": statistics.median(v),
                        "min_us": min(v),
                        "max_us": max(v),
                        "cpu_median_us": statistics.median(cpu[system.name][w]),
                        "cpu_min_us": min(cpu[system.name][w]),
                        "cpu_max_us": max(cpu[system.name][w]),
                    }
                    for w, v in samples[system.name].items()
                }
                cells[WORKLOADS[4]]["queries"] = await system.w5_lazy()
                cells[WORKLOADS[5]]["queries"] = await system.w5_eager()
            finally:
                system.deactivate()
            results[system.name] = cells
        return results
    finally:
        for system in systems:
            await system.teardown()


async def hydration_memory(schema: str, others: Sequence[Any] = ()) -> dict[str, int]:
    """tracemalloc peak of W3: raw tuples vs data_bridge and SQLAlchemy objects (and
    each given uninstrumented peer's rows or objects)."""
    systems = [RawPsycopg(), DataBridge("data_bridge"), SqlAlchemy("sqlalchemy"), *others]
    peaks = {}
    for system in systems:
        name = system.name
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
    providers, exported = _providers()
    schema = create_schema()
    server_version = server_version_of()
    try:
        every, skipped = build_systems(providers)
        for line in skipped:
            print(line, flush=True)
        systems = [s for s in every if not args.only or s.name in args.only]

        def flush() -> None:
            for provider in providers.values():
                provider.force_flush()

        results = await run_interleaved(systems, schema, rounds, ops, flush, exported)
        paired = results.pop("_paired")
        eager = results.pop("_eager", {})
        probe_count, probe_rounds = (200, 3) if args.quick else (3000, 9)
        seam = await overhead.seam_overhead(providers, schema, probe_count, probe_rounds)
        floor = overhead.span_floor(providers["recording"], probe_count, probe_rounds)
        n1_cost = await overhead.n1_detection_cost(schema, 2 if args.quick else 50, probe_rounds)
        n1_flow_cost = await n1_flow.n1_request_flow_cost(schema, 3 if args.quick else 60)
        memory = await hydration_memory(
            schema, [type(s)(s.name) for s in systems if peers.is_plain_peer(s)]
        )
    finally:
        drop_schema(schema)
        for provider in providers.values():
            provider.shutdown()
    return {
        "environment": report.environment(server_version),
        "rounds": rounds,
        "workloads": list(WORKLOADS),
        "results": results,
        "span_floor_us": floor,
        "seam_overhead_us": seam,
        "w1_extra_cpu_us": paired,
        "w8_extra_cpu": eager,
        "n1_detection_us": n1_cost,
        "n1_request_flow": n1_flow_cost,
        "memory_peak_bytes": memory,
        "skipped": skipped,
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
    (args.out / "results.md").write_text(report.markdown(data) + "\n")
    print(report.table(data))
    print(report.targets(data))
    print(report.issue_summary(data))
    report.chart(data, args.out / "results.png")
    report.ratio_chart(data, args.out / "ratios.png")  # the README's chart (bench/published)
    print(f"\nwritten: {args.out / 'results.json'}, results.md, results.png, ratios.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())

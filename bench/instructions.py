"""Instructions per operation of any system on any workload, counted by callgrind.

Wall time and even process CPU move with this shared machine's load; the
instruction count of the same code does not. One command counts a workload
for a system (N rounds and 0 rounds under ``valgrind --tool=callgrind``, the
difference divided by N), another prints the ratio of a system to raw psycopg::

    python -m bench.instructions count data_bridge w1 --rounds 3
    python -m bench.instructions ratio w1 w2 w4 --rounds 3
    python -m bench.instructions ratio w1 --systems data_bridge traced --rounds 3

Systems: ``raw`` (raw psycopg), ``data_bridge``, ``traced`` (instrumented,
recording, a batch processor with an exporter that drops spans),
``sampled_out``, ``bare_span`` (W1 only: one bare SDK span per get) and
``sqlalchemy``. Workloads: the methods of ``bench.systems`` (``w1``, ``w2``,
``w3``, ``w4``, ``w5_lazy``, ``w5_eager``, ``w6``, ``w7``, ``w7_columns``,
``w7_group``, ``w8``, and any added later with the same name on every system).

The method of ``bench.w2w6_instructions`` (read its docstring): the main
thread's file only (``--separate-threads=yes``), the collector frozen and
off, the batch processor's timer pushed out, ``PYTHONHASHSEED`` fixed (1
unless set). Counts here include ``find_name_in_mro``: compare two trees with
two seeds when a change is a few percent. Run from a tree's root to count
that tree (``PYTHONPATH`` is set to its ``src`` and root).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import glob
import os
import subprocess
import sys
import tempfile
from typing import Any

from bench.schema import create_schema, drop_schema
from bench.systems import DataBridge, RawPsycopg, SqlAlchemy

# W1's round: 200 distinct keys (bench.run draws them at random; fixed here).
W1_IDS = list(range(1, 1000, 5))
SYSTEMS = ("raw", "data_bridge", "traced", "sampled_out", "bare_span", "sqlalchemy")


def _provider(recording: bool) -> Any:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

    class DropExporter(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    if not recording:
        return TracerProvider(sampler=ALWAYS_OFF)
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DropExporter()))
    return provider


def _instrumentor(provider: Any) -> Any:
    def instrument() -> Any:
        from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor

        instrumentor = DataBridgeInstrumentor()
        instrumentor.instrument(tracer_provider=provider)
        return instrumentor

    return instrument


def build(system: str) -> Any:
    if system == "raw":
        return RawPsycopg()
    if system == "data_bridge":
        return DataBridge("data_bridge")
    if system == "traced":
        return DataBridge("traced", _instrumentor(_provider(True)))
    if system == "sampled_out":
        return DataBridge("sampled out", _instrumentor(_provider(False)))
    if system == "bare_span":
        return DataBridge("bare span", bare_span_provider=_provider(True))
    if system == "sqlalchemy":
        return SqlAlchemy("sqlalchemy")
    raise SystemExit(f"unknown system {system!r}: one of {', '.join(SYSTEMS)}")


async def _operation(system: Any, workload: str) -> None:
    if workload == "w1":
        await system.w1(W1_IDS)
    elif workload == "w4":
        await system.w4(1000)
    elif workload == "w6":
        await system.w6(W1_IDS[0])
    else:
        await getattr(system, workload)()


async def _rounds(schema: str, system_name: str, workload: str, rounds: int) -> None:
    system = build(system_name)
    await system.setup(schema)
    system.activate()
    gc.collect()
    gc.freeze()
    gc.disable()
    try:
        # One warm-up round in both runs so that first-use costs cancel out.
        for _ in range(rounds + 1):
            await _operation(system, workload)
    finally:
        gc.enable()
        await system.teardown()


def per_operation(workload: str) -> int:
    """How many operations one round is (W1's round is 200 gets)."""
    return len(W1_IDS) if workload == "w1" else 1


def _main_thread_total(out_prefix: str) -> int:
    files = sorted(glob.glob(out_prefix + "*-01")) or sorted(glob.glob(out_prefix + "*"))
    with open(files[0]) as handle:
        for line in handle:
            if line.startswith("totals:") or line.startswith("summary:"):
                return int(line.split()[1])
    raise RuntimeError(f"no totals line in {files[0]}")


def count(system: str, workload: str, rounds: int) -> float:
    """Instructions per operation: (N rounds - 0 rounds) / (N x operations per round)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(root, "src"), root])
    env.setdefault("PYTHONHASHSEED", "1")
    env["OTEL_BSP_SCHEDULE_DELAY"] = "100000000"
    totals = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (rounds, 0):
            prefix = os.path.join(tmp, f"cg-{n}")
            subprocess.run(
                [
                    "valgrind",
                    "--tool=callgrind",
                    "--separate-threads=yes",
                    f"--callgrind-out-file={prefix}",
                    sys.executable,
                    "-m",
                    "bench.instructions",
                    "_rounds",
                    system,
                    workload,
                    str(n),
                ],
                env=env,
                cwd=root,
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            totals.append(_main_thread_total(prefix))
    return (totals[0] - totals[1]) / (rounds * per_operation(workload))


def _fmt(n: float) -> str:
    return f"{n / 1e6:.3f} M" if n >= 1e6 else f"{n / 1e3:.1f} k"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "_rounds":
        system, workload, rounds = argv[1], argv[2], int(argv[3])
        schema = create_schema()
        try:
            asyncio.run(_rounds(schema, system, workload, rounds))
        finally:
            drop_schema(schema)
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench.instructions")
    sub = parser.add_subparsers(dest="command", required=True)
    one = sub.add_parser("count", help="instructions per operation of one system")
    one.add_argument("system", choices=SYSTEMS)
    one.add_argument("workload")
    one.add_argument("--rounds", type=int, default=3)
    many = sub.add_parser("ratio", help="each system's instructions over raw psycopg's")
    many.add_argument("workloads", nargs="+")
    many.add_argument("--systems", nargs="+", default=["data_bridge"], choices=SYSTEMS)
    many.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if args.command == "count":
        n = count(args.system, args.workload, args.rounds)
        print(f"{args.system} {args.workload}: {_fmt(n)}")
        return 0
    for workload in args.workloads:
        raw = count("raw", workload, args.rounds)
        cells = [f"raw {_fmt(raw)}"]
        for system in args.systems:
            n = count(system, workload, args.rounds)
            cells.append(f"{system} {_fmt(n)} ({n / raw:.2f}x)")
        print(f"{workload}: " + ", ".join(cells), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run the demo: ``python -m demo [--dsn DSN] [--schema NAME]``.

Without a DSN (option or ``DATA_BRIDGE_DSN``) an embedded PostgreSQL is
started for the run. The trace is printed as a tree; with
``OTEL_EXPORTER_OTLP_ENDPOINT`` set it is also exported over OTLP
(``OTEL_EXPORTER_OTLP_PROTOCOL`` = ``http/protobuf``, the default, or ``grpc``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import psycopg
from demo.embedded_pg import resolve_dsn
from demo.workload import EAGER_PAGE, N_PLUS_ONE_PAGE, run_requests, seed
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from data_bridge_core import Engine
from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor
from opentelemetry_instrumentation_data_bridge.console import format_span_tree

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SCHEMA = "data_bridge_demo"  # the default; --schema gives each concurrent run its own
_SQL_SPANS = ("db.query.", "db.relationship.selectinload")


def otlp_exporter_from_env() -> SpanExporter | None:
    """An OTLP exporter when OTEL_EXPORTER_OTLP_ENDPOINT is set (it reads the OTEL_* env)."""
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if not endpoint:
        return None
    protocol = os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    return HttpExporter()


def sql_round_trips(spans: Sequence[ReadableSpan], root_name: str) -> int:
    """Spans of the named request that ran SQL (queries, lazy misses, selectin levels)."""
    roots = [s for s in spans if s.name == root_name and s.context is not None]
    if not roots:
        return 0
    trace_id = roots[0].context.trace_id  # type: ignore[union-attr]
    count = 0
    for span in spans:
        if span.context is None or span.context.trace_id != trace_id:
            continue
        attrs = span.attributes or {}
        if span.name.startswith(_SQL_SPANS) or (
            span.name == "db.relationship.select"
            and attrs.get("db.relationship.cache_hit") is False
        ):
            count += 1
    return count


async def _run(dsn: str, provider: TracerProvider, schema: str) -> None:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    engine = Engine(dsn, min_size=1, max_size=4, options=f"-c search_path={schema}")
    try:
        await engine.migrate(MIGRATIONS)  # demo/migrations: the schema of demo/models.py
        await seed(engine)
        await run_requests(engine, provider.get_tracer("demo"))
    finally:
        await engine.dispose()
        async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def schema_name(value: str) -> str:
    """An argparse type: a plain lower-case identifier, safe to quote and to put in search_path."""
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", value):
        raise argparse.ArgumentTypeError(
            f"schema name {value!r} must be lower-case letters, digits and underscores"
        )
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo", description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", help="PostgreSQL to use (default: DATA_BRIDGE_DSN, else embedded)")
    parser.add_argument(
        "--schema",
        type=schema_name,
        default=SCHEMA,
        help=f"schema the demo creates and drops (default: {SCHEMA})",
    )
    args = parser.parse_args(argv)

    provider = TracerProvider(resource=Resource.create({"service.name": "data-bridge-demo"}))
    memory = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(memory))
    otlp = otlp_exporter_from_env()
    if otlp is not None:
        provider.add_span_processor(BatchSpanProcessor(otlp))
    instrumentor = DataBridgeInstrumentor()
    # 0 ms: every read shape of the demo shows its plan (in production: 100 or more).
    instrumentor.instrument(tracer_provider=provider, explain_threshold_ms=0)

    dsn, cleanup = resolve_dsn(args.dsn)
    try:
        asyncio.run(_run(dsn, provider, args.schema))
    finally:
        cleanup()
        instrumentor.uninstrument()
    spans = list(memory.get_finished_spans())
    request_spans = [s for s in spans if not s.name.startswith("db.")]
    seed_traces = {s.context.trace_id for s in spans if s.context} - {
        s.context.trace_id for s in request_spans if s.context
    }
    shown = [s for s in spans if s.context and s.context.trace_id not in seed_traces]
    print(format_span_tree(shown))
    print()
    n1 = sql_round_trips(spans, N_PLUS_ONE_PAGE)
    eager = sql_round_trips(spans, EAGER_PAGE)
    print(f"SQL round trips: N+1 page = {n1}, selectinload page = {eager}")
    for warning in (s for s in spans if s.name == "db.n1_warning"):
        attrs = warning.attributes or {}
        print(
            f"N+1 detected: {attrs.get('db.relationship.name')} lazy-loaded "
            f"{attrs.get('db.n1.query_count')} times at {attrs.get('code.function.name')}"
            f"(line {attrs.get('code.line.number')}): {attrs.get('db.n1.recommendation')}"
        )
    unused = [s for s in spans if s.name == "db.unused_eager_load"]
    print(f"unused eager loads: {len(unused)}")
    for span in unused:
        print("  ", (span.attributes or {}).get("db.n1.recommendation"))
    provider.shutdown()
    if otlp is not None:
        print("exported over OTLP to", os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"))
    return 0


if __name__ == "__main__":
    sys.exit(main())

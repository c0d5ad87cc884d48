"""What the future enhancements cost: ``python -m bench.enhancements [--quick]``.

Separate from ``bench.run`` (whose table they would not change when off, the
default). Every figure is a median over interleaved rounds, in µs:

- ``plan_wall_us``: one `data_bridge_core.query_plans.generic_plan` of the W2
  statement (savepoint, setting, PREPARE, EXPLAIN EXECUTE, cleanup: two
  round trips), next to ``w2_read_wall_us``, the W2 read itself. A slow read
  pays it once per statement shape per ``PLAN_INTERVAL_S``.
- ``hook_*_cpu_us``: the run_statement wrapper of ``statement_hooks`` around
  a coroutine that returns at once, minus the bare coroutine, with a
  recording span current: the sqlcommenter comment, the per-statement check
  of query plans (shape already planned), both.
- ``w1_*_wall_us``: W1 (a get by primary key, real database) with the
  commenter off and on: a commented statement's text is new every time, so
  psycopg never prepares it.
- ``seam_*_cpu_us``: the instrumentor's query wrapper around the bare
  coroutine (as ``bench.overhead``), minus the bare coroutine, on providers
  with: ``AttributeBasedSampler`` dropping the span, the same sampler with a
  duration rule (RECORD_ONLY: the span is built to learn its duration), and
  recording with 0, 1 no-op, and a `SlowQueryProcessor` registered.
- ``should_sample_us``: one ``AttributeBasedSampler.should_sample`` (3 rules)
  and one ``TraceIdRatioBased.should_sample``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

W2 = (
    'SELECT "id", "name", "email", "age", "active", "country", "created_at" FROM users '
    'WHERE "age" > %s AND "active" = %s ORDER BY "created_at" DESC LIMIT %s'
)
RULES: list[dict[str, Any]] = [
    {"db.operation.name": "update", "sample": 0.5},
    {"db.collection.name": "audit_log", "sample": 1.0},
    {"default": 0.0},
]


async def _per_call(call: Callable[[], Awaitable[Any]], count: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(count):
        await call()
    return (time.perf_counter_ns() - start) / 1000 / count


def _cpu_per_call(call: Callable[[], Awaitable[Any]], count: int) -> Callable[[], Awaitable[float]]:
    async def measure() -> float:
        start = time.thread_time_ns()
        for _ in range(count):
            await call()
        return (time.thread_time_ns() - start) / 1000 / count

    return measure


async def plan_cost(schema: str, count: int, rounds: int) -> dict[str, float]:
    from bench.schema import DSN
    from data_bridge_core import Engine, Session
    from data_bridge_core.query_plans import generic_plan

    engine = Engine(DSN, min_size=0, max_size=1, options=f"-c search_path={schema}")
    samples: dict[str, list[float]] = {"plan_wall_us": [], "w2_read_wall_us": []}
    try:
        async with Session(engine) as session:
            await session.execute(W2, (30, True, 100))
            for _ in range(rounds):
                gc.collect()
                samples["w2_read_wall_us"].append(
                    await _per_call(lambda: session.execute(W2, (30, True, 100)), count)
                )
                samples["plan_wall_us"].append(
                    await _per_call(lambda: generic_plan(session, W2), count)
                )
    finally:
        await engine.dispose()
    return {name: statistics.median(values) for name, values in samples.items()}


async def hook_cost(count: int, rounds: int) -> dict[str, float]:
    from opentelemetry.sdk.trace import TracerProvider

    from opentelemetry_instrumentation_data_bridge.statement_hooks import statement_wrapper

    hooks = {
        "hook_commenter_cpu_us": statement_wrapper(enable_commenter=True),
        "hook_plans_cpu_us": statement_wrapper(explain_threshold_ms=0),
        "hook_both_cpu_us": statement_wrapper(explain_threshold_ms=0, enable_commenter=True),
    }
    result: list[Any] = []

    async def bare(*args: Any, **kwargs: Any) -> list[Any]:
        return result

    tracer = TracerProvider().get_tracer("bench")
    samples: dict[str, list[float]] = {name: [] for name in hooks}
    with tracer.start_as_current_span("db.query.find"):
        for hook in hooks.values():  # the shape is planned once, before measuring
            assert hook is not None
            await hook(bare, None, (W2, (30, True, 100)), {})
        for _ in range(rounds):
            gc.collect()
            base = await _cpu_per_call(lambda: bare(W2, ()), count)()
            for name, hook in hooks.items():
                assert hook is not None
                cost = await _cpu_per_call(lambda h=hook: h(bare, None, (W2, ()), {}), count)()
                samples[name].append(cost - base)
    return {name: statistics.median(values) for name, values in samples.items()}


async def commenter_w1(schema: str, count: int, rounds: int) -> dict[str, float]:
    from opentelemetry.sdk.trace import TracerProvider

    from bench import orm_models as m
    from bench.schema import DSN
    from data_bridge_core import Engine, Session
    from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor

    provider = TracerProvider()  # recording, no exporter: the span cost is the same on both sides
    engine = Engine(DSN, min_size=0, max_size=1, options=f"-c search_path={schema}")
    samples: dict[str, list[float]] = {
        "w1_commenter_off_wall_us": [],
        "w1_commenter_on_wall_us": [],
    }
    ids = iter(range(10**9))

    async def get(session: Session) -> None:
        await session.find(m.User).filter(m.User.id == 1 + next(ids) % 1000).to_list()

    try:
        for _ in range(rounds + 1):
            gc.collect()
            for name, options in (
                ("w1_commenter_off_wall_us", {}),
                ("w1_commenter_on_wall_us", {"enable_commenter": True}),
            ):
                instrumentor = DataBridgeInstrumentor()
                instrumentor.instrument(tracer_provider=provider, **options)
                try:
                    async with Session(engine) as session:
                        samples[name].append(await _per_call(lambda s=session: get(s), count))
                finally:
                    instrumentor.uninstrument()
    finally:
        await engine.dispose()
    return {name: statistics.median(values[1:]) for name, values in samples.items()}


async def seam_cost(count: int, rounds: int) -> dict[str, float]:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import TracerProvider

    from bench import orm_models as m
    from bench.schema import DSN
    from data_bridge_core import Engine, Session
    from opentelemetry_instrumentation_data_bridge import config, processors, wrappers
    from opentelemetry_instrumentation_data_bridge.telemetry import (
        AttributeBasedSampler,
        SlowQueryProcessor,
    )

    class NoOp:
        def on_start(self, span: Any, parent_context: Context | None = None) -> None:
            pass

        def on_end(self, span: Any) -> None:
            pass

    dropping = TracerProvider(sampler=AttributeBasedSampler(rules=RULES))
    record_only = TracerProvider(
        sampler=AttributeBasedSampler(rules=[{"duration_ms": {">": 100}, "sample": 1.0}, *RULES])
    )
    recording = TracerProvider()
    no_op, slow = NoOp(), SlowQueryProcessor(threshold_ms=10**9)
    variants: dict[str, tuple[Any, tuple[Any, ...]]] = {
        "seam_sampler_drops_cpu_us": (dropping, ()),
        "seam_sampler_record_only_cpu_us": (record_only, ()),
        "seam_recording_cpu_us": (recording, ()),
        "seam_recording_noop_processor_cpu_us": (recording, (no_op,)),
        "seam_recording_slow_query_processor_cpu_us": (recording, (slow,)),
    }
    engine = Engine(DSN, min_size=0, max_size=1)
    session = Session(engine)
    query = session.find(m.User).filter(m.User.id == 3).limit(1)
    seam = wrappers.query_wrapper("find")
    rows = [object()]

    async def bare() -> list[object]:
        return rows

    samples: dict[str, list[float]] = {name: [] for name in variants}
    try:
        for _ in range(rounds):
            gc.collect()
            base = await _cpu_per_call(bare, count)()
            for name, (provider, registered) in variants.items():
                config.configure(tracer_provider=provider)
                processors.activate(provider)
                for processor in registered:
                    processors.add_span_processor(processor)
                try:
                    cost = await _cpu_per_call(lambda: seam(bare, query, (), {}), count)()
                finally:
                    for processor in registered:
                        processors.remove_span_processor(processor)
                samples[name].append(cost - base)
    finally:
        processors.deactivate()
        config.reset()
        await session.close()
        await engine.dispose()
    return {name: statistics.median(values) for name, values in samples.items()}


def should_sample_cost(count: int, rounds: int) -> dict[str, float]:
    from opentelemetry.sdk.trace.sampling import TraceIdRatioBased

    from opentelemetry_instrumentation_data_bridge.telemetry import AttributeBasedSampler

    attributes = {"db.system": "postgresql", "db.operation.name": "find", "db.collection.name": "u"}
    samplers = {
        "should_sample_attribute_based_us": AttributeBasedSampler(rules=RULES),
        "should_sample_trace_id_ratio_us": TraceIdRatioBased(0.1),
    }
    samples: dict[str, list[float]] = {name: [] for name in samplers}
    for _ in range(rounds):
        for name, sampler in samplers.items():
            start = time.perf_counter_ns()
            for trace_id in range(1, count + 1):
                sampler.should_sample(None, trace_id << 40, "db.query.find", None, attributes)
            samples[name].append((time.perf_counter_ns() - start) / 1000 / count)
    return {name: statistics.median(values) for name, values in samples.items()}


async def measure(quick: bool) -> dict[str, float]:
    from bench.schema import create_schema, drop_schema

    count, rounds = (20, 2) if quick else (300, 15)
    schema = create_schema()
    try:
        figures: dict[str, float] = {}
        figures.update(await plan_cost(schema, max(count // 10, 2), rounds))
        figures.update(await hook_cost(count * 10, rounds))
        figures.update(await commenter_w1(schema, count, rounds))
        figures.update(await seam_cost(count * 10, rounds))
        figures.update(should_sample_cost(count * 10, rounds))
    finally:
        drop_schema(schema)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="seconds: a smoke run")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    figures = asyncio.run(measure(args.quick))
    if args.json:
        print(json.dumps(figures))
        return
    for name, value in figures.items():
        print(f"{name:48} {value:10.1f}")


if __name__ == "__main__":
    main()

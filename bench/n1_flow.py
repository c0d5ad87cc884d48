"""N+1 detection's cost per lazy load in the request flow, and its ratio to the load.

The tight-loop probe (`overhead.n1_detection_cost`) calls the detector on
warm caches. In a service it runs between database round trips, on cold
caches, so here it is measured where it runs: a real request (a recording
root span, a session, a page of 100 users, each user's posts lazily: W5's
N+1 page) through the real instrumentation. Every entry point of detection
that the flow reaches (the call-site read at ``obj.rel``, the lazy-load
count, the query's line, the scope's end at session close, the scope-end
processor at every span's start and end) is timed in place with
``perf_counter_ns``; the timer's own cost, an empty window (two clock
reads, no call) taken once per lazy load in the same requests, is
subtracted per call, so each entry point's call itself counts as
detection's. The sum, divided by the lazy
loads that ran SQL, is the cost per lazy load; the lazy load itself is the
wall time of each ``await user.posts`` (its round trip included) in the same
requests. Each figure is the median over requests.

Run alone: ``python -m bench.n1_flow [--requests N] [--per-user lazy|first]``.

``--per-user first`` measures repeated-statement detection the same way: the
page's 100 users, then one ``find(Post).filter(Post.user_id == user.id)
.first()`` per user (100 one-row queries from one line, reported at the fifth);
the figures are then per statement, and the "lazy load" is that query.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import statistics
import sys
import time
from typing import Any

# Detection's entry points: (module, object in it or "", name the instrumentation calls).
ENTRY_POINTS = (
    ("n_plus_one", "", "lazy_load_site"),
    ("n_plus_one", "", "record_lazy_load"),
    ("n_plus_one", "", "record_query"),
    ("n_plus_one", "", "record_statement"),  # record_query's successor: every query seam
    ("n_plus_one", "", "record_execute"),
    ("n_plus_one", "", "end_session_scope"),
    ("processor", "ScopeEndProcessor", "on_start"),  # on every span's start
    ("processor", "ScopeEndProcessor", "on_end"),  # on every span's end
)
# Parts of the above, timed too but not added again: what a finding reports (the
# `db.n1_warning` event and span through the SDK, `span` mode's output).
PARTS = (
    ("report", "", "open_warning"),  # inside record_lazy_load, at the threshold
    ("report", "", "close_warning"),  # inside on_end, at the request's end
)


async def n1_request_flow_cost(
    schema: str, requests: int, per_user: str = "lazy"
) -> dict[str, float]:
    """Median over ``requests`` W5 N+1 pages: detection µs per lazy load, the lazy
    load's own µs, and their ratio (``per_user="first"``: per one-row query)."""
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    from bench import call_timer
    from bench import orm_models as m
    from bench.schema import DSN
    from data_bridge_core import Engine, Session
    from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor, n_plus_one
    from opentelemetry_instrumentation_data_bridge.n_plus_one import detector, processor, report

    class NoopExporter(SpanExporter):
        def export(self, spans: Any) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    modules = {"n_plus_one": n_plus_one, "processor": processor, "report": report}
    holders = [
        (getattr(modules[module], owner) if owner else modules[module], name)
        for module, owner, name in ENTRY_POINTS + PARTS
    ]
    parts = {name for _, _, name in PARTS}
    # An entry point a version does not have is not timed (comparing versions).
    originals = [(h, name, getattr(h, name)) for h, name in holders if hasattr(h, name)]
    names = [name for _, name, _ in originals]
    spent_by = {name: [0] for name in names}
    calls_by = {name: [0] for name in names}
    by_name: dict[str, list[float]] = {name: [] for name in names}

    idle, idle_calls, timer_ns = [0], [0], []
    clock = call_timer.CLOCK
    # The timing wrappers are not the user's code: call-site walks pass over them.
    detector._library_file[call_timer.__file__] = True
    for holder, name, original in originals:
        # Calls are counted outside the timed window, so the count costs nothing measured.
        timed = call_timer.timed(original, spent_by[name])
        setattr(holder, name, call_timer.counted(timed, calls_by[name]))
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(NoopExporter()))
    instrumentor = DataBridgeInstrumentor()
    instrumentor.instrument(tracer_provider=provider)  # the processor gets the timed hooks
    engine = Engine(DSN, min_size=1, max_size=1, options=f"-c search_path={schema}")
    tracer = provider.get_tracer("bench")
    per_load: list[float] = []
    load_us: list[float] = []
    repeated = per_user == "first"
    try:
        n_plus_one.configure_n1_detection(threshold=5, mode="span")
        for request in range(requests + 1):  # request 0 warms up (first-use imports)
            gc.collect()
            for name in spent_by:
                spent_by[name][0] = calls_by[name][0] = 0
            idle[0] = idle_calls[0] = 0
            loads = 0
            waited = 0
            with tracer.start_as_current_span("GET /users/posts"):
                async with Session(engine) as session:
                    query = session.find(m.User).order_by(m.User.id).limit(100)
                    for user in await query.to_list():
                        start = time.perf_counter_ns()
                        if repeated:
                            await session.find(m.Post).filter(m.Post.author_id == user.id).first()
                        else:
                            await user.posts
                        waited += time.perf_counter_ns() - start
                        loads += 1
                        # The timer around nothing (not even a call), in the same flow.
                        begin = clock()
                        idle[0] += clock() - begin
                        idle_calls[0] += 1
            if request:
                overhead = idle[0] / idle_calls[0]
                timer_ns.append(overhead)
                detection = 0.0
                for name, spent in spent_by.items():
                    cost = spent[0] - calls_by[name][0] * overhead
                    by_name[name].append(cost / 1000 / loads)
                    if name not in parts:
                        detection += cost
                per_load.append(detection / 1000 / loads)
                load_us.append(waited / 1000 / loads)
    finally:
        n_plus_one.configure_n1_detection()
        instrumentor.uninstrument()
        for holder, name, original in originals:
            setattr(holder, name, original)
        provider.shutdown()
        await engine.dispose()
    detection_us = statistics.median(per_load)
    lazy_load_us = statistics.median(load_us)
    return {
        "detection_us": detection_us,
        "lazy_load_us": lazy_load_us,
        "ratio": detection_us / lazy_load_us,
        "timer_ns": statistics.median(timer_ns),
        # Per entry point, µs per lazy load (medians: they need not add up exactly).
        **{f"{name}_us": statistics.median(values) for name, values in by_name.items()},
    }


def main(argv: list[str] | None = None) -> int:
    from bench.schema import create_schema, drop_schema

    parser = argparse.ArgumentParser(prog="python -m bench.n1_flow", description=__doc__)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--per-user", choices=("lazy", "first"), default="lazy")
    args = parser.parse_args(argv)
    schema = create_schema()
    try:
        figures = asyncio.run(n1_request_flow_cost(schema, args.requests, args.per_user))
    finally:
        drop_schema(schema)
    unit = "lazy load" if args.per_user == "lazy" else "one-row query"
    print(
        f"N+1 detection in the request flow: {figures['detection_us']:.2f} us per {unit}; "
        f"the {unit} itself {figures['lazy_load_us']:.0f} us "
        f"(ratio {figures['ratio'] * 100:.2f} %)"
    )
    for _, _, name in ENTRY_POINTS:
        if name + "_us" in figures:
            print(f"  {name}: {figures[name + '_us']:.2f} us per {unit}")
    for _, _, name in PARTS:
        if name + "_us" in figures:
            print(f"    of which {name} (the finding's report): {figures[name + '_us']:.2f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())

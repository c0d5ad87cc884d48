"""Probes of the instrumentation's own cost, without the database's noise.

A database round trip on these machines varies by more than the few
microseconds a span costs, so besides the W1 differences of the table the
suite measures the patched seam directly: the instrumentor's real wrapper
around a coroutine that returns at once, against the same coroutine
unwrapped, interleaved round by round with the bare-span floor. N+1
detection is measured the same way: `lazy_load_site` and `record_lazy_load`
on real hydrated parents, per lazy load (in the request flow: `n1_flow`).
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
from typing import Any

ATTRS = {
    "db.system": "postgresql",
    "db.operation.name": "find",
    "db.collection.name": "users",
    "db.query.filters_count": 1,
    "db.query.limit": 1,
    "db.result.count": 1,
}


def _floor_once(provider: Any, count: int) -> float:
    """µs for one bare SDK span with six attributes (``start_as_current_span``)."""
    tracer = provider.get_tracer("floor")
    start = time.perf_counter_ns()
    for _ in range(count):
        with tracer.start_as_current_span("db.query.find", attributes=ATTRS):
            pass
    return (time.perf_counter_ns() - start) / 1000 / count


def span_floor(provider: Any, count: int, rounds: int) -> float:
    """Median over rounds of `_floor_once` (the floor the targets are stated against)."""
    return statistics.median(_floor_once(provider, count) for _ in range(rounds))


async def seam_overhead(
    providers: dict[str, Any], schema: str, count: int, rounds: int
) -> dict[str, float]:
    """Median µs per call: the span floor, and the query seam's extra when
    recording and when sampled out (wrapper minus the bare coroutine)."""
    from bench import orm_models as m
    from bench.schema import DSN
    from data_bridge_core import Engine, Session
    from opentelemetry_instrumentation_data_bridge import telemetry, wrappers

    engine = Engine(DSN, min_size=0, max_size=1, options=f"-c search_path={schema}")
    session = Session(engine)
    query = session.find(m.User).filter(m.User.id == 3).limit(1)
    seam = wrappers.query_wrapper("find")
    rows = [object()]

    async def bare() -> list[object]:
        return rows

    async def loop(call: Any) -> float:
        start = time.perf_counter_ns()
        for _ in range(count):
            await call()
        return (time.perf_counter_ns() - start) / 1000 / count

    samples: dict[str, list[float]] = {"floor": [], "recording": [], "sampled_out": []}
    try:
        for _ in range(rounds):
            gc.collect()
            base = await loop(bare)
            samples["floor"].append(_floor_once(providers["recording"], count))
            for name in ("recording", "sampled_out"):
                telemetry.configure(tracer_provider=providers[name])
                samples[name].append(await loop(lambda: seam(bare, query, (), {})) - base)
    finally:
        telemetry.reset()
        await session.close()
        await engine.dispose()
    return {name: statistics.median(values) for name, values in samples.items()}


async def n1_detection_cost(schema: str, pages: int, rounds: int) -> float:
    """Median µs that N+1 detection adds to one lazy load (a page of 100 parents
    per scope: counting, the call-site walk, one warning, the final count)."""
    from bench import orm_models as m
    from bench.schema import DSN
    from data_bridge_core import Engine, Session
    from opentelemetry_instrumentation_data_bridge import n_plus_one

    engine = Engine(DSN, min_size=0, max_size=1, options=f"-c search_path={schema}")
    relationship = m.User.posts
    samples = []
    try:
        async with Session(engine) as session:
            parents = await session.find(m.User).limit(100).to_list()
            n_plus_one.configure_n1_detection(threshold=5, mode="span")
            for round_no in range(rounds + 1):  # round 0 warms up (first-use imports)
                gc.collect()  # start each round with no one else's garbage to collect
                start = time.perf_counter_ns()
                for _ in range(pages):
                    with n_plus_one.n1_scope():
                        for parent in parents:
                            # What the wrapper does: the mark at `obj.rel`, the count after.
                            mark = n_plus_one.lazy_load_site(sys._getframe())
                            n_plus_one.record_lazy_load(relationship, parent, None, mark)
                elapsed = time.perf_counter_ns() - start
                if round_no:
                    samples.append(elapsed / 1000 / (pages * len(parents)))
    finally:
        n_plus_one.configure_n1_detection()
        await engine.dispose()
    return statistics.median(samples)


# Pairs (system, its baseline) whose W1 difference is an instrumentation's extra cost.
PAIRS = {
    "recording": ("data_bridge instrumented", "data_bridge"),
    "sampled_out": ("data_bridge sampled out", "data_bridge"),
    "bare_span": ("data_bridge + bare span", "data_bridge"),
    "sqlalchemy_instrumentation": ("sqlalchemy instrumented", "sqlalchemy"),
}


async def w1_paired(
    systems: list[Any], ids: list[int], rounds: int, flush: Any = None
) -> dict[str, float]:
    """Median over rounds of each pair's W1 difference in CPU time per get.

    The table's wall-clock cells move by tens of µs between rounds on a shared
    machine; the extra cost of a span is of that size. Here the systems run W1
    back to back in every round and each round gives one difference per pair,
    in the CPU time of the thread running the event loop (the database
    server's work and other processes' are not in it). ``flush`` empties the
    span processors' queues after each run, so one system's spans are not
    exported while the next one is measured. The span floor is measured the same way (a bare
    SDK span around each get), so both sides see the same cold caches.
    """
    by_name = {s.name: s for s in systems}
    wanted = {n for pair in PAIRS.values() for n in pair if n in by_name}
    samples: dict[str, list[float]] = {n: [] for n in wanted}
    for round_no in range(rounds + 1):  # round 0 warms up
        for name in sorted(wanted):
            system = by_name[name]
            system.activate()
            try:
                await system.w6(ids[0])  # first calls after activation are not W1's
                gc.collect()  # garbage of the system before is not this one's to collect
                start = time.thread_time_ns()
                await system.w1(ids)
                elapsed = (time.thread_time_ns() - start) / 1000 / len(ids)
            finally:
                system.deactivate()
            if flush is not None:
                flush()
            if round_no:
                samples[name].append(elapsed)
    extras: dict[str, float] = {}
    for label, (system, base) in PAIRS.items():
        if system in samples and base in samples:
            diffs = [a - b for a, b in zip(samples[system], samples[base], strict=True)]
            extras[label] = statistics.median(diffs)
    return extras


# Pairs whose W8 difference is an instrumentation's extra per eager page (issue 25's
# "traced eager page (e)": data_bridge's against SQLAlchemy's own instrumentation).
EAGER_PAIRS = {
    "data_bridge": ("data_bridge instrumented", "data_bridge"),
    "sqlalchemy": ("sqlalchemy instrumented", "sqlalchemy"),
}
# Pages per timed sample: one page is a few ms of CPU, ten make the two clock reads
# negligible and stay far below the batch processor's 512-span export trigger.
EAGER_PAGES = 10


async def eager_paired(
    systems: list[Any], rounds: int, flush: Any, exported: Any
) -> dict[str, dict[str, float]]:
    """Per instrumentation: the median over rounds of its extra process CPU per W8
    page (instrumented minus plain, run back to back in every round), and the spans
    one page records.

    Process CPU, as the issue states it: the span processor's export thread counts
    too. ``flush`` exports the queued spans after each turn (outside the timed
    window, so one turn's export never lands on the next); ``exported()`` is the
    number of spans the recording provider's exporter has received so far.
    """
    by_name = {s.name: s for s in systems}
    wanted = sorted({n for pair in EAGER_PAIRS.values() for n in pair if n in by_name})
    samples: dict[str, list[float]] = {n: [] for n in wanted}
    spans: dict[str, float] = {}
    for round_no in range(rounds + 1):  # round 0 warms up
        for name in wanted:
            system = by_name[name]
            flush()
            before = exported()
            system.activate()
            try:
                await system.w8()  # first calls after activation are not the page's cost
                gc.collect()
                start = time.process_time_ns()
                for _ in range(EAGER_PAGES):
                    await system.w8()
                elapsed = (time.process_time_ns() - start) / 1000 / EAGER_PAGES
            finally:
                system.deactivate()
            flush()
            spans[name] = (exported() - before) / (EAGER_PAGES + 1)
            if round_no:
                samples[name].append(elapsed)
    out: dict[str, dict[str, float]] = {}
    for label, (system, base) in EAGER_PAIRS.items():
        if system in samples and base in samples:
            diffs = [a - b for a, b in zip(samples[system], samples[base], strict=True)]
            out[label] = {
                "extra_cpu_us": statistics.median(diffs),
                "page_cpu_us": statistics.median(samples[base]),
                "spans_per_page": spans[system],
            }
    return out

"""instrument()/uninstrument() cycles with every option: every class of the core is left
exactly as it was (attribute by attribute) and nothing stays on the user's providers."""

from __future__ import annotations

import inspect
from typing import Any

from instrumentation_models import Author
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import data_bridge_core
from data_bridge_core import Engine, Session
from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor, config
from opentelemetry_instrumentation_data_bridge.telemetry import (
    SlowQueryProcessor,
    add_span_processor,
    remove_span_processor,
)

EVERY_OPTION: dict[str, Any] = {
    "capture_statement": True,
    "explain_threshold_ms": 0,
    "enable_commenter": True,
    "commenter_options": {"application": "cycles", "db_driver": True},
}


def core_classes() -> list[type]:
    """Every class defined in data_bridge_core's modules (the seams' owners among them)."""
    found: dict[int, type] = {}
    for module_name, module in list(__import__("sys").modules.items()):
        if module_name.split(".")[0] != "data_bridge_core":
            continue
        for _, value in inspect.getmembers(module, inspect.isclass):
            if value.__module__.startswith("data_bridge_core"):
                found[id(value)] = value
    return list(found.values())


def snapshot() -> dict[tuple[type, str], object]:
    return {(cls, name): value for cls in core_classes() for name, value in vars(cls).items()}


def processors_of(provider: TracerProvider) -> list[object]:
    return list(provider._active_span_processor._span_processors)


class Seen:
    def __init__(self) -> None:
        self.names: list[str] = []

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        self.names.append(span.name)


async def test_three_cycles_with_every_option_leave_every_class_and_provider_as_they_were(
    blog_engine: Engine,
    tracer_provider: TracerProvider,
    meter_provider: MeterProvider,
    spans: InMemorySpanExporter,
) -> None:
    assert data_bridge_core.Session is Session
    before = snapshot()
    assert len(before) > 200  # the walk found the core's classes
    users = processors_of(tracer_provider)
    for cycle in range(3):
        seen, slow = Seen(), SlowQueryProcessor(threshold_ms=0)
        instrumentor = DataBridgeInstrumentor()
        instrumentor.instrument(
            tracer_provider=tracer_provider, meter_provider=meter_provider, **EVERY_OPTION
        )
        add_span_processor(seen)
        add_span_processor(slow)
        try:
            changed = {k for k, v in snapshot().items() if before.get(k) is not v}
            # The positive twin: instrumenting does patch the seams.
            assert (Session, "run_statement") in changed and (Session, "refresh") in changed
            async with Session(blog_engine) as session:
                assert await session.find(Author).count() == 3
            assert seen.names == ["db.session.open", "db.query.count", "db.session.close"]
        finally:
            instrumentor.uninstrument()
        after = snapshot()
        assert after.keys() == before.keys(), cycle
        different = [k for k, v in after.items() if v is not before[k]]
        assert different == [], cycle
        # One inert processor of ours stays (the SDK cannot remove one), the same each cycle.
        (inert,) = [p for p in processors_of(tracer_provider) if p not in users]
        assert inert.attached == (), cycle  # type: ignore[attr-defined]
        assert processors_of(tracer_provider) == [*users, inert], cycle
        assert config.state.tracer_provider is None
        # Nothing instrumented: the registered processors get nothing, no span is made.
        spans.clear()
        async with Session(blog_engine) as session:
            assert await session.find(Author).count() == 3
        assert spans.get_finished_spans() == ()
        assert len(seen.names) == 3
        # Registered processors outlive uninstrument() (docs/span-processors.md): removed here.
        assert remove_span_processor(seen) is True and remove_span_processor(slow) is True


def observed_pool_metrics(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    """Data points of the observable pool instruments in one collection."""
    data = reader.get_metrics_data()
    found: dict[str, list[Any]] = {}
    for rm in data.resource_metrics if data is not None else ():
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name in OBSERVED:
                    found[metric.name] = [p.value for p in metric.data.data_points]
    return found


OBSERVED = (
    "db.connection.pool.in_use",
    "db.connection.pool.idle",
    "db.connection.pool.max",
    "db.client.connection.count",
    "db.client.connection.max",
)


async def test_pool_metrics_are_observed_only_while_instrumented(
    blog_engine: Engine, meter_provider: MeterProvider, metric_reader: InMemoryMetricReader
) -> None:
    instrumentor = DataBridgeInstrumentor()
    for _ in range(2):  # the second time on the same meter provider (the SDK's cached meter)
        instrumentor.instrument(meter_provider=meter_provider)
        try:
            async with Session(blog_engine) as session:
                assert await session.find(Author).count() == 3
            observed = observed_pool_metrics(metric_reader)
            assert observed["db.connection.pool.max"] == [4]
            assert observed["db.client.connection.max"] == [4]
            assert sorted(observed["db.client.connection.count"]) == [0, 1]
        finally:
            instrumentor.uninstrument()
        assert observed_pool_metrics(metric_reader) == {}

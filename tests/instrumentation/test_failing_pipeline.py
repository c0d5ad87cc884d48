"""A raising exporter or sampler in the user's pipeline never breaks or changes an ORM call."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pytest
from instrumentation_models import Author
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

from data_bridge_core import Engine, Session
from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor


class RaisingExporter(SpanExporter):
    def __init__(self) -> None:
        self.calls = 0

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.calls += 1
        raise ConnectionError("collector unreachable")

    def shutdown(self) -> None:
        pass


class RaisingSampler(Sampler):
    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        raise RuntimeError("sampler bug")

    def get_description(self) -> str:
        return "RaisingSampler"


async def workload(engine: Engine) -> tuple[int, int, list[str]]:
    """Reads, a write committed, a read back: what the application sees."""
    async with Session(engine) as session:
        before = await session.find(Author).count()
        session.add(Author(name="w", email="w@x.org"))
        await session.commit()
    async with Session(engine) as session:
        after = await session.find(Author).count()
        names = [a.name for a in await session.find(Author).order_by(Author.id).to_list()]
    return before, after, names


def instrumented_run(provider: TracerProvider) -> DataBridgeInstrumentor:
    instrumentor = DataBridgeInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    return instrumentor


@pytest.mark.parametrize("processor", [SimpleSpanProcessor, BatchSpanProcessor])
async def test_an_exporter_that_raises_changes_nothing_for_the_application(
    blog_engine: Engine, processor: type[SimpleSpanProcessor], caplog: pytest.LogCaptureFixture
) -> None:
    exporter = RaisingExporter()
    provider = TracerProvider()
    provider.add_span_processor(processor(exporter))
    instrumentor = instrumented_run(provider)
    try:
        with caplog.at_level(logging.CRITICAL):
            result = await workload(blog_engine)
            provider.force_flush()
    finally:
        instrumentor.uninstrument()
        provider.shutdown()
    assert result == (3, 4, ["a0", "a1", "a2", "w"])
    assert exporter.calls >= 1  # it was asked, and raised


async def test_a_sampler_that_raises_leaves_the_operation_untraced_but_working(
    blog_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=RaisingSampler())
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = instrumented_run(provider)
    try:
        with caplog.at_level(logging.WARNING, logger="opentelemetry_instrumentation_data_bridge"):
            result = await workload(blog_engine)
    finally:
        instrumentor.uninstrument()
    assert result == (3, 4, ["a0", "a1", "a2", "w"])
    assert exporter.get_finished_spans() == ()
    # Logged as class and frames, not its text (which may hold a value).
    failures = [r for r in caplog.records if "in should_sample" in r.getMessage()]
    assert len(failures) == 1  # logged once
    assert "RuntimeError" in failures[0].getMessage()
    assert "sampler bug" not in failures[0].getMessage()


async def test_the_same_workload_with_a_working_pipeline_exports_every_operation(
    blog_engine: Engine,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = instrumented_run(provider)
    try:
        result = await workload(blog_engine)
    finally:
        instrumentor.uninstrument()
    assert result == (3, 4, ["a0", "a1", "a2", "w"])
    assert [s.name for s in exporter.get_finished_spans()] == [
        "db.session.open",
        "db.query.count",
        "db.session.flush",
        "db.session.commit",
        "db.session.close",
        "db.session.open",
        "db.query.count",
        "db.query.find",
        "db.session.close",
    ]

"""The last section of API.md ("The reference's future enhancements, built"), line by line."""

from __future__ import annotations

from typing import Any

from instrumentation_models import Author
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from data_bridge_core import Engine, Session
from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor
from opentelemetry_instrumentation_data_bridge.telemetry import (
    AttributeBasedSampler,
    SlowQueryProcessor,
    add_span_processor,
    create_linked_task,
    remove_span_processor,
)


class MyProcessor:
    """The reference's CustomProcessor: slow db.query.find spans, read from the span."""

    def __init__(self) -> None:
        self.durations_ms: list[float] = []

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: Any) -> None:
        if span.name == "db.query.find":
            self.durations_ms.append((span.end_time - span.start_time) / 1e6)


async def test_the_api_md_example_works_as_written(blog_engine: Engine) -> None:
    async def send_welcome_email(user: Author) -> int:
        async with Session(blog_engine) as session:
            return await session.find(Author).filter(Author.country == user.country).count()

    mine, slow = MyProcessor(), SlowQueryProcessor(threshold_ms=100)
    exporter = InMemorySpanExporter()
    add_span_processor(mine)  # on_start/on_end for every span the instrumentation starts
    add_span_processor(slow)  # logs slow operations: name, table, duration, trace id
    provider = TracerProvider(
        sampler=AttributeBasedSampler(
            rules=[
                {"db.operation.name": "update", "sample": 0.5},
                {"db.collection.name": "audit_log", "sample": 1.0},
                {"default": 1.0},  # (the example's 0.1, at 1.0 so every span is there to check)
            ]
        )
    )
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = DataBridgeInstrumentor()
    instrumentor.instrument(
        tracer_provider=provider,
        explain_threshold_ms=0,  # (the example's 100: every read is slower than 0)
        enable_commenter=True,
    )
    try:
        with provider.get_tracer("app").start_as_current_span("POST /signup") as request:
            async with Session(blog_engine) as session:
                [user] = await session.find(Author).filter(Author.id == 2).to_list()
            task = create_linked_task(send_welcome_email(user), name="send_welcome_email")
        assert await task == 2
    finally:
        instrumentor.uninstrument()
        remove_span_processor(mine)
        remove_span_processor(slow)
        provider.shutdown()
    spans = exporter.get_finished_spans()
    assert len(mine.durations_ms) == 1
    [root] = [s for s in spans if s.name == "send_welcome_email"]
    assert root.parent is None
    assert root.links[0].context.span_id == request.get_span_context().span_id
    [count] = [s for s in spans if s.name == "db.query.count"]
    assert count.context.trace_id == root.context.trace_id
    [find] = [s for s in spans if s.name == "db.query.find"]
    assert [e.name for e in find.events] == ["query_plan"]
    assert "plan" in dict(find.events[0].attributes or {})

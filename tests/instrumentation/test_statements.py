"""Every statement the ORM sends is inside a span of its own operation: raw SQL and streams."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from typing import Any

import pytest
from database_server import server
from instrumentation_models import Author
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from data_bridge_core import Engine, Session
from finished_spans import attrs, named
from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor


def counted(reader: InMemoryMetricReader, metric: str) -> dict[str, Any]:
    """data points of one metric by db.operation.name."""
    data = reader.get_metrics_data()
    assert data is not None
    return {
        point.attributes["db.operation.name"]: point
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == metric
        for point in m.data.data_points
    }


@pytest.fixture
def capturing(
    tracer_provider: TracerProvider, meter_provider: MeterProvider
) -> Iterator[DataBridgeInstrumentor]:
    instrumentor = DataBridgeInstrumentor()
    instrumentor.instrument(
        tracer_provider=tracer_provider, meter_provider=meter_provider, capture_statement=True
    )
    yield instrumentor
    instrumentor.uninstrument()


@pytest.mark.usefixtures("instrumented")
async def test_raw_sql_gets_a_client_span_under_the_callers_span(
    blog_engine: Engine,
    spans: InMemorySpanExporter,
    tracer_provider: TracerProvider,
    metric_reader: InMemoryMetricReader,
) -> None:
    with tracer_provider.get_tracer("app").start_as_current_span("request") as request:
        async with Session(blog_engine) as session:
            result = await session.execute(
                "  /* report */ Select count(*) FROM authors WHERE age > %s", [18]
            )
            assert result.rows == [(3,)]
            await session.execute("UPDATE authors SET age = age + 1 WHERE id = %s", [1])
    executed = named(spans, "db.query.execute")
    # As written (the spec: no case change): "Select", "UPDATE".
    assert [attrs(s)["db.operation.name"] for s in executed] == ["Select", "UPDATE"]
    for span in executed:
        assert span.kind is SpanKind.CLIENT
        assert span.parent is not None and span.parent.span_id == request.get_span_context().span_id
        assert attrs(span)["db.system"] == "postgresql"
        assert attrs(span)["db.namespace"] == server().database  # "test" unless embedded
        assert "db.statement" not in attrs(span)  # capture is opt-in
    assert attrs(executed[0])["db.result.count"] == 1
    assert counted(metric_reader, "db.query.count")["Select"].value == 1
    assert counted(metric_reader, "db.query.count")["UPDATE"].value == 1


@pytest.mark.usefixtures("instrumented")
async def test_streaming_a_query_gets_a_span_counting_the_rows_streamed(
    blog_engine: Engine, spans: InMemorySpanExporter, metric_reader: InMemoryMetricReader
) -> None:
    async with Session(blog_engine) as session:
        names = [a.name async for a in session.find(Author).order_by(Author.id.asc())]
        assert names == ["a0", "a1", "a2"]
        streamed = [a.id async for a in session.find(Author).filter(Author.age > 25).stream(1)]
        assert streamed == [2, 3]
    streams = named(spans, "db.query.stream")
    assert len(streams) == 2
    whole, filtered = (attrs(s) for s in streams)
    assert whole["db.operation.name"] == "stream"
    assert whole["db.collection.name"] == "authors"
    assert whole["db.query.order_by"] == "id ASC"
    assert whole["db.result.count"] == 3
    assert filtered["db.query.filters_count"] == 1
    assert filtered["db.result.count"] == 2
    assert all(s.kind is SpanKind.CLIENT for s in streams)
    point = counted(metric_reader, "db.query.count")["stream"]
    assert point.value == 2
    assert counted(metric_reader, "db.client.response.returned_rows")["stream"].sum == 5


@pytest.mark.usefixtures("instrumented")
async def test_an_abandoned_stream_ends_its_span_with_the_rows_read_so_far(
    blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    async with Session(blog_engine) as session:
        closed = session.find(Author).order_by(Author.id.asc()).stream(1)
        first = await closed.__anext__()
        assert first.name == "a0"
        await closed.aclose()
        assert [s.name for s in named(spans, "db.query.stream")] == ["db.query.stream"]

        async for author in session.find(Author).order_by(Author.id.asc()):
            if author.id == 2:
                break  # the generator is dropped here, never closed explicitly
        gc.collect()
        # asyncio's finalizer hook schedules the dropped generator's aclose() as a task
        # (created on the loop's next turn): await it.
        await asyncio.sleep(0)
        closing = [
            task
            for task in asyncio.all_tasks()
            if type(task.get_coro()).__name__ == "async_generator_athrow"
        ]
        assert len(closing) == 1
        await asyncio.gather(*closing)
    counts = [attrs(s)["db.result.count"] for s in named(spans, "db.query.stream")]
    assert counts == [1, 2]


@pytest.mark.usefixtures("capturing")
async def test_captured_statements_of_raw_sql_and_streams_land_on_their_own_spans(
    blog_engine: Engine, spans: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    with tracer_provider.get_tracer("app").start_as_current_span("GET /authors"):
        async with Session(blog_engine) as session:
            await session.execute("SELECT name FROM authors WHERE email = %s", ["a0@x.org"])
            rows = [a async for a in session.find(Author).filter(Author.email == "a1@x.org")]
            assert len(rows) == 1
    server = named(spans, "GET /authors")[0]
    assert "db.statement" not in attrs(server)
    execute = attrs(named(spans, "db.query.execute")[0])
    assert execute["db.statement"] == "SELECT name FROM authors WHERE email = %s"
    stream = attrs(named(spans, "db.query.stream")[0])
    assert '"authors"."email" = %s' in stream["db.statement"]
    for span in spans.get_finished_spans():
        assert "a0@x.org" not in repr(attrs(span)) and "a1@x.org" not in repr(attrs(span))


async def test_a_statement_sent_outside_any_orm_span_is_not_put_on_the_callers_span(
    blog_engine: Engine, spans: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    instrumentor = DataBridgeInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, capture_statement=True)
    try:
        with tracer_provider.get_tracer("app").start_as_current_span("job"):
            async with Session(blog_engine) as session:
                # The seam below every operation, called directly: no ORM span of its own.
                await session.run_statement("SELECT 1")
                await session.find(Author).count()
    finally:
        instrumentor.uninstrument()
    assert "db.statement" not in attrs(named(spans, "job")[0])
    assert attrs(named(spans, "db.query.count")[0])["db.statement"].startswith("SELECT count(*)")


@pytest.mark.usefixtures("instrumented")
async def test_the_stream_span_parents_its_own_work_but_not_the_loop_body(
    blog_engine: Engine, spans: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    tracer = tracer_provider.get_tracer("app")
    with tracer.start_as_current_span("request") as request:
        async with Session(blog_engine) as session:
            session.add(Author(name="new", email="new@x.org"))  # flushed by the stream
            async for author in session.find(Author).stream(2):
                with tracer.start_as_current_span(f"handle {author.name}"):
                    pass
    stream = named(spans, "db.query.stream")[0]
    assert attrs(stream)["db.result.count"] == 4
    flush = named(spans, "db.session.flush")[0]
    assert flush.parent is not None and flush.parent.span_id == stream.context.span_id
    handled = [s for s in spans.get_finished_spans() if s.name.startswith("handle ")]
    assert len(handled) == 4
    for span in handled:
        assert span.parent is not None
        assert span.parent.span_id == request.get_span_context().span_id

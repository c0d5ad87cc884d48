"""AttributeBasedSampler under ParentBased and under a caller's span: the documented spans."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from instrumentation_models import Article, Author
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased

from data_bridge_core import Engine, Session
from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor
from opentelemetry_instrumentation_data_bridge.telemetry import AttributeBasedSampler

REQUESTS_ONLY = [{"name_prefix": "GET ", "sample": 1.0}, {"default": 0.0}]
COUNTS_ONLY = [{"db.operation.name": "count", "sample": 1.0}, {"default": 0.0}]


def traced(provider: TracerProvider) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = DataBridgeInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    yield exporter
    instrumentor.uninstrument()


@pytest.fixture
def parent_based() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    provider = TracerProvider(sampler=ParentBased(AttributeBasedSampler(REQUESTS_ONLY)))
    for exporter in traced(provider):
        yield provider, exporter


@pytest.fixture
def per_span() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    provider = TracerProvider(sampler=AttributeBasedSampler(COUNTS_ONLY))
    for exporter in traced(provider):
        yield provider, exporter


async def work(engine: Engine) -> tuple[int, int]:
    async with Session(engine) as session:
        return len(await session.find(Author).to_list()), await session.find(Article).count()


async def test_under_parent_based_a_sampled_request_keeps_its_orm_spans_and_nothing_else(
    blog_engine: Engine, parent_based: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = parent_based
    app = provider.get_tracer("app")
    with app.start_as_current_span("GET /authors") as request:
        assert await work(blog_engine) == (3, 6)
    with app.start_as_current_span("job: cleanup"):  # the default rule: 0.0
        assert await work(blog_engine) == (3, 6)
    assert await work(blog_engine) == (3, 6)  # ORM roots: the default rule too
    names = [s.name for s in exporter.get_finished_spans()]
    assert names == [
        "db.session.open",
        "db.query.find",
        "db.query.count",
        "db.session.close",
        "GET /authors",
    ]
    trace_id = request.get_span_context().trace_id
    assert {s.context.trace_id for s in exporter.get_finished_spans()} == {trace_id}


async def test_without_parent_based_the_rules_decide_each_orm_span_even_under_a_dropped_request(
    blog_engine: Engine, per_span: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = per_span
    with provider.get_tracer("app").start_as_current_span("GET /authors") as request:
        assert not request.is_recording()  # the default rule dropped the request
        assert await work(blog_engine) == (3, 6)
    [count] = exporter.get_finished_spans()
    assert count.name == "db.query.count"
    assert (count.attributes or {})["db.result.count"] == 6
    assert count.parent is not None  # its parent is the dropped request span
    assert count.parent.span_id == request.get_span_context().span_id

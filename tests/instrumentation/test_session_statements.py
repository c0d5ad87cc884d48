"""refresh() and savepoints send SQL of their own: each runs inside a span of its own operation."""

from __future__ import annotations

from typing import Any

import pytest
from instrumentation_models import Author
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from data_bridge_core import Engine, IntegrityError, Session
from finished_spans import attrs, child_of, named
from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor


@pytest.fixture
def capturing(tracer_provider: TracerProvider) -> Any:
    instrumentor = DataBridgeInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, capture_statement=True)
    yield instrumentor
    instrumentor.uninstrument()


@pytest.mark.usefixtures("capturing")
async def test_refresh_gets_a_session_span_holding_its_select_under_the_callers_span(
    blog_engine: Engine, spans: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    with tracer_provider.get_tracer("app").start_as_current_span("job"):
        async with Session(blog_engine) as session:
            [author] = await session.find(Author).filter(Author.id == 1).to_list()
            author.age = 77
            await session.refresh(author)  # flushes the change, then reads the row back
            assert author.age == 77
            await session.rollback()
    [job] = named(spans, "job")
    assert "db.statement" not in attrs(job)
    [refresh] = named(spans, "db.session.refresh")
    assert child_of(refresh, job)
    assert refresh.kind is SpanKind.CLIENT
    assert attrs(refresh)["db.system"] == "postgresql"
    assert attrs(refresh)["db.session.operation"] == "refresh"
    assert attrs(refresh)["db.collection.name"] == "authors"
    assert attrs(refresh)["db.statement"].startswith("SELECT ")
    assert "%s" in attrs(refresh)["db.statement"]
    [flush] = named(spans, "db.session.flush")  # the autoflush is the refresh's own work
    assert child_of(flush, refresh)


@pytest.mark.usefixtures("capturing")
async def test_a_released_savepoint_sends_its_statements_inside_savepoint_spans(
    blog_engine: Engine, spans: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    with tracer_provider.get_tracer("app").start_as_current_span("job"):
        async with Session(blog_engine) as session:
            async with session.begin_nested():
                session.add(Author(name="n", email="nested@x.org"))
            await session.rollback()
    [job] = named(spans, "job")
    assert "db.statement" not in attrs(job)
    [begin] = named(spans, "db.session.savepoint")
    [release] = named(spans, "db.session.release_savepoint")
    assert named(spans, "db.session.rollback_to_savepoint") == []
    for span, operation, statement in (
        (begin, "savepoint", "SAVEPOINT data_bridge_sp_"),
        (release, "release_savepoint", "RELEASE SAVEPOINT data_bridge_sp_"),
    ):
        assert child_of(span, job)
        assert attrs(span)["db.system"] == "postgresql"
        assert attrs(span)["db.session.operation"] == operation
        assert attrs(span)["db.statement"].startswith(statement)
        assert span.status.status_code is StatusCode.UNSET
    # Each step flushes first: nothing before SAVEPOINT, the block's insert before RELEASE.
    [nothing, insert] = named(spans, "db.session.flush")
    assert child_of(nothing, begin) and child_of(insert, release)
    assert attrs(insert)["db.session.pending_count"] == 1


@pytest.mark.usefixtures("capturing")
async def test_a_failed_savepoint_block_rolls_back_inside_a_span_of_its_own(
    blog_engine: Engine, spans: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    with tracer_provider.get_tracer("app").start_as_current_span("job"):
        async with Session(blog_engine) as session:
            with pytest.raises(IntegrityError):
                async with session.begin_nested():
                    session.add(Author(name="dup", email="a0@x.org"))  # unique violation
            assert await session.find(Author).count() == 3  # the outer transaction goes on
            await session.rollback()
    [job] = named(spans, "job")
    assert "db.statement" not in attrs(job)
    [release] = named(spans, "db.session.release_savepoint")
    assert release.status.status_code is StatusCode.ERROR
    [undo] = named(spans, "db.session.rollback_to_savepoint")
    assert child_of(undo, release)  # the failed flush of the release rolls back to the savepoint
    assert attrs(undo)["db.session.operation"] == "rollback_to_savepoint"
    # ROLLBACK TO, then RELEASE: the span shows both statements it sent, joined by "; ".
    rollback_to, release_sp = attrs(undo)["db.statement"].split("; ")
    assert rollback_to.startswith("ROLLBACK TO SAVEPOINT data_bridge_sp_")
    assert release_sp.startswith("RELEASE SAVEPOINT data_bridge_sp_")
    assert undo.status.status_code is StatusCode.UNSET
    for span in spans.get_finished_spans():
        assert "a0@x.org" not in repr(attrs(span)) + repr([e.attributes for e in span.events])


@pytest.mark.usefixtures("capturing")
async def test_a_block_raising_its_own_error_rolls_back_to_the_savepoint_in_its_span(
    blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    async with Session(blog_engine) as session:

        async def failing_block() -> None:
            async with session.begin_nested():
                session.add(Author(name="n", email="gone@x.org"))
                raise LookupError("the block's own error")

        with pytest.raises(LookupError):
            await failing_block()
        await session.rollback()
    assert named(spans, "db.session.release_savepoint") == []
    [undo] = named(spans, "db.session.rollback_to_savepoint")
    assert undo.parent is None
    rollback_to, release_sp = attrs(undo)["db.statement"].split("; ")
    assert rollback_to.startswith("ROLLBACK TO SAVEPOINT data_bridge_sp_")
    assert release_sp.startswith("RELEASE SAVEPOINT data_bridge_sp_")
    assert [s.name for s in spans.get_finished_spans()] == [
        "db.session.open",
        "db.session.flush",  # savepoint() flushes first (nothing pending here)
        "db.session.savepoint",
        "db.session.rollback_to_savepoint",
        "db.session.rollback",
        "db.session.close",
    ]

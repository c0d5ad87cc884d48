"""Detection where no span is current (workers, scripts, tests without a fixture),
and scopes that end where the objects' use ends."""

from __future__ import annotations

import asyncio
import logging
import warnings
from typing import Any

import pytest
from instrumentation_models import Article, Author
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from data_bridge_core import Engine, Session, selectinload
from opentelemetry_instrumentation_data_bridge.n_plus_one import scopes
from opentelemetry_instrumentation_data_bridge.telemetry import (
    UnusedEagerLoadWarning,
    configure_n1_detection,
)

pytestmark = pytest.mark.usefixtures("instrumented")


def named(spans: InMemorySpanExporter, name: str) -> list[dict[str, Any]]:
    return [dict(s.attributes or {}) for s in spans.get_finished_spans() if s.name == name]


async def job(engine: Engine) -> None:
    """A worker's job: no span is current anywhere in it."""
    async with Session(engine) as session:
        for author in await session.find(Author).to_list():
            await author.articles
        for author in await session.find(Author).to_list():
            await author.articles  # same loop again: the final count is 6


async def test_a_worker_without_a_span_gets_the_warning_span_at_the_end_of_its_session(
    blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    await job(blog_engine)
    [warning] = named(spans, "db.n1_warning")
    assert warning["db.n1.recommendation"] == "Use selectinload(Author.articles)"
    assert warning["db.n1.query_count"] == 3  # the same 3 authors: one query each, once cached
    assert warning["code.function.name"] == "job"
    assert scopes._session_scopes == {}


async def test_a_worker_without_a_span_is_logged_once_with_the_final_count(
    blog_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    configure_n1_detection(threshold=3, mode="log")
    with caplog.at_level(logging.WARNING):
        async with Session(blog_engine) as session:
            assert [r for r in caplog.records if "N+1" in r.getMessage()] == []
            articles = await session.find(Article).order_by(Article.id).to_list()
            for article in articles:
                await article.remarks
            # Reported when the session block ends, not at the third load.
            assert [r for r in caplog.records if "N+1" in r.getMessage()] == []
    [record] = [r for r in caplog.records if "N+1" in r.getMessage()]
    assert "Article.remarks lazy-loaded 6 times" in record.getMessage()


async def test_read_eager_loads_outside_a_request_are_never_called_unused(
    blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    configure_n1_detection(threshold=3, mode="warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with Session(blog_engine) as session:
            query = session.find(Author).options(selectinload(Author.articles))
            authors = await query.to_list()
            titles = [a.title for author in authors for a in await author.articles]
    assert len(titles) == 6
    assert [w for w in caught if issubclass(w.category, UnusedEagerLoadWarning)] == []
    assert named(spans, "db.unused_eager_load") == []


async def test_unread_eager_loads_inside_a_request_are_still_reported(
    blog_engine: Engine, spans: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    with tracer_provider.get_tracer("t").start_as_current_span("GET /authors"):
        async with Session(blog_engine) as session:
            await session.find(Author).options(selectinload(Author.articles)).to_list()
    [unused] = named(spans, "db.unused_eager_load")
    assert unused["db.relationship.name"] == "articles"


async def test_a_task_that_outlives_its_request_span_is_reported(
    blog_engine: Engine, spans: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    request_over = asyncio.Event()

    async def background(session: Session, authors: list[Author]) -> None:
        await request_over.wait()
        for author in authors:
            await author.articles  # after the request span ended
        await session.close()

    session = Session(blog_engine)
    with tracer_provider.get_tracer("t").start_as_current_span("POST /digest"):
        await session.open()
        authors = await session.find(Author).to_list()
        task = asyncio.create_task(background(session, authors))
    request_over.set()
    await task
    [warning] = named(spans, "db.n1_warning")
    assert warning["db.n1.query_count"] == 3
    assert warning["code.function.name"] == "background"
    assert scopes._trace_scopes == {}
    assert scopes._session_scopes == {}


async def test_scopes_of_sessions_and_their_memos_are_freed(
    blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    from opentelemetry_instrumentation_data_bridge.n_plus_one import detector

    for _ in range(30):
        await job(blog_engine)
    assert len(named(spans, "db.n1_warning")) == 30  # one per session block
    assert scopes._session_scopes == {}
    assert scopes._scope_of_result == {}
    assert scopes.last_loop is scopes.NO_LOOP
    assert len(detector._recent_queries) <= 256


async def test_uninstrument_reports_and_frees_the_scope_of_a_session_left_open(
    blog_engine: Engine, spans: InMemorySpanExporter, instrumented: Any
) -> None:
    session = Session(blog_engine)
    for author in await session.find(Author).to_list():
        await author.articles
    assert len(scopes._session_scopes) == 1
    instrumented.uninstrument()
    try:
        assert scopes._session_scopes == {}
        assert scopes.recent_queries == {}
        [warning] = named(spans, "db.n1_warning")
        assert warning["db.n1.query_count"] == 3
    finally:
        await session.close()
        instrumented.instrument()  # the fixture uninstruments at teardown

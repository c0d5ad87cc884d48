"""N+1 detection against PostgreSQL with the real SDK."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from instrumentation_models import Article, Author
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanContext

from data_bridge_core import Engine, Session, joinedload, selectinload
from opentelemetry_instrumentation_data_bridge import n_plus_one
from opentelemetry_instrumentation_data_bridge.n_plus_one import scopes
from opentelemetry_instrumentation_data_bridge.telemetry import (
    NPlusOneError,
    NPlusOneWarning,
    UnusedEagerLoadWarning,
    configure_n1_detection,
    n1_ignore,
    n1_scope,
)

pytestmark = pytest.mark.usefixtures("instrumented")


def warnings_of(spans: InMemorySpanExporter) -> list[dict[str, Any]]:
    return [
        dict(s.attributes or {}) for s in spans.get_finished_spans() if s.name == "db.n1_warning"
    ]


async def load_all_articles(engine: Engine) -> None:
    async with Session(engine) as session:
        for author in await session.find(Author).to_list():
            await author.articles  # the N+1 line


async def test_one_warning_with_the_fix_and_the_call_site(
    blog_engine: Engine, spans: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    with tracer_provider.get_tracer("t").start_as_current_span("GET /authors"):
        await load_all_articles(blog_engine)
        await load_all_articles(blog_engine)  # same trace, same site: still one warning
    found = warnings_of(spans)
    assert len(found) == 1
    warning = found[0]
    assert warning["db.system"] == "postgresql"
    assert warning["db.relationship.name"] == "articles"
    assert warning["db.relationship.target_model"] == "Article"
    # Reported at the third parent; the span ends with the trace's final count.
    assert warning["db.n1.query_count"] == 6
    assert warning["db.n1.threshold"] == 3
    assert warning["db.n1.recommendation"] == "Use selectinload(Author.articles)"
    assert warning["code.function.name"] == "load_all_articles"
    assert str(warning["code.file.path"]).endswith("test_detection.py")
    request = next(s for s in spans.get_finished_spans() if s.name == "GET /authors")
    assert [e.name for e in request.events] == ["db.n1_warning"]
    assert request.events[0].attributes["db.n1.query_count"] == 3
    n1_span = next(s for s in spans.get_finished_spans() if s.name == "db.n1_warning")
    assert n1_span.parent is not None
    assert n1_span.parent.span_id == request.context.span_id


async def test_no_false_positives(blog_engine: Engine, spans: InMemorySpanExporter) -> None:
    with n1_scope() as scope:
        async with Session(blog_engine) as session:
            one = await session.get(Author, 1)  # a single object, loaded by get()
            assert one is not None
            for _ in range(5):
                await one.articles  # cache hits after the first
            authors = await session.find(Author).options(selectinload(Author.articles)).to_list()
            for author in authors:
                await author.articles  # eager-loaded
        async with Session(blog_engine) as session:
            first, second, _third = await session.find(Author).order_by(Author.id).to_list()
            await first.articles  # two different call sites, each below threshold
            await second.articles
    assert scope.findings == []
    assert warnings_of(spans) == []


async def test_ignore_allowlist_and_disabled(
    blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    with n1_scope(), n1_ignore():
        await load_all_articles(blog_engine)
    configure_n1_detection(threshold=3, allowlist=["Author.articles"])
    with n1_scope():
        await load_all_articles(blog_engine)
    configure_n1_detection(enabled=False)
    with n1_scope():
        await load_all_articles(blog_engine)
    assert warnings_of(spans) == []


async def test_modes(blog_engine: Engine, caplog: pytest.LogCaptureFixture) -> None:
    configure_n1_detection(threshold=3, mode="raise")
    with n1_scope(), pytest.raises(NPlusOneError, match=r"Use selectinload\(Author\.articles\)"):
        await load_all_articles(blog_engine)
    configure_n1_detection(threshold=3, mode="warn")
    # Warned when the scope ends, with the final count.
    with pytest.warns(NPlusOneWarning, match="Author.articles lazy-loaded 3 times"), n1_scope():
        await load_all_articles(blog_engine)
    configure_n1_detection(threshold=3, mode="log", log_level="ERROR")
    with caplog.at_level(logging.ERROR), n1_scope():
        await load_all_articles(blog_engine)
    assert [r.levelno for r in caplog.records if "N+1 query" in r.getMessage()] == [logging.ERROR]


async def test_explicit_scope_records_the_final_count(blog_engine: Engine) -> None:
    configure_n1_detection(threshold=2)
    with n1_scope() as scope:
        await load_all_articles(blog_engine)
    assert len(scope.findings) == 1
    assert scope.findings[0].count == 3
    assert scope.sites == {}  # freed when the scope ends


def test_bad_configuration_is_rejected() -> None:
    with pytest.raises(ValueError, match="threshold"):
        configure_n1_detection(threshold=0)
    with pytest.raises(ValueError, match="mode"):
        configure_n1_detection(mode="shout")
    with pytest.raises(ValueError, match="log level"):
        configure_n1_detection(log_level="LOUD")


def test_scope_state_is_bounded(tracer_provider: TracerProvider) -> None:
    for _ in range(100_000):
        with n1_scope() as scope:
            assert n_plus_one.current_scope() is scope
    tracer = tracer_provider.get_tracer("t")
    for _ in range(5_000):
        with tracer.start_as_current_span("request"):
            assert n_plus_one.current_scope() is not None
    # Each request's scope was freed when its root span ended.
    assert len(scopes._trace_scopes) == 0
    # Roots that never end (or a provider without the processor): capped.
    for _ in range(5_000):
        with trace.use_span(tracer.start_span("never ends"), end_on_exit=False):
            assert n_plus_one.current_scope() is not None
    assert len(scopes._trace_scopes) == n_plus_one.MAX_TRACE_SCOPES
    # A span that is not recording (sampled out, or ended) is no request scope.
    with trace.use_span(trace.NonRecordingSpan(SpanContext(7, 1, is_remote=False))):
        assert n_plus_one.current_scope() is None


async def test_unused_eager_load_is_reported_at_the_end_of_the_trace(
    blog_engine: Engine, spans: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    with tracer_provider.get_tracer("t").start_as_current_span("GET /authors"):
        async with Session(blog_engine) as session:
            authors = await session.find(Author).options(selectinload(Author.articles)).to_list()
            assert [a.name for a in authors]  # the articles are never read
    unused = [s for s in spans.get_finished_spans() if s.name == "db.unused_eager_load"]
    assert len(unused) == 1
    attributes = dict(unused[0].attributes or {})
    assert attributes["db.relationship.name"] == "articles"
    assert attributes["db.relationship.target_model"] == "Article"
    assert attributes["db.relationship.strategy"] == "selectinload"
    assert attributes["db.n1.recommendation"] == (
        "Remove selectinload(Author.articles): the loaded Article rows were never used"
    )
    assert attributes["code.function.name"] == (
        "test_unused_eager_load_is_reported_at_the_end_of_the_trace"
    )
    request = next(s for s in spans.get_finished_spans() if s.name == "GET /authors")
    assert unused[0].parent is not None
    assert unused[0].parent.span_id == request.context.span_id
    assert scopes._trace_scopes == {}


async def test_used_eager_loads_are_not_reported(
    blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    configure_n1_detection(threshold=3, mode="warn")
    with n1_scope() as scope:
        async with Session(blog_engine) as session:
            query = session.find(Author).options(selectinload(Author.articles))
            authors = await query.to_list()
            await authors[0].articles  # one read is enough: the load was used
            articles = await session.find(Article).options(joinedload(Article.author)).to_list()
            await articles[-1].author
    assert scope.unused_eager_loads == []
    assert [s.name for s in spans.get_finished_spans() if "unused" in s.name] == []


async def test_unused_eager_load_modes(blog_engine: Engine) -> None:
    configure_n1_detection(threshold=3, mode="warn")
    with (
        pytest.warns(UnusedEagerLoadWarning, match=r"Remove joinedload\(Article\.author\)"),
        n1_scope() as scope,
    ):
        async with Session(blog_engine) as session:
            await session.find(Article).options(joinedload(Article.author)).to_list()
    assert [(u.model, u.relationship, u.strategy) for u in scope.unused_eager_loads] == [
        ("Article", "author", "joined")
    ]
    configure_n1_detection(threshold=3, allowlist=["Article.author"])
    with n1_scope() as scope:
        async with Session(blog_engine) as session:
            await session.find(Article).options(joinedload(Article.author)).to_list()
    assert scope.unused_eager_loads == []


async def test_a_detector_failure_never_reaches_the_caller(
    blog_engine: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(*args: Any) -> None:
        raise RuntimeError("detector bug")

    monkeypatch.setattr(n_plus_one, "record_lazy_load", broken)
    with caplog.at_level(logging.WARNING), n1_scope():
        async with Session(blog_engine) as session:
            authors = await session.find(Author).order_by(Author.id).to_list()
            loaded = [len(await a.articles) for a in authors]
    assert sum(loaded) > 0
    failures = [r for r in caplog.records if "run N+1 detection" in r.getMessage()]
    assert len(failures) == 1  # logged once per kind of failure, not once per load
    # Its class and frames, not its text (which may hold a value).
    assert "RuntimeError" in failures[0].getMessage() and "in broken" in failures[0].getMessage()
    assert "detector bug" not in failures[0].getMessage()

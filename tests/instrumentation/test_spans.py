"""Span names and attributes of every traced operation, against PostgreSQL and the real SDK."""

from __future__ import annotations

import asyncio

import pytest
from conftest_shared import RecordingSampler
from database_server import server
from instrumentation_models import Article, Author, Remark
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ParentBased,
    Sampler,
    TraceIdRatioBased,
)
from opentelemetry.trace import SpanContext, SpanKind, StatusCode, TraceFlags

from data_bridge_core import Engine, IntegrityError, Session, joinedload, selectinload
from finished_spans import attrs, named
from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor


def only(spans: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = named(spans, name)
    assert len(found) == 1, [s.name for s in spans.get_finished_spans()]
    return found[0]


@pytest.mark.usefixtures("instrumented")
async def test_find_span_has_the_documented_attributes(
    blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    async with Session(blog_engine) as session:
        found = await (
            session.find(Author)
            .filter(Author.age > 18, Author.active == True)  # noqa: E712
            .order_by(Author.age.desc())
            .limit(10)
            .offset(1)
            .to_list()
        )
    assert [a.name for a in found] == ["a1", "a0"]
    span = only(spans, "db.query.find")
    assert span.kind is SpanKind.CLIENT
    a = attrs(span)
    assert a["db.system"] == "postgresql"
    assert a["db.operation.name"] == "find"
    assert a["db.collection.name"] == "authors"
    assert a["db.query.filters_count"] == 2
    assert a["db.query.limit"] == 10
    assert a["db.query.offset"] == 1
    assert a["db.query.order_by"] == "age DESC"
    assert a["db.result.count"] == 2
    expected = server()  # 127.0.0.1:5432/test by default, else the embedded server
    assert a["db.namespace"] == expected.database
    assert {k: v for k, v in a.items() if k.startswith("server.")} == expected.span_attributes()
    assert "db.statement" not in a  # statement capture is opt-in


@pytest.mark.usefixtures("instrumented")
async def test_first_count_exists_aggregate_update_delete(
    blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    async with Session(blog_engine) as session:
        first = await session.find(Author).filter(Author.email == "a2@x.org").first()
        assert first is not None and first.name == "a2"
        assert await session.find(Author).filter(Author.country == "DE").count() == 2
        assert await session.find(Author).filter(Author.id == 3).exists() is True
        rows = await session.find(Author).aggregate(
            [{"$group": {"_id": "$country", "n": {"$sum": 1}}}, {"$sort": {"n": -1}}]
        )
        assert rows == [{"_id": "DE", "n": 2}, {"_id": "FR", "n": 1}]
        assert await session.find(Author).filter(Author.age >= 30).update(active=False) == 2
        assert await session.find(Remark).filter(Remark.article_id == 1).delete() == 1
        await session.commit()

    find = attrs(only(spans, "db.query.find"))
    assert find["db.query.limit"] == 1 and find["db.result.count"] == 1
    count = attrs(only(spans, "db.query.count"))
    assert count["db.operation.name"] == "count" and count["db.result.count"] == 2
    assert count["db.query.filters_count"] == 1
    exists = attrs(only(spans, "db.query.exists"))
    assert exists["db.result.count"] == 1
    aggregate = attrs(only(spans, "db.query.aggregate"))
    assert aggregate["db.collection.name"] == "authors" and aggregate["db.result.count"] == 2
    update = attrs(only(spans, "db.query.update"))
    assert update["db.result.affected_rows"] == 2
    delete = attrs(only(spans, "db.query.delete"))
    assert delete["db.collection.name"] == "remarks" and delete["db.result.affected_rows"] == 1


@pytest.mark.usefixtures("instrumented")
async def test_session_lifecycle_spans(blog_engine: Engine, spans: InMemorySpanExporter) -> None:
    async with Session(blog_engine) as session:
        session.add_all([Author(name="n1", email="n1@x.org"), Author(name="n2", email="n2@x.org")])
        await session.flush()
        author = await session.get(Author, 1)
        assert author is not None
        author.age = 99
        await session.commit()
        session.add(Author(name="n3", email="n3@x.org"))
        await session.rollback()

    assert attrs(only(spans, "db.session.open")) == {
        "db.system": "postgresql",
        "db.system.name": "postgresql",
        "db.session.operation": "open",
    }
    assert attrs(only(spans, "db.session.close"))["db.session.operation"] == "close"
    flushes = named(spans, "db.session.flush")
    first_flush = attrs(flushes[0])
    assert first_flush["db.session.pending_count"] == 2
    assert first_flush["db.session.dirty_count"] == 0
    assert first_flush["db.session.deleted_count"] == 0
    # Two rows in one bulk INSERT: one statement, not a batch (db.operation.batch.size).
    assert "db.operation.batch.size" not in first_flush
    commit = only(spans, "db.session.commit")
    assert attrs(commit)["db.session.dirty_count"] == 1
    # commit flushes through the flush seam: that flush span is the commit's child
    commit_flush = [s for s in flushes if s.parent and s.parent.span_id == commit.context.span_id]
    assert len(commit_flush) == 1
    assert attrs(only(spans, "db.session.rollback"))["db.session.operation"] == "rollback"


@pytest.mark.usefixtures("instrumented")
async def test_lazy_load_miss_then_cache_hit(
    blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    async with Session(blog_engine) as session:
        author = await session.get(Author, 1)
        assert author is not None
        assert len(await author.articles) == 2
        assert len(await author.articles) == 2
    lazy = named(spans, "db.relationship.select")
    assert len(lazy) == 2
    miss, hit = (attrs(s) for s in lazy)
    assert miss == {
        "db.system": "postgresql",
        "db.system.name": "postgresql",
        "db.namespace": blog_engine.database,
        **server().span_attributes(),
        "db.relationship.name": "articles",
        "db.relationship.target_model": "Article",
        "db.relationship.strategy": "select",
        "db.relationship.fk_column": "author_id",
        "db.relationship.cache_hit": False,
        "db.result.count": 2,
        "db.response.returned_rows": 2,
    }
    assert hit["db.relationship.cache_hit"] is True and hit["db.result.count"] == 2


@pytest.mark.usefixtures("instrumented")
async def test_selectinload_levels_and_no_span_for_eager_values(
    blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    async with Session(blog_engine) as session:
        authors = await (
            session.find(Author)
            .options(selectinload(Author.articles).options(selectinload(Article.remarks)))
            .to_list()
        )
        for author in authors:
            for article in await author.articles:
                assert len(await article.remarks) == 1
    assert named(spans, "db.relationship.select") == []
    levels = sorted(
        (attrs(s) for s in named(spans, "db.relationship.selectinload")),
        key=lambda a: int(a["db.relationship.depth"]),  # type: ignore[call-overload]
    )
    assert [(a["db.relationship.name"], a["db.relationship.depth"]) for a in levels] == [
        ("articles", 0),
        ("remarks", 1),
    ]
    assert levels[0]["db.relationship.batch_count"] == 3
    assert levels[0]["db.result.count"] == 6
    assert levels[0]["db.relationship.strategy"] == "selectinload"
    assert levels[0]["db.relationship.fk_column"] == "author_id"
    assert levels[1]["db.relationship.batch_count"] == 6
    assert levels[1]["db.result.count"] == 6
    find = only(spans, "db.query.find")
    for level in named(spans, "db.relationship.selectinload"):
        assert level.parent is not None and level.parent.span_id == find.context.span_id


@pytest.mark.usefixtures("instrumented")
async def test_joinedload_span(blog_engine: Engine, spans: InMemorySpanExporter) -> None:
    async with Session(blog_engine) as session:
        articles = await session.find(Article).options(joinedload(Article.author)).to_list()
        assert {(await a.author).name for a in articles} == {"a0", "a1", "a2"}
    joined = attrs(only(spans, "db.relationship.joined"))
    assert joined["db.relationship.strategy"] == "joined"
    assert joined["db.relationship.batch_count"] == 6
    assert joined["db.result.count"] == 3
    assert named(spans, "db.relationship.select") == []


@pytest.mark.usefixtures("instrumented")
async def test_database_error_is_recorded_and_reraised_unchanged(
    blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    async with Session(blog_engine) as session:
        session.add(Author(name="dup", email="a0@x.org"))
        with pytest.raises(IntegrityError) as caught:
            await session.commit()
    assert caught.value.sqlstate == "23505"
    for name in ("db.session.flush", "db.session.commit"):
        span = only(spans, name)
        assert span.status.status_code is StatusCode.ERROR
        assert "IntegrityError" in (span.status.description or "")
        a = attrs(span)
        assert a["error.type"] == "psycopg.errors.UniqueViolation"
        assert a["db.response.status_code"] == "23505"
        events = [e for e in span.events if e.name == "exception"]
        assert len(events) == 1
        assert events[0].attributes is not None
        assert events[0].attributes["exception.type"] == "data_bridge_core.errors.IntegrityError"


@pytest.mark.usefixtures("instrumented")
async def test_spans_nest_under_the_callers_span_across_concurrent_tasks(
    blog_engine: Engine, spans: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    tracer = tracer_provider.get_tracer("test")

    async def request(name: str, pk: int) -> None:
        with tracer.start_as_current_span(name):
            async with Session(blog_engine) as session:
                await session.get(Author, pk)
                await asyncio.sleep(0)
                await session.find(Article).filter(Article.author_id == pk).to_list()

    await asyncio.gather(request("r1", 1), request("r2", 2), request("r3", 3))
    roots = {s.name: s for s in spans.get_finished_spans() if s.name.startswith("r")}
    assert set(roots) == {"r1", "r2", "r3"}
    finds = named(spans, "db.query.find")
    assert len(finds) == 6
    for root in roots.values():
        children = [
            f for f in finds if f.parent is not None and f.parent.span_id == root.context.span_id
        ]
        assert len(children) == 2
        assert all(c.context.trace_id == root.context.trace_id for c in children)


async def test_samplers_see_the_semconv_sampling_attributes(blog_engine: Engine) -> None:
    sampler = RecordingSampler()
    provider = TracerProvider(sampler=sampler)
    instrumentor = DataBridgeInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        async with Session(blog_engine) as session:
            authors = await session.find(Author).filter(Author.id > 0).limit(2).to_list()
    finally:
        instrumentor.uninstrument()
    assert len(authors) == 2
    assert [seen for seen in sampler.seen if seen["name"].startswith("db.query.")] == [
        {
            "name": "db.query.find",
            "db.system": "postgresql",
            "db.system.name": "postgresql",
            "db.operation.name": "find",
            "db.collection.name": "authors",
            "db.query.summary": "SELECT authors",
            "db.namespace": blog_engine.database,
            **server().span_attributes(),
        }
    ]


@pytest.mark.parametrize(
    "sampler",
    [ALWAYS_OFF, ParentBased(ALWAYS_OFF), ParentBased(TraceIdRatioBased(1.0))],
    ids=["always_off", "parent_based_off", "parent_based_ratio"],
)
async def test_spans_a_sampler_would_drop_are_not_built(
    blog_engine: Engine, sampler: Sampler, monkeypatch: pytest.MonkeyPatch
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=sampler)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    instrumentor = DataBridgeInstrumentor()
    instrumentor.instrument(tracer_provider=provider, meter_provider=meters)
    seen: list[object] = []
    execute = Session.run_statement

    async def spy(self: Session, *args: object, **kwargs: object) -> object:
        seen.append(trace.get_current_span())  # the span current while SQL runs
        return await execute(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Session, "run_statement", spy)
    unsampled = trace.NonRecordingSpan(
        SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(0))
    )
    try:
        with trace.use_span(unsampled):  # a request whose trace was not sampled
            async with Session(blog_engine) as session:
                authors = await session.find(Author).to_list()
                await authors[0].articles
    finally:
        instrumentor.uninstrument()
    assert len(authors) == 3
    assert exporter.get_finished_spans() == ()
    # No span was built: the unsampled parent stays current under both loads.
    assert seen == [unsampled, unsampled]
    # Metrics do not depend on sampling.
    points = [
        p
        for rm in reader.get_metrics_data().resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "db.query.count"
        for p in m.data.data_points
    ]
    assert sum(p.value for p in points if p.attributes["db.operation.name"] == "find") == 1


async def test_sampled_children_are_still_recorded(blog_engine: Engine) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ParentBased(ALWAYS_OFF))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = DataBridgeInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    sampled = trace.NonRecordingSpan(
        SpanContext(0xABC, 0xDEF, is_remote=True, trace_flags=TraceFlags(TraceFlags.SAMPLED))
    )
    try:
        with trace.use_span(sampled):  # the caller's service sampled this trace
            async with Session(blog_engine) as session:
                await session.find(Author).to_list()
    finally:
        instrumentor.uninstrument()
    finished = exporter.get_finished_spans()
    assert [s.name for s in finished if s.name == "db.query.find"] == ["db.query.find"]
    assert all(s.context.trace_id == 0xABC for s in finished)


async def test_nothing_to_record_means_the_original_coroutine(blog_engine: Engine) -> None:
    from opentelemetry.metrics import NoOpMeterProvider

    from data_bridge_core.query import Query

    original = Query.__dict__["to_list"]
    instrumentor = DataBridgeInstrumentor()
    instrumentor.instrument(
        tracer_provider=TracerProvider(sampler=ALWAYS_OFF), meter_provider=NoOpMeterProvider()
    )
    try:
        async with Session(blog_engine) as session:
            pending = session.find(Author).to_list()
            # No span to build and no meter to feed: the query's own coroutine, unwrapped.
            assert pending.cr_code is original.__code__
            assert len(await pending) == 3
    finally:
        instrumentor.uninstrument()
    recording = DataBridgeInstrumentor()
    recording.instrument(tracer_provider=TracerProvider())
    try:
        async with Session(blog_engine) as session:
            pending = session.find(Author).to_list()
            assert pending.cr_code is not original.__code__  # the traced path
            assert len(await pending) == 3
    finally:
        recording.uninstrument()

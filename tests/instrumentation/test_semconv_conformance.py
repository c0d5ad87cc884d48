"""The database semantic conventions, applied consistently (issue 21, findings 6-8, 10-11):
one mode per OTEL_SEMCONV_STABILITY_OPT_IN setting, db.query.summary, operation
durations for every operation that talks to the database, attribute values."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from database_server import server
from instrumentation_models import Article, Author, Remark
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from data_bridge_core import Engine, Session, selectinload
from finished_spans import attrs, named
from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor

SCHEMA_URL = "https://opentelemetry.io/schemas/1.33.0"


@pytest.fixture
def instrument(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> Iterator[Any]:
    instrumentor = DataBridgeInstrumentor()

    def start(**options: Any) -> None:
        instrumentor.instrument(
            tracer_provider=tracer_provider, meter_provider=meter_provider, **options
        )

    yield start
    instrumentor.uninstrument()


def points(reader: InMemoryMetricReader, name: str) -> list[Any]:
    data = reader.get_metrics_data()
    found: list[Any] = []
    for resource in data.resource_metrics if data is not None else ():
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                if metric.name == name:
                    found.extend(metric.data.data_points)
    return found


def server_keys() -> dict[str, Any]:
    db = server()
    return {"db.namespace": db.database, **db.span_attributes()}


async def test_the_default_mode_has_the_references_keys_and_every_stable_one(
    instrument: Any, blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    instrument(capture_statement=True)
    async with Session(blog_engine) as session:
        assert len(await session.find(Author).to_list()) == 3
    [find] = named(spans, "db.query.find")
    got = attrs(find)
    assert got["db.system"] == got["db.system.name"] == "postgresql"
    assert got["db.result.count"] == got["db.response.returned_rows"] == 3
    assert got["db.statement"] == got["db.query.text"]
    assert got["db.query.summary"] == "SELECT authors"
    assert got["db.operation.name"] == "find"
    assert got["db.collection.name"] == "authors"
    assert find.instrumentation_scope is not None
    assert find.instrumentation_scope.schema_url == SCHEMA_URL


async def test_the_database_mode_keeps_only_the_stable_keys(
    instrument: Any,
    blog_engine: Engine,
    spans: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "http,database")
    instrument(capture_statement=True)
    async with Session(blog_engine) as session:
        assert len(await session.find(Author).to_list()) == 3
        await session.execute("SELECT 1")
    for span in spans.get_finished_spans():
        got = attrs(span)
        assert not {"db.system", "db.statement", "db.result.count"} & set(got), span.name
        assert got["db.system.name"] == "postgresql", span.name
    [find] = named(spans, "db.query.find")
    assert attrs(find)["db.response.returned_rows"] == 3
    assert str(attrs(find)["db.query.text"]).startswith("SELECT ")


async def test_the_dup_mode_has_both_names_of_each_renamed_key(
    instrument: Any,
    blog_engine: Engine,
    spans: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "database,database/dup")
    instrument(capture_statement=True)
    async with Session(blog_engine) as session:
        assert await session.find(Author).count() == 3
    got = attrs(named(spans, "db.query.count")[0])
    assert got["db.system"] == got["db.system.name"] == "postgresql"
    assert got["db.statement"] == got["db.query.text"]


async def test_every_query_span_has_a_query_summary(
    instrument: Any, blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    instrument()
    async with Session(blog_engine) as session:
        await session.find(Author).count()
        await session.find(Author).exists()
        await session.find(Author).filter(Author.id == 1).update(age=41)
        await session.find(Article).filter(Article.id == -1).delete()
        await session.find(Author).aggregate([{"$count": "n"}])
        async for _ in session.find(Author).stream():
            pass
        await session.execute("select 1")
        await session.from_sql(Author, "SELECT * FROM authors")
    summaries = {s.name: attrs(s).get("db.query.summary") for s in spans.get_finished_spans()}
    assert summaries["db.query.count"] == "SELECT authors"
    assert summaries["db.query.exists"] == "SELECT authors"
    assert summaries["db.query.update"] == "UPDATE authors"
    assert summaries["db.query.delete"] == "DELETE articles"
    assert summaries["db.query.aggregate"] == "SELECT authors"
    assert summaries["db.query.stream"] == "SELECT authors"
    assert summaries["db.query.execute"] == "select"
    assert summaries["db.query.from_sql"] == "SELECT authors"


async def test_raw_sql_keeps_its_operation_name_as_written(
    instrument: Any, blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    instrument()
    async with Session(blog_engine) as session:
        await session.execute("SELECT 1")
        await session.execute("  with x as (select 1) select * from x")
    names = [attrs(s)["db.operation.name"] for s in named(spans, "db.query.execute")]
    assert names == ["SELECT", "with"]


async def test_count_returned_one_row_whatever_the_count(
    instrument: Any,
    blog_engine: Engine,
    spans: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
) -> None:
    instrument()
    async with Session(blog_engine) as session:
        assert await session.find(Author).count() == 3
        assert await session.find(Author).exists() is True
    count = attrs(named(spans, "db.query.count")[0])
    assert count["db.result.count"] == 3  # the reference's: the count
    assert count["db.response.returned_rows"] == 1  # the convention's: rows that came back
    assert attrs(named(spans, "db.query.exists")[0])["db.response.returned_rows"] == 1
    rows = {
        p.attributes["db.operation.name"]: (p.count, p.sum)
        for p in points(metric_reader, "db.client.response.returned_rows")
    }
    assert rows["count"] == (1, 1)
    assert rows["exists"] == (1, 1)


async def test_returned_rows_histogram_has_the_conventions_bucket_advice(
    instrument: Any, blog_engine: Engine, metric_reader: InMemoryMetricReader
) -> None:
    instrument()
    async with Session(blog_engine) as session:
        await session.find(Author).to_list()
    [point] = points(metric_reader, "db.client.response.returned_rows")
    assert list(point.explicit_bounds) == [
        1,
        2,
        5,
        10,
        20,
        50,
        100,
        200,
        500,
        1000,
        2000,
        5000,
        10000,
    ]


async def test_batch_size_is_set_only_for_a_real_batch_of_statements(
    instrument: Any, blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    instrument()
    async with Session(blog_engine) as session:
        for n in range(3):  # one INSERT ... unnest statement: not a batch
            session.add(Author(name=f"n{n}", email=f"n{n}@example.com"))
        await session.flush()
        authors = await session.find(Author).order_by(Author.id).to_list()
        for n, author in enumerate(authors[:3]):  # three UPDATEs in one pipeline: a batch
            author.age = 60 + n
        await session.flush()
    first, second = named(spans, "db.session.flush")
    assert "db.operation.batch.size" not in attrs(first)
    assert attrs(second)["db.operation.batch.size"] == 3


async def test_only_spans_that_run_sql_are_client_spans_and_they_name_the_server(
    instrument: Any, blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    instrument()
    async with Session(blog_engine) as session:
        article = await session.get(Article, 1)
        assert article is not None
        await article.author  # a SELECT (the author is not in the identity map yet)
        await article.author  # cached: no SQL
        authors = await session.find(Author).options(selectinload(Author.articles)).to_list()
        await session.refresh(authors[0])
        authors[0].age = 77
        await session.commit()
    loads = named(spans, "db.relationship.select")
    miss, hit = loads
    assert (attrs(miss)["db.relationship.cache_hit"], miss.kind) == (False, SpanKind.CLIENT)
    assert (attrs(hit)["db.relationship.cache_hit"], hit.kind) == (True, SpanKind.INTERNAL)
    keys = server_keys()
    for name in ("db.session.commit", "db.session.flush", "db.session.refresh"):
        [span] = named(spans, name)
        assert span.kind == SpanKind.CLIENT, name
        assert keys.items() <= attrs(span).items(), name
    for span in (miss, *named(spans, "db.relationship.selectinload")):
        assert keys.items() <= attrs(span).items(), span.name
    assert "db.namespace" not in attrs(hit)
    for name in ("db.session.open", "db.session.close"):
        assert "db.namespace" not in attrs(named(spans, name)[0])


async def test_operation_duration_covers_flush_commit_refresh_and_loads(
    instrument: Any, blog_engine: Engine, metric_reader: InMemoryMetricReader
) -> None:
    instrument()
    async with Session(blog_engine) as session:
        article = await session.get(Article, 1)
        assert article is not None
        await article.author
        authors = await session.find(Author).options(selectinload(Author.articles)).to_list()
        await session.refresh(authors[0])
        authors[0].age = 70
        await session.commit()
    seen = {
        (p.attributes["db.operation.name"], p.attributes.get("db.collection.name")): p
        for p in points(metric_reader, "db.client.operation.duration")
    }
    for key in (
        ("flush", None),
        ("commit", None),
        ("refresh", "authors"),
        ("select", "authors"),  # the lazy load of Article.author
        ("selectinload", "articles"),
    ):
        assert key in seen, sorted(seen)
        point = seen[key]
        assert point.count == 1, key
        assert point.attributes["db.system.name"] == "postgresql"
        assert point.attributes["db.namespace"] == server().database
    # The reference's ORM metrics stay the queries' only.
    counted = points(metric_reader, "db.query.count")
    assert {p.attributes["db.operation.name"] for p in counted} == {"find"}


async def test_a_flush_with_capture_on_records_every_statement_it_sent(
    instrument: Any, blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    instrument(capture_statement=True)
    async with Session(blog_engine) as session:
        author = await session.get(Author, 3)
        remark = await session.get(Remark, 1)
        assert author is not None and remark is not None
        session.add(Author(name="new", email="new@example.com"))
        author.age = 33
        await session.delete(remark)
        await session.flush()
    flush = attrs(named(spans, "db.session.flush")[-1])
    text = str(flush["db.query.text"])
    parts = text.split("; ")
    assert sorted(p.split()[0] for p in parts) == ["DELETE", "INSERT", "UPDATE"], text
    assert flush["db.statement"] == text


async def test_a_flush_with_capture_off_records_no_statement(
    instrument: Any, blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    instrument(capture_statement=False)
    async with Session(blog_engine) as session:
        session.add(Author(name="new", email="new@example.com"))
        await session.flush()
    flush = attrs(named(spans, "db.session.flush")[-1])
    assert "db.query.text" not in flush and "db.statement" not in flush

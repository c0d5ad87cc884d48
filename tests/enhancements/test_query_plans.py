"""instrument(explain_threshold_ms=...): a query_plan event on slow reads, against PostgreSQL."""

from __future__ import annotations

import pytest
from enhancements_fixtures import Instrument
from instrumentation_models import Article, Author, Remark
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from data_bridge_core import Engine, Session
from opentelemetry_instrumentation_data_bridge import config, query_plans

SECRET_EMAIL = "s3cret-4a9c@example.org"
SECRET_AGE = 987654321


def plans(span: ReadableSpan) -> list[str]:
    return [str((e.attributes or {})["plan"]) for e in span.events if e.name == "query_plan"]


def finished(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name == name]


async def test_a_slow_read_gets_its_generic_plan_without_any_bound_value(
    instrument_with: Instrument, blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    instrument_with(explain_threshold_ms=0, capture_statement=True)  # every read is "slow"
    async with Session(blog_engine) as session:
        found = await (
            session.find(Author)
            .filter(Author.email == SECRET_EMAIL, Author.age > SECRET_AGE)
            .to_list()
        )
    assert found == []
    [find] = finished(spans, "db.query.find")
    [plan] = plans(find)
    assert "on authors" in plan
    assert "$1" in plan and "$2" in plan
    assert SECRET_EMAIL not in plan
    assert str(SECRET_AGE) not in plan
    assert "EXPLAIN" not in str((find.attributes or {})["db.statement"])  # the read's own SQL


async def test_writes_never_get_a_plan_while_reads_in_the_same_session_do(
    instrument_with: Instrument, blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    instrument_with(explain_threshold_ms=0)
    async with Session(blog_engine) as session:
        await session.find(Author).filter(Author.id == 1).update(age=50)
        await session.find(Remark).filter(Remark.id == 2).delete()
        await session.find(Article).count()
        await session.rollback()
    assert [plans(s) for s in finished(spans, "db.query.update")] == [[]]
    assert [plans(s) for s in finished(spans, "db.query.delete")] == [[]]
    [count] = finished(spans, "db.query.count")
    assert len(plans(count)) == 1
    assert "on articles" in plans(count)[0]


async def test_each_statement_shape_is_planned_once_per_interval(
    instrument_with: Instrument, blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    instrument_with(explain_threshold_ms=0)
    async with Session(blog_engine) as session:
        await session.find(Author).filter(Author.id == 1).to_list()
        await session.find(Author).filter(Author.id == 2).to_list()  # same shape, other value
        await session.find(Author).filter(Author.name == "a0").to_list()  # another shape
    assert [len(plans(s)) for s in finished(spans, "db.query.find")] == [1, 0, 1]
    assert query_plans.PLAN_INTERVAL_S == 300.0


async def test_a_lazy_load_is_a_read_and_gets_a_plan_on_its_relationship_span(
    instrument_with: Instrument, blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    instrument_with(explain_threshold_ms=0)
    async with Session(blog_engine) as session:
        [author] = await session.find(Author).filter(Author.id == 1).to_list()
        assert len(await author.articles) == 2
    [load] = finished(spans, "db.relationship.select")
    [plan] = plans(load)
    assert "on articles" in plan


async def test_reads_faster_than_the_threshold_get_no_plan(
    instrument_with: Instrument, blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    instrument_with(explain_threshold_ms=10**9)
    async with Session(blog_engine) as session:
        assert len(await session.find(Author).to_list()) == 3
    [find] = finished(spans, "db.query.find")
    assert plans(find) == []
    assert [s.name for s in spans.get_finished_spans()] == [
        "db.session.open",
        "db.query.find",
        "db.session.close",
    ]


async def test_without_the_option_nothing_wraps_the_statement_seam(
    instrument_with: Instrument,
) -> None:
    from data_bridge_core.session import Session as CoreSession

    instrument_with()
    assert not hasattr(CoreSession.run_statement, "__wrapped__")


def test_a_bad_threshold_is_refused_before_anything_is_patched(
    instrument_with: Instrument,
) -> None:
    with pytest.raises(ValueError, match="explain_threshold_ms must be >= 0"):
        instrument_with(explain_threshold_ms=-5)
    from data_bridge_core.query import Query

    assert not hasattr(Query.to_list, "__wrapped__")


def test_a_shape_is_planned_again_once_its_interval_has_passed(
    tracer_provider: TracerProvider,
) -> None:
    statement = "SELECT id FROM authors WHERE id = %s"
    again = query_plans.QueryPlans(threshold_ms=0, interval_s=0)
    held = query_plans.QueryPlans(threshold_ms=0)
    # A span of the instrumentation's own scope: plans go only on its operations' spans.
    ours = tracer_provider.get_tracer(config.SCOPE)
    with ours.start_as_current_span("db.query.find") as span:
        assert [again.wants(statement, span, 1) for _ in range(2)] == [True, True]
        assert [held.wants(statement, span, 1) for _ in range(2)] == [True, False]
        assert held.wants("UPDATE authors SET age = %s", span, 1) is False


async def test_uninstrument_restores_the_statement_seam_wrapped_twice(
    instrument_with: Instrument,
) -> None:
    original = Session.run_statement
    instrumentor = instrument_with(
        explain_threshold_ms=0, enable_commenter=True, capture_statement=True
    )
    assert Session.run_statement is not original
    instrumentor.uninstrument()
    assert Session.run_statement is original


async def test_a_plan_goes_only_on_the_orm_span_that_sent_the_read_never_on_the_callers(
    instrument_with: Instrument,
    blog_engine: Engine,
    spans: InMemorySpanExporter,
    tracer_provider: TracerProvider,
) -> None:
    instrument_with(explain_threshold_ms=0)
    app = tracer_provider.get_tracer("app")
    async with Session(blog_engine) as session:
        # The caller's span has an ORM-like name; the seam below every operation,
        # called directly, runs its read under it with no ORM span of its own.
        with app.start_as_current_span("db.query.report"):
            await session.run_statement("SELECT name FROM authors WHERE age > %s", [1])
        with app.start_as_current_span("db.query.report"):
            await session.execute("SELECT email FROM authors WHERE age > %s", [1])
    reports = finished(spans, "db.query.report")
    assert [plans(s) for s in reports] == [[], []]
    [execute] = finished(spans, "db.query.execute")
    [plan] = plans(execute)
    assert "on authors" in plan


async def test_the_plan_helper_never_runs_a_second_statement_hidden_behind_a_read(
    blog_engine: Engine,
) -> None:
    from data_bridge_core.query_plans import generic_plan

    async with Session(blog_engine) as session:
        await session.execute("CREATE TABLE plan_log (n int)")
        hidden = "SELECT 1; INSERT INTO plan_log VALUES (1)"
        assert await generic_plan(session, hidden) is None
        assert await generic_plan(session, "SELECT 1 ; ") is not None  # a trailing `;` is fine
        assert (await session.execute("SELECT count(*) FROM plan_log")).rows == [(0,)]
        await session.rollback()

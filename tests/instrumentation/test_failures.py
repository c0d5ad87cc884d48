"""Failed operations: no bound value in spans, events, metrics or logs; raising processors."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from instrumentation_models import Author
from opentelemetry.context import Context
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from data_bridge_core import (
    ColumnTypeError,
    DatabaseError,
    Engine,
    IntegrityError,
    Session,
)
from exported_text import everything_exported
from finished_spans import named
from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor
from opentelemetry_instrumentation_data_bridge.error_description import describe
from opentelemetry_instrumentation_data_bridge.telemetry import create_linked_task

SECRET = "s3cr3t"


@pytest.fixture
def exported(
    spans: InMemorySpanExporter,
    metric_reader: InMemoryMetricReader,
    caplog: pytest.LogCaptureFixture,
) -> Callable[[], str]:
    """Every attribute, event, status, metric point and log record (DEBUG and up), as one
    text, read when called: the place a failed operation must leave no bound value."""
    caplog.set_level(logging.DEBUG)
    return lambda: everything_exported(spans, metric_reader, caplog)


def failed(spans: InMemorySpanExporter, name: str) -> ReadableSpan:
    found = named(spans, name)
    assert len(found) == 1, [s.name for s in spans.get_finished_spans()]
    assert found[0].status.status_code is StatusCode.ERROR
    return found[0]


def exception_event(span: ReadableSpan) -> dict[str, Any]:
    events = [dict(e.attributes or {}) for e in span.events if e.name == "exception"]
    assert len(events) == 1
    return events[0]


@pytest.mark.usefixtures("instrumented")
async def test_a_unique_violation_records_class_sqlstate_and_constraint_but_not_the_value(
    blog_engine: Engine,
    spans: InMemorySpanExporter,
    exported: Callable[[], str],
) -> None:
    async with Session(blog_engine) as session:
        session.add(Author(name="x", email=f"{SECRET}@x"))
        await session.commit()
        session.add(Author(name="y", email=f"{SECRET}@x"))
        with pytest.raises(IntegrityError) as caught:
            await session.commit()
    # The caller's exception is PostgreSQL's own, value included.
    assert f"{SECRET}@x" in str(caught.value)
    for name in ("db.session.flush", "db.session.commit"):
        span = named(spans, name)[-1]
        assert span.status.status_code is StatusCode.ERROR
        a = dict(span.attributes or {})
        # error.type: the driver's class behind the core's wrapper (semconv: the original).
        assert a["error.type"] == "psycopg.errors.UniqueViolation"
        assert a["db.response.status_code"] == "23505"
        assert a["db.error.constraint_name"] == "authors_email_key"
        assert a["db.error.table_name"] == "authors"
        event = exception_event(span)
        assert event["exception.type"] == "data_bridge_core.errors.IntegrityError"
        message = event["exception.message"]
        assert message.startswith("[23505] unique_violation (schema=dbi_")
        assert message.endswith(", table=authors, constraint=authors_email_key)")
        assert "Traceback (most recent call last)" in event["exception.stacktrace"]
        assert f"psycopg.errors.UniqueViolation: {message}" in event["exception.stacktrace"]
        assert span.status.description == f"IntegrityError: {message}"
    assert SECRET not in exported()


@pytest.mark.usefixtures("instrumented")
async def test_a_column_type_error_records_model_column_and_problem_but_not_the_value(
    blog_engine: Engine,
    spans: InMemorySpanExporter,
    exported: Callable[[], str],
) -> None:
    async with Session(blog_engine) as session:
        with pytest.raises(ColumnTypeError) as caught:
            await session.find(Author).filter(Author.age == SECRET).to_list()
    span = failed(spans, "db.query.find")
    event = exception_event(span)
    assert event["exception.type"] == "data_bridge_core.errors.ColumnTypeError"
    assert event["exception.message"] == str(caught.value) == "Author.age expects int, got str"
    assert dict(span.attributes or {})["error.type"] == "data_bridge_core.errors.ColumnTypeError"
    assert SECRET not in exported()


@pytest.mark.usefixtures("instrumented")
async def test_invalid_json_in_raw_sql_leaves_no_value_from_the_context_line(
    blog_engine: Engine,
    spans: InMemorySpanExporter,
    exported: Callable[[], str],
) -> None:
    async with Session(blog_engine) as session:
        with pytest.raises(DatabaseError) as caught:
            await session.execute("SELECT %s::jsonb", [f'{{"key": {SECRET}}}'])
    assert SECRET in str(caught.value)  # PostgreSQL's DETAIL/CONTEXT name it
    span = failed(spans, "db.query.execute")
    event = exception_event(span)
    assert event["exception.message"] == "[22P02] invalid_text_representation"
    assert dict(span.attributes or {})["db.response.status_code"] == "22P02"
    assert SECRET not in exported()


@pytest.mark.usefixtures("instrumented")
async def test_a_value_quoted_in_the_primary_message_is_left_out_with_the_whole_text(
    blog_engine: Engine,
    spans: InMemorySpanExporter,
    exported: Callable[[], str],
) -> None:
    async with Session(blog_engine) as session:
        with pytest.raises(DatabaseError):
            await session.execute("SELECT %s::int", [SECRET])
        await session.rollback()
        with pytest.raises(DatabaseError):
            await session.execute("SELECT nope FROM authors")
    bad_int, unknown_column = (
        exception_event(s)["exception.message"]
        for s in spans.get_finished_spans()
        if s.name == "db.query.execute"
    )
    assert bad_int == "[22P02] invalid_text_representation"
    # An identifier of the statement is not a value, but the server's text is never read.
    assert unknown_column == "[42703] undefined_column"
    assert SECRET not in exported()


@pytest.mark.usefixtures("instrumented")
async def test_the_text_of_a_raise_in_a_database_function_is_left_out(
    blog_engine: Engine,
    spans: InMemorySpanExporter,
    exported: Callable[[], str],
) -> None:
    async with Session(blog_engine) as session:
        await session.execute(
            "CREATE FUNCTION check_email(e text) RETURNS void LANGUAGE plpgsql AS "
            "$$ BEGIN RAISE EXCEPTION 'bad email %', e; END $$"
        )
        with pytest.raises(DatabaseError) as caught:
            await session.execute("SELECT check_email(%s)", [SECRET])
    assert SECRET in str(caught.value)
    failed_call = named(spans, "db.query.execute")[-1]
    event = exception_event(failed_call)
    assert event["exception.message"] == ("[P0001] raise_exception (raised by a database function)")
    assert SECRET not in exported()


class Raising(SpanProcessor):
    def __init__(self, on_start: bool, on_end: bool) -> None:
        self.raise_on_start = on_start
        self.raise_on_end = on_end

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        if self.raise_on_start:
            raise RuntimeError("processor on_start")

    def on_end(self, span: ReadableSpan) -> None:
        if self.raise_on_end:
            raise RuntimeError("processor on_end")


@contextmanager
def instrumented_behind(first: SpanProcessor) -> Iterator[InMemorySpanExporter]:
    """Instrumented with a provider whose first processor is `first` and whose
    second exports to the exporter yielded; uninstrumented on the way out."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(first)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = DataBridgeInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        yield exporter
    finally:
        instrumentor.uninstrument()


@pytest.mark.parametrize(("on_start", "on_end"), [(True, False), (False, True)])
async def test_a_raising_span_processor_never_breaks_an_orm_call(
    blog_engine: Engine, caplog: pytest.LogCaptureFixture, on_start: bool, on_end: bool
) -> None:
    with (
        instrumented_behind(Raising(on_start, on_end)) as exporter,
        caplog.at_level(logging.WARNING, logger="opentelemetry_instrumentation_data_bridge"),
    ):
        ok = 0
        for i in range(50):
            async with Session(blog_engine) as session:
                assert len(await session.find(Author).to_list()) >= 3
                session.add(Author(name=f"p{i}", email=f"p{i}@x.org"))
                await session.commit()
            ok += 1
    assert ok == 50
    async with Session(blog_engine) as session:
        assert await session.find(Author).count() == 53  # each row committed exactly once
    # Logged as class and frames, not its text (which may hold a value).
    hook = "in on_start" if on_start else "in on_end"  # the raising hook's frame
    ours = [
        r for r in caplog.records if hook in r.getMessage() and "RuntimeError" in r.getMessage()
    ]
    assert len(ours) == 1  # logged once, not once per span
    assert (
        ours[0]
        .getMessage()
        .startswith(
            "data-bridge instrumentation failed to " + ("start" if on_start else "end") + " a span"
        )
    )
    # The raising processor comes first, so the exporter behind it saw no span end.
    assert exporter.get_finished_spans() == ()


async def test_the_same_workload_with_a_well_behaved_processor_exports_spans(
    blog_engine: Engine,
) -> None:
    with instrumented_behind(Raising(False, False)) as exporter:
        async with Session(blog_engine) as session:
            session.add(Author(name="p", email="p@x.org"))
            await session.commit()
    names = [s.name for s in exporter.get_finished_spans()]
    assert names.count("db.session.commit") == 1


@pytest.mark.usefixtures("instrumented")
async def test_a_failing_linked_task_records_its_error_without_the_value(
    blog_engine: Engine,
    spans: InMemorySpanExporter,
    exported: Callable[[], str],
) -> None:

    async def signup() -> None:
        async with Session(blog_engine) as session:
            session.add(Author(name="dup", email="a0@x.org"))  # a0@x.org exists
            await session.commit()

    with pytest.raises(IntegrityError) as caught:
        await create_linked_task(signup(), name="signup")
    assert "a0@x.org" in str(caught.value)
    task_span = failed(spans, "signup")
    message = exception_event(task_span)["exception.message"]
    assert message.startswith("[23505] unique_violation (schema=dbi_")
    assert message.endswith(", table=authors, constraint=authors_email_key)")
    assert "a0@x.org" not in exported()


def test_other_exceptions_are_described_by_their_class_not_their_text() -> None:
    described = describe(RuntimeError(f"user '{SECRET}' has 42 items in \"cart\""))
    assert described.type == "RuntimeError"  # built-in: unqualified, as the SDK writes it
    assert described.message == "Unspecified run-time error."  # its class's docstring
    assert described.status == "RuntimeError: Unspecified run-time error."
    assert describe(KeyError(SECRET)).message == "Mapping key not found."

"""add_span_processor and SlowQueryProcessor, on the real SDK and PostgreSQL."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from enhancements_fixtures import Instrument
from instrumentation_models import Author
from opentelemetry.context import Context
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from data_bridge_core import Engine, Session
from opentelemetry_instrumentation_data_bridge.telemetry import (
    SLOW_QUERY_LOGGER,
    SlowOperation,
    SlowQueryProcessor,
    add_span_processor,
    remove_span_processor,
)


class NameRecorder:
    def __init__(self) -> None:
        self.started: list[str] = []
        self.ended: list[str] = []

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        self.started.append(span.name)

    def on_end(self, span: Any) -> None:
        self.ended.append(span.name)


class Failing:
    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        raise RuntimeError("on_start broke")

    def on_end(self, span: Any) -> None:
        raise RuntimeError("on_end broke")


@pytest.fixture
def registered() -> Any:
    """Processors added in a test are removed after it (registration is process-wide)."""
    added: list[Any] = []

    def register(processor: Any) -> Any:
        add_span_processor(processor)
        added.append(processor)
        return processor

    yield register
    for processor in added:
        remove_span_processor(processor)


async def test_a_processor_sees_every_span_the_instrumentation_starts_and_no_other(
    instrument_with: Instrument,
    tracer_provider: TracerProvider,
    blog_engine: Engine,
    registered: Any,
) -> None:
    recorder = registered(NameRecorder())
    instrument_with()
    with tracer_provider.get_tracer("app").start_as_current_span("request"):
        async with Session(blog_engine) as session:
            authors = await session.find(Author).to_list()
            await session.find(Author).count()
    assert len(authors) == 3
    expected = ["db.session.open", "db.query.find", "db.query.count", "db.session.close"]
    assert recorder.started == expected
    assert recorder.ended == expected  # "request" (another tracer) is not among them


async def test_a_failing_processor_never_breaks_the_orm_call_and_is_logged_once(
    instrument_with: Instrument,
    blog_engine: Engine,
    spans: InMemorySpanExporter,
    registered: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    registered(Failing())
    recorder = registered(NameRecorder())  # after the failing one: still fed
    instrument_with()
    async with Session(blog_engine) as session:
        first = await session.find(Author).order_by(Author.id).to_list()
        second = await session.find(Author).filter(Author.id == 2).to_list()
    assert [a.name for a in first] == ["a0", "a1", "a2"]
    assert [a.name for a in second] == ["a1"]
    assert [s.name for s in spans.get_finished_spans()].count("db.query.find") == 2
    assert recorder.ended.count("db.query.find") == 2
    failures = [
        r.getMessage() for r in caplog.records if "failed to run Failing." in r.getMessage()
    ]
    assert len(failures) == 2  # once for on_start, once for on_end, not once per span
    assert "Failing.on_start" in failures[0]
    assert "Failing.on_end" in failures[1]


async def test_processors_get_nothing_after_uninstrument_and_again_after_instrument(
    instrument_with: Instrument, blog_engine: Engine, registered: Any
) -> None:
    recorder = registered(NameRecorder())
    instrumentor = instrument_with()
    async with Session(blog_engine) as session:
        await session.find(Author).count()
    assert recorder.ended == ["db.session.open", "db.query.count", "db.session.close"]
    instrumentor.uninstrument()
    async with Session(blog_engine) as session:
        assert await session.find(Author).count() == 3
    assert len(recorder.ended) == 3
    instrument_with()
    async with Session(blog_engine) as session:
        await session.find(Author).count()
    assert len(recorder.ended) == 6


async def test_a_removed_processor_gets_nothing_more(
    instrument_with: Instrument, blog_engine: Engine
) -> None:
    recorder = NameRecorder()
    add_span_processor(recorder)
    instrument_with()
    async with Session(blog_engine) as session:
        await session.find(Author).count()
        assert remove_span_processor(recorder) is True
        await session.find(Author).count()
    assert recorder.ended == ["db.session.open", "db.query.count"]
    assert remove_span_processor(recorder) is False


def test_add_span_processor_rejects_an_object_without_the_hooks() -> None:
    with pytest.raises(TypeError, match="without on_end"):
        add_span_processor(type("OnlyStart", (), {"on_start": lambda self, s, c=None: None})())


async def test_slow_query_processor_logs_and_calls_back_with_operation_table_duration_and_trace(
    instrument_with: Instrument,
    blog_engine: Engine,
    spans: InMemorySpanExporter,
    registered: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[SlowOperation] = []
    registered(SlowQueryProcessor(threshold_ms=0, callback=seen.append))
    instrument_with()
    caplog.set_level(logging.WARNING, logger=SLOW_QUERY_LOGGER)
    async with Session(blog_engine) as session:
        await session.find(Author).filter(Author.email == "a1@x.org").to_list()
    find = next(s for s in spans.get_finished_spans() if s.name == "db.query.find")
    assert find.end_time is not None and find.start_time is not None
    trace_id = format(find.context.trace_id, "032x")
    [slow] = [s for s in seen if s.name == "db.query.find"]
    assert slow.operation == "find"
    assert slow.table == "authors"
    assert slow.trace_id == trace_id
    assert slow.span_id == format(find.context.span_id, "016x")
    assert slow.duration_ms == (find.end_time - find.start_time) / 1e6
    [record] = [r for r in caplog.records if "db.query.find" in r.getMessage()]
    assert record.name == SLOW_QUERY_LOGGER
    assert record.getMessage() == (
        f"slow db.query.find on authors: {slow.duration_ms:.1f} ms (trace {trace_id})"
    )
    assert "a1@x.org" not in record.getMessage()
    # INTERNAL spans (session open/close) are not database work: not reported.
    assert {s.name for s in seen} == {"db.query.find"}


async def test_slow_query_processor_stays_quiet_under_its_threshold(
    instrument_with: Instrument,
    blog_engine: Engine,
    registered: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    quiet: list[SlowOperation] = []
    loud: list[SlowOperation] = []
    registered(SlowQueryProcessor(threshold_ms=10**9, callback=quiet.append))
    registered(SlowQueryProcessor(threshold_ms=0, callback=loud.append))
    instrument_with()
    async with Session(blog_engine) as session:
        await session.find(Author).to_list()
    assert quiet == []
    assert [s.name for s in loud] == ["db.query.find"]


async def test_a_failing_slow_query_callback_is_contained(
    instrument_with: Instrument, blog_engine: Engine, registered: Any
) -> None:
    def explode(slow: SlowOperation) -> None:
        raise ValueError("callback broke")

    registered(SlowQueryProcessor(threshold_ms=0, callback=explode))
    instrument_with()
    async with Session(blog_engine) as session:
        assert len(await session.find(Author).to_list()) == 3


def test_slow_query_processor_rejects_a_bad_threshold() -> None:
    with pytest.raises(ValueError, match="threshold_ms must be >= 0"):
        SlowQueryProcessor(threshold_ms=-1)
    with pytest.raises(TypeError, match="threshold_ms must be a number"):
        SlowQueryProcessor(threshold_ms="100")  # type: ignore[arg-type]


async def test_a_processor_added_after_instrument_sees_the_spans_from_then_on(
    instrument_with: Instrument, blog_engine: Engine, registered: Any
) -> None:
    # The provider's hub skips the dispatcher while nothing is registered: adding
    # one must wake it up for the spans that follow.
    instrument_with()
    async with Session(blog_engine) as session:
        await session.find(Author).count()
        recorder = registered(NameRecorder())
        assert await session.find(Author).count() == 3
    assert recorder.started == ["db.query.count", "db.session.close"]
    assert recorder.ended == ["db.query.count", "db.session.close"]

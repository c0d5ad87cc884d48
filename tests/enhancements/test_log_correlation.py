"""The instrumentation's own log records carry otelTraceID/otelSpanID under
opentelemetry-instrumentation-logging (slow queries, N+1 findings, its failures)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from enhancements_fixtures import Instrument
from instrumentation_models import Author
from opentelemetry.context import Context
from opentelemetry.instrumentation.logging import LoggingInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from data_bridge_core import Engine, Session
from opentelemetry_instrumentation_data_bridge.telemetry import (
    SLOW_QUERY_LOGGER,
    SlowQueryProcessor,
    add_span_processor,
    configure_n1_detection,
    remove_span_processor,
)


@pytest.fixture
def log_correlation(tracer_provider: TracerProvider) -> Iterator[None]:
    # inject_trace_context turns injection on from 0.64b0; before, set_logging_format did (the
    # floors tier runs 0.62b0). Under pytest its logging.basicConfig() finds handlers: a no-op.
    LoggingInstrumentor().instrument(
        tracer_provider=tracer_provider, inject_trace_context=True, set_logging_format=True
    )
    yield
    LoggingInstrumentor().uninstrument()


def ids(record: logging.LogRecord) -> tuple[str, str]:
    return record.otelTraceID, record.otelSpanID  # type: ignore[attr-defined]


def hex_ids(span: Any) -> tuple[str, str]:
    return format(span.context.trace_id, "032x"), format(span.context.span_id, "016x")


class BrokenOnEnd:
    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: Any) -> None:
        raise RuntimeError("processor broke")


@pytest.mark.usefixtures("log_correlation")
async def test_a_slow_query_record_carries_the_ids_of_the_slow_span(
    instrument_with: Instrument,
    blog_engine: Engine,
    spans: InMemorySpanExporter,
    caplog: pytest.LogCaptureFixture,
) -> None:
    processor = SlowQueryProcessor(threshold_ms=0)
    add_span_processor(processor)
    try:
        instrument_with()
        caplog.set_level(logging.WARNING, logger=SLOW_QUERY_LOGGER)
        async with Session(blog_engine) as session:
            await session.find(Author).to_list()
    finally:
        remove_span_processor(processor)
    [find] = [s for s in spans.get_finished_spans() if s.name == "db.query.find"]
    [record] = [r for r in caplog.records if r.name == SLOW_QUERY_LOGGER]
    assert ids(record) == hex_ids(find)


@pytest.mark.usefixtures("log_correlation")
async def test_n_plus_one_and_failure_records_carry_the_ids_of_the_request(
    instrument_with: Instrument,
    tracer_provider: TracerProvider,
    blog_engine: Engine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    configure_n1_detection(threshold=3, mode="log")
    broken = BrokenOnEnd()
    add_span_processor(broken)
    try:
        instrument_with()
        caplog.set_level(logging.WARNING)
        with tracer_provider.get_tracer("app").start_as_current_span("request") as request:
            async with Session(blog_engine) as session:
                for author in await session.find(Author).to_list():
                    await author.articles
    finally:
        remove_span_processor(broken)
        configure_n1_detection()
    trace_id = format(request.get_span_context().trace_id, "032x")
    n1 = [r for r in caplog.records if r.name.endswith("n_plus_one")]
    failures = [r for r in caplog.records if "BrokenOnEnd.on_end" in r.getMessage()]
    assert len(n1) == 1 and len(failures) == 1
    assert ids(n1[0])[0] == trace_id
    assert ids(failures[0])[0] == trace_id
    assert ids(n1[0])[1] != "0"


async def test_without_the_logging_instrumentation_records_have_no_trace_ids(
    instrument_with: Instrument, blog_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    processor = SlowQueryProcessor(threshold_ms=0)
    add_span_processor(processor)
    try:
        instrument_with()
        caplog.set_level(logging.WARNING, logger=SLOW_QUERY_LOGGER)
        async with Session(blog_engine) as session:
            await session.find(Author).to_list()
    finally:
        remove_span_processor(processor)
    [record] = [r for r in caplog.records if r.name == SLOW_QUERY_LOGGER]
    assert not hasattr(record, "otelTraceID")

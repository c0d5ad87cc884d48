"""The query seam reads the context once when a query is called (issue 13): a query
awaited under another context than it was called in still starts its span there."""

from __future__ import annotations

from typing import Any

import pytest
from instrumentation_models import Author
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from data_bridge_core import Engine, Session
from opentelemetry_instrumentation_data_bridge import provider_hooks


def _query_span(spans: InMemorySpanExporter) -> ReadableSpan:
    (query,) = [s for s in spans.get_finished_spans() if s.name == "db.query.find"]
    return query


@pytest.mark.usefixtures("instrumented")
async def test_a_query_called_under_one_span_and_awaited_under_another_is_a_child_of_the_second(
    blog_engine: Engine, spans: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    tracer = tracer_provider.get_tracer("test")
    async with Session(blog_engine) as session:
        with tracer.start_as_current_span("caller"):
            pending = session.find(Author).to_list()
        with tracer.start_as_current_span("awaiter") as awaiter:
            assert len(await pending) == 3
    query = _query_span(spans)
    assert query.parent is not None
    assert query.parent.span_id == awaiter.get_span_context().span_id


@pytest.mark.usefixtures("instrumented")
async def test_a_query_called_and_awaited_under_one_span_is_its_child(
    blog_engine: Engine, spans: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    tracer = tracer_provider.get_tracer("test")
    async with Session(blog_engine) as session:
        with tracer.start_as_current_span("caller") as caller:
            assert len(await session.find(Author).to_list()) == 3
    query = _query_span(spans)
    assert query.parent is not None
    assert query.parent.span_id == caller.get_span_context().span_id


class _Seen:
    def __init__(self) -> None:
        self.started: list[str] = []
        self.ended: list[str] = []

    def on_start(self, span: Any, parent_context: Any = None) -> None:
        self.started.append(span.name)

    def on_end(self, span: Any) -> None:
        self.ended.append(span.name)


class _EndsOnly(_Seen):
    needs_on_start = False


def test_the_hub_calls_on_start_only_of_processors_that_need_it_and_on_end_of_all() -> None:
    provider = TracerProvider()
    both, ends_only = _Seen(), _EndsOnly()
    try:
        assert provider_hooks.attach(provider, "test both", both)
        assert provider_hooks.attach(provider, "test ends only", ends_only)
        with provider.get_tracer("test").start_as_current_span("work"):
            pass
        assert both.started == ["work"]
        assert both.ended == ["work"]
        assert ends_only.started == []
        assert ends_only.ended == ["work"]
    finally:
        provider_hooks.detach_all()
        provider.shutdown()


class _Sometimes(_Seen):
    def __init__(self) -> None:
        super().__init__()
        self.wanted = False

    def wants_spans(self) -> bool:
        return self.wanted


class _Undecided(_Seen):
    def wants_spans(self) -> bool:
        raise RuntimeError("cannot tell")


def test_the_hub_forwards_to_a_processor_only_while_it_wants_spans_as_of_the_last_refresh(
    caplog: pytest.LogCaptureFixture,
) -> None:
    provider = TracerProvider()
    sometimes, undecided = _Sometimes(), _Undecided()
    tracer = provider.get_tracer("test")
    try:
        assert provider_hooks.attach(provider, "test sometimes", sometimes)
        assert provider_hooks.attach(provider, "test undecided", undecided)
        with tracer.start_as_current_span("idle"):
            pass
        sometimes.wanted = True  # not asked again until a refresh
        with tracer.start_as_current_span("not refreshed"):
            pass
        provider_hooks.refresh()
        with tracer.start_as_current_span("wanted"):
            pass
        assert sometimes.started == sometimes.ended == ["wanted"]
        # One that cannot answer is fed, as if it had no wants_spans, and logged once.
        assert undecided.ended == ["idle", "not refreshed", "wanted"]
        # Logged as class and frames, not its text (which may hold a value).
        failures = [r.getMessage() for r in caplog.records if "in wants_spans" in r.getMessage()]
        assert len(failures) == 1
        assert "_Undecided.wants_spans" in failures[0]
    finally:
        provider_hooks.detach_all()
        provider.shutdown()

"""create_linked_task: background work in its own trace, linked to where it started."""

from __future__ import annotations

import asyncio

import pytest
from enhancements_fixtures import Instrument
from instrumentation_models import Author
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from data_bridge_core import Engine, Session
from opentelemetry_instrumentation_data_bridge.telemetry import create_linked_task


async def count_authors(engine: Engine) -> int:
    async with Session(engine) as session:
        return await session.find(Author).count()


async def test_a_linked_task_runs_under_a_new_root_span_linked_to_the_caller(
    instrument_with: Instrument,
    tracer_provider: TracerProvider,
    blog_engine: Engine,
    spans: InMemorySpanExporter,
) -> None:
    instrument_with()
    with tracer_provider.get_tracer("app").start_as_current_span("request") as request:
        task = create_linked_task(count_authors(blog_engine), name="warm_cache")
    assert isinstance(task, asyncio.Task)
    assert task.get_name() == "warm_cache"
    assert await task == 3
    finished = {s.name: s for s in spans.get_finished_spans()}
    root = finished["warm_cache"]
    assert root.parent is None
    assert root.context.trace_id != request.get_span_context().trace_id
    [link] = root.links
    assert link.context.trace_id == request.get_span_context().trace_id
    assert link.context.span_id == request.get_span_context().span_id
    assert dict(link.attributes or {}) == {"data_bridge.link.type": "spawned_by"}
    count = finished["db.query.count"]
    assert count.context.trace_id == root.context.trace_id
    assert count.parent is not None
    assert finished["db.session.open"].parent.span_id == root.context.span_id  # type: ignore[union-attr]
    assert count.parent.span_id == root.context.span_id


async def test_a_linked_task_started_outside_any_span_has_no_link(
    instrument_with: Instrument, blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    instrument_with()
    assert await create_linked_task(count_authors(blog_engine), name="nightly") == 3
    root = next(s for s in spans.get_finished_spans() if s.name == "nightly")
    assert root.parent is None
    assert list(root.links) == []


async def test_a_failing_linked_task_records_the_error_on_its_span_and_raises_it(
    instrument_with: Instrument, spans: InMemorySpanExporter
) -> None:
    async def fail() -> None:
        raise LookupError("no such user")

    instrument_with()
    task = create_linked_task(fail(), name="send_welcome_email")
    with pytest.raises(LookupError, match="no such user"):
        await task
    root = next(s for s in spans.get_finished_spans() if s.name == "send_welcome_email")
    assert root.status.status_code is StatusCode.ERROR
    assert [e.name for e in root.events] == ["exception"]


async def test_create_linked_task_rejects_what_is_not_a_coroutine() -> None:
    with pytest.raises(TypeError, match="takes a coroutine"):
        create_linked_task(count_authors, name="x")  # type: ignore[arg-type]

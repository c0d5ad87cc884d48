"""instrument()/uninstrument() mechanics: patching, restoring, switches, sampling, statements."""

from __future__ import annotations

import inspect

import pytest
from instrumentation_models import Author
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF

from data_bridge_core import Engine, Session
from data_bridge_core.loading import EagerLoad
from data_bridge_core.query import Query
from data_bridge_core.relationships import Relationship
from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor
from opentelemetry_instrumentation_data_bridge.instrumentor import _patch_targets

SEAMS = [
    (cls, name)
    for cls, name in (
        (Query, "to_list"),
        (Query, "count"),
        (Query, "exists"),
        (Query, "aggregate"),
        (Query, "update"),
        (Query, "delete"),
        (Session, "open"),
        (Session, "close"),
        (Session, "flush"),
        (Session, "commit"),
        (Session, "rollback"),
        (Session, "upsert"),
        (Session, "from_sql"),
        (Session, "run_statement"),
        (Relationship, "load"),
        (EagerLoad, "load"),
    )
]


def originals() -> dict[tuple[type, str], object]:
    return {(cls, name): cls.__dict__[name] for cls, name in SEAMS}


@pytest.mark.parametrize("capture_statement", [True, False])
def test_every_seam_is_patched_and_restored_to_the_identical_object(
    tracer_provider: TracerProvider, capture_statement: bool
) -> None:
    # The per-statement seam is patched only when statements are captured.
    seams = [s for s in SEAMS if capture_statement or s != (Session, "run_statement")]
    before = originals()
    assert len(_patch_targets(capture_statement)) == len(seams)
    instrumentor = DataBridgeInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, capture_statement=capture_statement)
    try:
        for key, original in before.items():
            patched = key[0].__dict__[key[1]]
            if key not in seams:
                assert patched is original, key
                continue
            assert patched is not original, key
            assert patched.__wrapped__ is original, key
            assert inspect.iscoroutinefunction(original)
    finally:
        instrumentor.uninstrument()
    after = originals()
    for key, original in before.items():
        assert after[key] is original, key


async def test_instrumenting_twice_does_not_double_wrap(
    blog_engine: Engine, tracer_provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    first = DataBridgeInstrumentor()
    first.instrument(tracer_provider=tracer_provider)
    DataBridgeInstrumentor().instrument(tracer_provider=tracer_provider)  # singleton: ignored
    try:
        assert Query.__dict__["to_list"].__wrapped__ is originals_unwrapped("to_list")
        async with Session(blog_engine) as session:
            await session.find(Author).to_list()
        assert [s.name for s in spans.get_finished_spans()].count("db.query.find") == 1
    finally:
        first.uninstrument()
    assert not hasattr(Query.__dict__["to_list"], "__wrapped__")


def originals_unwrapped(name: str) -> object:
    return inspect.unwrap(Query.__dict__[name])


@pytest.mark.parametrize("value", ["false", "0", "no", "FALSE", "No"])
def test_tracing_disabled_by_environment_patches_nothing(
    monkeypatch: pytest.MonkeyPatch, tracer_provider: TracerProvider, value: str
) -> None:
    monkeypatch.setenv("DATA_BRIDGE_TRACING_ENABLED", value)
    before = originals()
    instrumentor = DataBridgeInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    try:
        assert originals() == before
        for key, original in before.items():
            assert key[0].__dict__[key[1]] is original
    finally:
        instrumentor.uninstrument()


@pytest.mark.usefixtures("instrumented")
async def test_suppress_instrumentation_gives_no_spans(
    blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    with suppress_instrumentation():
        async with Session(blog_engine) as session:
            assert len(await session.find(Author).to_list()) == 3
            author = await session.get(Author, 1)
            assert author is not None
            assert len(await author.articles) == 2
    assert spans.get_finished_spans() == ()


async def test_sampled_out_operations_work_and_export_nothing(blog_engine: Engine) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = DataBridgeInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        async with Session(blog_engine) as session:
            authors = await session.find(Author).order_by(Author.id.asc()).to_list()
            assert [a.name for a in authors] == ["a0", "a1", "a2"]
            assert len(await authors[0].articles) == 2
            session.add(Author(name="z", email="z@x.org"))
            await session.commit()
    finally:
        instrumentor.uninstrument()
    assert exporter.get_finished_spans() == ()


async def test_statement_capture_is_opt_in_and_parameterized(
    blog_engine: Engine, tracer_provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    instrumentor = DataBridgeInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, capture_statement=True)
    try:
        async with Session(blog_engine) as session:
            await session.find(Author).filter(Author.email == "secret@x.org").to_list()
    finally:
        instrumentor.uninstrument()
    find = next(s for s in spans.get_finished_spans() if s.name == "db.query.find")
    assert find.attributes is not None
    statement = str(find.attributes["db.statement"])
    assert statement.startswith('SELECT "authors"."id"')
    assert '"authors"."email" = %s' in statement
    assert "secret@x.org" not in statement
    for span in spans.get_finished_spans():
        assert "secret@x.org" not in repr(dict(span.attributes or {}))

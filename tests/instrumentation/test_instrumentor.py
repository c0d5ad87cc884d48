"""instrument()/uninstrument() mechanics: patching, restoring, switches, sampling, statements."""

from __future__ import annotations

import inspect

import pytest
from conftest_shared import RecordingSampler
from instrumentation_models import Author
from opentelemetry.instrumentation.utils import suppress_instrumentation
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased

from data_bridge_core import Engine, Session
from data_bridge_core.loading import EagerLoad
from data_bridge_core.migrations import Migrator
from data_bridge_core.query import Query
from data_bridge_core.relationships import Relationship
from data_bridge_core.row_query import RowQuery
from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor, config
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
        (Query, "stream"),
        (RowQuery, "to_list"),
        (Session, "open"),
        (Session, "close"),
        (Session, "flush"),
        (Session, "commit"),
        (Session, "rollback"),
        (Session, "refresh"),
        (Session, "savepoint"),
        (Session, "release_savepoint"),
        (Session, "rollback_to_savepoint"),
        (Session, "execute"),
        (Session, "upsert"),
        (Session, "from_sql"),
        (Session, "run_statement"),
        (Session, "stream_rows"),
        (Relationship, "load"),
        (Relationship, "read_loaded"),
        (EagerLoad, "load"),
        (Engine, "acquire"),
        (Migrator, "apply_migration"),
    )
]
# Patched only when statements are captured: they cost a wrapper per statement.
CAPTURE_ONLY = {(Session, "run_statement"), (Session, "stream_rows")}


def originals() -> dict[tuple[type, str], object]:
    return {(cls, name): cls.__dict__[name] for cls, name in SEAMS}


@pytest.mark.parametrize("capture_statement", [True, False])
def test_every_seam_is_patched_and_restored_to_the_identical_object(
    tracer_provider: TracerProvider, capture_statement: bool
) -> None:
    seams = [s for s in SEAMS if capture_statement or s not in CAPTURE_ONLY]
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
            if key == (Relationship, "read_loaded"):  # the one synchronous seam: no SQL
                continue
            assert inspect.iscoroutinefunction(original) or inspect.isasyncgenfunction(original)
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


def our_processors(provider: TracerProvider) -> list[object]:
    """Processors on the provider that come from this instrumentation."""
    registered = provider._active_span_processor._span_processors
    return [
        p
        for p in registered
        if type(p).__module__.startswith("opentelemetry_instrumentation_data_bridge")
    ]


def test_uninstrument_leaves_one_inert_processor_on_the_users_provider_rearmed_next_time(
    tracer_provider: TracerProvider,
) -> None:
    users = list(tracer_provider._active_span_processor._span_processors)
    first = None
    for _ in range(3):
        instrumentor = DataBridgeInstrumentor()
        instrumentor.instrument(tracer_provider=tracer_provider)
        # While instrumented: exactly one processor of ours (N+1 scopes end with their
        # trace; the instrumentation's spans go to processors given to add_span_processor).
        (ours,) = our_processors(tracer_provider)
        first = first or ours
        assert ours is first  # re-armed, never a second one
        assert ours.attached  # type: ignore[attr-defined]
        instrumentor.uninstrument()
        # The SDK has no public way to remove a processor: ours stays, forwarding nothing.
        assert our_processors(tracer_provider) == [first]
        assert first.attached == first.processors == ()  # type: ignore[attr-defined]
        assert list(tracer_provider._active_span_processor._span_processors) == [*users, first]
        for key, original in originals().items():
            assert not hasattr(key[0].__dict__[key[1]], "__wrapped__"), key
            del original


def test_a_processor_detached_by_uninstrument_forwards_to_nothing(
    tracer_provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    instrumentor = DataBridgeInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    (ours,) = our_processors(tracer_provider)
    assert len(ours.attached) == 2  # type: ignore[attr-defined]  # N+1 scope ends, dispatch
    # The dispatcher is attached but idle while no span processor is registered.
    assert len(ours.processors) == 1  # type: ignore[attr-defined]
    instrumentor.uninstrument()
    # A copy of the provider's tuple taken before uninstrument() may still call it
    # (a span ending in another thread): it then forwards to nothing.
    assert ours.attached == ours.processors == ours.starts == ()  # type: ignore[attr-defined]
    with tracer_provider.get_tracer("t").start_as_current_span("after"):
        pass
    ours.on_start(spans.get_finished_spans()[-1])  # type: ignore[attr-defined]
    ours.on_end(spans.get_finished_spans()[-1])  # type: ignore[attr-defined]


def test_the_sampler_shortcut_never_asks_the_applications_own_root_sampler() -> None:
    root = RecordingSampler()
    provider = TracerProvider(sampler=ParentBased(root))
    instrumentor = DataBridgeInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    try:
        assert root.seen == []  # instrument() asked it nothing
        # ParentBased's own delegates for unsampled parents (ALWAYS_OFF) were asked.
        assert (config.state.drops_roots, config.state.drops_unsampled_children) == (False, True)
    finally:
        instrumentor.uninstrument()

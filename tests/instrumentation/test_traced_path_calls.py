"""Guards for the traced path's structure (issues 25/26): how many calls of the
instrumentation's own code one recorded query and one read of an eagerly loaded
value make. Counted with a profile hook (calls, not seconds): each layer of
wrappers and helpers cut in round 3, session 2 (bench/README.md, "Round 3,
session 2: the traced path") fails these when it comes back. N+1 detection's
own functions are not counted (`n_plus_one`, guarded by its own tests).
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from types import FrameType
from typing import Any

import opentelemetry.sdk.trace as sdk_trace
import pytest
from instrumentation_models import Article, Author
from opentelemetry import trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import opentelemetry_instrumentation_data_bridge as package
from data_bridge_core import Engine, Session, selectinload
from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor, provider_hooks
from opentelemetry_instrumentation_data_bridge.n_plus_one import processor as scope_end

PACKAGE_DIR = os.path.dirname(package.__file__)
DETECTION_DIR = os.path.join(PACKAGE_DIR, "n_plus_one")


def _ours(frame: FrameType) -> bool:
    filename = frame.f_code.co_filename
    return filename.startswith(PACKAGE_DIR) and not filename.startswith(DETECTION_DIR)


async def _calls(run: Callable[[], Awaitable[Any]]) -> Counter[str]:
    """The instrumentation's Python calls (generator expressions included) while ``run`` runs."""
    seen: Counter[str] = Counter()
    # A coroutine's resumption is a "call" too: each frame is counted once (kept
    # alive here, so that no later frame takes a finished one's id).
    frames: dict[int, FrameType] = {}

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        if event == "call" and id(frame) not in frames and _ours(frame):
            frames[id(frame)] = frame
            seen[frame.f_code.co_name] += 1

    sys.setprofile(hook)
    try:
        await run()
    finally:
        sys.setprofile(None)
    return seen


_PROVIDERS: dict[int, TracerProvider] = {}


def recording_provider(exporter: InMemorySpanExporter) -> TracerProvider:
    return _PROVIDERS[id(exporter)]


@pytest.fixture
def recording() -> Iterator[InMemorySpanExporter]:
    """Instrumented on a recording provider; no meter provider that records."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    _PROVIDERS[id(exporter)] = provider
    instrumentor = DataBridgeInstrumentor()
    instrumentor.instrument(tracer_provider=provider, meter_provider=NoOpMeterProvider())
    yield exporter
    instrumentor.uninstrument()
    provider.shutdown()
    del _PROVIDERS[id(exporter)]


# Calls of the instrumentation's code per recorded get() (a db.query.find span): the
# query seam's wrapper and its coroutine, the metrics check, the span shape, the
# scope (init, enter, finish and its set_result). Under a request's span, the
# suppression check and the sampler's shortcut too. No call of the provider hub:
# the SDK calls C no-ops in its place, and the N+1 scope-end processor's on_end
# directly (round 3, session 3). Round 3's code made 27 (26 and a generator
# expression); session 2's 10 (the hub's on_start and on_end).
GET_CALLS = 8
GET_CALLS_UNDER_A_SPAN = 10


async def test_one_recorded_get_makes_few_calls_of_ours(
    blog_engine: Engine, recording: InMemorySpanExporter
) -> None:
    tracer = trace.get_tracer("request", tracer_provider=recording_provider(recording))
    async with Session(blog_engine) as session:
        await session.get(Article, 1)  # first-use costs (span shapes, server attributes)
        seen = await _calls(lambda: session.get(Article, 2))
        with tracer.start_as_current_span("request"):
            await session.get(Article, 3)  # the request's first query opens its N+1 scope
            under = await _calls(lambda: session.get(Article, 4))
    assert sum(seen.values()) <= GET_CALLS, seen
    assert sum(under.values()) <= GET_CALLS_UNDER_A_SPAN, under
    # No generator in the suppression check, no guard layer around the description.
    assert "<genexpr>" not in under and "_describe" not in under, under
    finds = [s for s in recording.get_finished_spans() if s.name == "db.query.find"]
    assert len(finds) == 4
    assert finds[-1].attributes is not None
    assert finds[-1].attributes["db.response.returned_rows"] == 1
    assert finds[-1].parent is not None  # the request's child


SDK_TRACE_DIR = os.path.dirname(sdk_trace.__file__)


async def _sdk_and_hub_calls(run: Callable[[], Awaitable[Any]]) -> Counter[str]:
    """Calls of the SDK's span methods and of the provider hub while ``run`` runs."""
    seen: Counter[str] = Counter()

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        if event != "call":
            return
        filename = frame.f_code.co_filename
        if filename.startswith(SDK_TRACE_DIR):
            seen[f"sdk {frame.f_code.co_name}"] += 1
        elif filename == provider_hooks.__file__ or filename == scope_end.__file__:
            seen[f"{os.path.basename(filename)} {frame.f_code.co_name}"] += 1

    sys.setprofile(hook)
    try:
        await run()
    finally:
        sys.setprofile(None)
    return seen


async def test_a_recorded_get_makes_no_python_call_of_the_provider_hub(
    blog_engine: Engine, recording: InMemorySpanExporter
) -> None:
    """The provider hub is no Python call per span: the SDK calls C no-ops for its
    on_start and _on_ending, and the N+1 scope-end processor's on_end directly, which
    returns at once while no request is counted (bench/README.md, "Round 3, session 3:
    the traced get"). The span's end attributes go in with one ``set_attributes``."""
    async with Session(blog_engine) as session:
        await session.get(Article, 1)  # first-use costs (span shapes, server attributes)
        seen = await _sdk_and_hub_calls(lambda: session.get(Article, 2))
    assert seen["processor.py on_end"] == 1, seen
    assert not [name for name in seen if name.startswith("provider_hooks.py")], seen
    # The SDK's multi-processor and the exporter's SimpleSpanProcessor; the hub's is C.
    assert seen["sdk _on_ending"] == 2, seen
    assert seen["sdk set_attributes"] == 1, seen
    assert seen["sdk set_attribute"] == 0, seen
    find = [s for s in recording.get_finished_spans() if s.name == "db.query.find"][-1]
    assert find.attributes is not None
    assert find.attributes["db.query.filters_count"] == 1
    assert find.attributes["db.query.limit"] == 1
    assert find.attributes["db.result.count"] == 1
    assert find.attributes["db.response.returned_rows"] == 1
    assert "db.query.offset" not in find.attributes


async def test_reading_an_eagerly_loaded_value_hands_back_the_original_load(
    blog_engine: Engine, recording: InMemorySpanExporter
) -> None:
    tracer = trace.get_tracer("request", tracer_provider=recording_provider(recording))
    async with Session(blog_engine) as session:
        authors = await session.find(Author).options(selectinload(Author.articles)).to_list()
        assert len(authors) == 3

        async def read_all() -> None:
            for author in authors:
                assert len(await author.articles) == 2

        seen = await _calls(read_all)
        with tracer.start_as_current_span("request"):
            under = await _calls(read_all)
    # Per read: the wrapper and nothing else of ours (no coroutine around the load, no
    # span, no frame read for the N+1 advice); under a span too, as no scope holds an
    # eager load to report unused (the load ran outside the request): no context read.
    assert seen == Counter({"lazy_load_wrapper": 3}), seen
    assert under == Counter({"lazy_load_wrapper": 3}), under
    names = [s.name for s in recording.get_finished_spans()]
    assert "db.relationship.select" not in names
    assert names.count("db.relationship.selectinload") == 1


async def test_a_lazy_load_that_runs_sql_still_gets_its_span(
    blog_engine: Engine, recording: InMemorySpanExporter
) -> None:
    async with Session(blog_engine) as session:
        article = await session.get(Article, 1)
        assert article is not None
        author = await article.author
        assert author is not None and author.id == 1
    selects = [s for s in recording.get_finished_spans() if s.name == "db.relationship.select"]
    assert len(selects) == 1
    assert selects[0].attributes is not None
    assert selects[0].attributes["db.relationship.cache_hit"] is False

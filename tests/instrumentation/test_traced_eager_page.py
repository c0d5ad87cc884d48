"""Guards of the traced eager page (issue 25, round 3 session 3; bench/README.md, "Round 3,
session 3: the traced eager page"): reading eagerly loaded values records N+1
detection's "used" once per relationship and request, not once per parent, and
``Relationship.load`` is a plain function (wrapt's bind and call cost ~7k
instructions per ``obj.rel``). Counted with a profile hook (calls, not seconds).
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Iterator
from types import FrameType, FunctionType
from typing import Any

import pytest
from instrumentation_models import Article, Author
from opentelemetry import trace
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import opentelemetry_instrumentation_data_bridge as package
from data_bridge_core import Engine, Relationship, Session, selectinload
from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor

PACKAGE_DIR = os.path.dirname(package.__file__)


@pytest.fixture
def provider() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentor = DataBridgeInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=NoOpMeterProvider())
    yield tracer_provider, exporter
    instrumentor.uninstrument()
    tracer_provider.shutdown()


async def _our_calls(authors: list[Author]) -> Counter[str]:
    """Calls of the instrumentation's code (N+1 detection included) while every
    author's articles are read twice."""
    seen: Counter[str] = Counter()
    frames: dict[int, FrameType] = {}

    def hook(frame: FrameType, event: str, arg: Any) -> None:
        if (
            event == "call"
            and id(frame) not in frames
            and frame.f_code.co_filename.startswith(PACKAGE_DIR)
        ):
            frames[id(frame)] = frame
            seen[frame.f_code.co_name] += 1

    sys.setprofile(hook)
    try:
        for _ in range(2):
            for author in authors:
                assert len(await author.articles) == 2
    finally:
        sys.setprofile(None)
    return seen


async def test_reads_in_a_request_record_the_use_once_per_relationship(
    blog_engine: Engine, provider: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    tracer_provider, exporter = provider
    tracer = trace.get_tracer("request", tracer_provider=tracer_provider)
    with tracer.start_as_current_span("request"):
        async with Session(blog_engine) as session:
            authors = await session.find(Author).options(selectinload(Author.articles)).to_list()
            unread = await session.find(Article).options(selectinload(Article.remarks)).to_list()
            assert len(authors) == 3 and len(unread) == 6
            seen = await _our_calls(authors)
    # Six reads: the seam six times; the use recorded by the first read only (the
    # request's scope holds the eager load), the five others one cache compare each.
    # (Before: each read checked suppression, recorded and looked its scope up: 25 calls.)
    assert seen == Counter(
        {
            "lazy_load_wrapper": 6,
            "instrumentation_suppressed": 1,
            "note_eager_use": 1,
            "record_eager_use": 1,
            "ambient_scope": 1,
            "_span_of_the_caller": 1,
        }
    ), seen
    # The report is unchanged: the read eager load is used, the other one is not.
    unused = [s for s in exporter.get_finished_spans() if s.name == "db.unused_eager_load"]
    assert len(unused) == 1
    assert unused[0].attributes is not None
    assert unused[0].attributes["db.relationship.name"] == "remarks"


async def test_a_new_eager_load_makes_the_next_read_record_again(
    blog_engine: Engine, provider: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    tracer_provider, exporter = provider
    tracer = trace.get_tracer("request", tracer_provider=tracer_provider)
    async with Session(blog_engine) as session:
        first = await session.find(Author).options(selectinload(Author.articles)).to_list()
        with tracer.start_as_current_span("request"):
            # Read before this request loaded anything: nothing to mark yet.
            assert len(await first[0].articles) == 2
            again = await session.find(Author).options(selectinload(Author.articles)).to_list()
            seen = await _our_calls(again)
    assert seen["record_eager_use"] == 1, seen
    assert not [s for s in exporter.get_finished_spans() if s.name == "db.unused_eager_load"]


async def test_outside_any_scope_a_read_is_the_seam_alone(
    blog_engine: Engine, provider: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    seam = Relationship.__dict__["load"]
    assert type(seam) is FunctionType  # not a wrapt proxy: no bind and call layer
    assert seam.__wrapped__ is not seam
    async with Session(blog_engine) as session:
        authors = await session.find(Author).options(selectinload(Author.articles)).to_list()
        seen = await _our_calls(authors)
    assert seen == Counter({"lazy_load_wrapper": 6}), seen

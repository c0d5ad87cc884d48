"""AttributeBasedSampler and its duration rule, on the real SDK and PostgreSQL."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from enhancements_fixtures import Instrument
from instrumentation_models import Article, Author
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

from data_bridge_core import Engine, Session
from opentelemetry_instrumentation_data_bridge.telemetry import (
    AttributeBasedSampler,
    create_query_span,
)

RULES: list[dict[str, Any]] = [
    {"db.operation.name": "update", "sample": 0.5},
    {"db.collection.name": "articles", "sample": 1.0},
    {"default": 0.1},
]


class TraceIdsAt(RandomIdGenerator):
    """Trace ids whose low 64 bits sit at ``fraction`` of the range (what ratios compare)."""

    def __init__(self, fraction: float) -> None:
        self.low = int(fraction * 2**64)

    def generate_trace_id(self) -> int:
        return (0xABC << 64) | self.low


class Ended(SpanProcessor):
    """Every span that was recorded (sampled or not), by name."""

    def __init__(self) -> None:
        self.names: list[str] = []

    def on_end(self, span: ReadableSpan) -> None:
        self.names.append(span.name)


def provider_with(sampler: AttributeBasedSampler, fraction: float) -> TracerProvider:
    return TracerProvider(sampler=sampler, id_generator=TraceIdsAt(fraction))


async def run_reads_and_an_update(engine: Engine) -> None:
    async with Session(engine) as session:
        await session.find(Author).to_list()
        await session.find(Article).to_list()
        await session.find(Author).filter(Author.id == 1).update(age=41)
        await session.commit()


def exported_names(exporter: InMemorySpanExporter) -> list[str]:
    return sorted(s.name for s in exporter.get_finished_spans())


async def test_the_first_matching_rule_decides_the_ratio_of_each_span(
    instrument_with: Instrument, blog_engine: Engine
) -> None:
    exporter = InMemorySpanExporter()
    provider = provider_with(AttributeBasedSampler(rules=RULES), 0.3)  # under 0.5, over 0.1
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument_with(tracer_provider=provider)
    await run_reads_and_an_update(blog_engine)
    by_table = {
        (s.name, (s.attributes or {}).get("db.collection.name"))
        for s in exporter.get_finished_spans()
    }
    assert by_table == {("db.query.find", "articles"), ("db.query.update", "authors")}


async def test_a_trace_id_under_the_default_ratio_keeps_every_span(
    instrument_with: Instrument, blog_engine: Engine
) -> None:
    exporter = InMemorySpanExporter()
    provider = provider_with(AttributeBasedSampler(rules=RULES), 0.05)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument_with(tracer_provider=provider)
    await run_reads_and_an_update(blog_engine)
    assert exported_names(exporter) == [
        "db.query.find",
        "db.query.find",
        "db.query.update",
        "db.session.close",
        "db.session.commit",
        "db.session.flush",
        "db.session.open",
    ]


async def test_rules_match_lists_of_values_and_span_name_prefixes_in_order(
    instrument_with: Instrument, blog_engine: Engine
) -> None:
    exporter = InMemorySpanExporter()
    sampler = AttributeBasedSampler(
        rules=[
            {"db.collection.name": "authors", "sample": 0.0},  # first match wins over the next
            {"db.operation.name": ["find", "count"], "sample": 1.0},
            {"name_prefix": "db.session.", "sample": 1.0},
            {"default": 0.0},
        ]
    )
    provider = provider_with(sampler, 0.99)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument_with(tracer_provider=provider)
    await run_reads_and_an_update(blog_engine)
    assert exported_names(exporter) == [
        "db.query.find",  # articles
        "db.session.close",
        "db.session.commit",
        "db.session.flush",
        "db.session.open",
    ]


async def test_a_duration_rule_exports_the_slow_spans_that_the_ratio_dropped(
    instrument_with: Instrument,
) -> None:
    exporter = InMemorySpanExporter()
    sampler = AttributeBasedSampler(
        rules=[{"duration_ms": {">=": 40}, "sample": 1.0}, {"default": 0.0}]
    )
    provider = provider_with(sampler, 0.5)
    provider.add_span_processor(sampler.duration_processor(SimpleSpanProcessor(exporter)))
    instrument_with(tracer_provider=provider)
    with create_query_span("find", "reports"):
        await asyncio.sleep(0.05)  # at least 50 ms: over the rule's 40
    [span] = exporter.get_finished_spans()
    assert span.name == "db.query.find"
    assert span.context.trace_flags.sampled  # exported, so marked sampled
    assert dict(span.attributes or {})["db.collection.name"] == "reports"


async def test_duration_rules_record_every_candidate_and_export_only_those_they_accept(
    instrument_with: Instrument, blog_engine: Engine
) -> None:
    exporter = InMemorySpanExporter()
    recorded = Ended()
    sampler = AttributeBasedSampler(
        rules=[
            {"duration_ms": {">": 10**9}, "name_prefix": "db.query.", "sample": 1.0},
            {"db.operation.name": "update", "sample": 1.0},
            {"default": 0.0},
        ]
    )
    provider = provider_with(sampler, 0.5)
    provider.add_span_processor(recorded)
    provider.add_span_processor(sampler.duration_processor(SimpleSpanProcessor(exporter)))
    instrument_with(tracer_provider=provider)
    await run_reads_and_an_update(blog_engine)
    # The update is sampled by its own rule and passes through unchanged.
    assert exported_names(exporter) == ["db.query.update"]
    # The cost: each query span was built and recorded, to learn its duration.
    assert sorted(recorded.names) == ["db.query.find", "db.query.find", "db.query.update"]


async def test_a_duration_rule_accepting_every_query_exports_the_dropped_queries(
    instrument_with: Instrument, blog_engine: Engine
) -> None:
    exporter = InMemorySpanExporter()
    sampler = AttributeBasedSampler(
        rules=[
            {"duration_ms": {">": 0}, "name_prefix": "db.query.", "sample": 1.0},
            {"default": 0.0},
        ]
    )
    provider = provider_with(sampler, 0.5)
    provider.add_span_processor(sampler.duration_processor(SimpleSpanProcessor(exporter)))
    instrument_with(tracer_provider=provider)
    await run_reads_and_an_update(blog_engine)
    assert exported_names(exporter) == ["db.query.find", "db.query.find", "db.query.update"]


@pytest.mark.parametrize(
    ("rules", "error", "message"),
    [
        ([], ValueError, "must end with"),
        ([{"db.operation.name": "find", "sample": 1.0}], ValueError, "must end with"),
        ([{"default": 0.1}, {"default": 0.2}], ValueError, "rule 0: .* must be the last rule"),
        ([{"db.operation.name": "find"}, {"default": 1}], ValueError, "rule 0 has no 'sample'"),
        ([{"db.operation.name": "x", "sample": 2}, {"default": 1}], ValueError, "from 0.0 to 1.0"),
        ([{"sample": 0.5}, {"default": 1}], ValueError, "rule 0 has a ratio but no condition"),
        ([{"duration_ms": {"<": 5}, "sample": 1}, {"default": 1}], ValueError, "'>' or '>='"),
        ({"default": 0.1}, TypeError, "list of dicts"),
    ],
)
def test_bad_rules_are_refused_with_the_rule_named(
    rules: Any, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        AttributeBasedSampler(rules=rules)

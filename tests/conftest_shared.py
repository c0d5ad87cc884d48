"""Shared fixtures for instrumentation and metrics tests: the real OpenTelemetry SDK, in memory.

``spans`` is the InMemorySpanExporter behind ``tracer_provider``;
``instrumented`` instruments data_bridge_core with that provider for one test
and uninstruments it afterwards (the global providers are never touched).
``RecordingSampler`` is a real SDK sampler that drops every span and keeps
what each one showed it at start.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, SpanKind
from opentelemetry.util.types import Attributes

from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor


@pytest.fixture
def spans() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def tracer_provider(spans: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))
    yield provider
    provider.shutdown()


@pytest.fixture
def metric_reader() -> InMemoryMetricReader:
    return InMemoryMetricReader()


@pytest.fixture
def meter_provider(metric_reader: InMemoryMetricReader) -> Iterator[MeterProvider]:
    provider = MeterProvider(metric_readers=[metric_reader])
    yield provider
    provider.shutdown()


@pytest.fixture
def instrumented(
    tracer_provider: TracerProvider, meter_provider: MeterProvider
) -> Iterator[DataBridgeInstrumentor]:
    instrumentor = DataBridgeInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield instrumentor
    instrumentor.uninstrument()


class RecordingSampler(Sampler):
    """Drops everything, remembering the attributes it was shown at span start."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: Any = None,
    ) -> SamplingResult:
        self.seen.append({"name": name, **dict(attributes or {})})
        return SamplingResult(Decision.DROP)

    def get_description(self) -> str:
        return "RecordingSampler"

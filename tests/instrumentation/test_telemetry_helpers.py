"""The telemetry module's public helpers, with the real SDK."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from conftest_shared import RecordingSampler
from instrumentation_models import Author
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from data_bridge_core import Engine, Query, Session
from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor, telemetry


@pytest.fixture
def configured(tracer_provider: TracerProvider, meter_provider: MeterProvider) -> Iterator[None]:
    telemetry.configure(tracer_provider=tracer_provider, meter_provider=meter_provider)
    yield
    telemetry.reset()


def finished(spans: InMemorySpanExporter) -> dict[str, dict[str, Any]]:
    return {s.name: dict(s.attributes or {}) for s in spans.get_finished_spans()}


def test_reference_names_exist() -> None:
    for name in (
        "OTEL_AVAILABLE",
        "is_tracing_enabled",
        "get_tracer",
        "get_meter",
        "create_query_span",
        "create_session_span",
        "create_relationship_span",
        "add_exception",
        "set_span_result",
        "instrument_span",
        "instrument_query",
        "instrument_session",
        "ConnectionPoolMetrics",
        "get_connection_pool_metrics",
        "SpanAttributes",
        "MetricNames",
    ):
        assert hasattr(telemetry, name), name
    assert telemetry.OTEL_AVAILABLE is True
    assert telemetry.SpanAttributes.DB_RELATIONSHIP_DEPTH == "db.relationship.depth"
    assert telemetry.MetricNames.QUERY_DURATION == "db.query.duration"


@pytest.mark.usefixtures("configured")
def test_span_helpers_shapes(spans: InMemorySpanExporter) -> None:
    with telemetry.create_query_span(
        "find", "users", filters_count=2, limit=10, statement="SELECT 1 WHERE a = %s", team="x"
    ) as span:
        telemetry.set_span_result(span, count=4)
    with telemetry.create_session_span("flush", pending_count=3, dirty_count=0):
        pass
    with telemetry.create_relationship_span(
        "posts",
        target_model="Post",
        strategy="selectinload",
        fk_column="author_id",
        batch_count=9,
        depth=1,
    ) as span:
        telemetry.set_span_result(span, count=20)
    got = finished(spans)
    assert got["db.query.find"] == {
        "db.system": "postgresql",
        "db.system.name": "postgresql",
        "db.operation.name": "find",
        "db.collection.name": "users",
        "db.query.summary": "SELECT users",
        "db.query.filters_count": 2,
        "db.query.limit": 10,
        "team": "x",
        "db.statement": "SELECT 1 WHERE a = %s",
        "db.query.text": "SELECT 1 WHERE a = %s",
        "db.result.count": 4,
        "db.response.returned_rows": 4,
    }
    assert got["db.session.flush"] == {
        "db.system": "postgresql",
        "db.system.name": "postgresql",
        "db.session.operation": "flush",
        "db.session.pending_count": 3,
        "db.session.dirty_count": 0,
    }
    assert got["db.relationship.selectinload"]["db.relationship.depth"] == 1
    assert got["db.relationship.selectinload"]["db.relationship.batch_count"] == 9
    kinds = {s.name: s.kind for s in spans.get_finished_spans()}
    assert kinds == {
        "db.query.find": SpanKind.CLIENT,
        "db.session.flush": SpanKind.CLIENT,
        "db.relationship.selectinload": SpanKind.CLIENT,
    }


@pytest.mark.usefixtures("configured")
def test_exception_recorded_and_propagated_unchanged(spans: InMemorySpanExporter) -> None:
    class Boom(Exception):
        sqlstate = "40001"

    error = Boom("serialization failure")
    with pytest.raises(Boom) as caught, telemetry.create_query_span("update", "users"):
        raise error
    assert caught.value is error
    span = spans.get_finished_spans()[0]
    assert span.status.status_code is StatusCode.ERROR
    # Its SQLSTATE and that code's condition name; its text is never read.
    assert span.status.description == "Boom: [40001] serialization_failure"
    attrs = dict(span.attributes or {})
    assert attrs["error.type"].endswith("Boom")
    assert attrs["db.response.status_code"] == "40001"
    assert [e.name for e in span.events] == ["exception"]


@pytest.mark.parametrize(
    ("mode", "expected"),
    [
        (None, {"db.system", "db.statement", "db.system.name", "db.query.text"}),
        ("database", {"db.system.name", "db.query.text"}),
        ("database/dup", {"db.system", "db.statement", "db.system.name", "db.query.text"}),
    ],
)
def test_semconv_stability_modes(
    monkeypatch: pytest.MonkeyPatch,
    tracer_provider: TracerProvider,
    spans: InMemorySpanExporter,
    mode: str | None,
    expected: set[str],
) -> None:
    if mode is None:
        monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
    else:
        monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", mode)
    try:
        telemetry.configure(tracer_provider=tracer_provider)
        with telemetry.create_query_span("find", "users", statement="SELECT %s"):
            pass
    finally:
        monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN", raising=False)
        telemetry.reset()
    keys = set(spans.get_finished_spans()[0].attributes or {})
    renamed = {"db.system", "db.statement", "db.system.name", "db.query.text"}
    assert keys & renamed == expected


def test_statement_is_truncated_to_the_providers_attribute_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The SDK's span limits cut it, read from the environment when the provider is made.
    monkeypatch.setenv("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT", "12")
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.configure(tracer_provider=provider)
    try:
        with telemetry.create_query_span("find", "users", statement="SELECT a, b, c FROM t"):
            pass
        with telemetry.create_query_span("find", "users", statement="SELECT 1"):
            pass
    finally:
        telemetry.reset()
    long, short = (dict(s.attributes or {}) for s in exporter.get_finished_spans())
    assert long["db.statement"] == "SELECT a, b,"
    assert short["db.statement"] == "SELECT 1"


@pytest.mark.parametrize("value", ["false", "0", "no", "FALSE"])
@pytest.mark.usefixtures("configured")
def test_disabled_by_environment(
    monkeypatch: pytest.MonkeyPatch, value: str, spans: InMemorySpanExporter
) -> None:
    monkeypatch.setenv("DATA_BRIDGE_TRACING_ENABLED", value)
    assert telemetry.is_tracing_enabled() is False
    assert telemetry.get_tracer() is None
    assert telemetry.get_meter() is None
    with telemetry.create_query_span("find", "users") as span:
        assert span is None
    assert spans.get_finished_spans() == ()
    monkeypatch.setenv("DATA_BRIDGE_TRACING_ENABLED", "true")
    assert telemetry.is_tracing_enabled() is True


def test_samplers_see_start_attributes_and_dropped_spans_skip_details() -> None:
    sampler = RecordingSampler()
    provider = TracerProvider(sampler=sampler)
    exporter = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry.configure(tracer_provider=provider)
    try:
        with telemetry.create_query_span("find", "users", filters_count=3) as span:
            assert span is not None
            assert span.is_recording() is False
    finally:
        telemetry.reset()
    assert sampler.seen == [
        {
            "name": "db.query.find",
            "db.system": "postgresql",
            "db.system.name": "postgresql",
            "db.operation.name": "find",
            "db.collection.name": "users",
            "db.query.summary": "SELECT users",
        }
    ]
    assert exporter.get_finished_spans() == ()


@pytest.mark.usefixtures("configured")
async def test_decorators_on_sync_and_async_functions(spans: InMemorySpanExporter) -> None:
    @telemetry.instrument_span(attributes={"component": "billing"})
    def compute(x: int) -> int:
        return x * 2

    @telemetry.instrument_query("find")
    async def find_users() -> list[int]:
        return [1, 2]

    @telemetry.instrument_session("flush")
    async def flush_changes() -> None:
        raise ValueError("nope")

    assert compute(21) == 42
    assert compute.__name__ == "compute"
    assert await find_users() == [1, 2]
    with pytest.raises(ValueError, match="nope"):
        await flush_changes()
    got = {s.name: s for s in spans.get_finished_spans()}
    qualified = f"{__name__}.test_decorators_on_sync_and_async_functions.<locals>.compute"
    assert dict(got[qualified].attributes or {})["component"] == "billing"
    assert "db.query.find" in got
    assert got["db.session.flush"].status.status_code is StatusCode.ERROR


@pytest.mark.usefixtures("configured")
def test_connection_pool_metrics(metric_reader: InMemoryMetricReader) -> None:
    telemetry.get_connection_pool_metrics().record_pool_stats(in_use=5, idle=3, max_size=10)
    data = metric_reader.get_metrics_data()
    assert data is not None
    values = {
        metric.name: metric.data.data_points[0].value  # type: ignore[union-attr]
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for metric in sm.metrics
    }
    assert values["db.connection.pool.in_use"] == 5
    assert values["db.connection.pool.idle"] == 3
    assert values["db.connection.pool.max"] == 10


async def test_a_failure_inside_the_instrumentation_never_breaks_the_query(
    blog_engine: Engine,
    tracer_provider: TracerProvider,
    spans: InMemorySpanExporter,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken(self: Query[Any]) -> tuple[Any, ...]:
        raise RuntimeError("attribute bug")

    instrumentor = DataBridgeInstrumentor()
    instrumentor.instrument(tracer_provider=tracer_provider)
    monkeypatch.setattr(Query, "facts", property(broken))  # what the query seam reads
    try:
        with caplog.at_level(logging.WARNING, logger="opentelemetry_instrumentation_data_bridge"):
            async with Session(blog_engine) as session:
                for _ in range(3):
                    assert len(await session.find(Author).to_list()) == 3
    finally:
        instrumentor.uninstrument()
    # Logged as class and frames, not its text (which may hold a value).
    failures = [r for r in caplog.records if "in broken" in r.getMessage()]
    assert len(failures) == 1
    assert "attribute bug" not in failures[0].getMessage()
    assert [s.name for s in spans.get_finished_spans()] == ["db.session.open", "db.session.close"]


def test_helpers_are_no_ops_with_the_api_alone() -> None:
    """With opentelemetry-sdk not importable, every helper works and yields None."""
    import subprocess
    import sys

    code = """
import sys
class NoSdk:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry.sdk" or name.startswith("opentelemetry.sdk."):
            raise ImportError("no sdk")
        return None
sys.meta_path.insert(0, NoSdk())
from opentelemetry_instrumentation_data_bridge import telemetry as t
assert t.OTEL_AVAILABLE is False
assert t.is_tracing_enabled() is False and t.get_tracer() is None and t.get_meter() is None
with t.create_query_span("find", "users") as a, t.create_session_span("flush") as b, \\
        t.create_relationship_span("posts") as c:
    assert (a, b, c) == (None, None, None)
t.set_span_result(None, count=1); t.add_exception(None, ValueError())
t.get_connection_pool_metrics().record_pool_stats(1, 2, 3)
@t.instrument_query("find")
def f():
    return 7
assert f() == 7
print("ok")
"""
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "ok"

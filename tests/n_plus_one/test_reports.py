"""What each mode reports, when, with which count, and where warnings point."""

from __future__ import annotations

import logging
import sys
import warnings
from typing import Any

import pytest
from instrumentation_models import Article
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from data_bridge_core import Engine, Session, joinedload
from opentelemetry_instrumentation_data_bridge import config
from opentelemetry_instrumentation_data_bridge.telemetry import (
    NPlusOneError,
    NPlusOneWarning,
    UnusedEagerLoadWarning,
    configure_n1_detection,
    n1_scope,
)

pytestmark = pytest.mark.usefixtures("instrumented")

LINES: dict[str, int] = {}


async def remarks_loop(engine: Engine) -> None:
    async with Session(engine) as session:
        for article in await session.find(Article).order_by(Article.id).to_list():
            LINES["loop"] = sys._getframe().f_lineno + 1
            await article.remarks  # 6 articles: 6 queries


async def test_log_mode_reports_the_final_count_when_the_scope_ends(
    blog_engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    configure_n1_detection(threshold=3, mode="log")
    with caplog.at_level(logging.WARNING), n1_scope():
        await remarks_loop(blog_engine)
    [record] = [r for r in caplog.records if "N+1" in r.getMessage()]
    assert record.getMessage().startswith("N+1 query: Article.remarks lazy-loaded 6 times at ")
    fix = "(remarks_loop). Use selectinload(Article.remarks) in the .options(...) of the query at "
    assert fix in record.getMessage()


async def test_warn_mode_warns_at_the_users_line_with_the_final_count(
    blog_engine: Engine,
) -> None:
    configure_n1_detection(threshold=3, mode="warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with n1_scope():
            await remarks_loop(blog_engine)
    [warning] = [w for w in caught if issubclass(w.category, NPlusOneWarning)]
    assert "Article.remarks lazy-loaded 6 times" in str(warning.message)
    assert warning.filename == __file__
    assert warning.lineno == LINES["loop"]


async def test_raise_mode_says_at_least(blog_engine: Engine) -> None:
    configure_n1_detection(threshold=3, mode="raise")
    with n1_scope(), pytest.raises(NPlusOneError) as raised:
        await remarks_loop(blog_engine)
    assert "Article.remarks lazy-loaded at least 3 times" in str(raised.value)


async def test_unused_eager_load_warning_points_at_the_query_line(blog_engine: Engine) -> None:
    configure_n1_detection(threshold=3, mode="warn")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with n1_scope() as scope:
            async with Session(blog_engine) as session:
                line = sys._getframe().f_lineno + 1
                await session.find(Article).options(joinedload(Article.author)).to_list()
        [unused] = scope.unused_eager_loads
        unused.warn()  # what the pytest plugin calls at teardown
    found = [w for w in caught if issubclass(w.category, UnusedEagerLoadWarning)]
    assert [(w.filename, w.lineno) for w in found] == [(__file__, line), (__file__, line)]


def attributes_of(spans: InMemorySpanExporter, name: str) -> dict[str, Any]:
    [span] = [s for s in spans.get_finished_spans() if s.name == name]
    return dict(span.attributes or {})


async def test_spans_carry_the_stable_code_attributes(
    blog_engine: Engine, spans: InMemorySpanExporter, tracer_provider: TracerProvider
) -> None:
    with tracer_provider.get_tracer("t").start_as_current_span("GET /remarks"):
        await remarks_loop(blog_engine)
    warning = attributes_of(spans, "db.n1_warning")
    assert str(warning["code.file.path"]) == __file__
    assert warning["code.line.number"] == LINES["loop"]
    assert warning["code.function.name"] == "remarks_loop"
    for old in ("code.filepath", "code.lineno", "code.function"):
        assert old not in warning
    request = next(s for s in spans.get_finished_spans() if s.name == "GET /remarks")
    event = dict(request.events[0].attributes or {})
    assert event["code.line.number"] == LINES["loop"]
    assert "code.lineno" not in event


async def test_duplicate_semconv_mode_also_keeps_the_old_code_attributes(
    blog_engine: Engine,
    spans: InMemorySpanExporter,
    tracer_provider: TracerProvider,
    monkeypatch: pytest.MonkeyPatch,
) -> None:

    monkeypatch.setenv("OTEL_SEMCONV_STABILITY_OPT_IN", "database/dup")
    config.configure(tracer_provider=tracer_provider)
    try:
        with tracer_provider.get_tracer("t").start_as_current_span("GET /remarks"):
            await remarks_loop(blog_engine)
    finally:
        monkeypatch.delenv("OTEL_SEMCONV_STABILITY_OPT_IN")
        config.configure(tracer_provider=tracer_provider)
    warning = attributes_of(spans, "db.n1_warning")
    assert warning["code.line.number"] == warning["code.lineno"] == LINES["loop"]
    assert warning["code.function.name"] == warning["code.function"] == "remarks_loop"
    assert warning["code.file.path"] == warning["code.filepath"] == __file__


async def test_no_report_before_the_threshold_in_any_mode(blog_engine: Engine) -> None:
    configure_n1_detection(threshold=7, mode="raise")
    with n1_scope() as scope:
        await remarks_loop(blog_engine)
    assert scope.findings == []  # the positive twin: test_raise_mode_says_at_least

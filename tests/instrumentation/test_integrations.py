"""Real round trips: a FastAPI request in-process, and opentelemetry-instrument in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from instrumentation_models import DSN
from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from data_bridge_core import Engine
from scratch_schema import fresh_schema

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "examples"))
from fastapi_app import create_app  # noqa: E402


@pytest.mark.usefixtures("instrumented")
async def test_orm_spans_are_children_of_the_fastapi_server_span(
    tracer_provider: TracerProvider, spans: InMemorySpanExporter
) -> None:
    async with fresh_schema("dbf") as schema:
        engine = Engine(DSN, min_size=0, max_size=2, options=f"-c search_path={schema}")
        app = create_app(engine)
        FastAPIInstrumentor.instrument_app(app, tracer_provider=tracer_provider)
        try:
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                    created = await client.post("/members", json={"name": "Ann", "email": "a@x"})
                    assert created.status_code == 200
                    member_id = created.json()["id"]
                    spans.clear()
                    response = await client.get(f"/members/{member_id}")
                    assert response.json() == {"id": member_id, "name": "Ann"}
        finally:
            FastAPIInstrumentor.uninstrument_app(app)

    finished = spans.get_finished_spans()
    server = [s for s in finished if s.kind is SpanKind.SERVER]
    assert len(server) == 1
    assert server[0].attributes is not None
    assert server[0].attributes["http.route"] == "/members/{member_id}"
    orm = [s for s in finished if s.name.startswith("db.")]
    assert {s.name for s in orm} == {"db.session.open", "db.query.find", "db.session.close"}
    for span in orm:
        assert span.parent is not None
        assert span.parent.span_id == server[0].context.span_id
    find = next(s for s in orm if s.name == "db.query.find")
    assert find.attributes is not None
    assert find.attributes["db.collection.name"] == "members"
    assert find.attributes["db.result.count"] == 1


def run_auto_instrumented(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    script = ROOT / "examples" / "auto_instrumented_app.py"
    launcher = Path(sys.executable).parent / "opentelemetry-instrument"
    return subprocess.run(
        [str(launcher), sys.executable, str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_opentelemetry_instrument_traces_an_unmodified_program() -> None:
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "auto-test",
        "DATA_BRIDGE_DSN": DSN,
    }
    env.pop("DATA_BRIDGE_TRACING_ENABLED", None)
    run = run_auto_instrumented(env)
    assert run.returncode == 0, run.stderr
    assert "visitors: ['ann', 'bob']" in run.stdout
    for name in ("db.session.open", "db.session.commit", "db.session.flush", "db.query.find"):
        assert f'"name": "{name}"' in run.stdout, name
    assert '"db.collection.name": "visitors"' in run.stdout

    env["OTEL_PYTHON_DISABLED_INSTRUMENTATIONS"] = "data_bridge"
    disabled = run_auto_instrumented(env)
    assert disabled.returncode == 0, disabled.stderr
    assert "visitors: ['ann', 'bob']" in disabled.stdout
    assert '"name": "db.query.find"' not in disabled.stdout


def test_opentelemetry_instrument_with_tracing_disabled_patches_nothing() -> None:
    env = {
        **os.environ,
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_LOGS_EXPORTER": "none",
        "DATA_BRIDGE_DSN": DSN,
        "DATA_BRIDGE_TRACING_ENABLED": "false",
    }
    env.pop("OTEL_PYTHON_DISABLED_INSTRUMENTATIONS", None)
    run = run_auto_instrumented(env)
    assert run.returncode == 0, run.stderr
    assert "visitors: ['ann', 'bob']" in run.stdout
    assert '"name": "db.' not in run.stdout
    # The twin with tracing on is test_opentelemetry_instrument_traces_an_unmodified_program.

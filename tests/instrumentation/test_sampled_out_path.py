"""The sampled-out query seam's shortcuts (issue 13) answer what the public helpers answer."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest
from instrumentation_models import Author
from opentelemetry import context as otel_context
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from data_bridge_core import Engine, Session

# The global meter provider can be set once per process: each case runs in its own.
METRICS_PROBE = textwrap.dedent(
    """
    from opentelemetry import metrics
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
    from opentelemetry_instrumentation_data_bridge import config, telemetry

    telemetry.configure(tracer_provider=TracerProvider(sampler=ALWAYS_OFF))
    seen = [config.metrics_wanted(), config.metrics_wanted()]
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))
    seen.append(config.metrics_wanted())  # asked again only after a second: still False
    config.state.silent_checked_ns -= 1_000_000_000  # a second later
    seen.append(config.metrics_wanted())
    print(seen)
    """
)


def _probe(env: dict[str, str]) -> str:
    done = subprocess.run(
        [sys.executable, "-c", METRICS_PROBE],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


def test_a_global_meter_provider_set_after_configure_is_wanted_within_a_second() -> None:
    env = {k: v for k, v in os.environ.items() if k != "OTEL_PYTHON_METER_PROVIDER"}
    done = subprocess.run(
        [sys.executable, "-c", METRICS_PROBE], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[False, False, False, True]"


def test_a_meter_provider_named_by_the_environment_is_wanted_from_the_first_query() -> None:
    seen = _probe({"OTEL_PYTHON_METER_PROVIDER": "sdk_meter_provider"})
    assert seen == "[True, True, True, True]"


@pytest.mark.usefixtures("instrumented")
async def test_the_older_plain_suppression_key_gives_no_query_spans(
    blog_engine: Engine, spans: InMemorySpanExporter
) -> None:
    token = otel_context.attach(otel_context.set_value("suppress_instrumentation", True))
    try:
        async with Session(blog_engine) as session:
            assert len(await session.find(Author).to_list()) == 3
    finally:
        otel_context.detach(token)
    assert spans.get_finished_spans() == ()
    async with Session(blog_engine) as session:  # the twin: not suppressed, one query span
        assert len(await session.find(Author).to_list()) == 3
    assert [s.name for s in spans.get_finished_spans() if s.name.startswith("db.query")] == [
        "db.query.find"
    ]

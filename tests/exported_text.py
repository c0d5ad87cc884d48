"""Everything a test's in-memory SDK and log capture received, as one text:
where a failed operation must leave no bound value."""

from __future__ import annotations

import logging

import pytest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter


def everything_exported(
    spans: InMemorySpanExporter, reader: InMemoryMetricReader, caplog: pytest.LogCaptureFixture
) -> str:
    """Every attribute, event, status, metric point and log record (with its traceback)."""
    parts = [span.to_json() for span in spans.get_finished_spans()]
    data = reader.get_metrics_data()
    if data is not None:
        parts.append(data.to_json())
    for record in caplog.records:
        parts.append(record.getMessage())
        if record.exc_info:
            parts.append(logging.Formatter().formatException(record.exc_info))
    return "\n".join(parts)

"""Everything a test's in-memory SDK and log capture received: where a failed
operation must leave no bound value.

`everything_exported` gives it as one JSON-ish text (quotes, backslashes and
non-ASCII characters escaped, as an exporter would send them);
`exported_strings` gives every string as recorded, unescaped, so a value
holding a quote, a backslash, a newline or a non-ASCII character is found as
it was written.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any

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
    parts.extend(_log_texts(caplog))
    return "\n".join(parts)


def exported_strings(
    spans: InMemorySpanExporter, reader: InMemoryMetricReader, caplog: pytest.LogCaptureFixture
) -> list[str]:
    """Every string as recorded: span names, attribute values (sequences too) of
    spans, events and links, status descriptions, metric point attributes, and
    each log record's message, extra fields and formatted traceback."""
    found: list[str] = []
    for span in spans.get_finished_spans():
        found.append(span.name)
        found.extend(_values(span.attributes))
        if span.status.description:
            found.append(span.status.description)
        for event in span.events:
            found.append(event.name)
            found.extend(_values(event.attributes))
        for link in span.links:
            found.extend(_values(link.attributes))
    data = reader.get_metrics_data()
    if data is not None:
        for resource_metrics in data.resource_metrics:
            for scope_metrics in resource_metrics.scope_metrics:
                for metric in scope_metrics.metrics:
                    for point in metric.data.data_points:
                        found.extend(_values(point.attributes))
    found.extend(_log_texts(caplog))
    for record in caplog.records:
        found.extend(str(v) for k, v in vars(record).items() if k not in _LOG_RECORD_FIELDS)
    return found


# The attributes every LogRecord has; anything else came in through `extra=`.
_LOG_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


def _log_texts(caplog: pytest.LogCaptureFixture) -> Iterator[str]:
    for record in caplog.records:
        yield record.getMessage()
        if record.exc_info:
            yield logging.Formatter().formatException(record.exc_info)
        if record.stack_info:
            yield record.stack_info


def _values(attributes: Mapping[str, Any] | None) -> Iterator[str]:
    for key, value in (attributes or {}).items():
        yield key
        if isinstance(value, str | bytes | int | float | bool):
            yield str(value)
        else:
            yield from (str(v) for v in value)

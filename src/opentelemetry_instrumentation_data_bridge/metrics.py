"""ORM metrics: query duration and count, semconv operation duration, transactions.

Pool metrics are in `pool_metrics`.

Instruments are created once per meter (per `instrument()` call). Attribute
values are low-cardinality only: operation, table, error type, pool name;
never a value from a query.
"""

from __future__ import annotations

import time
from typing import Any

from opentelemetry.metrics import Meter

from opentelemetry_instrumentation_data_bridge.attributes import (
    DB_SYSTEM_VALUE,
    MetricNames,
    SpanAttributes,
)
from opentelemetry_instrumentation_data_bridge.error_description import (
    error_facts,
    is_cancellation,
)

# Semconv advisory for db.client.operation.duration: without it the SDK's
# default buckets (made for milliseconds) put every second-valued sample in one bucket.
OPERATION_DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
# Semconv advisory for db.client.response.returned_rows.
RETURNED_ROWS_BUCKETS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000)


class OrmMetrics:
    """The instruments of one meter and the helpers the wrappers call."""

    def __init__(self, meter: Meter) -> None:
        self.query_duration = meter.create_histogram(
            MetricNames.QUERY_DURATION, unit="ms", description="ORM operation duration"
        )
        self.query_count = meter.create_counter(
            MetricNames.QUERY_COUNT, unit="{operation}", description="ORM operations run"
        )
        self.operation_duration = meter.create_histogram(
            MetricNames.CLIENT_OPERATION_DURATION,
            unit="s",
            description="Duration of database client operations",
            explicit_bucket_boundaries_advisory=list(OPERATION_DURATION_BUCKETS),
        )
        self.returned_rows = meter.create_histogram(
            MetricNames.CLIENT_RESPONSE_RETURNED_ROWS,
            unit="{row}",
            description="Rows returned by database operations",
            explicit_bucket_boundaries_advisory=list(RETURNED_ROWS_BUCKETS),
        )
        self.transaction_duration = meter.create_histogram(
            MetricNames.SESSION_TRANSACTION_DURATION,
            unit="ms",
            description="Session transaction time, from its first statement to commit/rollback",
        )
        # (operation, table, (error type, SQLSTATE), id(server)) -> (attrs, semconv attrs, server)
        self._attributes: dict[tuple[Any, ...], tuple[dict[str, Any], dict[str, Any], Any]] = {}

    def record_operation(
        self,
        operation: str,
        table: str | None,
        seconds: float,
        rows: int | None,
        error: BaseException | None,
        server: dict[str, Any],
        reference: bool = True,
    ) -> None:
        """One operation: ``db.client.operation.duration`` (and ``returned_rows`` when
        ``rows`` is not None); ``reference``: the reference's query metrics too."""
        if error is not None and is_cancellation(error):
            return  # cut short by its caller: neither a success nor a database error
        kind = None if error is None else error_facts(error)  # (error.type, SQLSTATE)
        # The attribute sets are few (operation x table x server x error type and SQLSTATE):
        # build each once instead of on every call.
        key = (operation, table, kind, id(server))
        cached = self._attributes.get(key)
        if cached is None or cached[2] is not server:
            attrs: dict[str, Any] = {SpanAttributes.DB_OPERATION_NAME: operation}
            if table:
                attrs[SpanAttributes.DB_COLLECTION_NAME] = table
            semconv = {SpanAttributes.DB_SYSTEM_NAME: DB_SYSTEM_VALUE, **attrs, **server}
            if kind is not None:
                semconv[SpanAttributes.ERROR_TYPE] = kind[0]
                if kind[1] is not None:
                    semconv[SpanAttributes.DB_RESPONSE_STATUS_CODE] = kind[1]
            if len(self._attributes) > 4096:  # a safety net, never reached by sane schemas
                self._attributes.clear()
            cached = self._attributes[key] = (attrs, semconv, server)
        attrs, semconv = cached[0], cached[1]
        if reference:
            self.query_duration.record(seconds * 1000.0, attrs)
            self.query_count.add(1, attrs)
        self.operation_duration.record(seconds, semconv)
        if rows is not None:
            self.returned_rows.record(rows, semconv)

    def transaction_ended(self, started_ns: int | None, outcome: str) -> None:
        """A transaction begun at ``started_ns`` (perf_counter_ns) ended (commit or rollback)."""
        if started_ns is not None:
            elapsed_ms = (time.perf_counter_ns() - started_ns) / 1e6
            self.transaction_duration.record(elapsed_ms, {"db.session.outcome": outcome})

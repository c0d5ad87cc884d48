"""The span shapes of the ORM's operations and the scope that opens them.

One implementation per shape (`query_span`, `session_span`,
`relationship_span`): the instrumentor's wrappers and the public helpers of
`telemetry` both use them. `SpanScope` starts the span with the attributes
samplers should see and adds the rest only when it records.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.instrumentation._semconv import _set_db_statement
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from opentelemetry_instrumentation_data_bridge import providers
from opentelemetry_instrumentation_data_bridge.attributes import SpanAttributes
from opentelemetry_instrumentation_data_bridge.providers import report_failure, span_dropped

_SESSION_INTERNAL = frozenset({"open", "close"})

_EAGER = frozenset({"selectinload", "joined"})


def _truncate(text: str) -> str:
    limit = os.environ.get("OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT")
    if limit and limit.isdigit() and len(text) > int(limit):
        return text[: int(limit)]
    return text


def set_span_statement(span: Span | None, statement: str) -> None:
    """Record a parameterized SQL statement under the name(s) of the semconv mode."""
    if span is None or not span.is_recording():
        return
    attrs: dict[str, Any] = {}
    _set_db_statement(attrs, _truncate(statement), providers.state.mode)
    span.set_attributes(attrs)


def _error_type(exc: BaseException) -> str:
    cls = type(exc)
    if cls.__module__ == "builtins":
        return cls.__qualname__
    return f"{cls.__module__}.{cls.__qualname__}"


def add_exception(span: Span | None, exception: BaseException) -> None:
    """Record an exception: exception event, ERROR status, error.type (and SQLSTATE)."""
    if span is None or not span.is_recording():
        return
    try:
        span.record_exception(exception)
        span.set_status(Status(StatusCode.ERROR, f"{type(exception).__name__}: {exception}"))
        span.set_attribute(SpanAttributes.ERROR_TYPE, _error_type(exception))
        sqlstate = getattr(exception, "sqlstate", None) or getattr(
            exception.__cause__, "sqlstate", None
        )
        if sqlstate:
            span.set_attribute(SpanAttributes.DB_RESPONSE_STATUS_CODE, str(sqlstate))
    except Exception as exc:  # the instrumentation must not replace the user's error
        report_failure("record an exception", exc)


def _result_attributes(
    count: int | None, affected_rows: int | None, cache_hit: bool | None
) -> dict[str, Any]:
    attrs: dict[str, Any] = {}
    if count is not None:
        attrs[SpanAttributes.DB_RESULT_COUNT] = count
        attrs[SpanAttributes.DB_RESPONSE_RETURNED_ROWS] = count
    if affected_rows is not None:
        attrs[SpanAttributes.DB_RESULT_AFFECTED_ROWS] = affected_rows
    if cache_hit is not None:
        attrs[SpanAttributes.DB_RELATIONSHIP_CACHE_HIT] = cache_hit
    return attrs


def set_span_result(
    span: Span | None,
    count: int | None = None,
    affected_rows: int | None = None,
    cache_hit: bool | None = None,
    **kwargs: Any,
) -> None:
    """Set db.result.count (+ db.response.returned_rows), affected rows and cache hit."""
    if span is None or not span.is_recording():
        return
    try:
        attrs = _result_attributes(count, affected_rows, cache_hit)
        for key, value in kwargs.items():
            if value is not None:
                attrs[key] = value
        span.set_attributes(attrs)
    except Exception as exc:
        report_failure("set result attributes", exc)


class SpanScope:
    """Starts a span, makes it current, ends it; ``with`` gives the span (or None).

    A class rather than a generator context manager because it runs on every
    ORM call: ``start_span`` plus an explicit context attach costs less than
    ``start_as_current_span``. Attributes known before the call go in at start,
    where samplers see them. When the span records, ``details()`` and the
    result given to `set_result` are added in one ``set_attributes`` at the end
    (each SDK call takes the span's lock); when it does not, neither is built.
    """

    __slots__ = (
        "_attributes",
        "_details",
        "_kind",
        "_name",
        "_result",
        "_token",
        "_tracer",
        "recording",
        "span",
    )

    def __init__(
        self,
        tracer: Tracer | None,
        name: str,
        kind: SpanKind,
        attributes: dict[str, Any],
        details: Callable[[], dict[str, Any]] | None = None,
    ) -> None:
        self._tracer = tracer
        self._name = name
        self._kind = kind
        self._attributes = attributes
        self._details = details
        self._result: dict[str, Any] | None = None
        self.span: Span | None = None
        self.recording = False
        self._token: object = None

    def __enter__(self) -> Span | None:
        tracer = self._tracer
        if tracer is None:
            return None
        current = otel_context.get_current()  # read once for the parent and the attach
        if span_dropped(current):
            return None
        span = self.span = tracer.start_span(
            self._name,
            current,
            kind=self._kind,
            attributes=self._attributes,
            record_exception=False,
            set_status_on_exception=False,
        )
        self.recording = span.is_recording()
        self._token = otel_context.attach(trace.set_span_in_context(span, current))
        return span

    def set_result(
        self,
        count: int | None = None,
        affected_rows: int | None = None,
        cache_hit: bool | None = None,
    ) -> None:
        """Result attributes for the end of the span (see `set_span_result`)."""
        if self.recording:
            self._result = _result_attributes(count, affected_rows, cache_hit)

    def add_attributes(self, attributes: dict[str, Any]) -> None:
        """More attributes for the end of the span (only kept when it records)."""
        if self.recording:
            if self._result is None:
                self._result = {}
            self._result.update(attributes)

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        span = self.span
        if span is None:
            return
        try:
            if self.recording:
                try:
                    extra = self._details() if self._details is not None else {}
                    if self._result:
                        extra.update(self._result)
                    if extra:
                        span.set_attributes(extra)
                except Exception as failure:
                    report_failure(f"build attributes of {self._name}", failure)
            if exc is not None:
                add_exception(span, exc)
        finally:
            otel_context.detach(self._token)  # type: ignore[arg-type]
            span.end()


def _present(values: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def query_span(
    tracer: Tracer | None,
    operation: str,
    table: str | None = None,
    filters_count: int | None = None,
    limit: int | None = None,
    offset: int | None = None,
    order_by: str | None = None,
    statement: str | None = None,
    server: dict[str, Any] | None = None,
    **attributes: Any,
) -> SpanScope:
    """The ``db.query.<operation>`` span shape (see `create_query_span`).

    At start, for samplers: the semconv's sampling-relevant attributes
    (system, operation, collection and the ``server`` ones: namespace,
    address, port). The reference's query details follow only if it records.
    """
    # The start attributes depend on (operation, table, engine) only: built once each.
    # (The SDK copies them into the span; samplers only read them.)
    key = (operation, table, id(server) if server else 0)
    cached = providers.state.start_attributes.get(key)
    if cached is not None and cached[1] is server:
        sampler = cached[0]
    else:
        sampler = {**providers.state.system_attributes, SpanAttributes.DB_OPERATION_NAME: operation}
        if table is not None:
            sampler[SpanAttributes.DB_COLLECTION_NAME] = table
        if server:
            sampler.update(server)
        if len(providers.state.start_attributes) < 4096:  # low cardinality; a guard all the same
            providers.state.start_attributes[key] = (sampler, server)

    def details() -> dict[str, Any]:
        extra = _present(
            {
                SpanAttributes.DB_QUERY_FILTERS_COUNT: filters_count,
                SpanAttributes.DB_QUERY_LIMIT: limit,
                SpanAttributes.DB_QUERY_OFFSET: offset,
                SpanAttributes.DB_QUERY_ORDER_BY: order_by,
                **attributes,
            }
        )
        if statement is not None:
            _set_db_statement(extra, _truncate(statement), providers.state.mode)
        return extra

    return SpanScope(tracer, f"db.query.{operation}", SpanKind.CLIENT, sampler, details)


def session_span(
    tracer: Tracer | None,
    operation: str,
    pending_count: int | None = None,
    dirty_count: int | None = None,
    deleted_count: int | None = None,
    **attributes: Any,
) -> SpanScope:
    """The ``db.session.<operation>`` span shape (see `create_session_span`)."""
    kind = SpanKind.INTERNAL if operation in _SESSION_INTERNAL else SpanKind.CLIENT

    def details() -> dict[str, Any]:
        return _present(
            {
                SpanAttributes.DB_SESSION_PENDING_COUNT: pending_count,
                SpanAttributes.DB_SESSION_DIRTY_COUNT: dirty_count,
                SpanAttributes.DB_SESSION_DELETED_COUNT: deleted_count,
                **attributes,
            }
        )

    sampler = {**providers.state.system_attributes, SpanAttributes.DB_SESSION_OPERATION: operation}
    return SpanScope(tracer, f"db.session.{operation}", kind, sampler, details)


def relationship_span(
    tracer: Tracer | None,
    name: str,
    target_model: str | None = None,
    strategy: str | None = None,
    fk_column: str | None = None,
    batch_count: int | None = None,
    depth: int = 0,
    **attributes: Any,
) -> SpanScope:
    """The ``db.relationship.<strategy>`` span shape (see `create_relationship_span`)."""
    strategy = strategy or "select"
    sampler = {
        **providers.state.system_attributes,
        SpanAttributes.DB_RELATIONSHIP_NAME: name,
        SpanAttributes.DB_RELATIONSHIP_STRATEGY: strategy,
    }

    def details() -> dict[str, Any]:
        extra = _present(
            {
                SpanAttributes.DB_RELATIONSHIP_TARGET_MODEL: target_model,
                SpanAttributes.DB_RELATIONSHIP_FK_COLUMN: fk_column,
                SpanAttributes.DB_RELATIONSHIP_BATCH_COUNT: batch_count,
                **attributes,
            }
        )
        if strategy in _EAGER:
            extra[SpanAttributes.DB_RELATIONSHIP_DEPTH] = depth
        return extra

    return SpanScope(tracer, f"db.relationship.{strategy}", SpanKind.CLIENT, sampler, details)

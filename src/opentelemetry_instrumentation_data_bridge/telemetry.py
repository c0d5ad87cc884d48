"""Tracing helpers of the reference's API (``data_bridge.postgres.telemetry``).

Applications use these helpers for their own spans and metrics; they open
the same span shapes as the instrumentor's wrappers (`spans`), on the
providers given to ``instrument()`` or `configure` (`providers`). They
degrade to no-ops (yielding ``None``) when tracing is disabled, the SDK is
not installed, or instrumentation is suppressed.

Attribute names follow ``OTEL_SEMCONV_STABILITY_OPT_IN`` through contrib's
``_semconv`` helpers: by default the reference's ``db.system`` and
``db.statement``; ``database`` gives ``db.system.name`` and ``db.query.text``;
``database/dup`` gives both.

Logger: ``opentelemetry_instrumentation_data_bridge``.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

from opentelemetry import metrics
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.metrics import Observation
from opentelemetry.trace import SpanKind, Tracer

from opentelemetry_instrumentation_data_bridge.attributes import (
    MetricNames,
    SpanAttributes,
    SpanNames,
)

if TYPE_CHECKING:
    pass

from opentelemetry_instrumentation_data_bridge import providers
from opentelemetry_instrumentation_data_bridge.providers import (
    OTEL_AVAILABLE,
    configure,
    get_meter,
    get_tracer,
    is_tracing_enabled,
    reset,
    statement_capture_enabled,
)
from opentelemetry_instrumentation_data_bridge.spans import (
    SpanScope,
    add_exception,
    query_span,
    relationship_span,
    session_span,
    set_span_result,
    set_span_statement,
)

F = TypeVar("F", bound=Callable[..., Any])


def _helper_tracer() -> Tracer | None:
    """The tracer for the public helpers: None when suppressed or disabled."""
    if not is_instrumentation_enabled():
        return None
    return get_tracer()


def create_query_span(
    operation: str,
    table: str | None = None,
    filters_count: int | None = None,
    limit: int | None = None,
    offset: int | None = None,
    order_by: str | None = None,
    statement: str | None = None,
    **attributes: Any,
) -> SpanScope:
    """A ``db.query.<operation>`` span with the query attributes of the reference."""
    return query_span(
        _helper_tracer(),
        operation,
        table,
        filters_count,
        limit,
        offset,
        order_by,
        statement,
        **attributes,
    )


def create_session_span(
    operation: str,
    pending_count: int | None = None,
    dirty_count: int | None = None,
    deleted_count: int | None = None,
    **attributes: Any,
) -> SpanScope:
    """A ``db.session.<operation>`` span with the session's state counts."""
    return session_span(
        _helper_tracer(), operation, pending_count, dirty_count, deleted_count, **attributes
    )


def create_relationship_span(
    name: str,
    target_model: str | None = None,
    strategy: str | None = None,
    fk_column: str | None = None,
    batch_count: int | None = None,
    depth: int = 0,
    **attributes: Any,
) -> SpanScope:
    """A ``db.relationship.<strategy>`` span (select, selectinload, joined)."""
    return relationship_span(
        _helper_tracer(),
        name,
        target_model,
        strategy,
        fk_column,
        batch_count,
        depth,
        **attributes,
    )


def _decorate(
    name: Callable[[Callable[..., Any]], str],
    opener: Callable[[str], Any],
) -> Callable[[F], F]:
    def decorator(func: F) -> F:
        span_name = name(func)
        if inspect.iscoroutinefunction(func):

            @functools.wraps(func)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                with opener(span_name):
                    return await func(*args, **kwargs)

            return cast(F, async_wrapper)

        @functools.wraps(func)
        def sync_wrapper(*args: Any, **kwargs: Any) -> Any:
            with opener(span_name):
                return func(*args, **kwargs)

        return cast(F, sync_wrapper)

    return decorator


def instrument_span(
    name: str | None = None, attributes: dict[str, Any] | None = None
) -> Callable[[F], F]:
    """Decorate a sync or async function with a span (default name ``module.function``)."""
    attrs = dict(attributes or {})

    def opener(span_name: str) -> SpanScope:
        attributes = {**providers.state.system_attributes, **attrs}
        return SpanScope(_helper_tracer(), span_name, SpanKind.INTERNAL, attributes)

    return _decorate(lambda f: name or f"{f.__module__}.{f.__qualname__}", opener)


def instrument_query(operation: str) -> Callable[[F], F]:
    """Decorate a function with a ``db.query.<operation>`` span."""
    return _decorate(lambda f: operation, lambda op: create_query_span(op))


def instrument_session(operation: str) -> Callable[[F], F]:
    """Decorate a function with a ``db.session.<operation>`` span."""
    return _decorate(lambda f: operation, lambda op: create_session_span(op))


class ConnectionPoolMetrics:
    """Connection pool gauges ``db.connection.pool.in_use/.idle/.max``.

    They are observable instruments: each collection reads ``get_stats()`` of
    every live Engine's pool (``db.client.connection.pool.name`` tells them
    apart), plus the values last given to `record_pool_stats` for manual use.
    """

    def __init__(self) -> None:
        self._meter: metrics.Meter | None = None
        self._manual: dict[str | None, tuple[int, int, int]] = {}

    def ensure_instruments(self) -> bool:
        """Create the observable gauges on the current meter (once per meter)."""
        meter = get_meter()
        if meter is None:
            return False
        if meter is not self._meter:
            self._meter = meter
            for index, (name, description) in enumerate(
                (
                    (MetricNames.CONNECTION_POOL_IN_USE, "Connections in use"),
                    (MetricNames.CONNECTION_POOL_IDLE, "Idle connections"),
                    (MetricNames.CONNECTION_POOL_MAX, "Maximum pool size"),
                )
            ):
                meter.create_observable_gauge(
                    name,
                    callbacks=[functools.partial(self._observe, index)],
                    unit="{connection}",
                    description=description,
                )
        return True

    def _observe(self, index: int, options: metrics.CallbackOptions) -> Iterator[Observation]:
        from opentelemetry_instrumentation_data_bridge.metrics import POOL_NAME, live_pools

        for pool_name, stats in live_pools():
            idle = stats.get("pool_available", 0)
            values = (max(stats.get("pool_size", 0) - idle, 0), idle, stats.get("pool_max", 0))
            yield Observation(values[index], {POOL_NAME: pool_name})
        for manual_name, values in list(self._manual.items()):
            yield Observation(values[index], {POOL_NAME: manual_name} if manual_name else None)

    def record_pool_stats(
        self, in_use: int, idle: int, max_size: int, pool_name: str | None = None
    ) -> None:
        """Record connection pool statistics (reported at the next collection)."""
        self._manual[pool_name] = (in_use, idle, max_size)
        self.ensure_instruments()


_pool_metrics = ConnectionPoolMetrics()


# N+1 detection (Future Enhancement 1 of the reference), re-exported here.
# Future Enhancements 3-5 of the reference: processors, linked tasks, sampling.
from opentelemetry_instrumentation_data_bridge.linked_tasks import create_linked_task  # noqa: E402
from opentelemetry_instrumentation_data_bridge.n_plus_one import (  # noqa: E402
    NPlusOneError,
    NPlusOneWarning,
    UnusedEagerLoadWarning,
    configure_n1_detection,
    n1_ignore,
    n1_scope,
)
from opentelemetry_instrumentation_data_bridge.processors import (  # noqa: E402
    SLOW_QUERY_LOGGER,
    SlowOperation,
    SlowQueryProcessor,
    add_span_processor,
    remove_span_processor,
)

with contextlib.suppress(ImportError):  # an SDK Sampler: only with the (optional) SDK
    from opentelemetry_instrumentation_data_bridge.sampling import (
        AttributeBasedSampler,
        DurationRuleProcessor,
    )


def get_connection_pool_metrics() -> ConnectionPoolMetrics:
    """The process-wide ConnectionPoolMetrics."""
    return _pool_metrics


__all__ = [
    "OTEL_AVAILABLE",
    "SLOW_QUERY_LOGGER",
    "AttributeBasedSampler",
    "ConnectionPoolMetrics",
    "DurationRuleProcessor",
    "MetricNames",
    "NPlusOneError",
    "NPlusOneWarning",
    "SlowOperation",
    "SlowQueryProcessor",
    "SpanAttributes",
    "SpanNames",
    "UnusedEagerLoadWarning",
    "add_exception",
    "add_span_processor",
    "configure",
    "configure_n1_detection",
    "create_linked_task",
    "create_query_span",
    "create_relationship_span",
    "create_session_span",
    "get_connection_pool_metrics",
    "get_meter",
    "get_tracer",
    "instrument_query",
    "instrument_session",
    "instrument_span",
    "is_tracing_enabled",
    "n1_ignore",
    "n1_scope",
    "remove_span_processor",
    "reset",
    "set_span_result",
    "set_span_statement",
    "statement_capture_enabled",
]

"""Tracing helpers of the reference's API (``data_bridge.postgres.telemetry``).

Applications use these helpers for their own spans and metrics; they open
the same span shapes as the instrumentor's wrappers (`spans`), on the
providers given to ``instrument()`` or `configure` (`config`). They
degrade to no-ops (yielding ``None``) when tracing is disabled, the SDK is
not installed, or instrumentation is suppressed.

Attribute names follow ``OTEL_SEMCONV_STABILITY_OPT_IN`` (`semconv`): by
default the reference's ``db.system`` and ``db.statement`` and the stable
``db.system.name`` and ``db.query.text``; ``database`` gives only the stable
ones; ``database/dup`` gives both, as the default does.

Logger: ``opentelemetry_instrumentation_data_bridge``.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, TypeVar, cast

from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.trace import SpanKind, Tracer

from opentelemetry_instrumentation_data_bridge import config
from opentelemetry_instrumentation_data_bridge.attributes import (
    MetricNames,
    SpanAttributes,
    SpanNames,
)
from opentelemetry_instrumentation_data_bridge.config import (
    OTEL_AVAILABLE,
    configure,
    get_meter,
    get_tracer,
    is_tracing_enabled,
    reset,
    statement_capture_enabled,
)

# Future Enhancements 3-5 of the reference: processors, linked tasks, sampling.
from opentelemetry_instrumentation_data_bridge.linked_tasks import create_linked_task

# N+1 detection (Future Enhancement 1 of the reference), re-exported here.
from opentelemetry_instrumentation_data_bridge.n_plus_one import (
    NPlusOneError,
    NPlusOneWarning,
    UnusedEagerLoadWarning,
    configure_n1_detection,
    n1_ignore,
    n1_scope,
)
from opentelemetry_instrumentation_data_bridge.pool_metrics import (
    ConnectionPoolMetrics,
    get_connection_pool_metrics,
)
from opentelemetry_instrumentation_data_bridge.processors import (
    SLOW_QUERY_LOGGER,
    SlowOperation,
    SlowQueryProcessor,
    add_span_processor,
    remove_span_processor,
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

try:  # an SDK Sampler and span processor: only with the (optional) SDK
    from opentelemetry_instrumentation_data_bridge.sampling import (
        AttributeBasedSampler,
        DurationRuleProcessor,
    )
except ImportError:  # the API-only install: importable, and a clear error when used

    def _needs_sdk(name: str) -> Any:
        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise ImportError(
                f"{name} is an OpenTelemetry SDK sampler/processor and needs opentelemetry-sdk"
                " (pip install 'opentelemetry-instrumentation-data-bridge[sdk]')"
            )

        return type(name, (), {"__new__": refuse, "__doc__": f"{name}: needs the SDK."})

    AttributeBasedSampler = _needs_sdk("AttributeBasedSampler")  # type: ignore[misc]
    DurationRuleProcessor = _needs_sdk("DurationRuleProcessor")  # type: ignore[misc]

F = TypeVar("F", bound=Callable[..., Any])


def _helper_tracer() -> Tracer | None:
    """`get_tracer`, and None while instrumentation is suppressed: the helpers then
    open no span, like the instrumentor's wrappers."""
    return get_tracer() if is_instrumentation_enabled() else None


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
        table=table,
        filters_count=filters_count,
        limit=limit,
        offset=offset,
        order_by=order_by,
        statement=statement,
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
        _helper_tracer(),
        operation,
        pending_count=pending_count,
        dirty_count=dirty_count,
        deleted_count=deleted_count,
        **attributes,
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
        target_model=target_model,
        strategy=strategy,
        fk_column=fk_column,
        batch_count=batch_count,
        depth=depth,
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
        attributes = {**config.state.system_attributes, **attrs}
        return SpanScope(_helper_tracer(), span_name, SpanKind.INTERNAL, attributes)

    return _decorate(lambda f: name or f"{f.__module__}.{f.__qualname__}", opener)


def instrument_query(operation: str) -> Callable[[F], F]:
    """Decorate a function with a ``db.query.<operation>`` span."""
    return _decorate(lambda f: operation, lambda op: create_query_span(op))


def instrument_session(operation: str) -> Callable[[F], F]:
    """Decorate a function with a ``db.session.<operation>`` span."""
    return _decorate(lambda f: operation, lambda op: create_session_span(op))


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

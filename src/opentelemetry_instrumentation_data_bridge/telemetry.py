"""Tracing helpers of the reference's API (``data_bridge.postgres.telemetry``).

These helpers are the single implementation of each span shape: the
instrumentor's wrappers call them, and applications may use them for their
own spans. They degrade to no-ops (yielding ``None``) when tracing is
disabled, the SDK is not installed, or instrumentation is suppressed.

Attribute names follow ``OTEL_SEMCONV_STABILITY_OPT_IN`` through contrib's
``_semconv`` helpers: by default the reference's ``db.system`` and
``db.statement``; ``database`` gives ``db.system.name`` and ``db.query.text``;
``database/dup`` gives both.

Logger: ``opentelemetry_instrumentation_data_bridge``.
"""

from __future__ import annotations

import functools
import inspect
import logging
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar, cast

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.instrumentation._semconv import (
    _get_schema_url_for_signal_types,
    _OpenTelemetrySemanticConventionStability,
    _OpenTelemetryStabilitySignalType,
    _set_db_statement,
    _set_db_system,
    _StabilityMode,
)
from opentelemetry.instrumentation.utils import is_instrumentation_enabled
from opentelemetry.metrics import Observation
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer

from opentelemetry_instrumentation_data_bridge.attributes import (
    DB_SYSTEM_VALUE,
    MetricNames,
    SpanAttributes,
    SpanNames,
)
from opentelemetry_instrumentation_data_bridge.environment_variables import (
    DATA_BRIDGE_CAPTURE_STATEMENT,
    DATA_BRIDGE_TRACING_ENABLED,
    env_flag,
)
from opentelemetry_instrumentation_data_bridge.version import __version__

if TYPE_CHECKING:
    from opentelemetry_instrumentation_data_bridge.metrics import OrmMetrics

try:
    import opentelemetry.sdk  # noqa: F401

    OTEL_AVAILABLE = True
except ImportError:  # pragma: no cover - the SDK is optional
    OTEL_AVAILABLE = False

F = TypeVar("F", bound=Callable[..., Any])
SCOPE = "opentelemetry_instrumentation_data_bridge"
logger = logging.getLogger(SCOPE)

_SESSION_INTERNAL = frozenset({"open", "close"})
_EAGER = frozenset({"selectinload", "joined"})


class _Config:
    """Where the helpers send telemetry; set by `configure`, read on every span."""

    def __init__(self) -> None:
        self.tracer_provider: trace.TracerProvider | None = None
        self.meter_provider: metrics.MeterProvider | None = None
        self.capture_statement: bool | None = None
        self.tracer: Tracer | None = None
        self.meter: metrics.Meter | None = None
        self.mode: _StabilityMode = _StabilityMode.DEFAULT
        self.system_attributes: dict[str, Any] = {}
        self.reported: set[str] = set()
        self.orm_metrics: OrmMetrics | None = None
        # What the provider's sampler decides without being asked (see `_sampling_shortcuts`).
        self.drops_roots = False
        self.drops_unsampled_children = False
        # (operation, table, id(server)) -> (start attributes, server) for query spans.
        self.start_attributes: dict[tuple[Any, ...], tuple[dict[str, Any], Any]] = {}


_config = _Config()


def _stability_mode() -> _StabilityMode:
    _OpenTelemetrySemanticConventionStability._initialize()  # type: ignore[no-untyped-call]
    return _OpenTelemetrySemanticConventionStability._get_opentelemetry_stability_opt_in_mode(
        _OpenTelemetryStabilitySignalType.DATABASE
    )


def configure(
    tracer_provider: trace.TracerProvider | None = None,
    meter_provider: metrics.MeterProvider | None = None,
    capture_statement: bool | None = None,
) -> None:
    """Point the helpers at the given providers (None: the global ones, resolved lazily)."""
    global _config
    config = _Config()
    config.tracer_provider = tracer_provider
    config.meter_provider = meter_provider
    # Read once here: statement capture is asked about on every SQL statement.
    config.capture_statement = (
        capture_statement
        if capture_statement is not None
        else env_flag(DATA_BRIDGE_CAPTURE_STATEMENT, False)
    )
    config.mode = _stability_mode()
    system: dict[str, Any] = {}
    _set_db_system(system, DB_SYSTEM_VALUE, config.mode)
    config.system_attributes = system
    _config = config


def reset() -> None:
    """Back to the global providers and default options."""
    configure()


configure()


def report_failure(key: str, exc: BaseException) -> None:
    """A failure in the instrumentation's own code: log once, never disturb the caller."""
    if key not in _config.reported:
        _config.reported.add(key)
        logger.warning("data-bridge instrumentation failed to %s: %r", key, exc, exc_info=exc)


def is_tracing_enabled() -> bool:
    """True when the SDK is installed and DATA_BRIDGE_TRACING_ENABLED is not false/0/no."""
    return OTEL_AVAILABLE and env_flag(DATA_BRIDGE_TRACING_ENABLED, True)


def system_attributes() -> dict[str, Any]:
    """``db.system`` (and/or ``db.system.name``, by semconv mode) for spans built elsewhere."""
    return dict(_config.system_attributes)


def statement_capture_enabled() -> bool:
    """capture_statement given to instrument(), else DATA_BRIDGE_CAPTURE_STATEMENT
    as it was when instrument() (or `configure`) ran."""
    if _config.capture_statement is not None:
        return _config.capture_statement
    return env_flag(DATA_BRIDGE_CAPTURE_STATEMENT, False)


def configured_tracer_provider() -> trace.TracerProvider:
    """The provider given to instrument(), else the global one."""
    return _config.tracer_provider or trace.get_tracer_provider()


def get_tracer() -> Tracer | None:
    """The data-bridge tracer, or None when tracing is disabled."""
    if not is_tracing_enabled():
        return None
    return seam_tracer()


def orm_metrics() -> OrmMetrics | None:
    """The ORM instruments on the configured meter (None when tracing is disabled)."""
    if not is_tracing_enabled():
        return None
    return seam_metrics()


def get_meter() -> metrics.Meter | None:
    """The data-bridge meter, or None when tracing is disabled."""
    if not is_tracing_enabled():
        return None
    return _meter()


def _meter() -> metrics.Meter:
    meter = _config.meter
    if meter is None:
        schema_url = _get_schema_url_for_signal_types([_OpenTelemetryStabilitySignalType.DATABASE])
        meter = metrics.get_meter(SCOPE, __version__, _config.meter_provider, schema_url=schema_url)
        _config.meter = meter
    return meter


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
    _set_db_statement(attrs, _truncate(statement), _config.mode)
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


def _helper_tracer() -> Tracer | None:
    """The tracer for the public helpers: None when suppressed or disabled."""
    if not is_instrumentation_enabled():
        return None
    return get_tracer()


def span_dropped(current: otel_context.Context | None = None) -> bool:
    """True when the seams' sampler is known to drop a span started now.

    The span is then skipped: the parent's context (same trace, not sampled)
    stays current for everything below, as the sampler's decision would make it.
    """
    config = _config
    if not (config.drops_roots or config.drops_unsampled_children):
        return False
    parent = trace.get_current_span(current).get_span_context()
    if not parent.is_valid:
        return config.drops_roots
    return config.drops_unsampled_children and not parent.trace_flags.sampled


def _sampling_shortcuts(provider: Any) -> tuple[bool, bool]:
    """(drops every root span, drops every child of an unsampled parent) for the SDK's
    standard samplers, read from their public description; (False, False) otherwise.

    With ``ALWAYS_OFF``, or ``ParentBased`` under an unsampled parent (the 99% of
    requests that a 1% sampling rate drops), the sampler's answer is known in
    advance, so the seams skip the span instead of building one to throw away.
    """
    sampler = getattr(provider, "sampler", None)
    describe = getattr(sampler, "get_description", None)
    if describe is None:
        return False, False
    description = str(describe())
    if description == "AlwaysOffSampler":
        return True, True
    if not (description.startswith("ParentBased{") and description.endswith("}")):
        return False, False
    parts = dict(part.split(":", 1) for part in description[12:-1].split(",") if ":" in part)
    off = "AlwaysOffSampler"
    return (
        parts.get("root") == off,
        parts.get("remoteParentNotSampled") == off and parts.get("localParentNotSampled") == off,
    )


def seam_tracer() -> Tracer:
    """The tracer of the patched seams.

    ``instrument()`` patches nothing when tracing is disabled, so unlike
    `get_tracer` this does not read the environment on every call.
    """
    tracer = _config.tracer
    if tracer is None:
        _config.drops_roots, _config.drops_unsampled_children = _sampling_shortcuts(
            configured_tracer_provider()
        )
        schema_url = _get_schema_url_for_signal_types([_OpenTelemetryStabilitySignalType.DATABASE])
        tracer = trace.get_tracer(
            SCOPE, __version__, _config.tracer_provider, schema_url=schema_url
        )
        _config.tracer = tracer
    return tracer


try:  # the API's stand-in until an SDK MeterProvider is set globally
    from opentelemetry.metrics._internal import _ProxyMeterProvider

    _NOTHING_TO_RECORD_INTO: tuple[type, ...] = (metrics.NoOpMeterProvider, _ProxyMeterProvider)
except ImportError:  # pragma: no cover - another API version: always record
    _NOTHING_TO_RECORD_INTO = (metrics.NoOpMeterProvider,)


def metrics_wanted() -> bool:
    """False while no meter provider can receive measurements (none given to
    instrument() and no global SDK provider yet): the seams then skip building
    them. Checked per call, so a provider set later is used from then on."""
    if _config.meter_provider is not None:
        return not isinstance(_config.meter_provider, metrics.NoOpMeterProvider)
    return not isinstance(metrics.get_meter_provider(), _NOTHING_TO_RECORD_INTO)


def seam_metrics() -> OrmMetrics:
    """The ORM instruments for the patched seams (see `seam_tracer`)."""
    instruments = _config.orm_metrics
    if instruments is None:
        from opentelemetry_instrumentation_data_bridge.metrics import OrmMetrics

        instruments = _config.orm_metrics = OrmMetrics(_meter())
    return instruments


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
    cached = _config.start_attributes.get(key)
    if cached is not None and cached[1] is server:
        sampler = cached[0]
    else:
        sampler = {**_config.system_attributes, SpanAttributes.DB_OPERATION_NAME: operation}
        if table is not None:
            sampler[SpanAttributes.DB_COLLECTION_NAME] = table
        if server:
            sampler.update(server)
        if len(_config.start_attributes) < 4096:  # low cardinality; a guard all the same
            _config.start_attributes[key] = (sampler, server)

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
            _set_db_statement(extra, _truncate(statement), _config.mode)
        return extra

    return SpanScope(tracer, f"db.query.{operation}", SpanKind.CLIENT, sampler, details)


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

    sampler = {**_config.system_attributes, SpanAttributes.DB_SESSION_OPERATION: operation}
    return SpanScope(tracer, f"db.session.{operation}", kind, sampler, details)


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
        **_config.system_attributes,
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
        attributes = {**_config.system_attributes, **attrs}
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
from opentelemetry_instrumentation_data_bridge.n_plus_one import (  # noqa: E402
    NPlusOneError,
    NPlusOneWarning,
    UnusedEagerLoadWarning,
    configure_n1_detection,
    n1_ignore,
    n1_scope,
)


def get_connection_pool_metrics() -> ConnectionPoolMetrics:
    """The process-wide ConnectionPoolMetrics."""
    return _pool_metrics


__all__ = [
    "OTEL_AVAILABLE",
    "ConnectionPoolMetrics",
    "MetricNames",
    "NPlusOneError",
    "NPlusOneWarning",
    "SpanAttributes",
    "SpanNames",
    "UnusedEagerLoadWarning",
    "add_exception",
    "configure",
    "configure_n1_detection",
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
    "reset",
    "set_span_result",
    "set_span_statement",
    "statement_capture_enabled",
]

"""Where the instrumentation's telemetry goes: providers, options, and what the sampler
decides in advance.

`configure` (called by ``instrument()``) records the tracer and meter
providers and the options; `state` holds them, with the tracer, the meter
and the ORM instruments made from them. The seams read `state` on every
call, so everything here is computed once per `configure`.

Logger: ``opentelemetry_instrumentation_data_bridge``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.instrumentation._semconv import (
    _get_schema_url_for_signal_types,
    _OpenTelemetrySemanticConventionStability,
    _OpenTelemetryStabilitySignalType,
    _set_db_system,
    _StabilityMode,
)
from opentelemetry.trace import Tracer

from opentelemetry_instrumentation_data_bridge.attributes import DB_SYSTEM_VALUE
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

SCOPE = "opentelemetry_instrumentation_data_bridge"

logger = logging.getLogger(SCOPE)


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
        self.drops_all = False
        self.drops_roots = False
        self.drops_unsampled_children = False
        self.metrics_wanted = False  # True once a meter provider that records is seen
        # (operation, table, id(server)) -> (start attributes, server) for query spans.
        self.start_attributes: dict[tuple[Any, ...], tuple[dict[str, Any], Any]] = {}


state = _Config()


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
    global state
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
    state = config


def reset() -> None:
    """Back to the global providers and default options."""
    configure()


configure()


def report_failure(key: str, exc: BaseException) -> None:
    """A failure in the instrumentation's own code: log once, never disturb the caller."""
    if key not in state.reported:
        state.reported.add(key)
        logger.warning("data-bridge instrumentation failed to %s: %r", key, exc, exc_info=exc)


def is_tracing_enabled() -> bool:
    """True when the SDK is installed and DATA_BRIDGE_TRACING_ENABLED is not false/0/no."""
    return OTEL_AVAILABLE and env_flag(DATA_BRIDGE_TRACING_ENABLED, True)


def system_attributes() -> dict[str, Any]:
    """``db.system`` (and/or ``db.system.name``, by semconv mode) for spans built elsewhere."""
    return dict(state.system_attributes)


def statement_capture_enabled() -> bool:
    """capture_statement given to instrument(), else DATA_BRIDGE_CAPTURE_STATEMENT
    as it was when instrument() (or `configure`) ran."""
    if state.capture_statement is not None:
        return state.capture_statement
    return env_flag(DATA_BRIDGE_CAPTURE_STATEMENT, False)


def configured_tracer_provider() -> trace.TracerProvider:
    """The provider given to instrument(), else the global one."""
    return state.tracer_provider or trace.get_tracer_provider()


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
    meter = state.meter
    if meter is None:
        schema_url = _get_schema_url_for_signal_types([_OpenTelemetryStabilitySignalType.DATABASE])
        meter = metrics.get_meter(SCOPE, __version__, state.meter_provider, schema_url=schema_url)
        state.meter = meter
    return meter


def span_dropped(current: otel_context.Context | None = None) -> bool:
    """True when the seams' sampler is known to drop a span started now.

    The span is then skipped: the parent's context (same trace, not sampled)
    stays current for everything below, as the sampler's decision would make it.
    """
    config = state
    if not (config.drops_roots or config.drops_unsampled_children):
        return False
    if config.drops_all:
        return True  # ALWAYS_OFF: no parent to look at
    parent = trace.get_current_span(current).get_span_context()
    if not parent.is_valid:
        return config.drops_roots
    return config.drops_unsampled_children and not parent.trace_flags.sampled


def _sampling_shortcuts(provider: Any) -> tuple[bool, bool, bool]:
    """(drops everything, drops every root span, drops every child of an unsampled
    parent) for the SDK's standard samplers, read from their public description;
    all False for any other sampler.

    With ``ALWAYS_OFF``, or ``ParentBased`` under an unsampled parent (the 99% of
    requests that a 1% sampling rate drops), the sampler's answer is known in
    advance, so the seams skip the span instead of building one to throw away.
    """
    sampler = getattr(provider, "sampler", None)
    describe = getattr(sampler, "get_description", None)
    if describe is None:
        return False, False, False
    description = str(describe())
    if description == "AlwaysOffSampler":
        return True, True, True
    if not (description.startswith("ParentBased{") and description.endswith("}")):
        return False, False, False
    parts = dict(part.split(":", 1) for part in description[12:-1].split(",") if ":" in part)
    off = "AlwaysOffSampler"
    return (
        False,
        parts.get("root") == off,
        parts.get("remoteParentNotSampled") == off and parts.get("localParentNotSampled") == off,
    )


def seam_tracer() -> Tracer:
    """The tracer of the patched seams.

    ``instrument()`` patches nothing when tracing is disabled, so unlike
    `get_tracer` this does not read the environment on every call.
    """
    tracer = state.tracer
    if tracer is None:
        state.drops_all, state.drops_roots, state.drops_unsampled_children = _sampling_shortcuts(
            configured_tracer_provider()
        )
        schema_url = _get_schema_url_for_signal_types([_OpenTelemetryStabilitySignalType.DATABASE])
        tracer = trace.get_tracer(SCOPE, __version__, state.tracer_provider, schema_url=schema_url)
        state.tracer = tracer
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
    if state.metrics_wanted:  # once a real provider is seen, it stays (it cannot be unset)
        return True
    if state.meter_provider is not None:
        wanted = not isinstance(state.meter_provider, metrics.NoOpMeterProvider)
    else:
        wanted = not isinstance(metrics.get_meter_provider(), _NOTHING_TO_RECORD_INTO)
    state.metrics_wanted = wanted
    return wanted


def seam_metrics() -> OrmMetrics:
    """The ORM instruments for the patched seams (see `seam_tracer`)."""
    instruments = state.orm_metrics
    if instruments is None:
        from opentelemetry_instrumentation_data_bridge.metrics import OrmMetrics

        instruments = state.orm_metrics = OrmMetrics(_meter())
    return instruments

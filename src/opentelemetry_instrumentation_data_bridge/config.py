"""The instrumentation's configuration: the options of ``instrument()``, the providers
they name, and what those providers decide in advance.

`configure` (called by ``instrument()``) records the options in `state`;
one accessor per thing made from them: `tracer`, `meter`, `orm_metrics`
(each built once per `configure`). The reference's public getters
`get_tracer` / `get_meter` add its rule that a disabled instrumentation
gives ``None``. The seams read `state` on every call, so everything here is
computed once per `configure`.

Logger: ``opentelemetry_instrumentation_data_bridge``.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.environment_variables import OTEL_PYTHON_METER_PROVIDER
from opentelemetry.instrumentation.utils import (
    is_instrumentation_enabled,
    suppress_instrumentation,
)
from opentelemetry.trace import Tracer

from opentelemetry_instrumentation_data_bridge.environment_variables import (
    DATA_BRIDGE_CAPTURE_STATEMENT,
    DATA_BRIDGE_TRACING_ENABLED,
    env_flag,
)
from opentelemetry_instrumentation_data_bridge.error_description import describe, stacktrace
from opentelemetry_instrumentation_data_bridge.semconv import (
    SCHEMA_URL,
    Mode,
    keeps_reference_keys,
    stability_mode,
)
from opentelemetry_instrumentation_data_bridge.semconv import (
    system_attributes as _system_attributes,
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


def _suppression_keys() -> tuple[str, ...]:
    """The context keys the public ``suppress_instrumentation()`` sets, found by
    setting them once: `instrumentation_suppressed` then reads them from a context
    already in hand, without the private key's name (a patch release may rename it)."""
    before = otel_context.get_current()
    with suppress_instrumentation():
        during = otel_context.get_current()
        if is_instrumentation_enabled():  # pragma: no cover - not the documented behavior
            return ()
    return tuple(key for key in during if during.get(key) is True and before.get(key) is not True)


_SUPPRESSION_KEYS = _suppression_keys()
# How long `metrics_wanted` trusts "no meter provider yet" before asking the API again.
_METER_PROVIDER_RECHECK_NS = 1_000_000_000

logger = logging.getLogger(SCOPE)


class _Config:
    """Where the helpers send telemetry; set by `configure`, read on every span."""

    def __init__(self) -> None:
        self.tracer_provider: trace.TracerProvider | None = None
        self.meter_provider: metrics.MeterProvider | None = None
        self.capture_statement = False
        self.tracer: Tracer | None = None
        self.meter: metrics.Meter | None = None
        self.mode: Mode = Mode.DEFAULT
        # `keeps_reference_keys(mode)`, read once: asked at the end of every span.
        self.keeps_reference = True
        self.system_attributes: dict[str, Any] = {}
        self.reported: set[str] = set()
        self.orm_metrics: OrmMetrics | None = None
        # What the provider's sampler decides without being asked (see `_sampling_shortcuts`).
        self.drops_all = False
        self.drops_roots = False
        self.drops_unsampled_children = False
        self.metrics_wanted = False  # True once a meter provider that records is seen
        self.silent_meter_provider: object = None  # the last one seen that records nothing
        self.silent_checked_ns = 0  # when the API's global provider was last found silent
        # The API makes the global meter provider from this variable on first use.
        self.meter_provider_from_environment = OTEL_PYTHON_METER_PROVIDER in os.environ
        # A span shape's key -> its start attributes, then (query spans) the server dict
        # and span name, or (session and relationship spans) kind, span name and the
        # server dict; keyed by operation/table/relationship and id(server) (see `spans`).
        self.start_attributes: dict[tuple[Any, ...], tuple[Any, ...]] = {}


state = _Config()


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
        bool(capture_statement)
        if capture_statement is not None
        else env_flag(DATA_BRIDGE_CAPTURE_STATEMENT, False)
    )
    config.mode = stability_mode()
    config.keeps_reference = keeps_reference_keys(config.mode)
    config.system_attributes = _system_attributes(config.mode)
    state = config


def reset() -> None:
    """Back to the global providers and default options."""
    configure()


configure()


def report_failure(key: str, exc: BaseException) -> None:
    """A failure in the instrumentation's own code: log once, never disturb the caller.

    Logged as its class, value-free message and frames (`error_description`),
    not with ``exc_info``: the exception's text may hold a value it was handed.
    """
    if key not in state.reported:
        state.reported.add(key)
        try:
            described = f"{describe(exc).status}\n{stacktrace(exc).rstrip()}"
        except Exception:  # reporting must not raise in the caller's except block
            described = type(exc).__name__
        logger.warning("data-bridge instrumentation failed to %s: %s", key, described)


def is_tracing_enabled() -> bool:
    """True when the SDK is installed and DATA_BRIDGE_TRACING_ENABLED is not false/0/no."""
    return OTEL_AVAILABLE and env_flag(DATA_BRIDGE_TRACING_ENABLED, True)


def system_attributes() -> dict[str, Any]:
    """``db.system`` (and/or ``db.system.name``, by semconv mode) for spans built elsewhere."""
    return dict(state.system_attributes)


def statement_capture_enabled() -> bool:
    """capture_statement given to instrument(), else DATA_BRIDGE_CAPTURE_STATEMENT
    as it was when instrument() (or `configure`) ran."""
    return state.capture_statement


def configured_tracer_provider() -> trace.TracerProvider:
    """The provider given to instrument(), else the global one."""
    return state.tracer_provider or trace.get_tracer_provider()


def _schema_url() -> str:
    return SCHEMA_URL


def tracer() -> Tracer:
    """The data-bridge tracer on the configured provider (made once per `configure`).

    The seams use it directly: ``instrument()`` patches nothing when tracing
    is disabled, so they need not read the environment on every call.
    """
    made = state.tracer
    if made is None:
        provider = configured_tracer_provider()
        shortcuts = _sampling_shortcuts(getattr(provider, "sampler", None))
        state.drops_all, state.drops_roots, state.drops_unsampled_children = shortcuts
        made = trace.get_tracer(SCOPE, __version__, state.tracer_provider, schema_url=_schema_url())
        state.tracer = made
    return made


def meter() -> metrics.Meter:
    """The data-bridge meter on the configured provider (made once per `configure`)."""
    made = state.meter
    if made is None:
        made = metrics.get_meter(SCOPE, __version__, state.meter_provider, schema_url=_schema_url())
        state.meter = made
    return made


def orm_metrics() -> OrmMetrics:
    """The ORM's instruments on `meter` (made once per `configure`)."""
    instruments = state.orm_metrics
    if instruments is None:
        from opentelemetry_instrumentation_data_bridge.metrics import OrmMetrics

        instruments = state.orm_metrics = OrmMetrics(meter())
    return instruments


def get_tracer() -> Tracer | None:
    """The data-bridge tracer, or None when tracing is disabled (the reference's helper)."""
    return tracer() if is_tracing_enabled() else None


def get_meter() -> metrics.Meter | None:
    """The data-bridge meter, or None when tracing is disabled (the reference's helper)."""
    return meter() if is_tracing_enabled() else None


def instrumentation_suppressed(current: otel_context.Context) -> bool:
    """``not is_instrumentation_enabled()`` on a context already read.

    The keys ``suppress_instrumentation()`` sets (`_suppression_keys`), read from
    one context: the public helper looks the current context up once per key,
    which was 4,000 instructions per query seam (bench/README.md). A loop, not
    ``any()`` over a generator (three calls more, on every seam), and nothing to
    look up in an empty context (no span, no baggage: a query outside any request).
    """
    if not current:
        return False
    for key in _SUPPRESSION_KEYS:
        # A Context is a dict: `get_value(key, context)` is `context.get(key)`.
        if current.get(key):
            return True
    if not _SUPPRESSION_KEYS:  # pragma: no cover - keys not found: ask the public helper
        return not is_instrumentation_enabled()
    return False


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
    if current is not None and not current:
        return config.drops_roots  # an empty context holds no parent span: a root
    parent = trace.get_current_span(current).get_span_context()
    if not parent.is_valid:
        return config.drops_roots
    return config.drops_unsampled_children and not parent.trace_flags.sampled


def _sampling_shortcuts(sampler: Any) -> tuple[bool, bool, bool]:
    """(drops everything, drops every root span, drops every child of an unsampled
    parent) for the SDK's deterministic samplers; all False for any other sampler.

    With ``ALWAYS_OFF``, or ``ParentBased`` under an unsampled parent (the 99% of
    requests that a 1% sampling rate drops), the sampler's answer is known in
    advance, so the seams skip the span instead of building one to throw away.
    The answer is the sampler's own, asked once through its public
    ``should_sample`` with the lowest and the highest trace id (a ratio sampler
    answers differently for the two, so it is never taken for "always drops"):
    a ``StaticSampler`` about a root; a ``ParentBased`` about unsampled local
    and remote parents only (its delegates for those are ``ALWAYS_OFF`` unless
    configured otherwise), never about a root, whose delegate is often the
    application's own sampler. Other samplers are not asked: they may count or
    log what they are shown.
    """
    try:
        from opentelemetry.sdk.trace.sampling import Decision, ParentBased, StaticSampler
    except ImportError:  # pragma: no cover - the API alone has no samplers
        return False, False, False

    def always_drops(parent: otel_context.Context | None) -> bool:
        return all(
            sampler.should_sample(parent, trace_id, "probe").decision is Decision.DROP
            for trace_id in (1, 2**128 - 1)
        )

    def unsampled_parent(remote: bool) -> otel_context.Context:
        parent = trace.SpanContext(1, 1, is_remote=remote, trace_flags=trace.TraceFlags(0))
        return trace.set_span_in_context(trace.NonRecordingSpan(parent))

    try:
        if isinstance(sampler, StaticSampler):
            off = always_drops(None)
            return off, off, off
        if isinstance(sampler, ParentBased):
            return False, False, all(always_drops(unsampled_parent(r)) for r in (False, True))
    except Exception as exc:  # a sampler that cannot answer: ask it about every span
        report_failure("read the sampler", exc)
    return False, False, False


def metrics_wanted() -> bool:
    """False while no meter provider can receive measurements (none given to
    instrument() and no global SDK provider yet): the seams then skip building
    them. Checked per call, so a provider set later is used from then on."""
    config = state
    if config.metrics_wanted:  # once a real provider is seen, it stays (it cannot be unset)
        return True
    provider = config.meter_provider
    if provider is None:
        # `metrics.get_meter_provider()` looks the environment up on each call while
        # no global provider is set: 9,000 instructions (about 1 µs) of the
        # sampled-out query seam (bench/README.md). Once found silent, it is asked
        # again at most once a second: a global provider set later records from then.
        if config.silent_meter_provider is not None and not config.meter_provider_from_environment:
            now = time.monotonic_ns()
            if now - config.silent_checked_ns < _METER_PROVIDER_RECHECK_NS:
                return False
            config.silent_checked_ns = now
        provider = metrics.get_meter_provider()
    if provider is config.silent_meter_provider:
        return False
    # The API package's own providers (the no-op one, and the proxy that stands in
    # until a global provider is set) record nothing; any other implementation does.
    if type(provider).__module__.startswith("opentelemetry.metrics"):
        config.silent_meter_provider = provider
        config.silent_checked_ns = time.monotonic_ns()
        return False
    config.metrics_wanted = True
    return True

"""What detection reports, and how: spans, span events, log records, warnings, errors."""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from opentelemetry_instrumentation_data_bridge.attributes import SpanAttributes, SpanNames
from opentelemetry_instrumentation_data_bridge.n_plus_one.settings import N1Settings

logger = logging.getLogger("opentelemetry_instrumentation_data_bridge.n_plus_one")

_EAGER_OPTION = {"selectinload": "selectinload", "joined": "joinedload"}


class NPlusOneWarning(UserWarning):
    """Emitted in ``mode="warn"`` when an N+1 pattern is detected."""


class UnusedEagerLoadWarning(UserWarning):
    """An eager load whose results were never read in its scope (``mode`` warn or raise)."""


class NPlusOneError(Exception):
    """Raised in ``mode="raise"`` when an N+1 pattern is detected (for tests)."""


@dataclass(frozen=True)
class CallSite:
    """The user's line a load was made from."""

    filepath: str
    lineno: int
    function: str

    def __str__(self) -> str:
        return f"{self.filepath}:{self.lineno} ({self.function})"

    def attributes(self) -> dict[str, Any]:
        return {
            "code.filepath": self.filepath,
            "code.lineno": self.lineno,
            "code.function": self.function,
        }


@dataclass
class Finding:
    """One N+1 pattern: a relationship lazy-loaded per parent from one call site."""

    model: str
    relationship: str
    target_model: str
    site: CallSite
    count: int
    threshold: int
    # The db.n1_warning span, open until the scope ends so it can carry the final count.
    span: Any = field(default=None, repr=False, compare=False)

    @property
    def recommendation(self) -> str:
        return f"Use selectinload({self.model}.{self.relationship})"

    def message(self) -> str:
        return (
            f"N+1 query: {self.model}.{self.relationship} lazy-loaded for {self.count} parents "
            f"at {self.site}. {self.recommendation}"
        )

    def attributes(self) -> dict[str, Any]:
        return {
            SpanAttributes.DB_RELATIONSHIP_NAME: self.relationship,
            SpanAttributes.DB_RELATIONSHIP_TARGET_MODEL: self.target_model,
            SpanAttributes.DB_N1_QUERY_COUNT: self.count,
            SpanAttributes.DB_N1_THRESHOLD: self.threshold,
            SpanAttributes.DB_N1_RECOMMENDATION: self.recommendation,
            **self.site.attributes(),
        }


@dataclass
class UnusedEagerLoad:
    """An eager load (Bullet's "unused eager loading") nobody read in its scope."""

    model: str
    relationship: str
    target_model: str
    strategy: str
    site: CallSite

    @property
    def option(self) -> str:
        option = _EAGER_OPTION.get(self.strategy, self.strategy)
        return f"{option}({self.model}.{self.relationship})"

    @property
    def recommendation(self) -> str:
        return f"Remove {self.option}: the loaded {self.target_model} rows were never used"

    def message(self) -> str:
        return f"Unused eager load: {self.option} at {self.site}. {self.recommendation}"

    def attributes(self) -> dict[str, Any]:
        return {
            SpanAttributes.DB_RELATIONSHIP_NAME: self.relationship,
            SpanAttributes.DB_RELATIONSHIP_TARGET_MODEL: self.target_model,
            SpanAttributes.DB_RELATIONSHIP_STRATEGY: self.strategy,
            SpanAttributes.DB_N1_RECOMMENDATION: self.recommendation,
            **self.site.attributes(),
        }


def _tracer() -> Any:
    from opentelemetry_instrumentation_data_bridge import config

    return config.get_tracer(), config.system_attributes()


def open_warning(finding: Finding, settings: N1Settings, keep_open: bool) -> None:
    """Report a new N+1 finding; the span stays open (``keep_open``) until the scope ends."""
    attributes = finding.attributes()
    current = trace.get_current_span()
    if current.is_recording():
        current.add_event(SpanNames.N1_WARNING, attributes)
    tracer, system = _tracer()
    if tracer is not None:
        span = tracer.start_span(SpanNames.N1_WARNING, attributes={**system, **attributes})
        if keep_open:
            finding.span = span
        else:
            span.end()
    if settings.mode == "log":
        logger.log(settings.log_level, finding.message())
    elif settings.mode == "warn":
        warnings.warn(finding.message(), NPlusOneWarning, stacklevel=4)
    elif settings.mode == "raise":
        raise NPlusOneError(finding.message())


def close_warning(finding: Finding) -> None:
    """The scope ended: the warning span gets the final count and ends."""
    span, finding.span = finding.span, None
    if span is not None:
        span.set_attribute(SpanAttributes.DB_N1_QUERY_COUNT, finding.count)
        span.end()


def report_unused(
    unused: UnusedEagerLoad, settings: N1Settings, parent: trace.SpanContext | None
) -> None:
    """A ``db.unused_eager_load`` span under the scope's span (``parent``, else the current)."""
    tracer, system = _tracer()
    if tracer is not None:
        ctx = (
            trace.set_span_in_context(trace.NonRecordingSpan(parent))
            if parent is not None
            else otel_context.get_current()
        )
        tracer.start_span(
            SpanNames.UNUSED_EAGER_LOAD, context=ctx, attributes={**system, **unused.attributes()}
        ).end()
    if settings.mode == "log":
        logger.log(settings.log_level, unused.message())
    elif settings.mode in ("warn", "raise"):
        # Never raised: an extra query is a cost, not a failure, and a scope's end
        # must not replace an exception already on its way out.
        warnings.warn(unused.message(), UnusedEagerLoadWarning, stacklevel=3)

"""Span processors that see the instrumentation's spans, and only those
(the reference's Future Enhancement 3).

`add_span_processor(p)` registers ``p`` process-wide. ``instrument()``
attaches one dispatcher to its tracer provider (through `provider_hooks`,
once per provider); it hands every span whose instrumentation scope is this
package's to each registered processor's ``on_start``/``on_end``. A
processor that raises is logged once (logger
``opentelemetry_instrumentation_data_bridge``) and the ORM call goes on.

``uninstrument()`` takes the dispatcher off the provider again; registered
processors stay registered (a later ``instrument()`` feeds them again)
until `remove_span_processor`. The provider's ``shutdown()`` shuts them
down.

`SlowQueryProcessor` is the reference's example made real: it logs the
database operations slower than a threshold on the logger
``opentelemetry_instrumentation_data_bridge.slow_queries``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.trace import NonRecordingSpan, SpanKind

from opentelemetry_instrumentation_data_bridge.config import SCOPE, report_failure

SLOW_QUERY_LOGGER = "opentelemetry_instrumentation_data_bridge.slow_queries"
slow_query_logger = logging.getLogger(SLOW_QUERY_LOGGER)


class InstrumentationSpanProcessor(Protocol):
    """What `add_span_processor` takes: the SDK's ``SpanProcessor`` shape.

    ``shutdown()`` and ``force_flush()`` are optional.
    """

    def on_start(self, span: Any, parent_context: Context | None = None) -> None: ...

    def on_end(self, span: Any) -> None: ...


# A tuple, replaced on every change: the dispatcher iterates it without a lock.
_processors: tuple[InstrumentationSpanProcessor, ...] = ()
_active_provider: int | None = None  # id() of the provider of the instrumented state


def add_span_processor(processor: InstrumentationSpanProcessor) -> None:
    """Give ``processor`` every span the instrumentation starts (``on_start``/``on_end``)."""
    global _processors
    for hook in ("on_start", "on_end"):
        if not callable(getattr(processor, hook, None)):
            raise TypeError(
                f"add_span_processor() takes an object with on_start() and on_end(), "
                f"got {processor!r} without {hook}()"
            )
    if processor not in _processors:
        _processors = (*_processors, processor)
        _refresh_hubs()


def remove_span_processor(processor: InstrumentationSpanProcessor) -> bool:
    """Stop giving spans to ``processor``; False if it was not registered."""
    global _processors
    if processor not in _processors:
        return False
    _processors = tuple(p for p in _processors if p is not processor)
    _refresh_hubs()
    return True


def registered_processors() -> tuple[InstrumentationSpanProcessor, ...]:
    return _processors


def _refresh_hubs() -> None:
    """The provider hubs call the dispatcher only while it has somewhere to send
    spans: no call per span when no processor is registered (the common case)."""
    from opentelemetry_instrumentation_data_bridge import provider_hooks

    provider_hooks.refresh()


class _Dispatcher:
    """The SDK span processor ``instrument()`` adds: fans out to the registered ones.

    Shaped like the SDK's ``SpanProcessor`` without subclassing it, so this
    module (re-exported by `telemetry`) imports without the optional SDK.
    """

    def __init__(self, provider: Any) -> None:
        self._provider_id = id(provider)

    def wants_spans(self) -> bool:
        """Asked by the provider hub when registrations or the active provider change."""
        return bool(_processors) and _active_provider == self._provider_id

    def _wanted(self, span: Any) -> bool:
        if not self.wants_spans():
            return False
        scope = span.instrumentation_scope
        return scope is not None and scope.name == SCOPE

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        if not _processors or not self._wanted(span):  # most often none registered
            return
        for processor in _processors:
            try:
                processor.on_start(span, parent_context)
            except Exception as exc:
                report_failure(f"run {type(processor).__qualname__}.on_start", exc)

    def _on_ending(self, span: Any) -> None:
        pass

    def on_end(self, span: Any) -> None:
        if not _processors or not self._wanted(span):
            return
        for processor in _processors:
            try:
                processor.on_end(span)
            except Exception as exc:
                report_failure(f"run {type(processor).__qualname__}.on_end", exc)

    def shutdown(self) -> None:
        for processor in _processors:
            shutdown = getattr(processor, "shutdown", None)
            if callable(shutdown):
                try:
                    shutdown()
                except Exception as exc:
                    report_failure(f"shut down {type(processor).__qualname__}", exc)

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        flushed = True
        for processor in _processors:
            flush = getattr(processor, "force_flush", None)
            if callable(flush):
                try:
                    flushed = bool(flush(timeout_millis)) and flushed
                except Exception as exc:
                    report_failure(f"flush {type(processor).__qualname__}", exc)
        return flushed


DISPATCH = "span processors"  # the dispatcher's key on a provider (provider_hooks)


def activate(provider: Any) -> bool:
    """On instrument(): dispatch the spans of ``provider`` (an SDK one; False otherwise)."""
    global _active_provider
    if getattr(provider, "add_span_processor", None) is None:
        _active_provider = None  # the API's no-op or proxy provider has no processors
        _refresh_hubs()
        return False
    from opentelemetry_instrumentation_data_bridge import provider_hooks

    _active_provider = id(provider)
    if not provider_hooks.attached(provider, DISPATCH):
        provider_hooks.attach(provider, DISPATCH, _Dispatcher(provider))
    provider_hooks.refresh()
    return True


def deactivate() -> None:
    """On uninstrument(): nothing is dispatched any more (`provider_hooks.detach_all`
    then takes the dispatchers off their providers)."""
    global _active_provider
    _active_provider = None
    _refresh_hubs()


@dataclass(frozen=True)
class SlowOperation:
    """One operation `SlowQueryProcessor` found slow (what its callback receives)."""

    name: str  # span name, e.g. "db.query.find"
    operation: str | None  # db.operation.name (or the session operation)
    table: str | None  # db.collection.name
    duration_ms: float
    trace_id: str  # 32 hex digits, as backends show it
    span_id: str  # 16 hex digits


class SlowQueryProcessor:
    """Logs database operations slower than ``threshold_ms`` (and calls ``callback``).

    Looks at the instrumentation's CLIENT spans (queries, relationship loads,
    flush, commit, rollback: the ones that talk to the database). Each slow
    one is a WARNING on ``opentelemetry_instrumentation_data_bridge.slow_queries``
    with name, table, duration and trace id, logged with the slow span
    current, so log correlation stamps that span's ids on it. The span's
    attributes carry no bound value, so neither does the log record.
    """

    def __init__(
        self,
        threshold_ms: float,
        callback: Callable[[SlowOperation], Any] | None = None,
        *,
        log_level: int = logging.WARNING,
    ) -> None:
        if isinstance(threshold_ms, bool) or not isinstance(threshold_ms, int | float):
            raise TypeError(f"threshold_ms must be a number, got {threshold_ms!r}")
        if threshold_ms < 0:
            raise ValueError(f"threshold_ms must be >= 0, got {threshold_ms!r}")
        if callback is not None and not callable(callback):
            raise TypeError(f"callback must be callable, got {callback!r}")
        self.threshold_ms = float(threshold_ms)
        self.callback = callback
        self.log_level = log_level

    def on_start(self, span: Any, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: Any) -> None:
        if span.kind is not SpanKind.CLIENT or span.start_time is None or span.end_time is None:
            return
        duration_ms = (span.end_time - span.start_time) / 1e6
        if duration_ms <= self.threshold_ms:
            return
        attributes = span.attributes or {}
        operation = attributes.get("db.operation.name", attributes.get("db.session.operation"))
        table = attributes.get("db.collection.name")
        context = span.get_span_context()
        slow = SlowOperation(
            name=span.name,
            operation=None if operation is None else str(operation),
            table=None if table is None else str(table),
            duration_ms=duration_ms,
            trace_id=format(context.trace_id, "032x"),
            span_id=format(context.span_id, "016x"),
        )
        # The slow span current while logging: log correlation then names it.
        token = otel_context.attach(trace.set_span_in_context(NonRecordingSpan(context)))
        try:
            slow_query_logger.log(
                self.log_level,
                "slow %s on %s: %.1f ms (trace %s)",
                slow.name,
                slow.table or "-",
                slow.duration_ms,
                slow.trace_id,
                extra={
                    "db_operation": slow.operation,
                    "db_table": slow.table,
                    "duration_ms": slow.duration_ms,
                    "trace_id": slow.trace_id,
                },
            )
            if self.callback is not None:
                try:
                    self.callback(slow)
                except Exception as exc:
                    report_failure("run the SlowQueryProcessor callback", exc)
        finally:
            otel_context.detach(token)

    def shutdown(self) -> None:
        pass

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


__all__ = [
    "SLOW_QUERY_LOGGER",
    "InstrumentationSpanProcessor",
    "SlowOperation",
    "SlowQueryProcessor",
    "activate",
    "add_span_processor",
    "deactivate",
    "registered_processors",
    "remove_span_processor",
]

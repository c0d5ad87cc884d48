"""Span processors the instrumentation puts on the user's SDK TracerProvider,
and how ``uninstrument()`` takes them off again.

The SDK's ``TracerProvider`` has ``add_span_processor`` and no way to remove
one. So what we add is a `Detachable` forwarder: `detach_all` first makes
every forwarder inert (it then forwards to nothing, for a span that is ending
in another thread with the old processor tuple in hand), then takes it out of
the provider's processor tuple. That tuple is the SDK's own state, replaced
under its lock exactly as ``add_span_processor`` replaces it; should a future
SDK keep its processors differently, the forwarder stays, inert.

A delegate that raises is contained like every other failure of ours: the
user's span still ends and reaches the user's processors.
"""

from __future__ import annotations

import weakref
from typing import TYPE_CHECKING, Any

from opentelemetry_instrumentation_data_bridge.config import report_failure

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
else:
    try:
        from opentelemetry.sdk.trace import SpanProcessor
    except ImportError:  # pragma: no cover - the API alone: nothing is ever attached
        SpanProcessor = object


class Detachable(SpanProcessor):
    """Forwards ``on_start``/``on_end`` to ``processor`` until detached."""

    __slots__ = ("processor",)

    def __init__(self, processor: SpanProcessor) -> None:
        self.processor: SpanProcessor | None = processor

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        processor = self.processor
        if processor is not None:
            try:
                processor.on_start(span, parent_context)
            except Exception as exc:
                report_failure(f"run {type(processor).__name__}.on_start", exc)

    def on_end(self, span: ReadableSpan) -> None:
        processor = self.processor
        if processor is not None:
            try:
                processor.on_end(span)
            except Exception as exc:
                report_failure(f"run {type(processor).__name__}.on_end", exc)

    def shutdown(self) -> None:
        processor, self.processor = self.processor, None
        if processor is not None:
            processor.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        processor = self.processor
        return True if processor is None else processor.force_flush(timeout_millis)


# (provider, forwarder) for everything attached since the last detach_all.
_attached: list[tuple[weakref.ref[Any], Detachable]] = []


def attach(provider: Any, processor: SpanProcessor) -> bool:
    """Add ``processor`` to an SDK tracer provider, detachably; False when the
    provider takes no processors (the API's no-op or proxy provider)."""
    add = getattr(provider, "add_span_processor", None)
    if add is None:
        return False
    forwarder = Detachable(processor)
    add(forwarder)
    _attached.append((weakref.ref(provider), forwarder))
    return True


def attached(provider: Any) -> bool:
    """Whether something of ours is attached to ``provider``."""
    return any(ref() is provider for ref, _ in _attached)


def detach_all() -> None:
    """Make every forwarder inert and take it off its provider."""
    while _attached:
        ref, forwarder = _attached.pop()
        forwarder.processor = None
        provider = ref()
        if provider is not None:
            _remove(provider, forwarder)


def _remove(provider: Any, forwarder: Detachable) -> None:
    multi: Any = getattr(provider, "_active_span_processor", None)
    lock = getattr(multi, "_lock", None)
    processors = getattr(multi, "_span_processors", None)
    if lock is None or not isinstance(processors, tuple):
        return  # not the SDK layout we know: the forwarder stays, inert
    with lock:
        current = multi._span_processors  # re-read under the lock
        multi._span_processors = tuple(p for p in current if p is not forwarder)

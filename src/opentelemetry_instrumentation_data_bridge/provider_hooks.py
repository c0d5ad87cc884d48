"""Span processors the instrumentation puts on the user's SDK TracerProvider,
and how ``uninstrument()`` takes them off again.

``instrument()`` needs to see spans end on the user's provider (N+1 trace
scopes end with their root span; `processors` hands the instrumentation's
spans to the processors registered with ``add_span_processor``). Each of
those is attached here under a key, and a provider gets one `Hub`: a single
SDK span processor forwarding to them.

The SDK's ``TracerProvider`` has ``add_span_processor`` and no public way to
remove one. So a provider gets its hub once, ever: `detach_all` makes every
hub inert (it forwards to nothing, and its ``on_start``/``on_end`` return at
once), and the next ``instrument()`` re-arms the same hub instead of adding
another. One inert processor of ours thus stays on each provider that was
instrumented (docs/span-processors.md).

A forwarded processor that raises is contained like every other failure of
ours (logged once): the user's span still ends and reaches their processors.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

from opentelemetry_instrumentation_data_bridge.config import report_failure

if TYPE_CHECKING:
    from opentelemetry.context import Context
    from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor
else:
    try:
        from opentelemetry.sdk.trace import SpanProcessor
    except ImportError:  # pragma: no cover - the API alone: nothing is ever attached
        SpanProcessor = object


class Forwarded(Protocol):
    """What a hub forwards to: the ``on_start``/``on_end`` of an SDK span processor."""

    def on_start(self, span: Any, parent_context: Any = None) -> None: ...

    def on_end(self, span: Any) -> None: ...


# A forwarded processor whose on_start does nothing says so with a class attribute
# ``needs_on_start = False``; the hub then does not call it for each span start.
# One that contains its own failures (its on_end never raises) says so with
# ``contains_failures = True``: when it is the only one wanting spans, the SDK
# calls its on_end directly, without the hub's loop and guard in between.
# One that has nothing to do at times (the span-processor dispatcher while no
# processor is registered) has a ``wants_spans()`` method; the hub calls it only
# when `refresh` is called, and forwards nothing to it while it answers False.


def _wants_spans(processor: Forwarded) -> bool:
    wants = getattr(processor, "wants_spans", None)
    if wants is None:
        return True
    try:
        return bool(wants())
    except Exception as exc:  # forward to it, as if it had no such method
        report_failure(f"run {type(processor).__qualname__}.wants_spans", exc)
        return True


# A C callable that takes any arguments and does nothing: the SDK calls each span
# processor's on_start, _on_ending and on_end for every span, and a Python method
# with nothing to do is a frame each time.
_IGNORE = cast("Callable[..., None]", "".format)


class Hub(SpanProcessor):
    """The one processor of ours on a provider: forwards to ``processors`` until detached.

    `refresh` points the instance's ``on_start``/``on_end`` (what the SDK calls for
    every span) at the cheapest equivalent: `_IGNORE` when nothing is to be
    forwarded, the one processor's own ``on_end`` when it contains its failures
    (the N+1 scope-end processor's case), else the guarded loops below.
    """

    # The SDK's hook before on_end: no processor of ours needs it.
    _on_ending = _IGNORE

    def __init__(self) -> None:
        self.attached: tuple[Forwarded, ...] = ()  # replaced, never mutated: read lock-free
        # The SDK calls on_start and on_end for every span: only the processors that
        # want spans now (`refresh`), and for on_start only those that need it.
        self.processors: tuple[Forwarded, ...] = ()
        self.starts: tuple[Forwarded, ...] = ()
        self.keys: tuple[str, ...] = ()
        self._route()

    def refresh(self) -> None:
        """Ask the attached processors again whether they want spans."""
        wanting = tuple(p for p in self.attached if _wants_spans(p))
        self.starts = tuple(p for p in wanting if getattr(p, "needs_on_start", True))
        self.processors = wanting
        self._route()

    def _route(self) -> None:
        """Set what the SDK calls per span (see the class's docstring)."""
        processors = self.processors
        route = vars(self)
        route["on_start"] = self._forward_start if self.starts else _IGNORE
        if not processors:
            route["on_end"] = _IGNORE
        elif len(processors) == 1 and getattr(processors[0], "contains_failures", False) is True:
            route["on_end"] = processors[0].on_end
        else:
            route["on_end"] = self._forward_end

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        self._forward_start(span, parent_context)

    def on_end(self, span: ReadableSpan) -> None:
        self._forward_end(span)

    def _forward_start(self, span: Span, parent_context: Context | None = None) -> None:
        for processor in self.starts:
            try:
                processor.on_start(span, parent_context)
            except Exception as exc:
                report_failure(f"run {type(processor).__qualname__}.on_start", exc)

    def _forward_end(self, span: ReadableSpan) -> None:
        for processor in self.processors:
            try:
                processor.on_end(span)
            except Exception as exc:
                report_failure(f"run {type(processor).__qualname__}.on_end", exc)

    def shutdown(self) -> None:
        processors, self.attached, self.keys = self.attached, (), ()
        self.processors = self.starts = ()
        self._route()
        for processor in processors:
            shutdown = getattr(processor, "shutdown", None)
            if callable(shutdown):
                shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        flushed = True
        for processor in self.attached:
            flush = getattr(processor, "force_flush", None)
            if callable(flush):
                flushed = bool(flush(timeout_millis)) and flushed
        return flushed


# Provider -> its hub, for every provider ever attached to (an inert hub is re-armed).
_hubs: weakref.WeakKeyDictionary[Any, Hub] = weakref.WeakKeyDictionary()


def attach(provider: Any, key: str, processor: Forwarded) -> bool:
    """Forward ``provider``'s spans to ``processor`` (once per key) until `detach_all`;
    False when the provider takes no processors (the API's no-op or proxy provider)."""
    add = getattr(provider, "add_span_processor", None)
    if add is None:
        return False
    hub = _hubs.get(provider)
    if hub is None:
        hub = _hubs[provider] = Hub()
        add(hub)
    if key not in hub.keys:
        hub.keys = (*hub.keys, key)
        hub.attached = (*hub.attached, processor)
        hub.refresh()
    return True


def refresh() -> None:
    """Each hub asks its processors again whether they want spans (one's state changed)."""
    for hub in list(_hubs.values()):
        hub.refresh()


def attached(provider: Any, key: str) -> bool:
    """Whether a processor was attached to ``provider`` under ``key`` (and not detached)."""
    try:
        hub = _hubs.get(provider)
    except TypeError:  # a provider without weak references was never attached to
        return False
    return hub is not None and key in hub.keys


def detach_all() -> None:
    """Make every hub inert; it stays on its provider, to be re-armed by `attach`."""
    for hub in list(_hubs.values()):
        hub.attached, hub.processors, hub.starts, hub.keys = (), (), (), ()
        hub._route()

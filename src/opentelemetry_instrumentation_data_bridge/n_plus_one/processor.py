"""The span processor that tells detection when a trace's local root span ends.

Imported only when the tracer provider is the SDK's (the API alone has no
processors); trace scopes are then freed at the end of each request.
"""

from __future__ import annotations

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from opentelemetry_instrumentation_data_bridge.n_plus_one import scopes


class ScopeEndProcessor(SpanProcessor):
    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        if not scopes.has_trace_scopes():
            return  # the common case: one truthiness check per span
        parent = span.parent
        if parent is None or parent.is_remote:
            scopes.end_trace_scope(span)

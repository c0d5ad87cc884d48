"""The span processor that tells detection when a trace's local root span ends.

Imported only when the tracer provider is the SDK's (the API alone has no
processors); trace scopes are then freed at the end of each request. It is
given the open trace scopes and the function that ends one, so it imports
nothing of detection's.
"""

from __future__ import annotations

from collections.abc import Callable, Sized
from typing import Any

from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor

from opentelemetry_instrumentation_data_bridge.config import report_failure

_NO_PARENT = object()  # never a span's parent (a root's parent is None)


class ScopeEndProcessor(SpanProcessor):
    needs_on_start = False  # the hub skips on_start (provider_hooks)
    # Its on_end guards its one call out: the hub lets the SDK call it directly.
    contains_failures = True

    def __init__(self, open_scopes: Sized, root_ended: Callable[[Any], None]) -> None:
        self._open_scopes = open_scopes
        self._root_ended = root_ended
        # The context of the last parent seen to be local: a request's spans share
        # their parent's context object, so most spans are passed over by one compare.
        self._local_parent: Any = _NO_PARENT

    def on_start(self, span: Span, parent_context: Context | None = None) -> None:
        pass

    def on_end(self, span: ReadableSpan) -> None:
        # The public property, not the SDK's private field it reads: a property is a
        # call (about 600 instructions a span), but a private field may move.
        if not self._open_scopes:
            return  # no request counted (a worker, a script): nothing to end
        parent = span.parent
        if parent is self._local_parent:
            return  # a sibling of the last child span: one compare
        if parent is None or parent.is_remote:
            try:  # called by the SDK as the span ends: our failure must not be the user's
                self._root_ended(span)
            except Exception as exc:
                report_failure("end an N+1 scope", exc)
        else:
            self._local_parent = parent

"""Adding the scope-end processor to the user's SDK tracer provider."""

from __future__ import annotations

from typing import Any

from opentelemetry_instrumentation_data_bridge import provider_hooks
from opentelemetry_instrumentation_data_bridge.n_plus_one import scopes


def watch_scope_ends(provider: Any) -> bool:
    """Add the scope-end processor to an SDK tracer provider (once per provider);
    ``uninstrument()`` takes it off again (`provider_hooks.detach_all`)."""
    if getattr(provider, "add_span_processor", None) is None:
        return False  # the API's no-op or proxy provider: capped trace scopes only
    if provider_hooks.attached(provider, scopes.SCOPE_END):
        return True
    # Imported here: the SDK is needed only when the provider is the SDK's.
    from opentelemetry_instrumentation_data_bridge.n_plus_one.processor import (
        ScopeEndProcessor,
    )

    processor = ScopeEndProcessor(scopes._trace_scopes, scopes.end_trace_scope)
    return provider_hooks.attach(provider, scopes.SCOPE_END, processor)

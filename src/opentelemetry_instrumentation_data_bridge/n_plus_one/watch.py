"""Adding the scope-end processor to the user's SDK tracer provider."""

from __future__ import annotations

from typing import Any

from opentelemetry_instrumentation_data_bridge.n_plus_one import scopes


def watch_scope_ends(provider: Any) -> bool:
    """Add the scope-end processor to an SDK tracer provider (once per provider)."""
    if provider in scopes.watched_providers:
        return True
    add = getattr(provider, "add_span_processor", None)
    if add is None:  # the API's no-op or proxy provider: capped trace scopes only
        return False
    # Imported here: the SDK is needed only when the provider is the SDK's.
    from opentelemetry_instrumentation_data_bridge.n_plus_one.processor import (
        ScopeEndProcessor,
    )

    add(ScopeEndProcessor(scopes._trace_scopes, scopes.end_trace_scope))
    scopes.watched_providers.add(provider)
    return True

"""Reads of loaded relationship values outside ``await obj.rel``: ``loaded(obj).rel``.

Patched on the core's ``Relationship.read_loaded`` seam (the one way a
serializer's view reads a relationship), so an eager load serialized through
``loaded()`` counts as used, as ``await obj.rel`` does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context

from opentelemetry_instrumentation_data_bridge import config
from opentelemetry_instrumentation_data_bridge.attributes import EAGER_STRATEGIES
from opentelemetry_instrumentation_data_bridge.n_plus_one.detector import note_eager_use
from opentelemetry_instrumentation_data_bridge.n_plus_one.scopes import eager_scopes


def read_loaded_wrapper(
    wrapped: Callable[..., Any], instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """``Relationship.read_loaded(obj)``: the value, and the eager load it came from marked used."""
    value = wrapped(*args, **kwargs)  # raises when not loaded: nothing was read
    if not eager_scopes:  # no scope holds eager loads: no use to record
        return value
    current = otel_context.get_current()
    if config.instrumentation_suppressed(current):
        return value
    try:
        obj = args[0] if args else kwargs["instance"]
        if instance.loaded_via(obj) in EAGER_STRATEGIES:
            note_eager_use(instance, current)
    except Exception as exc:  # our bug must not become the serializer's
        config.report_failure("run N+1 detection (read_loaded)", exc)
    return value

"""OpenTelemetry instrumentation for the data-bridge ORM (``data_bridge_core``).

Usage::

    from opentelemetry_instrumentation_data_bridge import DataBridgeInstrumentor

    DataBridgeInstrumentor().instrument(tracer_provider=provider, meter_provider=meter_provider)
    ...
    DataBridgeInstrumentor().uninstrument()

or run an unmodified program under ``opentelemetry-instrument`` (entry point
``data_bridge``). Options of ``instrument()``:

- ``tracer_provider`` / ``meter_provider``: default the global providers.
- ``capture_statement``: record the parameterized SQL (off by default; also
  ``DATA_BRIDGE_CAPTURE_STATEMENT``).
- ``explain_threshold_ms``: reads slower than this get a ``query_plan`` event
  (docs/query-plans.md).
- ``enable_commenter`` / ``commenter_options``: sqlcommenter comments on each
  statement (docs/sqlcommenter.md).

Any other option is ignored with a warning naming the closest known one; a
wrong value of a known option raises on a direct call only (``options``,
docs/configuration.md).

``DATA_BRIDGE_TRACING_ENABLED=false`` (or ``0``/``no``) makes ``instrument()``
patch nothing at all.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from opentelemetry_instrumentation_data_bridge.version import __version__

if TYPE_CHECKING:
    from opentelemetry_instrumentation_data_bridge.instrumentor import DataBridgeInstrumentor


def __getattr__(name: str) -> Any:
    # The instrumentor, and with it OpenTelemetry and wrapt, loads on first use: the pytest
    # plugin imports this package in every test run of every project that has it installed.
    if name == "DataBridgeInstrumentor":
        from opentelemetry_instrumentation_data_bridge.instrumentor import DataBridgeInstrumentor

        return DataBridgeInstrumentor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DataBridgeInstrumentor", "__version__"]

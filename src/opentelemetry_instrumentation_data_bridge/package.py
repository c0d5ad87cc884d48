"""The library versions this instrumentation applies to (read by BaseInstrumentor)."""

_instruments = ("data-bridge-core >= 0.1.0",)

_supports_metrics = True

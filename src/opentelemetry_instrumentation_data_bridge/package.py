"""The library versions this instrumentation applies to (read by BaseInstrumentor)."""

# The ORM's next major version may change the seams: not claimed until tested.
_instruments = ("data-bridge-core >= 0.1.0, < 1",)

_supports_metrics = True

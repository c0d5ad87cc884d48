"""Environment variables read by this instrumentation (see docs/configuration.md)."""

DATA_BRIDGE_TRACING_ENABLED = "DATA_BRIDGE_TRACING_ENABLED"
"""``false``/``0``/``no`` (any case): instrument() patches nothing. Default: enabled."""

DATA_BRIDGE_CAPTURE_STATEMENT = "DATA_BRIDGE_CAPTURE_STATEMENT"
"""``true``/``1``/``yes``: record the parameterized SQL as db.statement / db.query.text."""

_FALSE = frozenset({"false", "0", "no", "off"})
_TRUE = frozenset({"true", "1", "yes", "on"})


def env_flag(name: str, default: bool) -> bool:
    """Read a boolean environment variable with the project's spelling rules."""
    import os

    value = os.environ.get(name)
    if value is None or not value.strip():
        return default
    value = value.strip().lower()
    if value in _FALSE:
        return False
    if value in _TRUE:
        return True
    return default

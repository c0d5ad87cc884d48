"""The options of ``instrument()``: which are known, and what an unknown one or a
wrong value does (docs/configuration.md, "Options of instrument()").

An unknown option never stops instrumentation: under ``opentelemetry-instrument``
a distro may pass its options to every instrumentor, and the loader stops at the
first instrumentor that raises, leaving every instrumentor after it out. So an
unknown option is logged (a warning naming it and the closest known one) and
ignored. A wrong *value* of a known option raises only on a direct call; under
auto-instrumentation it is logged and the option's default is used.

"Direct" means: no frame of the auto-instrumentation package
(``opentelemetry.instrumentation.auto_instrumentation``, which holds the loader
every distro is called from) is on the stack of the ``instrument()`` call.
"""

from __future__ import annotations

import difflib
import logging
import sys
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger("opentelemetry_instrumentation_data_bridge")

# The options instrument() accepts, with what each does: the one table to extend.
INSTRUMENT_OPTIONS: dict[str, str] = {
    "tracer_provider": "the TracerProvider for the spans (default: the global one)",
    "meter_provider": "the MeterProvider for the metrics (default: the global one)",
    "capture_statement": "record the parameterized SQL (default: DATA_BRIDGE_CAPTURE_STATEMENT)",
    "explain_threshold_ms": "reads slower than this get a query_plan event (docs/query-plans.md)",
    "enable_commenter": "sqlcommenter comments on each statement (docs/sqlcommenter.md)",
    "commenter_options": "extra sqlcommenter pairs (docs/sqlcommenter.md)",
}
# BaseInstrumentor.instrument() reads these itself and passes them on to _instrument.
BASE_OPTIONS = frozenset({"skip_dep_check", "raise_exception_on_conflict"})

_AUTO_INSTRUMENTATION = "opentelemetry.instrumentation.auto_instrumentation"


def closest_option(name: str) -> str | None:
    """The known option nearest to ``name`` in spelling, if any is near."""
    matches = difflib.get_close_matches(name, list(INSTRUMENT_OPTIONS), n=1, cutoff=0.6)
    return matches[0] if matches else None


def known_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` without the unknown ones, each of which is logged as a warning
    naming it and the closest known option."""
    known: dict[str, Any] = {}
    for name, value in options.items():
        if name in INSTRUMENT_OPTIONS or name in BASE_OPTIONS:
            known[name] = value
            continue
        closest = closest_option(name)
        hint = f"; did you mean {closest!r}?" if closest else ""
        logger.warning(
            "data-bridge instrument() ignores the unknown option %r%s (known options: %s)",
            name,
            hint,
            ", ".join(INSTRUMENT_OPTIONS),
        )
    return known


def called_by_auto_instrumentation() -> bool:
    """Whether ``instrument()`` runs under the auto-instrumentation loader
    (``opentelemetry-instrument`` or its ``sitecustomize``), not a direct call."""
    frame = sys._getframe(1)
    while frame is not None:
        module = frame.f_globals.get("__name__")
        if isinstance(module, str) and module.startswith(_AUTO_INSTRUMENTATION):
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def rejected_value(option: str, error: Exception) -> None:
    """Raise ``error`` on a direct call; under auto-instrumentation log it instead
    (the caller then goes on with ``option``'s default)."""
    if not called_by_auto_instrumentation():
        raise error
    logger.warning(
        "data-bridge instrument(): %s; %s is ignored (its default is used)", error, option
    )


__all__ = [
    "INSTRUMENT_OPTIONS",
    "called_by_auto_instrumentation",
    "closest_option",
    "known_options",
    "rejected_value",
]

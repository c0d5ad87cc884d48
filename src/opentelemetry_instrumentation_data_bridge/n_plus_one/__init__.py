"""Automatic N+1 detection on the relationship seams.

A lazy load (``db.relationship.select`` with ``cache_hit = false``) is
counted per (model, relationship, call site) within a scope: an explicit
``n1_scope()`` block, else the current trace. Only parents that came from a
multi-row result count (``inspect(obj).result_size > 1``), so a loop over
one object, ``get()`` / ``first()`` results and objects built in Python never
trigger it. When the count of distinct parents reaches the threshold, one
``db.n1_warning`` span is opened (plus, by mode, a log record, a
``NPlusOneWarning`` or a ``NPlusOneError``); the count keeps rising and the
span ends with the final count when the scope ends. Eager loads whose values
were never read in their scope are reported at its end as
``db.unused_eager_load``.

Where no span is current (a worker, a script), the parents' session is the
scope and reports when it closes.

Repeated statements (``get()``, ``first()``, ``count()``, ``exists()``,
``execute()`` of one shape from one line) are counted the same way.

Modules: `settings` (configuration), `scopes` (scope lifetimes), `detector`
(counting on the relationship seams), `repeated` (repeated statements),
`loaded_reads` (reads through ``loaded()``), `report` (spans, logs, warnings),
`processor` (the SDK span processor that ends trace scopes), `watch` (adds it
to a provider).
"""

from opentelemetry_instrumentation_data_bridge.n_plus_one.detector import (
    lazy_load_site,
    note_eager_use,
    record_eager_load,
    record_eager_use,
    record_lazy_load,
    record_query,
    record_stream,
)
from opentelemetry_instrumentation_data_bridge.n_plus_one.repeated import (
    record_execute,
    record_statement,
)
from opentelemetry_instrumentation_data_bridge.n_plus_one.report import (
    Finding,
    NPlusOneError,
    NPlusOneWarning,
    RepeatedQuery,
    UnusedEagerLoad,
    UnusedEagerLoadWarning,
)
from opentelemetry_instrumentation_data_bridge.n_plus_one.scopes import (
    MAX_SITES_PER_SCOPE,
    MAX_TRACE_SCOPES,
    N1Scope,
    current_scope,
    end_session_scope,
    finish_all_scopes,
    finish_all_trace_scopes,
    n1_ignore,
    n1_scope,
)
from opentelemetry_instrumentation_data_bridge.n_plus_one.settings import (
    MODES,
    N1Settings,
    configure_n1_detection,
    n1_settings,
)
from opentelemetry_instrumentation_data_bridge.n_plus_one.watch import watch_scope_ends

__all__ = [
    "MAX_SITES_PER_SCOPE",
    "MAX_TRACE_SCOPES",
    "MODES",
    "Finding",
    "N1Scope",
    "N1Settings",
    "NPlusOneError",
    "NPlusOneWarning",
    "RepeatedQuery",
    "UnusedEagerLoad",
    "UnusedEagerLoadWarning",
    "configure_n1_detection",
    "current_scope",
    "end_session_scope",
    "finish_all_scopes",
    "finish_all_trace_scopes",
    "lazy_load_site",
    "n1_ignore",
    "n1_scope",
    "n1_settings",
    "note_eager_use",
    "record_eager_load",
    "record_eager_use",
    "record_execute",
    "record_lazy_load",
    "record_query",
    "record_statement",
    "record_stream",
    "watch_scope_ends",
]

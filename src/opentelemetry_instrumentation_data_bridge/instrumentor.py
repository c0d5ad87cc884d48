"""`DataBridgeInstrumentor`: patches the seams of data_bridge_core on ``instrument()``.

Imported on first use through the package (see ``__init__``), so that loading
the package, as the pytest plugin does in every run, imports neither
OpenTelemetry nor wrapt.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Collection
from typing import Any

from opentelemetry.instrumentation.instrumentor import (  # type: ignore[attr-defined]
    BaseInstrumentor,
)
from opentelemetry.instrumentation.utils import unwrap
from wrapt import wrap_function_wrapper

from opentelemetry_instrumentation_data_bridge.environment_variables import (
    DATA_BRIDGE_TRACING_ENABLED,
    env_flag,
)
from opentelemetry_instrumentation_data_bridge.package import _instruments

logger = logging.getLogger(__name__)


# Session methods traced as db.session.<name>: the lifecycle, refresh() and the
# savepoint steps of begin_nested(), so every statement they send is in a span of its own.
SESSION_OPERATIONS = (
    "open",
    "close",
    "flush",
    "commit",
    "rollback",
    "refresh",
    "savepoint",
    "release_savepoint",
    "rollback_to_savepoint",
)


def _patch_targets(capture_statement: bool = True) -> list[tuple[str, str, str, Any]]:
    """(module, class, method, wrapper) for every seam of docs/extension-points.md."""
    from opentelemetry_instrumentation_data_bridge import migration_spans, wrappers
    from opentelemetry_instrumentation_data_bridge.n_plus_one.loaded_reads import (
        read_loaded_wrapper,
    )

    query, session = "data_bridge_core.query", "data_bridge_core.session"
    targets: list[tuple[str, str, str, Any]] = [
        (query, "Query", "to_list", wrappers.query_wrapper("find")),
    ]
    for operation in ("count", "exists", "aggregate", "update", "delete"):
        targets.append((query, "Query", operation, wrappers.query_wrapper(operation)))
    targets.append((query, "Query", "stream", wrappers.stream_wrapper))
    # A column selection is a find that returns rows instead of objects.
    targets.append(
        (
            "data_bridge_core.row_query",
            "RowQuery",
            "to_list",
            wrappers.query_wrapper("find", objects=False),
        )
    )
    for operation in SESSION_OPERATIONS:
        targets.append((session, "Session", operation, wrappers.session_wrapper(operation)))
    for operation in ("upsert", "from_sql"):
        targets.append((session, "Session", operation, wrappers.session_query_wrapper(operation)))
    targets += [
        (session, "Session", "execute", wrappers.execute_wrapper),
        ("data_bridge_core.relationships", "Relationship", "load", wrappers.lazy_load_patch),
        ("data_bridge_core.relationships", "Relationship", "read_loaded", read_loaded_wrapper),
        ("data_bridge_core.loading", "EagerLoad", "load", wrappers.eager_load_wrapper),
        ("data_bridge_core.engine", "Engine", "acquire", wrappers.acquire_wrapper),
        (
            "data_bridge_core.migrations.runner",
            "Migrator",
            "apply_migration",
            migration_spans.apply_migration_wrapper,
        ),
    ]
    if capture_statement:  # the statement seams cost a wrapper per SQL statement: opt-in
        targets += [
            (session, "Session", "run_statement", wrappers.statement_wrapper),
            (session, "Session", "stream_rows", wrappers.stream_statement_wrapper),
        ]
    return targets


class DataBridgeInstrumentor(BaseInstrumentor):  # type: ignore[misc]
    """Patches data_bridge_core's seams with spans (and metrics) on instrument()."""

    def instrumentation_dependencies(self) -> Collection[str]:
        return _instruments

    def _instrument(self, **kwargs: Any) -> None:
        from opentelemetry_instrumentation_data_bridge import config, options

        # Unknown options are logged and ignored: under opentelemetry-instrument, a raise
        # here would leave every instrumentor after this one out (options.py).
        kwargs = options.known_options(kwargs)
        self._patched: list[tuple[Any, str]] = []
        # Seams replaced by a plain function: (patched, original) to put back.
        self._replaced: dict[tuple[Any, str], tuple[Any, Any]] = {}
        if not env_flag(DATA_BRIDGE_TRACING_ENABLED, True):
            logger.debug("%s is false: nothing patched", DATA_BRIDGE_TRACING_ENABLED)
            return
        from opentelemetry_instrumentation_data_bridge import (
            n_plus_one,
            pool_metrics,
            processors,
            statement_hooks,
        )

        # Options of the future-enhancement modules; bad values raise before anything is
        # patched on a direct call, and are logged and left out under auto-instrumentation.
        try:
            hook = statement_hooks.statement_wrapper(
                explain_threshold_ms=kwargs.get("explain_threshold_ms"),
                enable_commenter=kwargs.get("enable_commenter", False),
                commenter_options=kwargs.get("commenter_options"),
            )
        except (TypeError, ValueError) as error:
            options.rejected_value("explain_threshold_ms/enable_commenter/commenter_options", error)
            hook = None
        config.configure(
            tracer_provider=kwargs.get("tracer_provider"),
            meter_provider=kwargs.get("meter_provider"),
            capture_statement=kwargs.get("capture_statement"),
        )
        pool_metrics.get_connection_pool_metrics().ensure_instruments()
        # Made now, not on the first ORM call: that call should not pay for them.
        config.tracer()
        config.orm_metrics()
        # N+1 scopes of a trace end with its root span: watch for that on the SDK provider.
        provider = config.configured_tracer_provider()
        n_plus_one.watch_scope_ends(provider)
        processors.activate(provider)

        if hook is not None:  # inside the statement-capture wrapper: it sees the SQL uncommented
            from data_bridge_core.session import Session

            wrap_function_wrapper(Session, "run_statement", hook)
            self._patched.append((Session, "run_statement"))

        from opentelemetry_instrumentation_data_bridge.wrappers import lazy_load_patch

        for module_name, class_name, method, wrapper in _patch_targets(
            config.statement_capture_enabled()
        ):
            owner = getattr(importlib.import_module(module_name), class_name)
            if wrapper is lazy_load_patch:  # a plain function, not a wrapt wrapper (its why)
                original = owner.__dict__[method]
                patched = wrapper(original)
                setattr(owner, method, patched)
                self._replaced[(owner, method)] = (patched, original)
                continue
            wrap_function_wrapper(owner, method, wrapper)
            self._patched.append((owner, method))

    def _uninstrument(self, **kwargs: Any) -> None:
        for owner, method in getattr(self, "_patched", []):
            unwrap(owner, method)
        self._patched = []
        for (owner, method), (patched, original) in getattr(self, "_replaced", {}).items():
            if owner.__dict__.get(method) is patched:  # else replaced since: not ours to undo
                setattr(owner, method, original)
        self._replaced = {}
        from opentelemetry_instrumentation_data_bridge import (
            config,
            n_plus_one,
            pool_metrics,
            processors,
        )

        processors.deactivate()
        pool_metrics.get_connection_pool_metrics().deactivate()  # its instruments stay: quiet
        n_plus_one.finish_all_scopes()
        if config.OTEL_AVAILABLE:  # the hooks are SDK span processors
            from opentelemetry_instrumentation_data_bridge import provider_hooks

            provider_hooks.detach_all()
        config.reset()

"""The wrapt wrappers patched onto data_bridge_core's seams.

Each wrapper reads the seam's public, read-only state and opens the span
through `spans`, so every span shape has one implementation. When
instrumentation is suppressed the wrapper calls straight through; a failure
in the instrumentation's own code is logged once and never reaches the caller.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Awaitable, Callable
from typing import Any

from opentelemetry import trace
from opentelemetry.instrumentation.utils import is_instrumentation_enabled

from opentelemetry_instrumentation_data_bridge import n_plus_one, providers, spans
from opentelemetry_instrumentation_data_bridge.attributes import SpanAttributes

Wrapped = Callable[..., Awaitable[Any]]
# Each wrapper returns the awaitable the caller awaits (a coroutine function is one).
Wrapper = Callable[[Wrapped, Any, tuple[Any, ...], dict[str, Any]], Awaitable[Any]]

_EAGER = frozenset({"selectinload", "joined"})
_server_attributes: dict[int, dict[str, Any]] = {}


def server_attributes(engine: Any) -> dict[str, Any]:
    """db.namespace / server.address / server.port of an Engine (computed once per engine).

    Keyed by id() with a finalizer rather than a WeakKeyDictionary: this runs on
    every ORM call, and a plain dict lookup is several times cheaper.
    """
    attrs = _server_attributes.get(id(engine))
    if attrs is None:
        attrs = {}
        if engine.database:
            attrs[SpanAttributes.DB_NAMESPACE] = engine.database
        if engine.server_address:
            attrs[SpanAttributes.SERVER_ADDRESS] = engine.server_address
        if engine.server_port and engine.server_port != 5432:
            attrs[SpanAttributes.SERVER_PORT] = engine.server_port
        _server_attributes[id(engine)] = attrs
        weakref.finalize(engine, _server_attributes.pop, id(engine), None)
    return attrs


def _record_metrics(
    operation: str,
    table: str | None,
    span: Any,
    started_ns: int,
    rows: int | None,
    error: BaseException | None,
    server: dict[str, Any],
) -> None:
    """Metrics of one operation; the duration is the span's when the span recorded one."""
    if not providers.metrics_wanted():
        return
    try:
        start, end = getattr(span, "start_time", None), getattr(span, "end_time", None)
        if start is not None and end is not None:
            seconds = (end - start) / 1e9
        else:
            seconds = (time.perf_counter_ns() - started_ns) / 1e9
        providers.seam_metrics().record_operation(operation, table, seconds, rows, error, server)
    except Exception as exc:
        providers.report_failure("record metrics", exc)


def _rows(result: Any) -> int:
    if isinstance(result, list):
        return len(result)
    return 0 if result is None else 1


def query_wrapper(operation: str) -> Wrapper:
    """Wrap a terminal Query method as ``db.query.<operation>``.

    The wrapper itself is a plain function: when there is nothing to record
    (instrumentation suppressed, or a span the sampler is known to drop and no
    meter provider to receive metrics) it hands back the original coroutine,
    so the query runs without even an extra coroutine around it.
    """
    affected = operation in ("update", "delete")

    async def traced(
        wrapped: Wrapped,
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        dropped: bool,
    ) -> Any:
        try:
            table = instance.table_name
            server = server_attributes(instance.session.engine)
            # A span the sampler is known to drop is not built: only metrics remain.
            scope = None
            if not dropped:
                scope = spans.query_span(
                    providers.seam_tracer(),
                    operation,
                    table,
                    filters_count=instance.filters_count,
                    limit=instance.limit_value,
                    offset=instance.offset_value,
                    order_by=instance.order_by_text,
                    server=server,
                )
        except Exception as exc:  # our bug must not become the user's
            providers.report_failure(f"describe db.query.{operation}", exc)
            return await wrapped(*args, **kwargs)
        started = time.perf_counter_ns()
        span = rows = error = None
        try:
            if scope is None:
                result = await wrapped(*args, **kwargs)
                rows = _count_rows(operation, result)
                return result
            with scope as span:
                result = await wrapped(*args, **kwargs)
                rows = _count_rows(operation, result)
                if affected:
                    scope.set_result(affected_rows=result)
                else:
                    scope.set_result(count=rows)
                return result
        except BaseException as exc:
            error = exc
            raise
        finally:
            _record_metrics(operation, table, span, started, rows, error, server)

    def wrapper(
        wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Awaitable[Any]:
        if not is_instrumentation_enabled():
            return wrapped(*args, **kwargs)
        dropped = providers.span_dropped()
        if dropped and not providers.metrics_wanted():
            return wrapped(*args, **kwargs)
        return traced(wrapped, instance, args, kwargs, dropped)

    return wrapper


def _model_table(operation: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """The table a session-level query works on: upsert's objects, from_sql's model."""
    if operation == "upsert":
        objects = args[0] if args else kwargs.get("objects")
        first = next(iter(objects), None) if objects else None
        model = type(first) if first is not None else None
    else:
        model = args[0] if args else kwargs.get("model")
    if model is None:
        return None
    from data_bridge_core import table_info

    return table_info(model).name


def session_query_wrapper(operation: str) -> Wrapper:
    """Wrap a Session method that is a query of its own (``upsert``, ``from_sql``)
    as ``db.query.<operation>``: its statements get a span of their own."""

    async def wrapper(
        wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if not is_instrumentation_enabled():
            return await wrapped(*args, **kwargs)
        try:
            table = _model_table(operation, args, kwargs)
            server = server_attributes(instance.engine)
            scope = spans.query_span(providers.seam_tracer(), operation, table, server=server)
        except Exception as exc:  # our bug must not become the user's
            providers.report_failure(f"describe db.query.{operation}", exc)
            return await wrapped(*args, **kwargs)
        started = time.perf_counter_ns()
        span = rows = error = None
        try:
            with scope as span:
                result = await wrapped(*args, **kwargs)
                if operation == "upsert":
                    rows = int(result)
                    scope.set_result(affected_rows=rows)
                else:
                    rows = len(result)
                    scope.set_result(count=rows)
                return result
        except BaseException as exc:
            error = exc
            raise
        finally:
            _record_metrics(operation, table, span, started, rows, error, server)

    return wrapper


def _count_rows(operation: str, result: Any) -> int:
    """Rows an operation returned or touched (for metrics and ``db.result.count``)."""
    if operation in ("update", "delete", "count", "exists"):
        return int(result)
    return _rows(result)


def session_wrapper(operation: str) -> Wrapper:
    """Wrap a Session lifecycle method as ``db.session.<operation>``."""
    with_counts = operation in ("flush", "commit")
    ends_transaction = operation in ("commit", "rollback", "close")

    async def wrapper(
        wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        if not is_instrumentation_enabled():
            return await wrapped(*args, **kwargs)
        try:
            if with_counts:
                scope = spans.session_span(
                    providers.seam_tracer(),
                    operation,
                    pending_count=instance.pending_count,
                    dirty_count=instance.dirty_count,
                    deleted_count=instance.deleted_count,
                )
            else:
                scope = spans.session_span(providers.seam_tracer(), operation)
        except Exception as exc:
            providers.report_failure(f"describe db.session.{operation}", exc)
            return await wrapped(*args, **kwargs)
        # Read before the call: committing or rolling back clears it.
        started = instance.transaction_started_ns if ends_transaction else None
        try:
            with scope:
                result = await wrapped(*args, **kwargs)
                if operation == "flush" and instance.last_flush_batch_size > 1:
                    scope.add_attributes(
                        {SpanAttributes.DB_OPERATION_BATCH_SIZE: instance.last_flush_batch_size}
                    )
                return result
        finally:
            if started is not None and providers.metrics_wanted():
                providers.seam_metrics().transaction_ended(started, operation)

    return wrapper


def _secondary(relationship: Any) -> dict[str, Any]:
    """The association table of a many-to-many, as a span attribute (nothing otherwise)."""
    secondary = getattr(relationship, "secondary", None)
    return {SpanAttributes.DB_RELATIONSHIP_SECONDARY: secondary} if secondary else {}


async def lazy_load_wrapper(
    wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """``await obj.rel``: a ``db.relationship.select`` span, cache hits included."""
    if not is_instrumentation_enabled():
        return await wrapped(*args, **kwargs)
    via: str | None = None
    try:
        obj = args[0] if args else kwargs["instance"]
        via = instance.loaded_via(obj)
        # Values put there by an eager load were traced by that load.
        traced = not (via in _EAGER or (via is None and instance.strategy_for(obj) == "noload"))
        if traced:
            cache_hit = instance.is_loaded(obj)
            scope = spans.relationship_span(
                providers.seam_tracer(),
                instance.name,
                target_model=instance.target_name,
                strategy="select",
                fk_column=instance.fk_column,
                **_secondary(instance),
            )
    except Exception as exc:
        providers.report_failure("describe db.relationship.select", exc)
        traced = False
    if not traced:
        if via in _EAGER:
            _detect(n_plus_one.record_eager_use, instance)
        return await wrapped(*args, **kwargs)
    with scope:
        value = await wrapped(*args, **kwargs)
        scope.set_result(count=_rows(value), cache_hit=cache_hit)
    if not cache_hit:
        # After the span ends, so a warning span is the request's child, not the load's.
        _detect(n_plus_one.record_lazy_load, instance, obj)
    return value


async def eager_load_wrapper(
    wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """One level of selectinload/joinedload: ``db.relationship.<strategy>``."""
    if not is_instrumentation_enabled():
        return await wrapped(*args, **kwargs)
    try:
        batch = args[0] if args else kwargs["batch"]
        rel = instance.relationship
        scope = spans.relationship_span(
            providers.seam_tracer(),
            rel.name,
            target_model=rel.target_name,
            strategy=instance.strategy,
            fk_column=rel.fk_column,
            batch_count=batch.batch_count,
            depth=batch.depth,
            **_secondary(rel),
        )
    except Exception as exc:
        providers.report_failure("describe an eager load", exc)
        return await wrapped(*args, **kwargs)
    with scope:
        related = await wrapped(*args, **kwargs)
        scope.set_result(count=len(related))
    _detect(n_plus_one.record_eager_load, rel, instance.strategy)
    return related


def _detect(record: Callable[..., None], *args: Any) -> None:
    """Run an N+1 detector hook: its NPlusOneError (mode "raise") is meant for the
    caller; any other failure is the instrumentation's and is only logged."""
    try:
        record(*args)
    except n_plus_one.NPlusOneError:
        raise
    except Exception as exc:
        providers.report_failure(f"run N+1 detection ({record.__name__})", exc)


async def execute_wrapper(
    wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """SQL reaching the driver: its parameterized text on the enclosing ORM span.

    Patched only when statement capture is on: every other attribute comes
    from the ORM-level seams, so a statement costs nothing extra by default.
    """
    if is_instrumentation_enabled():
        span = trace.get_current_span()
        if span.is_recording():
            try:
                statement = args[0] if args else kwargs.get("statement")
                if statement is not None:
                    spans.set_span_statement(span, statement)
            except Exception as exc:
                providers.report_failure("describe a statement", exc)
    return await wrapped(*args, **kwargs)

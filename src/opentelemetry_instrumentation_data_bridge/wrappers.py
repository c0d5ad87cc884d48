"""The wrapt wrappers patched onto data_bridge_core's seams.

Each wrapper opens the same way (`_opening`): when instrumentation is
suppressed it calls straight through; it reads the seam's public, read-only
state and builds the span through `spans`, so every span shape has one
implementation; a failure in that (the instrumentation's own code) is logged
once and the call runs untraced.
"""

from __future__ import annotations

import functools
import re
import sys
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from types import FunctionType
from typing import Any, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace

from data_bridge_core import STATE_KEY, InstanceState
from opentelemetry_instrumentation_data_bridge import config, n_plus_one, spans
from opentelemetry_instrumentation_data_bridge.attributes import EAGER_STRATEGIES, SpanAttributes
from opentelemetry_instrumentation_data_bridge.n_plus_one import scopes as n1_scopes
from opentelemetry_instrumentation_data_bridge.pool_metrics import get_connection_pool_metrics
from opentelemetry_instrumentation_data_bridge.spans import SpanScope

Wrapped = Callable[..., Awaitable[Any]]
# Each wrapper returns the awaitable the caller awaits (a coroutine function is one).
Wrapper = Callable[[Wrapped, Any, tuple[Any, ...], dict[str, Any]], Awaitable[Any]]
T = TypeVar("T")

_server_attributes: dict[int, dict[str, Any]] = {}
assert STATE_KEY == "_db_state"  # read as ``obj._db_state`` on every ``obj.rel``
# N+1 detection's eager-use bookkeeping, read on every ``obj.rel`` of an eager load.
_eager_scopes = n1_scopes.eager_scopes
_eager_marked = n1_scopes.eager_marked
_explicit_scope = n1_scopes._explicit.get


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


def _describe(what: str, describe: Callable[..., T], *args: Any) -> T | None:
    """Run ``describe(*args)``; None (logged once) when the instrumentation's own code fails."""
    try:
        return describe(*args)
    except Exception as exc:  # our bug must not become the user's
        config.report_failure(f"describe {what}", exc)
        return None


def _opening(what: str, describe: Callable[..., T], *args: Any) -> T | None:
    """The opening of every wrapper: None means "call straight through"
    (instrumentation suppressed, nothing to trace, or describing failed)."""
    if config.instrumentation_suppressed(otel_context.get_current()):
        return None
    return _describe(what, describe, *args)


def _record_metrics(
    operation: str,
    table: str | None,
    span: Any,
    started_ns: int,
    rows: int | None,
    error: BaseException | None,
    server: dict[str, Any],
    reference: bool = True,
) -> None:
    """Metrics of one operation; the duration is the span's when the span recorded one.
    ``rows``: rows that came back (None: none, e.g. an UPDATE). ``reference``: also the
    reference's query metrics (queries only; flushes, commits and loads get the
    conventions' ``db.client.operation.duration`` alone).
    The caller has checked `config.metrics_wanted()` (no call at all without metrics)."""
    try:
        start, end = getattr(span, "start_time", None), getattr(span, "end_time", None)
        if start is not None and end is not None:
            seconds = (end - start) / 1e9
        else:
            seconds = (time.perf_counter_ns() - started_ns) / 1e9
        config.orm_metrics().record_operation(
            operation, table, seconds, rows, error, server, reference
        )
    except Exception as exc:
        config.report_failure("record metrics", exc)


def _rows(result: Any) -> int:
    if isinstance(result, list):
        return len(result)
    return 0 if result is None else 1


def _count_rows(operation: str, result: Any) -> int:
    """The reference's ``db.result.count``: rows an operation returned or touched
    (a count()'s count, an exists()'s 0 or 1)."""
    if operation in ("update", "delete", "count", "exists"):
        return int(result)
    return _rows(result)


# Operations whose one result row is a value (the count, the boolean): one row came back.
_ONE_ROW = frozenset({"count", "exists"})
# Operations that return no rows (affected rows only).
_NO_ROWS = frozenset({"update", "delete"})


def _returned_rows(operation: str, counted: int) -> int | None:
    """``db.response.returned_rows``: rows that came back from the server."""
    if operation in _ONE_ROW:
        return 1
    if operation in _NO_ROWS:
        return None
    return counted


# Every read of a seam's result for a span or a metric goes through `_describe`, like
# the opening: a result that cannot be read costs its attributes, never the call.


def _query_result(scope: SpanScope | None, operation: str, result: Any) -> tuple[int, int | None]:
    """(rows counted, ``db.response.returned_rows``) of a query seam's result."""
    counted = _count_rows(operation, result)
    if scope is not None:
        if operation in _NO_ROWS:
            scope.set_result(affected_rows=counted)
        elif operation in _ONE_ROW:
            scope.set_result(count=counted, returned_rows=1)
        else:
            scope.set_result(count=counted)
    return counted, _returned_rows(operation, counted)


def _execute_result(scope: SpanScope | None, result: Any) -> int:
    rows = len(result.rows)
    if scope is not None:
        if rows or result.rowcount < 0:
            scope.set_result(count=rows)
        else:
            scope.set_result(affected_rows=result.rowcount)
    return rows


def _session_query_result(scope: SpanScope, operation: str, result: Any) -> int | None:
    if operation == "upsert":  # affected rows; none came back
        scope.set_result(affected_rows=int(result))
        return None
    rows = len(result)
    scope.set_result(count=rows)
    return rows


# -- queries ----------------------------------------------------------------------------


def _describe_query(
    operation: str, query: Any, dropped: bool
) -> tuple[str, dict[str, Any], SpanScope | None]:
    """(table, server attributes, span scope or None when the span is known dropped)."""
    table = query.table_name
    server = server_attributes(query.session.engine)
    if dropped:  # a span the sampler is known to drop is not built: only metrics remain
        return table, server, None
    scope = spans.query_span(
        config.tracer(),
        operation,
        table,
        filters_count=query.filters_count,
        limit=query.limit_value,
        offset=query.offset_value,
        order_by=query.order_by_text,
        server=server,
    )
    return table, server, scope


def _nothing_to_record() -> tuple[bool, bool]:
    """(call straight through, span dropped) at the start of a query-like seam."""
    current = otel_context.get_current()
    if config.instrumentation_suppressed(current):
        return True, True
    dropped = config.span_dropped(current)
    return dropped and not config.metrics_wanted(), dropped


def query_wrapper(operation: str, objects: bool = True) -> Wrapper:
    """Wrap a terminal Query method as ``db.query.<operation>``.

    ``objects``: a find returns model objects, which N+1 detection remembers
    (a column selection's rows are tuples: nothing to remember).

    The wrapper itself is a plain function: when there is nothing to record
    (instrumentation suppressed, or a span the sampler is known to drop and no
    meter provider to receive metrics) it hands back the original coroutine,
    so the query runs without even an extra coroutine around it.

    This is the seam of every query, so the guarded steps (`_describe`,
    `_query_result`) are inlined in it: each layer was a Python call per query
    (bench/README.md, "Round 3, session 2: the traced path").
    """
    # N+1 detection's query seams; a column selection's rows are not objects.
    detects = operation in ("find", "count", "exists") and objects
    no_rows = operation in _NO_ROWS
    one_row = operation in _ONE_ROW
    what = f"db.query.{operation}"
    reading = f"the result of {what}"

    async def traced(
        wrapped: Wrapped,
        instance: Any,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        current: otel_context.Context,
        dropped: bool,
        caller: Any,
        metrics: bool,
    ) -> Any:
        now = otel_context.get_current()
        if now is not current:  # awaited under another context than it was called in
            current, dropped = now, config.span_dropped(now)
        try:  # `_describe_query`, inlined and guarded like `_describe`
            # One read of the query's facts (six properties were six calls per query).
            table, session, filters_count, limit, offset, order_by = instance.facts
            engine = session.engine
            server = _server_attributes.get(id(engine)) or server_attributes(engine)
            scope = None
            if not dropped:  # a span the sampler is known to drop is not built
                scope = spans.query_span(
                    config.state.tracer or config.tracer(),
                    operation,
                    table,
                    filters_count=filters_count,
                    limit=limit,
                    offset=offset,
                    order_by=order_by,
                    server=server,
                )
        except Exception as exc:  # our bug must not become the user's
            config.report_failure(f"describe {what}", exc)
            return await wrapped(*args, **kwargs)
        started = time.perf_counter_ns() if metrics else 0
        span = rows = error = None
        try:
            if scope is not None:
                span = scope.enter(current)
            try:
                result = await wrapped(*args, **kwargs)
            except BaseException as exc:
                if scope is not None:
                    scope.finish(exc)
                raise
            # `_query_result`, guarded like `_describe`; the result goes to the span
            # with its end (`finish`: one call, not set_result's and finish's two).
            count = affected = None
            try:
                if no_rows:
                    affected = int(result)
                elif one_row:
                    count = int(result)
                    rows = 1
                else:
                    count = rows = len(result) if result.__class__ is list else _rows(result)
            except Exception as exc:
                config.report_failure(f"describe {reading}", exc)
            if scope is not None:
                scope.finish(None, count, affected, rows if one_row else None)
                if detects:  # the line N+1 advice points to; repeated one-row queries
                    try:  # `_detect`, inlined
                        n_plus_one.record_statement(
                            operation, instance, result, caller, current, session
                        )
                    except n_plus_one.NPlusOneError:
                        raise
                    except Exception as exc:
                        config.report_failure("run N+1 detection (record_statement)", exc)
            return result
        except BaseException as exc:
            error = exc
            raise
        finally:
            if metrics:
                _record_metrics(operation, table, span, started, rows, error, server)

    def wrapper(
        wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Awaitable[Any]:
        # `_nothing_to_record`, inlined: this is the seam of every query. The
        # context is read once for the suppression check and the sampler's shortcut.
        current = otel_context.get_current()
        if current:
            if config.instrumentation_suppressed(current):
                return wrapped(*args, **kwargs)
            dropped = config.span_dropped(current)
        else:  # no span, no suppression: a root span, which the sampler may drop
            dropped = config.state.drops_roots
        # Read once per query: the metrics after the call follow this answer.
        metrics = config.metrics_wanted()
        if dropped and not metrics:
            return wrapped(*args, **kwargs)
        # The caller's frame, read now (N+1 detection's line): from inside the query's
        # coroutine it is a walk through frames CPython would have to build.
        caller = sys._getframe(1) if detects else None
        return traced(wrapped, instance, args, kwargs, current, dropped, caller, metrics)

    return wrapper


def stream_wrapper(
    wrapped: Callable[..., AsyncGenerator[Any, None]],
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> AsyncGenerator[Any, None]:
    """``Query.stream()`` (and ``async for``) as ``db.query.stream``.

    The span starts with the first row asked for and ends when the iteration
    ends, fails, or is abandoned (``aclose()``, or the generator collected);
    ``db.result.count`` is the number of rows streamed by then. It is current
    only while the query works (the first step: autoflush, the statement, the
    first batch; then each step that fetches the next ``batch_size`` rows),
    never while the caller's loop body runs between rows.
    """
    through, dropped = _nothing_to_record()
    rows = wrapped(*args, **kwargs)
    if through:
        return rows
    size = args[0] if args else kwargs.get("batch_size", 1000)
    batch = size if isinstance(size, int) and size > 0 else 1
    return _traced_stream(rows, instance, dropped, batch)


async def _traced_stream(
    rows: AsyncGenerator[Any, None], query: Any, dropped: bool, batch: int
) -> AsyncGenerator[Any, None]:
    opened = _describe("db.query.stream", _describe_query, "stream", query, dropped)
    table, server, scope = opened if opened is not None else (None, {}, None)
    started = time.perf_counter_ns()
    context = None
    if scope is not None and scope.start() is not None:
        context = scope.context
    count = 0
    error: BaseException | None = None
    try:
        while True:
            # Attached for the steps that reach the database: the first, and every
            # batch-th row (the cursor fetches batch_size rows at a time); the other
            # steps hand out rows already fetched, and an attach per row costs.
            token = None
            if context is not None and count % batch == 0:
                token = otel_context.attach(context)
            try:
                row = await rows.__anext__()
            except StopAsyncIteration:
                break
            finally:
                if token is not None:
                    otel_context.detach(token)
            count += 1
            if count == 1:  # N+1 advice for loops over a stream (which takes no options)
                _detect(n_plus_one.record_stream, row)
            yield row
    except GeneratorExit:  # abandoned: aclose(), or collected unfinished
        raise
    except BaseException as exc:
        error = exc
        raise
    finally:
        try:
            await rows.aclose()  # the server-side cursor closes now, not at collection
        finally:
            if opened is not None:
                span = None
                if scope is not None:
                    scope.set_result(count=count)
                    scope.finish(error)
                    span = scope.span
                if config.metrics_wanted():
                    _record_metrics("stream", table, span, started, count, error, server)


# -- raw SQL ----------------------------------------------------------------------------

_LEADING = re.compile(r"(?:\s+|--[^\n]*(?:\n|$)|/\*.*?\*/|\()*", re.DOTALL)
_KEYWORD = re.compile(r"[A-Za-z]+")


def first_keyword(statement: str) -> str | None:
    """The statement's first keyword as written (``SELECT``, ``with``, ``Update``...),
    after leading blanks, comments and parentheses; None when there is none."""
    start = _LEADING.match(statement)
    keyword = _KEYWORD.match(statement, start.end() if start else 0)
    if keyword is None or len(keyword.group(0)) > 32:
        return None
    return keyword.group(0)


def _describe_execute(
    session: Any, args: tuple[Any, ...], kwargs: dict[str, Any], dropped: bool
) -> tuple[str, dict[str, Any], SpanScope | None]:
    statement = args[0] if args else kwargs.get("statement")
    keyword = first_keyword(statement) if isinstance(statement, str) else None
    server = server_attributes(session.engine)
    scope = None
    if not dropped:
        scope = spans.query_span(config.tracer(), "execute", server=server, operation_name=keyword)
    return keyword or "execute", server, scope


def execute_wrapper(
    wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Awaitable[Any]:
    """``Session.execute()`` (the user's raw SQL) as ``db.query.execute``: a CLIENT
    span under the caller's, ``db.operation.name`` = the statement's first keyword."""
    through, dropped = _nothing_to_record()
    if through:
        return wrapped(*args, **kwargs)
    _detect(n_plus_one.record_execute, instance, args, kwargs)  # repeated statements (N+1)
    return _traced_execute(wrapped, instance, args, kwargs, dropped)


async def _traced_execute(
    wrapped: Wrapped,
    session: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    dropped: bool,
) -> Any:
    opened = _describe("db.query.execute", _describe_execute, session, args, kwargs, dropped)
    if opened is None:
        return await wrapped(*args, **kwargs)
    operation, server, scope = opened
    started = time.perf_counter_ns()
    span = rows = error = None
    try:
        if scope is None:
            result = await wrapped(*args, **kwargs)
            rows = _describe("the result of db.query.execute", _execute_result, None, result)
            return result
        with scope as span:
            result = await wrapped(*args, **kwargs)
            rows = _describe("the result of db.query.execute", _execute_result, scope, result)
            return result
    except BaseException as exc:
        error = exc
        raise
    finally:
        if config.metrics_wanted():
            _record_metrics(operation, None, span, started, rows, error, server)


# -- session-level queries --------------------------------------------------------------


def _model_table(operation: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """The table a session-level query works on: upsert's objects, from_sql's model."""
    if operation == "upsert":
        objects = args[0] if args else kwargs.get("objects")
        # Only a list or tuple is looked into: iterating anything else (a generator)
        # would consume what the call is about to write.
        first = objects[0] if isinstance(objects, list | tuple) and objects else None
        model = type(first) if first is not None else None
    else:
        model = args[0] if args else kwargs.get("model")
    if model is None:
        return None
    from data_bridge_core import table_info

    return table_info(model).name


def _describe_session_query(
    operation: str, session: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[str | None, dict[str, Any], SpanScope]:
    table = _model_table(operation, args, kwargs)
    server = server_attributes(session.engine)
    return table, server, spans.query_span(config.tracer(), operation, table, server=server)


def session_query_wrapper(operation: str) -> Wrapper:
    """Wrap a Session method that is a query of its own (``upsert``, ``from_sql``)
    as ``db.query.<operation>``: its statements get a span of their own."""
    what = f"db.query.{operation}"
    reading = f"the result of {what}"

    async def wrapper(
        wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        opened = _opening(what, _describe_session_query, operation, instance, args, kwargs)
        if opened is None:
            return await wrapped(*args, **kwargs)
        table, server, scope = opened
        started = time.perf_counter_ns()
        span = rows = error = None
        try:
            with scope as span:
                result = await wrapped(*args, **kwargs)
                rows = _describe(reading, _session_query_result, scope, operation, result)
                return result
        except BaseException as exc:
            error = exc
            raise
        finally:
            if config.metrics_wanted():
                _record_metrics(operation, table, span, started, rows, error, server)

    return wrapper


# -- sessions ---------------------------------------------------------------------------


def _refreshed_table(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    """The table ``refresh(obj)`` reads (None for a non-model: refresh() raises then)."""
    obj: Any = args[0] if args else kwargs.get("obj")
    from data_bridge_core import Table, table_info

    return table_info(type(obj)).name if isinstance(obj, Table) else None


def _describe_session(
    operation: str, session: Any, with_counts: bool, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> SpanScope:
    # (open and close, which send no SQL and have no server attributes: in the wrapper)
    server = server_attributes(session.engine)
    if with_counts:
        return spans.session_span(
            config.tracer(),
            operation,
            pending_count=session.pending_count,
            dirty_count=session.dirty_count,
            deleted_count=session.deleted_count,
            server=server,
        )
    if operation == "refresh":  # one SELECT of the object's table
        table = _refreshed_table(args, kwargs)
        collection: dict[str, Any] = {SpanAttributes.DB_COLLECTION_NAME: table}
        return spans.session_span(config.tracer(), operation, server=server, **collection)
    return spans.session_span(config.tracer(), operation, server=server)


def _transaction_started(session: Any) -> int | None:
    started: int | None = session.transaction_started_ns
    return started


def _flush_batch(scope: SpanScope, session: Any) -> None:
    # A batch is several statements in one pipeline, not one bulk INSERT.
    size = session.last_flush_pipeline_size
    if size > 1:
        scope.add_attributes({SpanAttributes.DB_OPERATION_BATCH_SIZE: size})


def _transaction_ended(started: int, operation: str) -> None:
    config.orm_metrics().transaction_ended(started, operation)


def session_wrapper(operation: str) -> Wrapper:
    """Wrap a Session method as ``db.session.<operation>``: the lifecycle, ``refresh``
    and the three savepoint steps of ``begin_nested()``."""
    with_counts = operation in ("flush", "commit")
    flushes = operation == "flush"
    ends_transaction = operation in ("commit", "rollback", "close")
    # Operations that talk to the database: a db.client.operation.duration sample each.
    timed = operation not in ("open", "close")
    what = f"db.session.{operation}"

    lifecycle = operation in ("open", "close")  # no SQL of its own: the span has no server
    closes = operation == "close"

    async def wrapper(
        wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Any:
        # `_opening`, inlined (every session opens and closes here): the context is
        # read once for the suppression check, the sampler's shortcut and the parent.
        current = otel_context.get_current()
        if current and config.instrumentation_suppressed(current):  # an empty one: nothing
            return await wrapped(*args, **kwargs)
        scope = None
        if not config.span_dropped(current):  # else: no span, metrics and detection only
            if lifecycle:  # `_describe_session`'s shape, guarded alike, one call less
                try:
                    scope = spans.session_span(config.state.tracer or config.tracer(), operation)
                except Exception as exc:  # our bug must not become the user's
                    config.report_failure(f"describe {what}", exc)
            else:
                scope = _describe(
                    what, _describe_session, operation, instance, with_counts, args, kwargs
                )
            if scope is None:
                return await wrapped(*args, **kwargs)
        # Read once per call: the metrics after it follow this answer (a session's open
        # and close record none without a meter provider, and read nothing for them).
        metrics = config.metrics_wanted()
        # Read before the call: committing or rolling back clears it.
        started = (
            _describe(what, _transaction_started, instance)
            if ends_transaction and metrics
            else None
        )
        called = time.perf_counter_ns()
        error: BaseException | None = None
        try:
            if scope is None:
                return await wrapped(*args, **kwargs)
            scope.enter(current)  # `with scope.under(current)`, one call less
            try:
                result = await wrapped(*args, **kwargs)
                if flushes:
                    _describe("the batch size of a flush", _flush_batch, scope, instance)
            except BaseException as exc:
                scope.finish(exc)
                raise
            scope.finish(None)
            return result
        except BaseException as exc:
            error = exc
            raise
        finally:
            if metrics and (started is not None or timed):
                if started is not None:
                    _describe(
                        "record a transaction's duration", _transaction_ended, started, operation
                    )
                if timed:
                    _time_session_operation(operation, instance, scope, called, error, args, kwargs)
            if closes:  # reports loads outside requests; `_detect`, inlined
                try:
                    n_plus_one.end_session_scope(instance)
                except n_plus_one.NPlusOneError:
                    raise
                except Exception as exc:
                    config.report_failure("run N+1 detection (end_session_scope)", exc)

    return wrapper


def _time_session_operation(
    operation: str,
    session: Any,
    scope: SpanScope | None,
    started_ns: int,
    error: BaseException | None,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    """db.client.operation.duration of a session operation (one sample per operation:
    a flush's statements are not timed one by one; a commit's includes its flush)."""
    try:
        table = _refreshed_table(args, kwargs) if operation == "refresh" else None
        server = server_attributes(session.engine)
    except Exception as exc:
        config.report_failure("record metrics", exc)
        return
    span = scope.span if scope is not None else None
    _record_metrics(operation, table, span, started_ns, None, error, server, reference=False)


# -- relationships ----------------------------------------------------------------------


def _secondary(relationship: Any) -> dict[str, Any]:
    """The association table of a many-to-many, as a span attribute (nothing otherwise)."""
    secondary = getattr(relationship, "secondary", None)
    return {SpanAttributes.DB_RELATIONSHIP_SECONDARY: secondary} if secondary else {}


def _describe_lazy(
    relationship: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[SpanScope | None, Any, bool] | None:
    """(scope, instance, cache hit); scope None for a value an eager load filled
    (that load was traced); None for a ``noload`` relationship (nothing to trace)."""
    obj = args[0] if args else kwargs["instance"]
    via = relationship.loaded_via(obj)
    if via in EAGER_STRATEGIES:
        return None, obj, True
    if via is None and relationship.strategy_for(obj) == "noload":
        return None
    cache_hit = relationship.is_loaded(obj)
    scope = spans.relationship_span(
        config.tracer(),
        relationship.name,
        target_model=relationship.target_name,
        strategy="select",
        fk_column=relationship.fk_column,
        server=None if cache_hit else _server_of_instance(obj),
        sends_sql=not cache_hit,
        **_secondary(relationship),
    )
    return scope, obj, cache_hit


def _server_of_instance(obj: Any) -> dict[str, Any]:
    """The server attributes of the engine of the session ``obj`` belongs to."""
    from data_bridge_core.state import session_of

    session = session_of(obj)
    return server_attributes(session.engine) if session is not None else {}


def _time_load(
    strategy: str,
    relationship: Any,
    span: Any,
    started_ns: int,
    rows: int | None,
    error: BaseException | None,
    server: dict[str, Any],
) -> None:
    """db.client.operation.duration of a relationship load that ran SQL."""
    try:
        from data_bridge_core import table_info

        table = table_info(relationship.target).name
    except Exception as exc:
        config.report_failure("record metrics", exc)
        return
    _record_metrics(strategy, table, span, started_ns, rows, error, server, reference=False)


def _load_result(scope: SpanScope, value: Any, cache_hit: bool | None) -> int:
    rows = _rows(value)
    scope.set_result(count=rows, cache_hit=cache_hit)
    return rows


def lazy_load_patch(original: Any) -> Callable[..., Awaitable[Any]]:
    """``Relationship.load``, replaced by a plain function that calls ``original``
    (the instrumentor restores it on uninstrument).

    Not a wrapt wrapper, unlike the other seams: this one runs on every ``obj.rel``,
    and wrapt's binding and call (a bound wrapper object, an argument tuple and a
    dict per access) cost about 7,000 instructions there, more than all of the
    instrumentation's own work on an eager page's 100 reads (bench/README.md,
    "Round 3, session 3: the traced eager page").
    """
    # The original's own call: a plain function takes the relationship as its first
    # argument; anything else (another tool's wrapper) is bound as a method would be.
    direct = isinstance(original, FunctionType)

    def lazy_load_wrapper(relationship: Any, instance: Any) -> Awaitable[Any]:
        """``obj.rel``: the user's line is read here, where the attribute is accessed
        (awaited under ``asyncio.gather``, the load runs in a task of its own)."""
        try:
            # A value an eager load filled (that load was traced): no span, no SQL,
            # only N+1 detection's note that the eager load was used. Decided here,
            # at the access, so the original coroutine is handed back: an eager page
            # reads every parent's value, and a coroutine of ours around each cost
            # more than the page's spans (bench/README.md, "Round 3, session 2").
            # `loaded_via`, inlined for a row with a state of its own (most rows a page
            # reads twice): two calls fewer on every ``obj.rel``. Read as an attribute
            # (STATE_KEY), as N+1 detection reads it.
            state = instance._db_state
            if state.__class__ is InstanceState:
                via = state.loaded_via
                eager = via is not None and via.get(relationship.name) in EAGER_STRATEGIES
            else:  # sharing its result's state: the core looks it up there
                eager = relationship.loaded_via(instance) in EAGER_STRATEGIES
        except Exception as exc:  # our bug must not become the user's: the slow path decides
            config.report_failure("describe db.relationship.select", exc)
            eager = False
        if eager:
            # The use is noted only while a scope holds eager loads to report unused,
            # and once per relationship, context and block (`note_eager_use`): the
            # context is not even read otherwise.
            if _eager_scopes:
                try:
                    current = otel_context.get_current()
                    marked = _eager_marked.get(relationship)
                    if (
                        marked is None
                        or marked[0] is not current
                        or marked[1] is not _explicit_scope()
                    ) and not (current and config.instrumentation_suppressed(current)):
                        n_plus_one.note_eager_use(relationship, current)
                except n_plus_one.NPlusOneError:
                    raise
                except Exception as exc:
                    config.report_failure("run N+1 detection (record_eager_use)", exc)
            if direct:
                return original(relationship, instance)  # type: ignore[no-any-return]
            return original.__get__(relationship, type(relationship))(instance)  # type: ignore[no-any-return]
        wrapped = original.__get__(relationship, type(relationship))
        current = otel_context.get_current()
        if current and config.instrumentation_suppressed(current):  # an empty one: nothing
            return wrapped(instance)  # type: ignore[no-any-return]
        try:
            # Frame 1 is Relationship.__get__, frame 2 usually the user's line.
            site = n_plus_one.lazy_load_site(sys._getframe(2))
        except Exception as exc:
            config.report_failure("run N+1 detection (lazy_load_site)", exc)
            site = None
        return _traced_lazy_load(wrapped, relationship, (instance,), {}, site)

    return functools.update_wrapper(lazy_load_wrapper, original)


async def _traced_lazy_load(
    wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any], site: Any
) -> Any:
    """``await obj.rel``: a ``db.relationship.select`` span, cache hits included."""
    # The guarded opening's first half ran in `lazy_load_wrapper`, at the access.
    opened = _describe("db.relationship.select", _describe_lazy, instance, args, kwargs)
    if opened is None:
        return await wrapped(*args, **kwargs)
    scope, obj, cache_hit = opened
    if scope is None:
        _detect(n_plus_one.record_eager_use, instance)
        return await wrapped(*args, **kwargs)
    if cache_hit:
        with scope:
            value = await wrapped(*args, **kwargs)
            _describe("the result of a lazy load", _load_result, scope, value, True)
    else:
        value = await _timed_lazy_load(wrapped, instance, args, kwargs, scope, obj)
    if not cache_hit and site is not None:
        # After the span ends, so a warning span is the request's child, not the load's.
        # `_detect`, inlined: this runs on every lazy load.
        try:
            n_plus_one.record_lazy_load(instance, obj, value, site)
        except n_plus_one.NPlusOneError:
            raise
        except Exception as exc:
            config.report_failure("run N+1 detection (record_lazy_load)", exc)
    return value


async def _timed_lazy_load(
    wrapped: Wrapped,
    relationship: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    scope: SpanScope,
    obj: Any,
) -> Any:
    """A lazy load that runs its SELECT: the span and its operation duration."""
    started = time.perf_counter_ns()
    rows: int | None = None
    error: BaseException | None = None
    try:
        with scope:
            value = await wrapped(*args, **kwargs)
            rows = _describe("the result of a lazy load", _load_result, scope, value, False)
        return value
    except BaseException as exc:
        error = exc
        raise
    finally:
        if config.metrics_wanted():
            server = _describe("record metrics", _server_of_instance, obj) or {}
            _time_load("select", relationship, scope.span, started, rows, error, server)


async def eager_load_wrapper(
    wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    """One level of selectinload/joinedload: ``db.relationship.<strategy>``.

    Its guarded steps (the description, the result, N+1 detection's hook) are
    inlined, each with its own ``try``, as in the query seam: a layer was a
    Python call per level of every eager page.
    """
    # `_opening`, inlined: the context is read once for the suppression check, the
    # sampler's shortcut and the parent.
    current = otel_context.get_current()
    if current and config.instrumentation_suppressed(current):  # an empty one: nothing
        return await wrapped(*args, **kwargs)
    strategy = instance.strategy
    try:  # the span's shape (was `_describe_eager`), guarded like `_describe`
        batch = args[0] if args else kwargs["batch"]
        rel = instance.relationship
        sends_sql = strategy != "joined"  # joined: filled from the parent query's rows
        secondary = getattr(rel, "secondary", None)
        scope = spans.relationship_span(
            config.state.tracer or config.tracer(),
            rel.name,
            target_model=rel.target_name,
            strategy=strategy,
            fk_column=rel.fk_column,
            batch_count=batch.batch_count,
            depth=batch.depth,
            server=server_attributes(batch.session.engine) if sends_sql else None,
            sends_sql=sends_sql,
            **({SpanAttributes.DB_RELATIONSHIP_SECONDARY: secondary} if secondary else {}),
        )
    except Exception as exc:  # our bug must not become the user's
        config.report_failure("describe an eager load", exc)
        return await wrapped(*args, **kwargs)
    # Read once per level: the metrics after the call follow this answer.
    metrics = sends_sql and config.metrics_wanted()
    started = time.perf_counter_ns() if metrics else 0
    rows: int | None = None
    error: BaseException | None = None
    try:
        if not config.span_dropped(current):
            scope.enter(current)
        try:
            related = await wrapped(*args, **kwargs)
            try:  # the result (was `_eager_result`), guarded like `_describe`
                rows = len(related)
                scope.set_result(count=rows)
            except Exception as exc:
                config.report_failure("describe the result of an eager load", exc)
        except BaseException as exc:
            scope.finish(exc)
            raise
        scope.finish(None)
    except BaseException as exc:
        error = exc
        raise
    finally:
        if metrics:
            server = _describe("record metrics", server_attributes, batch.session.engine) or {}
            _time_load(strategy, rel, scope.span, started, rows, error, server)
    try:  # `_detect`, inlined
        n_plus_one.record_eager_load(rel, strategy, batch, related)
    except n_plus_one.NPlusOneError:
        raise
    except Exception as exc:
        config.report_failure("run N+1 detection (record_eager_load)", exc)
    return related


def _detect(record: Callable[..., None], *args: Any) -> None:
    """Run an N+1 detector hook: its NPlusOneError (mode "raise") is meant for the
    caller; any other failure is the instrumentation's and is only logged."""
    try:
        record(*args)
    except n_plus_one.NPlusOneError:
        raise
    except Exception as exc:
        config.report_failure(f"run N+1 detection ({record.__name__})", exc)


# -- statement capture and connections ------------------------------------------------


def _capture(statement: Any) -> None:
    """Put a statement on the current span if that span is the ORM operation
    sending it; a caller's span (an HTTP server span...) never gets one."""
    span = trace.get_current_span()
    if isinstance(statement, str) and spans.sent_by_operation(span):
        spans.add_span_statement(span, statement)


def statement_wrapper(
    wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Awaitable[Any]:
    """``Session.run_statement``: the parameterized SQL on the operation's span.

    Patched only when statement capture is on: every other attribute comes
    from the ORM-level seams, so a statement costs nothing extra by default.
    """
    if not config.instrumentation_suppressed(otel_context.get_current()):
        _describe("capture a statement", _capture, args[0] if args else kwargs.get("statement"))
    return wrapped(*args, **kwargs)


def stream_statement_wrapper(
    wrapped: Callable[..., AsyncIterator[Any]],
    instance: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> AsyncIterator[Any]:
    """``Session.stream_rows(model, statement, ...)``: a stream's SQL on its span."""
    if not config.instrumentation_suppressed(otel_context.get_current()):
        statement = args[1] if len(args) > 1 else kwargs.get("statement")
        _describe("capture a statement", _capture, statement)
    return wrapped(*args, **kwargs)


def acquire_wrapper(
    wrapped: Wrapped, instance: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Awaitable[Any]:
    """``Engine.acquire()``: one ``db.client.connection.wait_time`` sample per
    connection handed out (nothing when no meter provider records)."""
    # Metrics first: without a meter provider (the common case) that is all it reads.
    if not config.metrics_wanted() or config.instrumentation_suppressed(otel_context.get_current()):
        return wrapped(*args, **kwargs)
    return _timed_acquire(wrapped, instance, args, kwargs)


async def _timed_acquire(
    wrapped: Wrapped, engine: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> Any:
    started = time.perf_counter_ns()
    connection = await wrapped(*args, **kwargs)
    try:
        seconds = (time.perf_counter_ns() - started) / 1e9
        get_connection_pool_metrics().record_wait(engine.pool_name, seconds)
    except Exception as exc:
        config.report_failure("record the connection wait time", exc)
    return connection

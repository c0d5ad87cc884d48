"""The span shapes of the ORM's operations and the scope that opens them.

One implementation per shape (`query_span`, `session_span`,
`relationship_span`): the instrumentor's wrappers and the public helpers of
`telemetry` both use them. `SpanScope` starts the span with the attributes
samplers should see and adds the rest only when it records.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, Span, SpanKind, Status, StatusCode, Tracer

from opentelemetry_instrumentation_data_bridge import config
from opentelemetry_instrumentation_data_bridge.attributes import EAGER_STRATEGIES, SpanAttributes
from opentelemetry_instrumentation_data_bridge.config import report_failure, span_dropped
from opentelemetry_instrumentation_data_bridge.error_description import (
    describe,
    is_cancellation,
    stacktrace,
)
from opentelemetry_instrumentation_data_bridge.semconv import set_statement

_SESSION_INTERNAL = frozenset({"open", "close"})
CANCELLED_EVENT = "cancelled"  # an operation cancelled by its caller (no error)
# db.query.summary's operation part for the ORM's query operations ("{verb} {table}").
_SUMMARY_VERBS = {
    "find": "SELECT",
    "count": "SELECT",
    "exists": "SELECT",
    "aggregate": "SELECT",
    "stream": "SELECT",
    "from_sql": "SELECT",
    "update": "UPDATE",
    "delete": "DELETE",
    "upsert": "INSERT",
}
# Separator of a batch's statements in db.query.text (the conventions' "; ").
STATEMENT_SEPARATOR = "; "
# The spans of ORM operations: a captured statement goes on one of these only.
_OPERATION_PREFIXES = ("db.query.", "db.session.", "db.relationship.")


def set_span_statement(span: Span | None, statement: str) -> None:
    """Record a parameterized SQL statement under the name(s) of the semconv mode.

    The SDK's span limits (``OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT``) cut it
    like any other attribute value.
    """
    if span is None or not span.is_recording():
        return
    attrs: dict[str, Any] = {}
    set_statement(attrs, statement, config.state.mode)
    span.set_attributes(attrs)


def add_span_statement(span: Span, statement: str) -> None:
    """Record one more statement an operation sent (a flush sends several): the
    distinct statements joined by "; ", as the conventions say for a batch whose
    statements differ. Reads back what the span holds, so only with capture on."""
    held = getattr(span, "attributes", None) or {}
    previous = held.get(SpanAttributes.DB_QUERY_TEXT)
    if isinstance(previous, str) and previous:
        if statement == previous or statement in previous.split(STATEMENT_SEPARATOR):
            return
        statement = f"{previous}{STATEMENT_SEPARATOR}{statement}"
    set_span_statement(span, statement)


def sent_by_operation(span: Span) -> bool:
    """Whether ``span`` is the recording span of an ORM operation of ours (not the
    caller's span, not a helper's decorated function): the only place for its statements."""
    if not span.is_recording():
        return False
    scope = getattr(span, "instrumentation_scope", None)
    name = getattr(span, "name", "")
    return (
        getattr(scope, "name", None) == config.SCOPE
        and isinstance(name, str)
        and name.startswith(_OPERATION_PREFIXES)
    )


def add_exception(span: Span | None, exception: BaseException) -> None:
    """Record an exception without any value from it: an ``exception`` event,
    ERROR status, ``error.type``, SQLSTATE and the names the server reported
    (see `error_description`). A cancellation is no failure: a ``cancelled``
    event, the status left unset."""
    if span is None or not span.is_recording():
        return
    try:
        if is_cancellation(exception):
            span.add_event(CANCELLED_EVENT)
            return
        description = describe(exception)
        span.add_event(
            "exception",
            {
                "exception.type": description.type,
                "exception.message": description.message,
                "exception.stacktrace": stacktrace(exception),
            },
        )
        span.set_status(Status(StatusCode.ERROR, description.status))
        span.set_attributes(description.attributes)
    except Exception as exc:  # the instrumentation must not replace the user's error
        report_failure("record an exception", exc)


def _put_result(
    attrs: dict[str, Any],
    count: int | None,
    affected_rows: int | None,
    cache_hit: bool | None,
    returned_rows: int | None = None,
) -> None:
    """``db.result.count`` (the reference's: not in the ``database`` mode) and
    ``db.response.returned_rows`` (rows that came back: ``count`` unless given),
    into ``attrs``."""
    if count is not None and config.state.keeps_reference:
        attrs[SpanAttributes.DB_RESULT_COUNT] = count
    if returned_rows is None:
        returned_rows = count
    if returned_rows is not None:
        attrs[SpanAttributes.DB_RESPONSE_RETURNED_ROWS] = returned_rows
    if affected_rows is not None:
        attrs[SpanAttributes.DB_RESULT_AFFECTED_ROWS] = affected_rows
    if cache_hit is not None:
        attrs[SpanAttributes.DB_RELATIONSHIP_CACHE_HIT] = cache_hit


def set_span_result(
    span: Span | None,
    count: int | None = None,
    affected_rows: int | None = None,
    cache_hit: bool | None = None,
    **kwargs: Any,
) -> None:
    """Set db.result.count (+ db.response.returned_rows), affected rows and cache hit."""
    if span is None or not span.is_recording():
        return
    try:
        attrs: dict[str, Any] = {}
        _put_result(attrs, count, affected_rows, cache_hit)
        for key, value in kwargs.items():
            if value is not None:
                attrs[key] = value
        span.set_attributes(attrs)
    except Exception as exc:
        report_failure("set result attributes", exc)


class SpanScope:
    """Starts a span, makes it current, ends it; ``with`` gives the span (or None).

    A class rather than a generator context manager because it runs on every
    ORM call: ``start_span`` plus an explicit context attach costs less than
    ``start_as_current_span``. Attributes known before the call go in at start,
    where samplers see them. When the span records, ``details`` (a dict the
    span shape built for this scope: the scope owns it) and the result given
    to `set_result` (written into that same dict) are added in one
    ``set_attributes`` at the end (each SDK call takes the span's lock); when
    it does not, the result is not built.

    ``with`` starts, attaches, detaches and ends; `enter` does the same as
    ``with`` under a context the caller has read, and `finish` ends (the
    wrappers of every query: two calls instead of ``with``'s three); `start`
    and `finish` start and end without attaching, for a span that is current
    only at times (a stream's, attached for the steps that fetch) or under a
    parent of its own (a linked task's root). Starting and ending are guarded:
    a sampler or span processor that raises is logged once and the operation
    goes on.
    """

    __slots__ = (
        "_attributes",
        "_details",
        "_kind",
        "_links",
        "_name",
        "_parent",
        "_token",
        "_tracer",
        "context",
        "recording",
        "span",
    )

    def __init__(
        self,
        tracer: Tracer | None,
        name: str,
        kind: SpanKind,
        attributes: dict[str, Any],
        details: dict[str, Any] | None = None,
        links: Sequence[Link] | None = None,
    ) -> None:
        self._tracer = tracer
        self._links = links
        self._name = name
        self._kind = kind
        self._attributes = attributes
        self._details = details
        self.span: Span | None = None
        self.recording = False
        self._token: object = None
        self._parent: otel_context.Context | None = None
        self.context: otel_context.Context | None = None

    def under(self, current: otel_context.Context) -> SpanScope:
        """For ``with``: start under ``current``, which the caller has read and found
        not dropped (`span_dropped`), so neither is done again."""
        self._parent = current
        return self

    def start(self, current: otel_context.Context | None = None) -> Span | None:
        """Start the span under ``current`` (default: the current context) without
        making it current; `context` then holds the context to attach.
        None when there is no tracer, the sampler is known to drop the span, or
        starting it failed (a raising sampler or span processor: logged once)."""
        tracer = self._tracer
        if tracer is None:
            return None
        if current is None:
            current = otel_context.get_current()
        if span_dropped(current):
            return None
        return self.enter(current, attach=False)

    def enter(self, current: otel_context.Context, attach: bool = True) -> Span | None:
        """``with``'s start, for a caller that has read ``current`` and found it not
        dropped (`span_dropped`): start under it and make the span current. End
        with `finish`, which detaches. ``attach=False`` (`start`): only start it;
        `context` holds the context to attach."""
        tracer = self._tracer
        if tracer is None:
            return None
        try:  # a sampler or span processor that raises must not fail the operation
            span = tracer.start_span(
                self._name,
                current,
                kind=self._kind,
                attributes=self._attributes,
                links=self._links,
                record_exception=False,
                set_status_on_exception=False,
            )
        except Exception as failure:
            report_failure("start a span", failure)
            return None
        self.span = span
        self.recording = span.is_recording()
        self.context = made = trace.set_span_in_context(span, current)
        if attach:
            self._token = otel_context.attach(made)
        return span

    def __enter__(self) -> Span | None:
        current = self._parent
        if current is None:
            if self._tracer is None:
                return None
            current = otel_context.get_current()  # read once for the parent and the attach
            if span_dropped(current):
                return None
        return self.enter(current)

    def set_result(
        self,
        count: int | None = None,
        affected_rows: int | None = None,
        cache_hit: bool | None = None,
        returned_rows: int | None = None,
    ) -> None:
        """Result attributes for the end of the span (see `set_span_result`);
        ``returned_rows`` when the rows that came back are not ``count`` (a count()'s one)."""
        if self.recording:
            end = self._details
            if end is None:
                end = self._details = {}
            # `_put_result`, inlined: this runs at the end of every span.
            if count is not None and config.state.keeps_reference:
                end[SpanAttributes.DB_RESULT_COUNT] = count
            if returned_rows is None:
                returned_rows = count
            if returned_rows is not None:
                end[SpanAttributes.DB_RESPONSE_RETURNED_ROWS] = returned_rows
            if affected_rows is not None:
                end[SpanAttributes.DB_RESULT_AFFECTED_ROWS] = affected_rows
            if cache_hit is not None:
                end[SpanAttributes.DB_RELATIONSHIP_CACHE_HIT] = cache_hit

    def add_attributes(self, attributes: dict[str, Any]) -> None:
        """More attributes for the end of the span (only kept when it records)."""
        if self.recording:
            end = self._details
            if end is None:
                end = self._details = {}
            end.update(attributes)

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self.finish(exc)

    def finish(
        self,
        exc: BaseException | None = None,
        count: int | None = None,
        affected_rows: int | None = None,
        returned_rows: int | None = None,
    ) -> None:
        """End the span (started by `start`, `enter` or ``with``): details, result,
        the exception if any; detach it if `enter` made it current. ``count``,
        ``affected_rows``, ``returned_rows``: `set_result`'s, given with the end (the
        query seams: one call less per query)."""
        span = self.span
        if span is None:
            return
        if self._token is not None:  # made current by `with`/`enter` (not by `start`)
            otel_context.detach(self._token)  # type: ignore[arg-type]
            self._token = None
        try:
            if self.recording:
                if count is not None or affected_rows is not None:
                    self.set_result(count, affected_rows, None, returned_rows)
                end = self._details
                if end:
                    try:
                        span.set_attributes(end)
                    except Exception as failure:
                        report_failure(f"build attributes of {self._name}", failure)
            if exc is not None:
                add_exception(span, exc)
        finally:
            try:  # a span processor raising in on_end: the operation has succeeded
                span.end()
            except Exception as failure:
                report_failure("end a span", failure)


def _merge(extra: dict[str, Any], attributes: dict[str, Any]) -> None:
    """Add a shape's extra ``attributes``: given last, so they win; None leaves one out."""
    for key, value in attributes.items():
        if value is None:
            extra.pop(key, None)
        else:
            extra[key] = value


def _remember_shape(key: tuple[Any, ...], shape: tuple[Any, ...]) -> None:
    """Keep a span shape's start attributes and name for the next span of that shape."""
    shapes = config.state.start_attributes
    if len(shapes) < 4096:  # low cardinality; a guard all the same
        shapes[key] = shape


# The span shapes build their end attributes (`details`) as a dict when the scope is
# made, key by key: a closure to build them only for a recording span cost more (a
# cell per captured argument, a call at the end) than the few stores it would save.


def query_span(
    tracer: Tracer | None,
    operation: str,
    table: str | None = None,
    filters_count: int | None = None,
    limit: int | None = None,
    offset: int | None = None,
    order_by: str | None = None,
    statement: str | None = None,
    server: dict[str, Any] | None = None,
    operation_name: str | None = None,
    summary: str | None = None,
    **attributes: Any,
) -> SpanScope:
    """The ``db.query.<operation>`` span shape (see `create_query_span`).

    At start, for samplers: the semconv's sampling-relevant attributes
    (system, operation, collection and the ``server`` ones: namespace,
    address, port). The reference's query details follow only if it records.
    ``db.operation.name`` is ``operation`` unless ``operation_name`` is given
    (raw SQL: ``db.query.execute`` with the statement's first keyword, as written).
    ``db.query.summary`` is ``summary``, else ``{verb} {table}`` (``SELECT users``)
    for the ORM's operations, else the operation name.
    """
    op_name = operation_name or operation
    # The name and start attributes depend on (operation, table, engine) only: built
    # once each. (The SDK copies the attributes into the span; samplers only read them.)
    key = (operation, op_name, table, id(server) if server else 0, summary)
    cached = config.state.start_attributes.get(key)
    if cached is None or cached[1] is not server:
        sampler = {**config.state.system_attributes, SpanAttributes.DB_OPERATION_NAME: op_name}
        if table is not None:
            sampler[SpanAttributes.DB_COLLECTION_NAME] = table
        if summary is None:
            verb = _SUMMARY_VERBS.get(operation) if operation_name is None else None
            summary = op_name if verb is None else verb if table is None else f"{verb} {table}"
        sampler[SpanAttributes.DB_QUERY_SUMMARY] = summary
        if server:
            sampler.update(server)
        cached = (sampler, server, f"db.query.{operation}")
        _remember_shape(key, cached)
    extra: dict[str, Any] = {}
    if filters_count is not None:
        extra[SpanAttributes.DB_QUERY_FILTERS_COUNT] = filters_count
    if limit is not None:
        extra[SpanAttributes.DB_QUERY_LIMIT] = limit
    if offset is not None:
        extra[SpanAttributes.DB_QUERY_OFFSET] = offset
    if order_by is not None:
        extra[SpanAttributes.DB_QUERY_ORDER_BY] = order_by
    if attributes:
        _merge(extra, attributes)
    if statement is not None:
        set_statement(extra, statement, config.state.mode)
    return SpanScope(tracer, cached[2], SpanKind.CLIENT, cached[0], extra)


def session_span(
    tracer: Tracer | None,
    operation: str,
    pending_count: int | None = None,
    dirty_count: int | None = None,
    deleted_count: int | None = None,
    server: dict[str, Any] | None = None,
    **attributes: Any,
) -> SpanScope:
    """The ``db.session.<operation>`` span shape (see `create_session_span`).

    ``open``/``close`` send no SQL: INTERNAL, without ``server``'s attributes; the
    others are CLIENT spans with them (db.namespace, server.address, server.port).
    """
    internal = operation in _SESSION_INTERNAL
    if internal:
        server = None
    # Name, kind and start attributes depend on the operation and engine only: built
    # once each (the open and close of every session pass here).
    key = ("db.session", operation, id(server) if server else 0)
    cached = config.state.start_attributes.get(key)
    if cached is None or (server and cached[3] is not server):
        sampler = {**config.state.system_attributes, SpanAttributes.DB_SESSION_OPERATION: operation}
        if server:
            sampler.update(server)
        kind = SpanKind.INTERNAL if internal else SpanKind.CLIENT
        cached = (sampler, kind, f"db.session.{operation}", server)
        _remember_shape(key, cached)
    extra: dict[str, Any] = {}
    if pending_count is not None:
        extra[SpanAttributes.DB_SESSION_PENDING_COUNT] = pending_count
    if dirty_count is not None:
        extra[SpanAttributes.DB_SESSION_DIRTY_COUNT] = dirty_count
    if deleted_count is not None:
        extra[SpanAttributes.DB_SESSION_DELETED_COUNT] = deleted_count
    if attributes:
        _merge(extra, attributes)
    return SpanScope(tracer, cached[2], cached[1], cached[0], extra)


def relationship_span(
    tracer: Tracer | None,
    name: str,
    target_model: str | None = None,
    strategy: str | None = None,
    fk_column: str | None = None,
    batch_count: int | None = None,
    depth: int = 0,
    server: dict[str, Any] | None = None,
    sends_sql: bool = True,
    **attributes: Any,
) -> SpanScope:
    """The ``db.relationship.<strategy>`` span shape (see `create_relationship_span`).

    CLIENT with ``server``'s attributes when the load ``sends_sql``; INTERNAL without
    them when it does not (a value served from the cache or the identity map, a
    ``joined`` load filled from its parent query's rows).
    """
    strategy = strategy or "select"
    if not sends_sql:
        server = None
    # Built once per relationship, strategy, engine and kind.
    key = ("db.relationship", name, strategy, id(server) if server else 0, sends_sql)
    cached = config.state.start_attributes.get(key)
    if cached is None or (server and cached[3] is not server):
        sampler = {
            **config.state.system_attributes,
            SpanAttributes.DB_RELATIONSHIP_NAME: name,
            SpanAttributes.DB_RELATIONSHIP_STRATEGY: strategy,
        }
        if server:
            sampler.update(server)
        kind = SpanKind.CLIENT if sends_sql else SpanKind.INTERNAL
        cached = (sampler, kind, f"db.relationship.{strategy}", server)
        _remember_shape(key, cached)
    extra: dict[str, Any] = {}
    if target_model is not None:
        extra[SpanAttributes.DB_RELATIONSHIP_TARGET_MODEL] = target_model
    if fk_column is not None:
        extra[SpanAttributes.DB_RELATIONSHIP_FK_COLUMN] = fk_column
    if batch_count is not None:
        extra[SpanAttributes.DB_RELATIONSHIP_BATCH_COUNT] = batch_count
    if attributes:
        _merge(extra, attributes)
    if strategy in EAGER_STRATEGIES:
        extra[SpanAttributes.DB_RELATIONSHIP_DEPTH] = depth
    return SpanScope(tracer, cached[2], cached[1], cached[0], extra)

"""Detection scopes, and when each one ends.

A load is counted in the first of:

1. the explicit ``n1_scope()`` block around it;
2. the current trace, when a span of the user's (or their framework's) is
   current and still recording: one request is one scope. It ends when the
   trace's local root span ends (`processor.ScopeEndProcessor`, added to the
   SDK tracer provider by `watch.watch_scope_ends`);
3. otherwise (a worker, a script, a test without fixture, a task that
   outlived its request span) the parents' session: the scope ends when the
   session closes (or, for a session never closed, when it is collected).

Trace scopes are also capped (least recently created evicted first), so a
provider without the processor, or roots that never end, cannot grow memory.
Unused eager loads are reported only by scopes that see the use of what was
loaded end: explicit blocks and requests. Objects outlive their session, so a
session scope cannot tell an eager load that will never be read.
"""

from __future__ import annotations

import weakref
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace

from opentelemetry_instrumentation_data_bridge import config, provider_hooks
from opentelemetry_instrumentation_data_bridge.n_plus_one import report
from opentelemetry_instrumentation_data_bridge.n_plus_one.report import (
    Finding,
    UnusedEagerLoad,
)
from opentelemetry_instrumentation_data_bridge.n_plus_one.settings import n1_settings

MAX_TRACE_SCOPES = 1024
SCOPE_END = "n+1 scope end"  # the key of ScopeEndProcessor on a provider (provider_hooks)
MAX_SITES_PER_SCOPE = 256
MAX_SOURCES_PER_SCOPE = 4096

SiteKey = tuple[str, str, str, int]  # model, relationship, file, line (eager loads)
LazyKey = tuple[Any, int, int]  # relationship, id(code), bytecode offset of `obj.rel`
# How the rows of one result were loaded: (the parents' result, relationship, strategy).
# Also where the load was written (lazy loads): a walk that meets the same
# relationship and line again went round through rows the identity map
# returned again, not through a level of the code (`detector._advice`).
Source = tuple[Any, Any, str, "tuple[Any, int] | None"]


@dataclass
class LazySite:
    parents: set[Any] = field(default_factory=set)  # identity keys until the finding
    count: int = 0  # distinct parents until the finding (then the finding counts loads)
    finding: Finding | None = None


@dataclass
class N1Scope:
    """Counters of one request, session or explicit block; cleared when it ends."""

    sites: dict[LazyKey, LazySite] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    # Repeated statements (get/first/count/exists/execute) by the line that ran them:
    # (id(code), bytecode offset) -> `repeated.StatementSite`.
    statements: dict[tuple[int, int], Any] = field(default_factory=dict)
    # Eager loads run in the scope, and the relationships read from eager-loaded values.
    eager_loads: dict[SiteKey, UnusedEagerLoad] = field(default_factory=dict)
    eager_used: set[tuple[str, str]] = field(default_factory=set)
    unused_eager_loads: list[UnusedEagerLoad] = field(default_factory=list)
    # The scope's end is known (block exit, root span end, session close): warning
    # spans stay open and log records / warnings wait for the final count.
    keeps_warnings_open: bool = True
    tracks_eager_loads: bool = True
    of_session: bool = False  # a session's scope (no span, no block): the session tells it
    # A session scope's finalizer (for a session never closed), detached at close.
    finalizer: Any = field(default=None, repr=False)
    ended: bool = False
    # Results whose scope `scope_of_result` remembers (forgotten when this scope ends).
    remembered: list[Any] = field(default_factory=list)


_explicit: ContextVar[N1Scope | None] = ContextVar("data_bridge_n1_scope", default=None)
_trace_scopes: OrderedDict[int, N1Scope] = OrderedDict()
_session_scopes: dict[int, N1Scope] = {}  # id(session) -> scope, popped at close
# The request span of the last lookup and its scope: the loads of one request
# come in a row, and this skips re-deciding their scope for each.
_last: tuple[Any, N1Scope | None] = (None, None)
# Result (ResultInfo) -> the scope its parents' lazy loads are counted in.
_scope_of_result: dict[Any, N1Scope] = {}
_NO_SCOPE = N1Scope(ended=True)
# The last multi-row results (ResultInfo) -> where their query was written
# (code, bytecode offset), for advice naming the query to fix. Bounded by the
# detector; a closed session's results hold nothing of it.
recent_queries: dict[Any, tuple[Any, int]] = {}
# Of those, the results of a stream (`Query.stream()`, which takes no loader
# options: its loops are advised to_list() or a query per batch). Bounded alike.
stream_results: dict[Any, None] = {}
# The last counted loop: (its parents' result, relationship, mark (code, bytecode
# offset), explicit scope, scope, counter, the note its loads' rows get). A
# loop's loads come in a row; the next one that matches skips the scope and site
# lookups (`detector.record_lazy_load`). Reset when its scope ends (`finish`).
# How its loads' rows were loaded, as their results' note: (scope, Source).
LastLoop = tuple[Any, Any, Any, "N1Scope | None", N1Scope, LazySite, Any]
NO_LOOP: LastLoop = (None, None, None, None, _NO_SCOPE, LazySite(), None)
last_loop: LastLoop = NO_LOOP
# The last counted statement (`repeated.record_statement`, `repeated._count`):
# (explicit block, context object, session (only for a session's scope, else
# None), scope, the library frames' code between the seam's caller and the line
# (None when fewer), code, bytecode offset, its site, operation). The next
# statement from the same line in the same block, context and session skips the
# scope and site lookups. Reset when that scope ends.
NO_STATEMENT: tuple[Any, ...] = (None, None, None, None, None, None, None, -1, None, "")
last_statement: tuple[Any, ...] = NO_STATEMENT
# What `n1_ignore()` puts in place of the explicit scope: one context lookup
# then tells a load both whether it is ignored and which explicit scope it is in.
IGNORED = N1Scope(ended=True)
# The scopes holding eager loads (id -> scope), until they end: while there are
# none, reading an eager-loaded value has no use to record (no context read).
eager_scopes: dict[int, N1Scope] = {}
# Relationship -> (context, explicit block) of its last recorded eager use. Its
# marks are in place for any later read under the same two: such a read records
# nothing. Cleared when a scope gains an eager load (a later read must mark it)
# or one holding eager loads ends; so a page's reads record once per
# relationship instead of once per parent (`detector.note_eager_use`).
eager_marked: dict[Any, tuple[Any, Any]] = {}


def finish(scope: N1Scope, parent: trace.SpanContext | None = None) -> None:
    """Record final counts, report, free the counters."""
    global _last, last_loop, last_statement
    scope.ended = True
    if _last[1] is scope:
        _last = (None, None)
    if last_statement[3] is scope:
        last_statement = NO_STATEMENT
    if last_loop[4] is scope:
        last_loop = NO_LOOP
    for result in scope.remembered:
        if _scope_of_result.get(result) is scope:
            del _scope_of_result[result]
    scope.remembered.clear()
    settings = n1_settings()
    for finding in scope.findings:  # their counts are final: counted on after the finding
        report.close_warning(finding, settings, scope.keeps_warnings_open)
    for (model, name, _file, _line), unused in scope.eager_loads.items():
        if (model, name) not in scope.eager_used and f"{model}.{name}" not in settings.allowlist:
            scope.unused_eager_loads.append(unused)
            report.report_unused(unused, settings, parent)
    scope.sites.clear()
    scope.statements.clear()
    if eager_scopes.pop(id(scope), None) is not None:
        eager_marked.clear()  # frees the contexts held (none is needed without the scope)
    scope.eager_loads.clear()
    scope.eager_used.clear()


@contextmanager
def n1_scope() -> Iterator[N1Scope]:
    """An explicit detection scope (scripts, workers, tests): findings are on the yielded scope."""
    scope = N1Scope()
    token = _explicit.set(scope)
    try:
        yield scope
    finally:
        _explicit.reset(token)
        finish(scope)


@contextmanager
def n1_ignore() -> Iterator[None]:
    """Loads inside this block are not counted (deliberate loops, fixtures, factories);
    an ``n1_scope()`` opened inside it counts again (the innermost block wins)."""
    token = _explicit.set(IGNORED)
    try:
        yield
    finally:
        _explicit.reset(token)


def is_ignored() -> bool:
    return _explicit.get() is IGNORED


def current_scope(create: bool = True, session: Any = None) -> N1Scope | None:
    """The scope a load belongs to (see the module's docstring); ``session`` is the
    session of the loaded objects, for code that runs outside any request."""
    scope = _explicit.get()
    if scope is not None:
        return None if scope is IGNORED else scope
    return ambient_scope(create, session)


def ambient_scope(create: bool = True, session: Any = None) -> N1Scope | None:
    """The scope of the current request, else of ``session``: `current_scope`
    without the explicit block (an ``n1_ignore()`` or ``n1_scope()`` inside a
    request still reads what the request eager-loaded)."""
    global _last
    span = trace.get_current_span()
    recording = span.is_recording()
    if recording and span is _last[0]:
        return _last[1]
    if recording and _span_of_the_caller(span):
        trace_id = span.get_span_context().trace_id
        scope = _trace_scopes.get(trace_id)
        if scope is None and create:
            scope = N1Scope(keeps_warnings_open=_provider_is_watched())
            _trace_scopes[trace_id] = scope
            if len(_trace_scopes) > MAX_TRACE_SCOPES:
                _, evicted = _trace_scopes.popitem(last=False)
                finish(evicted)
        if scope is not None:
            _last = (span, scope)
        return scope
    if session is None:
        return None
    scope = _session_scopes.get(id(session))
    if scope is None and create:
        scope = _session_scopes[id(session)] = N1Scope(tracks_eager_loads=False, of_session=True)
        scope.finalizer = weakref.finalize(session, _session_collected, id(session), scope)
    return scope


def scope_of_result(result: Any) -> N1Scope | None:
    """The scope for a lazy load from a parent of ``result`` (a ResultInfo).

    A loop's loads come from the parents of one result, in one scope: the
    scope found for the first is remembered for the others (while it lasts),
    which skips looking up the current span on each load. An explicit scope
    opened since still wins.
    """
    scope = _explicit.get()
    if scope is not None:
        return None if scope is IGNORED else scope
    scope = _scope_of_result.get(result)
    if scope is not None and not scope.ended:
        return scope
    scope = current_scope(session=result.session)
    if scope is not None and len(scope.remembered) < MAX_SOURCES_PER_SCOPE:
        _scope_of_result[result] = scope
        scope.remembered.append(result)
    return scope


def _span_of_the_caller(span: Any) -> bool:
    """False for a local root span this instrumentation started itself (an ORM
    call made with no span current): its trace ends with that call."""
    parent = getattr(span, "parent", None)
    if parent is not None and not parent.is_remote:
        return True  # a child span: the trace's root is above it
    scope = getattr(span, "instrumentation_scope", None)
    return scope is None or scope.name != config.SCOPE


def _provider_is_watched() -> bool:
    return provider_hooks.attached(config.configured_tracer_provider(), SCOPE_END)


def has_trace_scopes() -> bool:
    return bool(_trace_scopes)


def end_trace_scope(root: Any) -> None:
    """The local root span of a trace ended: finish and free that trace's scope."""
    scope = _trace_scopes.pop(root.context.trace_id, None)
    if scope is not None:
        finish(scope, parent=root.context)


def end_session_scope(session: Any) -> None:
    """A session closed: finish and free the scope of its loads made outside requests."""
    if not _session_scopes:
        return
    scope = _session_scopes.pop(id(session), None)
    if scope is not None:
        scope.finalizer.detach()
        finish(scope)


def _session_collected(key: int, scope: N1Scope) -> None:
    if _session_scopes.get(key) is scope:
        del _session_scopes[key]
        finish(scope)


def finish_all_scopes() -> None:
    """On uninstrument: report and free what every open trace and session scope holds."""
    recent_queries.clear()
    stream_results.clear()
    while _trace_scopes:
        _, scope = _trace_scopes.popitem(last=False)
        finish(scope)
    while _session_scopes:
        _, scope = _session_scopes.popitem()
        scope.finalizer.detach()
        finish(scope)


finish_all_trace_scopes = finish_all_scopes  # the name instrument()'s callers used

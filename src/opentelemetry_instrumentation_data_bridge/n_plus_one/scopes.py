"""Detection scopes: an explicit ``n1_scope()`` block, else the current trace.

A trace's scope lives from its first lazy load until its local root span
ends; `processor.ScopeEndProcessor` (added to the SDK tracer provider by the
instrumentor) sees that end, reports what the scope found and frees it.
Trace scopes are also capped (least recently created evicted first), so a
provider without the processor, or roots that never end, cannot grow memory.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace

from opentelemetry_instrumentation_data_bridge.n_plus_one import report
from opentelemetry_instrumentation_data_bridge.n_plus_one.report import (
    Finding,
    UnusedEagerLoad,
)
from opentelemetry_instrumentation_data_bridge.n_plus_one.settings import n1_settings

MAX_TRACE_SCOPES = 1024
SCOPE_END = "n+1 scope end"  # the key of ScopeEndProcessor on a provider (provider_hooks)
MAX_SITES_PER_SCOPE = 256

SiteKey = tuple[str, str, str, int]  # model, relationship, file, line


@dataclass
class LazySite:
    parents: set[int] = field(default_factory=set)
    count: int = 0
    finding: Finding | None = None


@dataclass
class N1Scope:
    """Counters of one request (or explicit block); cleared when it ends."""

    sites: dict[SiteKey, LazySite] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    # Eager loads run in the scope, and the relationships read from eager-loaded values.
    eager_loads: dict[SiteKey, UnusedEagerLoad] = field(default_factory=dict)
    eager_used: set[tuple[str, str]] = field(default_factory=set)
    unused_eager_loads: list[UnusedEagerLoad] = field(default_factory=list)
    keeps_warnings_open: bool = True


_explicit: ContextVar[N1Scope | None] = ContextVar("data_bridge_n1_scope", default=None)
_ignored: ContextVar[bool] = ContextVar("data_bridge_n1_ignore", default=False)
_trace_scopes: OrderedDict[int, N1Scope] = OrderedDict()


def finish(scope: N1Scope, parent: trace.SpanContext | None = None) -> None:
    """Record final counts, report unused eager loads, free the counters."""
    for site in scope.sites.values():
        if site.finding is not None:
            site.finding.count = site.count
            report.close_warning(site.finding)
    settings = n1_settings()
    for (model, name, _file, _line), unused in scope.eager_loads.items():
        if (model, name) not in scope.eager_used and f"{model}.{name}" not in settings.allowlist:
            scope.unused_eager_loads.append(unused)
            report.report_unused(unused, settings, parent)
    scope.sites.clear()
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
    """Loads inside this block are not counted (deliberate loops, fixtures, factories)."""
    token = _ignored.set(True)
    try:
        yield
    finally:
        _ignored.reset(token)


def is_ignored() -> bool:
    return _ignored.get()


def current_scope(create: bool = True) -> N1Scope | None:
    """The explicit scope of this context, else the current trace's (made on first use)."""
    scope = _explicit.get()
    if scope is not None:
        return scope
    span_context = trace.get_current_span().get_span_context()
    if not span_context.is_valid:
        return None
    scope = _trace_scopes.get(span_context.trace_id)
    if scope is None and create:
        scope = N1Scope(keeps_warnings_open=_provider_is_watched())
        _trace_scopes[span_context.trace_id] = scope
        if len(_trace_scopes) > MAX_TRACE_SCOPES:
            _, evicted = _trace_scopes.popitem(last=False)
            finish(evicted)
    return scope


def _provider_is_watched() -> bool:
    from opentelemetry_instrumentation_data_bridge import config, provider_hooks

    return provider_hooks.attached(config.configured_tracer_provider(), SCOPE_END)


def has_trace_scopes() -> bool:
    return bool(_trace_scopes)


def end_trace_scope(root: Any) -> None:
    """The local root span of a trace ended: finish and free that trace's scope."""
    scope = _trace_scopes.pop(root.context.trace_id, None)
    if scope is not None:
        finish(scope, parent=root.context)


def watch_scope_ends(provider: Any) -> bool:
    """Add the scope-end processor to an SDK tracer provider (once per provider);
    ``uninstrument()`` takes it off again (`provider_hooks.detach_all`)."""
    if getattr(provider, "add_span_processor", None) is None:
        return False  # the API's no-op or proxy provider: capped trace scopes only
    from opentelemetry_instrumentation_data_bridge import provider_hooks

    if provider_hooks.attached(provider, SCOPE_END):
        return True
    from opentelemetry_instrumentation_data_bridge.n_plus_one.processor import (
        ScopeEndProcessor,
    )

    return provider_hooks.attach(provider, SCOPE_END, ScopeEndProcessor())


def finish_all_trace_scopes() -> None:
    """On uninstrument: report and free what every open trace scope holds."""
    while _trace_scopes:
        _, scope = _trace_scopes.popitem(last=False)
        finish(scope)

"""Automatic N+1 detection on the lazy-load seam.

A lazy load (``db.relationship.select`` with ``cache_hit = false``) is
counted per (model, relationship, call site) within a scope: an explicit
``n1_scope()`` block, else the current trace. Only parents that came from a
multi-row result count (``inspect(obj).result_size > 1``), so a loop over
one object, ``get()`` / ``first()`` results and objects built in Python never
trigger it. When the count of distinct parents reaches the threshold, one
``db.n1_warning`` span is emitted (plus, by mode, a log record, a
``NPlusOneWarning`` or a ``NPlusOneError``); the count keeps rising and an
explicit scope records the final count when it ends.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import trace

from opentelemetry_instrumentation_data_bridge.attributes import SpanAttributes, SpanNames

logger = logging.getLogger("opentelemetry_instrumentation_data_bridge.n_plus_one")

MODES = ("span", "log", "warn", "raise")
_LIBRARY_MARKERS = (
    f"{os.sep}data_bridge_core{os.sep}",
    f"{os.sep}opentelemetry_instrumentation_data_bridge{os.sep}",
    f"{os.sep}asyncio{os.sep}",
    f"{os.sep}wrapt{os.sep}",
)
MAX_TRACE_SCOPES = 1024  # bounded memory for trace-keyed scopes
MAX_SITES_PER_SCOPE = 256


class NPlusOneWarning(UserWarning):
    """Emitted in ``mode="warn"`` when an N+1 pattern is detected."""


class NPlusOneError(Exception):
    """Raised in ``mode="raise"`` when an N+1 pattern is detected (for tests)."""


@dataclass
class N1Settings:
    enabled: bool = True
    threshold: int = 5
    log_level: int = logging.WARNING
    mode: str = "span"
    allowlist: frozenset[str] = frozenset()


@dataclass
class Finding:
    """One detected pattern: what to report and how to fix it."""

    model: str
    relationship: str
    target_model: str
    filepath: str
    lineno: int
    function: str
    count: int
    threshold: int

    @property
    def recommendation(self) -> str:
        return f"Use selectinload({self.model}.{self.relationship})"

    def message(self) -> str:
        return (
            f"N+1 query: {self.model}.{self.relationship} lazy-loaded for {self.count} parents "
            f"at {self.filepath}:{self.lineno} ({self.function}). {self.recommendation}"
        )


@dataclass
class _Site:
    parents: set[int] = field(default_factory=set)
    count: int = 0
    finding: Finding | None = None


@dataclass
class N1Scope:
    """Counters of one request (or explicit block); freed when it ends."""

    sites: dict[tuple[str, str, str, int], _Site] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)


def _env_settings() -> N1Settings:
    settings = N1Settings()
    raw = os.environ.get("DATA_BRIDGE_N1_ENABLED")
    if raw is not None:
        settings.enabled = raw.strip().lower() not in ("false", "0", "no", "off")
    threshold = os.environ.get("DATA_BRIDGE_N1_THRESHOLD", "")
    if threshold.isdigit() and int(threshold) > 0:
        settings.threshold = int(threshold)
    mode = os.environ.get("DATA_BRIDGE_N1_MODE", "").strip().lower()
    if mode in MODES:
        settings.mode = mode
    allow = os.environ.get("DATA_BRIDGE_N1_ALLOWLIST", "")
    settings.allowlist = frozenset(a.strip() for a in allow.split(",") if a.strip())
    return settings


_settings = _env_settings()
_explicit: ContextVar[N1Scope | None] = ContextVar("data_bridge_n1_scope", default=None)
_ignored: ContextVar[bool] = ContextVar("data_bridge_n1_ignore", default=False)
_trace_scopes: OrderedDict[int, N1Scope] = OrderedDict()


def configure_n1_detection(
    enabled: bool = True,
    threshold: int = 5,
    log_level: str | int = "WARNING",
    mode: str = "span",
    allowlist: list[str] | tuple[str, ...] = (),
) -> None:
    """Configure detection: ``mode`` is span (default), log, warn or raise; ``allowlist``
    holds relationships (``"Post.author"``) that are never reported."""
    global _settings
    if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 1:
        raise ValueError(f"threshold must be a positive int, got {threshold!r}")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    level = logging.getLevelName(log_level.upper()) if isinstance(log_level, str) else log_level
    if not isinstance(level, int):
        raise ValueError(f"unknown log level {log_level!r}")
    _settings = N1Settings(enabled, threshold, level, mode, frozenset(allowlist))


def n1_settings() -> N1Settings:
    return _settings


@contextmanager
def n1_ignore() -> Iterator[None]:
    """Deliberate loops inside this block are not counted."""
    token = _ignored.set(True)
    try:
        yield
    finally:
        _ignored.reset(token)


@contextmanager
def n1_scope() -> Iterator[N1Scope]:
    """An explicit detection scope (used where there is no trace, e.g. scripts and tests)."""
    scope = N1Scope()
    token = _explicit.set(scope)
    try:
        yield scope
    finally:
        _explicit.reset(token)
        for finding in scope.findings:
            site = scope.sites.get(
                (finding.model, finding.relationship, finding.filepath, finding.lineno)
            )
            if site is not None:
                finding.count = site.count
        scope.sites.clear()


def _current_scope() -> N1Scope | None:
    scope = _explicit.get()
    if scope is not None:
        return scope
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    scope = _trace_scopes.get(context.trace_id)
    if scope is None:
        scope = _trace_scopes[context.trace_id] = N1Scope()
        if len(_trace_scopes) > MAX_TRACE_SCOPES:
            _trace_scopes.popitem(last=False)
    return scope


def _call_site() -> tuple[str, int, str]:
    """The first frame outside the ORM, the instrumentation, asyncio and wrapt."""
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not any(marker in filename for marker in _LIBRARY_MARKERS):
            return filename, frame.f_lineno, frame.f_code.co_name
        frame = frame.f_back  # type: ignore[assignment]
    return "<unknown>", 0, "<unknown>"


def record_lazy_load(relationship: Any, parent: Any) -> None:
    """Called by the lazy-load wrapper after a load that ran SQL."""
    settings = _settings
    if not settings.enabled or _ignored.get():
        return
    from data_bridge_core import inspect

    size = inspect(parent).result_size
    if size is None or size < 2:
        return
    model = relationship.owner.__name__
    name = relationship.name
    if f"{model}.{name}" in settings.allowlist:
        return
    scope = _current_scope()
    if scope is None:
        return
    filepath, lineno, function = _call_site()
    key = (model, name, filepath, lineno)
    site = scope.sites.get(key)
    if site is None:
        if len(scope.sites) >= MAX_SITES_PER_SCOPE:
            return
        site = scope.sites[key] = _Site()
    if site.finding is None:
        site.parents.add(id(parent))
        site.count = len(site.parents)
    else:
        site.count += 1
        site.finding.count = site.count
        return
    if site.count >= settings.threshold:
        site.parents.clear()  # the count is all we need from now on
        finding = Finding(
            model,
            name,
            relationship.target_name,
            filepath,
            lineno,
            function,
            site.count,
            settings.threshold,
        )
        site.finding = finding
        scope.findings.append(finding)
        _report(finding, settings)


def _report(finding: Finding, settings: N1Settings) -> None:
    from opentelemetry_instrumentation_data_bridge import telemetry

    attributes: dict[str, Any] = {
        SpanAttributes.DB_RELATIONSHIP_NAME: finding.relationship,
        SpanAttributes.DB_RELATIONSHIP_TARGET_MODEL: finding.target_model,
        SpanAttributes.DB_N1_QUERY_COUNT: finding.count,
        SpanAttributes.DB_N1_THRESHOLD: finding.threshold,
        SpanAttributes.DB_N1_RECOMMENDATION: finding.recommendation,
        "code.filepath": finding.filepath,
        "code.lineno": finding.lineno,
        "code.function": finding.function,
    }
    current = trace.get_current_span()
    if current.is_recording():
        current.add_event(SpanNames.N1_WARNING, attributes)
    tracer = telemetry.get_tracer()
    if tracer is not None:
        span_attributes = {**telemetry.system_attributes(), **attributes}
        with tracer.start_as_current_span(SpanNames.N1_WARNING, attributes=span_attributes):
            pass
    if settings.mode == "log":
        logger.log(settings.log_level, finding.message())
    elif settings.mode == "warn":
        warnings.warn(finding.message(), NPlusOneWarning, stacklevel=2)
    elif settings.mode == "raise":
        raise NPlusOneError(finding.message())

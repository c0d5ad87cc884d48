"""What detection reports, and how: spans, span events, log records, warnings, errors."""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace

from opentelemetry_instrumentation_data_bridge import config
from opentelemetry_instrumentation_data_bridge.attributes import SpanAttributes, SpanNames
from opentelemetry_instrumentation_data_bridge.n_plus_one.settings import N1Settings
from opentelemetry_instrumentation_data_bridge.semconv import Mode

logger = logging.getLogger("opentelemetry_instrumentation_data_bridge.n_plus_one")

# Loader option to advise per strategy that loaded a level ("select": a lazy load).
OPTION_OF_STRATEGY = {
    "selectinload": "selectinload",
    "joined": "joinedload",
    "select": "selectinload",
}


class NPlusOneWarning(UserWarning):
    """Emitted in ``mode="warn"`` when an N+1 pattern is detected."""


class UnusedEagerLoadWarning(UserWarning):
    """An eager load whose results were never read in its scope (``mode`` warn or raise)."""


class NPlusOneError(Exception):
    """Raised in ``mode="raise"`` when an N+1 pattern is detected (for tests)."""


@dataclass(frozen=True)
class CallSite:
    """The user's line a load was made from."""

    filepath: str
    lineno: int
    function: str

    def __str__(self) -> str:
        return f"{display_path(self.filepath)}:{self.lineno} ({self.function})"

    def attributes(self) -> Mapping[str, Any]:
        """The ``code.*`` attributes (shared: copy before adding to them)."""
        dup = _old_code_attributes_wanted()
        key = (self, dup)
        known = _site_attributes.get(key)
        if known is None:
            # The same sites are reported request after request: built once per site.
            if len(_site_attributes) >= _MAX_SITE_ATTRIBUTES:
                _site_attributes.clear()
            known = _site_attributes[key] = {
                "code.file.path": self.filepath,
                "code.line.number": self.lineno,
                "code.function.name": self.function,
            }
            if dup:
                # OTEL_SEMCONV_STABILITY_OPT_IN=database/dup: the deprecated names too.
                known["code.filepath"] = self.filepath
                known["code.lineno"] = self.lineno
                known["code.function"] = self.function
        return known

    def warn(self, message: str, category: type[Warning]) -> None:
        """A warning attributed to this line (not to the library frame that emits it)."""
        warnings.warn_explicit(message, category, self.filepath, self.lineno)


_MAX_SITE_ATTRIBUTES = 1024
_MAX_DISPLAY_PATHS = 1024
_display_paths: dict[tuple[str, str], str] = {}


def display_path(path: str) -> str:
    """``path`` relative to the working directory when it is inside it, else as given.

    Read at report time (the working directory may change), remembered per
    directory and file: the same sites are reported request after request.
    """
    try:
        cwd = os.getcwd()
    except OSError:  # the working directory was removed
        return path
    key = (cwd, path)
    known = _display_paths.get(key)
    if known is None:
        known = path
        if os.path.isabs(path):
            try:
                relative = os.path.relpath(path, cwd)
            except ValueError:  # another drive (Windows)
                relative = os.pardir
            if relative != os.pardir and not relative.startswith(os.pardir + os.sep):
                known = relative
        if len(_display_paths) >= _MAX_DISPLAY_PATHS:
            _display_paths.clear()
        _display_paths[key] = known
    return known


_site_attributes: dict[tuple[CallSite, bool], dict[str, Any]] = {}


def _old_code_attributes_wanted() -> bool:
    return config.state.mode is Mode.DATABASE_DUP


@dataclass
class Finding:
    """One N+1 pattern: a relationship lazy-loaded per parent from one call site.

    ``option`` is the loader option to paste into the ``.options(...)`` of the
    query that loaded the root objects (``query_site``, when known).
    """

    model: str
    relationship: str
    target_model: str
    site: CallSite
    count: int
    threshold: int
    option: str = ""
    query_site: CallSite | None = None
    # The db.n1_warning span, open until the scope ends so it can carry the final count.
    span: Any = field(default=None, repr=False, compare=False)
    # For a self-referencing relationship (a tree): the levels the advice loads.
    tree_levels: int = 0
    # The root objects came from a stream (no loader options): `recommendation` says
    # to use to_list(), or ``batch_form`` (one query per batch of the stream).
    batch_form: str = ""
    stream: bool = False

    @property
    def recommendation(self) -> str:
        option = self.option or f"selectinload({self.model}.{self.relationship})"
        if not self.stream:
            return f"Use {option}"
        advice = (
            f"Use .options({option}).to_list() in place of .stream() "
            "(stream() takes no loader options)"
        )
        if self.batch_form:
            advice += (
                f", or keep streaming and load each batch's {self.target_model} rows "
                f"with one {self.batch_form}"
            )
        return advice

    def message(self, final: bool = True) -> str:
        """``final``: the scope has ended and ``count`` is its total; else it is a floor."""
        times = f"{self.count} times" if final else f"at least {self.count} times"
        where = ""
        if self.query_site is not None and self.stream:
            where = f" (the stream at {self.query_site})"
        elif self.query_site is not None:
            where = f" in the .options(...) of the query at {self.query_site}"
        tree = ""
        if self.tree_levels > 1:
            tree = (
                f". A tree walked {self.tree_levels} levels deep: the path loads each level "
                "with one query; for a depth not known in advance, one WITH RECURSIVE query "
                f"(session.from_sql({self.model}, ...)) loads the whole subtree at once"
            )
        return (
            f"N+1 query: {self.model}.{self.relationship} lazy-loaded {times} at {self.site}. "
            f"{self.recommendation}{where}{tree}"
        )

    def attributes(self) -> dict[str, Any]:
        attributes = {
            SpanAttributes.DB_RELATIONSHIP_NAME: self.relationship,
            SpanAttributes.DB_RELATIONSHIP_TARGET_MODEL: self.target_model,
            SpanAttributes.DB_N1_QUERY_COUNT: self.count,
            SpanAttributes.DB_N1_THRESHOLD: self.threshold,
            SpanAttributes.DB_N1_RECOMMENDATION: self.recommendation,
            **self.site.attributes(),
        }
        if self.query_site is not None:
            attributes[SpanAttributes.DB_N1_QUERY_SITE] = str(self.query_site)
        return attributes


@dataclass
class RepeatedQuery(Finding):
    """One statement shape run again and again from one line (Sentry's N+1 of any query).

    ``model`` is the queried model's name ("" for ``execute()``), ``relationship``
    the operation (``get``, ``first``, ``count``, ``exists``, ``execute``; also as
    ``operation``), so an allowlist entry reads ``"Follow.get"``. ``option`` is the
    batch form to paste after ``session.`` ("" when there is none to write out);
    ``hint`` completes the advice.
    """

    table: str = ""
    hint: str = ""

    @property
    def operation(self) -> str:
        return self.relationship

    @property
    def recommendation(self) -> str:
        operation = self.relationship
        if operation == "execute":
            return (
                "Use one execute() for all the items: send their values as one array "
                "parameter (column = ANY(%s) with a list) and read each item's rows from its "
                "result, instead of an execute() per item"
            )
        if not self.option:
            return (
                f"Use the result of one {operation}(): the same query ran with the same "
                "values each time; run it once, before the loop"
            )
        return (
            f"Use one session.{self.option} for all the items, before the loop, "
            f"instead of a {operation}() per item{self.hint}"
        )

    def message(self, final: bool = True) -> str:
        times = f"{self.count} times" if final else f"at least {self.count} times"
        call = f"{self.model}.{self.relationship}()" if self.model else f"{self.relationship}()"
        return f"Repeated query: {call} ran {times} at {self.site}. {self.recommendation}"

    def attributes(self) -> dict[str, Any]:
        attributes = {
            SpanAttributes.DB_OPERATION_NAME: self.relationship,
            SpanAttributes.DB_N1_QUERY_COUNT: self.count,
            SpanAttributes.DB_N1_THRESHOLD: self.threshold,
            SpanAttributes.DB_N1_RECOMMENDATION: self.recommendation,
            **self.site.attributes(),
        }
        if self.table:
            attributes[SpanAttributes.DB_COLLECTION_NAME] = self.table
        return attributes


@dataclass
class UnusedEagerLoad:
    """An eager load (Bullet's "unused eager loading") nobody read in its scope."""

    model: str
    relationship: str
    target_model: str
    strategy: str
    site: CallSite

    @property
    def option(self) -> str:
        option = OPTION_OF_STRATEGY.get(self.strategy, self.strategy)
        return f"{option}({self.model}.{self.relationship})"

    @property
    def recommendation(self) -> str:
        return f"Remove {self.option}: the loaded {self.target_model} rows were never used"

    def message(self) -> str:
        return f"Unused eager load: {self.option} at {self.site}. {self.recommendation}"

    def warn(self) -> None:
        """`UnusedEagerLoadWarning` at the line of the query that asked for the load."""
        self.site.warn(self.message(), UnusedEagerLoadWarning)

    def attributes(self) -> dict[str, Any]:
        return {
            SpanAttributes.DB_RELATIONSHIP_NAME: self.relationship,
            SpanAttributes.DB_RELATIONSHIP_TARGET_MODEL: self.target_model,
            SpanAttributes.DB_RELATIONSHIP_STRATEGY: self.strategy,
            SpanAttributes.DB_N1_RECOMMENDATION: self.recommendation,
            **self.site.attributes(),
        }


def _tracer() -> Any:
    return config.get_tracer(), config.system_attributes()


def open_warning(finding: Finding, settings: N1Settings, reports_at_end: bool) -> None:
    """A new N+1 finding (its count is the threshold: a floor).

    ``reports_at_end``: the scope ends deterministically, so the span stays
    open and the log record or warning waits for the final count
    (`close_warning`); otherwise they go out now and say "at least".
    """
    attributes = finding.attributes()
    current = trace.get_current_span()
    if current.is_recording():
        current.add_event(SpanNames.N1_WARNING, attributes)
    tracer = config.get_tracer()
    if tracer is not None:
        # The SDK copies the attributes: the configured ones are merged without a copy.
        attributes = {**config.state.system_attributes, **attributes}
        span = tracer.start_span(SpanNames.N1_WARNING, attributes=attributes)
        if reports_at_end:
            finding.span = span
        else:
            span.end()
    if settings.mode == "raise":
        raise NPlusOneError(finding.message(final=False))
    if not reports_at_end:
        _log_or_warn(finding, settings, final=False)


def update_recommendation(finding: Finding) -> None:
    """The advice changed after the finding (a tree walked deeper): so does its span's."""
    if finding.span is not None:
        finding.span.set_attribute(SpanAttributes.DB_N1_RECOMMENDATION, finding.recommendation)


def add_query_site(finding: Finding) -> None:
    """The query to fix became known after the finding: its warning span gets it too."""
    if finding.span is not None and finding.query_site is not None:
        finding.span.set_attribute(SpanAttributes.DB_N1_QUERY_SITE, str(finding.query_site))


def close_warning(finding: Finding, settings: N1Settings, reports_at_end: bool) -> None:
    """The scope ended: the warning span gets the final count and ends; the log record
    or warning goes out now unless it went out when found (``reports_at_end`` false)."""
    span, finding.span = finding.span, None
    if span is None:
        if reports_at_end:
            _log_or_warn(finding, settings, final=True)
        return
    span.set_attribute(SpanAttributes.DB_N1_QUERY_COUNT, finding.count)
    if reports_at_end and settings.mode in ("log", "warn"):
        # In the warning span's context: the record carries the request's trace id
        # (log correlation), although the request span is no longer current.
        with trace.use_span(span, end_on_exit=False):
            _log_or_warn(finding, settings, final=True)
    span.end()


def _log_or_warn(finding: Finding, settings: N1Settings, final: bool) -> None:
    if settings.mode == "log":
        logger.log(settings.log_level, finding.message(final))
    elif settings.mode == "warn":
        finding.site.warn(finding.message(final), NPlusOneWarning)


def report_unused(
    unused: UnusedEagerLoad, settings: N1Settings, parent: trace.SpanContext | None
) -> None:
    """A ``db.unused_eager_load`` span under the scope's span (``parent``, else the current)."""
    tracer, system = _tracer()
    ctx = (
        trace.set_span_in_context(trace.NonRecordingSpan(parent))
        if parent is not None
        else otel_context.get_current()
    )
    if tracer is not None:
        tracer.start_span(
            SpanNames.UNUSED_EAGER_LOAD, context=ctx, attributes={**system, **unused.attributes()}
        ).end()
    if settings.mode == "log":
        # In the request's context (log correlation): its span has ended already.
        token = otel_context.attach(ctx)
        try:
            logger.log(settings.log_level, unused.message())
        finally:
            otel_context.detach(token)
    elif settings.mode in ("warn", "raise"):
        # Never raised: an extra query is a cost, not a failure, and a scope's end
        # must not replace an exception already on its way out.
        unused.warn()

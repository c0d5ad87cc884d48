"""Repeated statements: one statement shape run again and again from one line.

Sentry's N+1 detector flags any repeated same-shape query from one call site;
the lazy-load detector (`detector`) sees only relationship loads. This module
counts ``get()`` / ``find(...).first()`` (a one-row query), ``count()``,
``exists()`` and ``execute()`` per (scope, line, statement shape), with the
lazy loads' threshold and scopes, and advises the batch form.

A statement's shape is what its SQL text depends on, never its values
(`Query.shape`; for ``execute()`` the text itself). The first statement from a
line is only remembered: most lines run once per scope, and they never pay for
a shape. From the second on, each is shaped and counted; until a shape's
finding, the values of its ``column == value`` filters are compared with the
first call's (in memory only) to tell which columns change per item, which the
advice writes as ``Model.column.in_(columns)``. Once a line that ran a single
shape has its finding, its next statements only bump the finding's count: the
next statement of the last line is recognised without a Python call (the
frames out to the line retraced by their code, the context and block compared
by identity; `record_statement`).
"""

from __future__ import annotations

import sys
from types import CodeType, FrameType
from typing import Any

from opentelemetry.context import get_current

from data_bridge_core import result_of, table_info
from opentelemetry_instrumentation_data_bridge.n_plus_one import report, scopes
from opentelemetry_instrumentation_data_bridge.n_plus_one import settings as settings_module
from opentelemetry_instrumentation_data_bridge.n_plus_one.detector import (
    _in_library,
    _library_file,
    _remember_query,
    call_site,
    user_frame,
)
from opentelemetry_instrumentation_data_bridge.n_plus_one.report import RepeatedQuery
from opentelemetry_instrumentation_data_bridge.n_plus_one.scopes import (
    IGNORED,
    MAX_SITES_PER_SCOPE,
    N1Scope,
)

_explicit_scope = scopes._explicit.get
# Library frames between the seam's caller and the user's line that the last
# statement's fast path retraces (first() and get() have one; execute() two).
_MAX_LIBRARY_FRAMES = 2
_NEVER = compile("", "<never a frame's code>", "exec")  # matches no frame


class StatementSite:
    """The statements one line ran in a scope: the first one (not shaped until a
    second comes), then a counter per shape."""

    __slots__ = ("found", "mark", "pending", "shapes")

    def __init__(self, mark: tuple[CodeType, int], operation: str, subject: Any) -> None:
        self.mark = mark  # holds the code object: its id stays its own
        self.pending: tuple[str, Any] | None = (operation, subject)
        self.shapes: dict[Any, ShapeCount] = {}
        # The finding of a line that ran one shape until it: the line's next
        # statements count towards it unshaped (as a loop's next lazy loads do).
        self.found: RepeatedQuery | None = None


class ShapeCount:
    """Statements of one shape from one line; the filters' values of the first one
    and the columns seen to change, until the finding."""

    __slots__ = ("count", "finding", "first", "silenced", "varying")

    def __init__(self, first: tuple[tuple[str, Any], ...]) -> None:
        self.count = 0
        self.finding: RepeatedQuery | None = None
        self.first: tuple[tuple[str, Any], ...] | None = first
        self.varying: set[str] = set()
        self.silenced = False  # allowlisted: counted no more


def record_statement(
    operation: str,
    query: Any,
    result: Any,
    caller: FrameType | None = None,
    context: Any = None,
    session: Any = None,
) -> None:
    """A query seam returned: ``find`` (``to_list()``: ``get()`` and ``first()`` go
    through it), ``count`` or ``exists``. A multi-row find's line is kept for the
    lazy-load advice; a one-row query (``limit(1)``), a count and an exists are
    counted as repeated statements. ``caller``: the frame that called the seam,
    read by the wrapper at the call (walking out to it from here would make
    CPython build a frame object for each coroutine in between); None: walk.
    ``context``: the OpenTelemetry context the seam ran under (the wrapper has
    it; None: read it). ``session``: the query's session, when the wrapper has read
    it (None: read it if needed).

    This runs after every one-row query, count and exists, between two round
    trips, so the common case (the next statement of the last line, found
    already) is `_count`'s fast path written out here, with no Python call.
    """
    if not settings_module._settings.enabled:
        return
    if caller is None:
        caller = sys._getframe(1)
    if context is None:
        context = get_current()
    explicit = _explicit_scope()
    last = scopes.last_statement
    # Out to the user's line along the library frames the last statement passed
    # (first()'s, get()'s), known by their code: no file is looked up.
    frame: FrameType | None = caller
    if caller.f_code is last[4]:
        frame = caller.f_back
        if last[5] is not None and frame is not None and frame.f_code is last[5]:
            frame = frame.f_back
    if (
        frame is not None
        and frame.f_code is last[6]
        and frame.f_lasti == last[7]
        and operation is last[9]
        and context is last[1]
        and explicit is last[0]
        and (last[2] is None or (query.session if session is None else session) is last[2])
        # Through first() or get() (a library frame) it is a limit(1) query, as the
        # last one was: only a to_list() written on the user's line is checked again.
        and (frame is not caller or operation != "find" or query.limit_value == 1)
    ):
        site: StatementSite = last[8]
        found = site.found
        if found is not None:
            found.count += 1  # after its finding, a one-shape line is not shaped again
            return
        _shape_and_count(last[3], site, operation, query)
        return
    # A multi-row find never takes the path above: it is either through first() or
    # get() (limit(1)) or a to_list() on the user's line checked for limit(1).
    if result.__class__ is list and len(result) > 1:  # only a find returns a list
        _remember_rows(result, caller)
        return
    located = _locate(operation, query, session, caller, context, explicit)
    if located is not None:
        _shape_and_count(located[0], located[1], operation, query)


def _remember_rows(result: list[Any], caller: FrameType) -> None:
    rows = result_of(result[0])
    frame = user_frame(caller)
    if rows is not None and frame is not None:
        _remember_query(rows, (frame.f_code, frame.f_lasti))  # the line advice names


def record_execute(session: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """``session.execute(statement, ...)`` is called (counted before it runs)."""
    if not settings_module._settings.enabled:
        return
    statement = args[0] if args else kwargs.get("statement")
    if isinstance(statement, str):  # execute() refuses anything else itself
        _count("execute", statement, session, sys._getframe(1))


def _count(operation: str, subject: Any, session: Any, caller: FrameType) -> None:
    """Count one statement at its line: `record_statement`'s path for ``execute()``,
    with its session given. The next statement of the last line, in the same
    block, context and (where it tells scopes apart) session, is a handful of
    reads and compares: the last statement's walk out to the user's line is
    retraced by the identity of the library frames' code, so no file is looked
    up."""
    context = get_current()
    explicit = _explicit_scope()
    last = scopes.last_statement
    frame: FrameType | None = caller
    if caller.f_code is last[4]:
        frame = caller.f_back
        if last[5] is not None and frame is not None and frame.f_code is last[5]:
            frame = frame.f_back
    if (
        frame is not None
        and frame.f_code is last[6]
        and frame.f_lasti == last[7]
        and operation is last[9]
        and context is last[1]
        and explicit is last[0]
        and (last[2] is None or session is last[2])
    ):
        site: StatementSite = last[8]
        if site.found is not None:
            site.found.count += 1
            return
        _shape_and_count(last[3], site, operation, subject)
        return
    located = _locate(operation, subject, session, caller, context, explicit)
    if located is not None:
        _shape_and_count(located[0], located[1], operation, subject)


def _shape_and_count(scope: N1Scope, site: StatementSite, operation: str, subject: Any) -> None:
    """A line's statement before its finding: shape it, and the line's first one."""
    pending = site.pending
    if pending is not None:
        site.pending = None
        _add(scope, site, pending[0], pending[1])
    _add(scope, site, operation, subject)


def _locate(
    operation: str, subject: Any, session: Any, caller: FrameType, context: Any, explicit: Any
) -> tuple[N1Scope, StatementSite] | None:
    """A statement that is not the next of the last line: find its scope and site
    (it becomes the last statement). None when it does not count, or is the line's
    first in its scope (only remembered)."""
    if explicit is IGNORED:
        return None
    if operation == "find" and subject.limit_value != 1:
        return None  # a list that happened to hold one row: not a per-item lookup
    # Out to the user's line, keeping the (at most two) library frames passed.
    via: list[CodeType | None] = [None, None]
    frame: FrameType | None = caller
    for step in range(_MAX_LIBRARY_FRAMES + 1):
        if frame is None:
            return None
        code = frame.f_code
        inside = _library_file.get(code.co_filename)
        if inside is None:
            inside = _in_library(code.co_filename)
        if not inside:
            break
        if step == _MAX_LIBRARY_FRAMES:
            via = [_NEVER, _NEVER]  # deeper than the fast path retraces: never matched
            frame = user_frame(frame)
            if frame is None:
                return None
            break
        via[step] = code
        frame = frame.f_back
    assert frame is not None
    code = frame.f_code
    offset = frame.f_lasti
    if session is None:
        session = subject.session
    # The request's statements come in a row under one context object (each
    # statement's own span is detached again by then): a new one takes this path.
    scope = explicit if explicit is not None else scopes.ambient_scope(session=session)
    if scope is None:
        return None
    # The session tells scopes apart only where no span or block does.
    by_session = session if scope.of_session else None
    key = (id(code), offset)  # id(code): hashing a code object hashes its content
    known: StatementSite | None = scope.statements.get(key)
    first = known is None
    if known is None:
        if len(scope.statements) >= MAX_SITES_PER_SCOPE:
            return None
        site = scope.statements[key] = StatementSite((code, offset), operation, subject)
    else:
        site = known
    # One rebinding: another thread never sees half of it.
    scopes.last_statement = (
        explicit, context, by_session, scope, via[0], via[1], code, offset, site, operation
    )  # fmt: skip
    if first:
        return None  # only remembered: most lines run once per scope
    if site.found is not None:
        site.found.count += 1
        return None
    return scope, site


def _add(scope: N1Scope, site: StatementSite, operation: str, subject: Any) -> None:
    """Count one statement under its shape; at the threshold, report."""
    query = operation != "execute"
    shape = (operation, subject.shape) if query else (operation, subject)
    counter = site.shapes.get(shape)
    if counter is None:
        counter = site.shapes[shape] = ShapeCount(subject.equality_filters if query else ())
    if counter.finding is not None:
        counter.finding.count += 1
        return
    if counter.silenced:
        return
    counter.count += 1
    first = counter.first
    if first and counter.count > 1:
        for (name, value), (_, first_value) in zip(subject.equality_filters, first, strict=False):
            if value is not first_value and value != first_value:
                counter.varying.add(name)
    settings = settings_module._settings
    if counter.count < settings.threshold:
        return
    finding = _finding(operation, subject if query else None, counter, site, settings)
    counter.first = None  # the values are needed no more
    if finding is None:
        counter.silenced = True
        return
    counter.finding = finding
    if len(site.shapes) == 1:
        site.found = finding
    scope.findings.append(finding)
    report.open_warning(finding, settings, scope.keeps_warnings_open)


def _finding(
    operation: str, query: Any, counter: ShapeCount, site: StatementSite, settings: Any
) -> RepeatedQuery | None:
    if query is None:
        model = table = option = hint = ""
    else:
        model = query.model.__name__
        table = query.table_name
        operation, option, hint = _batch_form(operation, query, counter)
    if f"{model}.{operation}" in settings.allowlist:
        return None
    return RepeatedQuery(
        model,
        operation,
        model,
        call_site(site.mark),
        counter.count,
        settings.threshold,
        option,
        table=table,
        hint=hint,
    )


def _plural(name: str) -> str:
    return f"{name}_values" if name.endswith("s") else f"{name}s"


def _batch_form(operation: str, query: Any, counter: ShapeCount) -> tuple[str, str, str]:
    """(operation as the user wrote it, the batch query to paste after ``session.``, a
    hint). Column names only: no value of the user's is ever written out."""
    model = query.model
    info = table_info(model)
    name = model.__name__
    pinned = [column for column, _ in (counter.first or ())]
    if operation == "find":
        key_lookup = (
            set(pinned) == set(info.key_names)
            and query.filters_count == len(pinned)
            and query.order_by_text is None
            and query.offset_value is None
        )
        operation = "get" if key_lookup else "first"
    varying = [c for c in pinned if c in counter.varying]
    constant = [c for c in pinned if c not in counter.varying]
    if not varying:
        return operation, "", ""
    conditions = [f"{name}.{c} == {c}" for c in constant]
    hints: list[str] = []
    if len(varying) == 1:
        column = varying[0]
        conditions.append(f"{name}.{column}.in_({_plural(column)})")
    else:
        pairs = " & ".join(f"({name}.{c} == {c})" for c in varying)
        conditions.append(f"reduce(or_, [{pairs} for {', '.join(varying)} in keys])")
        hints.append(
            "data-bridge has no tuple IN: this ORs the keys; "
            "from functools import reduce and from operator import or_"
        )
    batch = f"find({name}).filter({', '.join(conditions)})"
    if operation in ("count", "exists") and len(varying) == 1:
        column = varying[0]
        batch += f'.aggregate([{{"$group": {{"_id": "${column}", "count": {{"$sum": 1}}}}}}])'
        if operation == "count":
            hints.append(f"one count per {column}; a {column} without rows has no group")
        else:
            hints.append(f"a {column} exists when it has a group")
    else:
        batch += ".to_list()"
        if operation == "first":
            hints.append(f"pick each item's row from the list by its {', '.join(varying)}")
        elif operation in ("count", "exists"):
            hints.append("count each item's rows in the list")
    if constant:
        verb = "is" if len(constant) == 1 else "are"
        hints.append(f"{', '.join(constant)} {verb} the same in every call")
    if query.filters_count > len(pinned):
        hints.append("keep the query's other filters")
    hint = f" ({'; '.join(hints)})" if hints else ""
    return operation, batch, hint

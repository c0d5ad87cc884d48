"""What a failed operation records about its exception, with no bound value in it.

An exception's text may carry the values of the statement that failed:
PostgreSQL's DETAIL (``Key (email)=(...) already exists``), CONTEXT (the
offending JSON), a quoted value in the primary message (``invalid input
syntax for type integer: "..."``), or a validation message repeating the
value. Spans, events and metrics therefore get a description built here:

- `error_type`: the exception class, as the SDK writes ``exception.type``
  (``module.QualName``; built-in classes unqualified, ``KeyError``). The one
  place that decides ``error.type`` for spans and metrics alike.
- `describe`: SQLSTATE, constraint/table/column names, and a message with
  values removed. For a PostgreSQL error: its primary message only (DETAIL,
  HINT, CONTEXT dropped), quoted text masked unless it is one of the names
  the server reported, and nothing of the text of ``RAISE`` (class P0, or
  any SQLSTATE a ``RAISE ... USING ERRCODE`` chose), which is the
  application's; without a server message (a connection
  failure) the first line of the exception's text, masked. For other
  exceptions: quoted text and numbers masked; a core error quoting an
  earlier one (``PendingRollbackError``) gets that one's description in its
  place; except the core's
  ``ValidationError`` (``ColumnTypeError``...), whose message names model,
  column and problem and never the value.
- `stacktrace`: the frames of the exception and of its causes, each closed by
  its class and masked message instead of its text.

The exception the caller receives is never touched.
"""

from __future__ import annotations

import re
import traceback
from dataclasses import dataclass, field
from typing import Any

from opentelemetry_instrumentation_data_bridge.attributes import SpanAttributes

MASK = "?"
# Quoted text ("...", '...') and numbers (also 0x.., 1.5e3, 2020-01-01 piecewise).
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\w.]*")

# The psycopg Diagnostic fields that name schema objects, and where they go.
_NAMES = {
    "constraint_name": SpanAttributes.DB_ERROR_CONSTRAINT_NAME,
    "table_name": SpanAttributes.DB_ERROR_TABLE_NAME,
    "column_name": SpanAttributes.DB_ERROR_COLUMN_NAME,
}
_OTHER_NAMES = ("schema_name", "datatype_name")


def error_type(exc: BaseException) -> str:
    """``error.type`` / ``exception.type`` of an exception (see the module docstring)."""
    cls = type(exc)
    module = cls.__module__
    if not module or module == "builtins":
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


@dataclass
class ErrorDescription:
    """What spans record about one exception."""

    type: str
    message: str
    attributes: dict[str, Any] = field(default_factory=dict)


def _database_cause(exc: BaseException) -> Any:
    """The psycopg error behind a data_bridge DatabaseError (or the error itself)."""
    for candidate in (exc, exc.__cause__):
        if candidate is not None and getattr(candidate, "diag", None) is not None:
            return candidate
    return None


def _mask(text: str, keep: frozenset[str] = frozenset()) -> str:
    def quoted(match: re.Match[str]) -> str:
        token = match.group(0)
        inner = token[1:-1]
        return token if inner in keep else f"{token[0]}{MASK}{token[0]}"

    masked = _QUOTED.sub(quoted, text)
    # Numbers inside kept names (a constraint "t1_pkey") are protected by the quotes above.
    parts = re.split(r'("(?:[^"\\]|\\.)*")', masked)
    return "".join(p if p.startswith('"') else _NUMBER.sub(MASK, p) for p in parts)


def _raised_by_function(diag: Any) -> bool:
    """A PL/pgSQL ``RAISE`` with an SQLSTATE of its own (``USING ERRCODE =
    'check_violation'``): its message is the application's text, values and all."""
    if getattr(diag, "source_function", None) == "exec_stmt_raise":
        return True
    # The innermost CONTEXT line names the statement that raised (also without source fields).
    innermost = (getattr(diag, "context", None) or "").split("\n", 1)[0]
    return innermost.rstrip().endswith(" at RAISE")


def _database_message(
    exc: BaseException, sqlstate: str | None, diag: Any, names: frozenset[str]
) -> str:
    if (sqlstate and sqlstate.startswith("P0")) or _raised_by_function(diag):
        message = "raised by a database function"  # RAISE: the text is the application's
    elif primary := (getattr(diag, "message_primary", None) or "").strip():
        message = _mask(primary, names)
    else:
        # No server message (a connection failure, a pool timeout): the first line
        # of the exception's own text, masked; DETAIL and the rest follow on later lines.
        lines = str(exc).strip().splitlines()
        first = lines[0] if lines else ""
        if sqlstate and first.startswith(f"[{sqlstate}]"):  # DatabaseError's own prefix
            first = first[len(sqlstate) + 2 :].lstrip()
        message = _mask(first) if first else "database error"
    return f"[{sqlstate}] {message}" if sqlstate else message


def describe(exc: BaseException) -> ErrorDescription:
    """The value-free description of ``exc``."""
    kind = error_type(exc)
    attributes: dict[str, Any] = {SpanAttributes.ERROR_TYPE: kind}
    sqlstate = getattr(exc, "sqlstate", None) or getattr(exc.__cause__, "sqlstate", None)
    if sqlstate:
        attributes[SpanAttributes.DB_RESPONSE_STATUS_CODE] = str(sqlstate)
    cause = _database_cause(exc)
    if cause is not None:
        diag = cause.diag
        names: set[str] = set()
        for source, key in _NAMES.items():
            value = getattr(diag, source, None)
            if value:
                attributes[key] = value
                names.add(value)
        names.update(v for v in (getattr(diag, n, None) for n in _OTHER_NAMES) if v)
        message = _database_message(exc, sqlstate, diag, frozenset(names))
    elif (original := _carried_original(exc)) is not None:
        # PendingRollbackError quotes the flush's error, DETAIL and all: that part is
        # replaced by the original's own description, the rest of the text masked.
        inner = describe(original)
        before, _, after = str(exc).partition(str(original))
        message = f"{_mask(before)}{inner.message}{_mask(after)}"
        attributes = {**inner.attributes, SpanAttributes.ERROR_TYPE: kind}
    elif _is_validation_error(exc):
        message = str(exc)  # "<Model>.<column> <problem>": the core never puts the value in
    else:
        message = _mask(str(exc))
    return ErrorDescription(kind, message, attributes)


def _carried_original(exc: BaseException) -> BaseException | None:
    """The earlier exception a core error quotes in its message (``original``), if any."""
    original = getattr(exc, "original", None)
    if (
        isinstance(original, BaseException)
        and original is not exc
        and type(exc).__module__.startswith("data_bridge_core.")
        and str(original)
        and str(original) in str(exc)
    ):
        return original
    return None


def _is_validation_error(exc: BaseException) -> bool:
    """data_bridge_core's ValidationError (ColumnTypeError...), whose message names
    model, column and problem and by its contract never the value. Recognized by
    shape: the core is an optional dependency of this package (its "instruments" extra)."""
    return (
        isinstance(exc, ValueError)
        and all(hasattr(exc, a) for a in ("model_name", "field", "problem"))
        and type(exc).__module__.startswith("data_bridge_core.")
    )


def message_of(exc: BaseException) -> str:
    """The value-free message of one exception (of a chain link, say)."""
    return describe(exc).message


def stacktrace(exc: BaseException) -> str:
    """The traceback of ``exc`` and its causes, in Python's layout, with every
    exception line replaced by its class and value-free message."""
    chain: list[tuple[BaseException, str]] = []
    seen: set[int] = set()
    current: BaseException | None = exc
    link = ""
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        chain.append((current, link))
        if current.__cause__ is not None:
            current, link = current.__cause__, "direct cause"
        elif current.__context__ is not None and not current.__suppress_context__:
            current, link = current.__context__, "context"
        else:
            current = None
    parts: list[str] = []
    for index, (error, _) in enumerate(reversed(chain)):
        if index:
            # The link of the exception after this one says how they relate.
            how = chain[len(chain) - index][1]
            parts.append(
                "\nThe above exception was the direct cause of the following exception:\n\n"
                if how == "direct cause"
                else "\nDuring handling of the above exception, another exception occurred:\n\n"
            )
        if error.__traceback__ is not None:
            parts.append("Traceback (most recent call last):\n")
            parts.extend(traceback.format_tb(error.__traceback__))
        parts.append(f"{error_type(error)}: {message_of(error)}\n")
    return "".join(parts)

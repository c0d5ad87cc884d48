"""What telemetry records about a failed operation: structured facts, never the text.

An exception's text may carry the values of the statement that failed:
PostgreSQL's primary message (``invalid input syntax for type inet:
"..."``), its DETAIL (``Key (email)=(...) already exists``), its CONTEXT
(the offending JSON), the text of a ``RAISE``, a repr in a Python message.
Editing that text (masking quoted parts) leaks whatever the editor did not
foresee: a quote or a trailing backslash inside the value ends the "quoted
part" early. So nothing here reads an exception's text. What is recorded
is assembled from facts that cannot hold a value:

- the exception's class, and the driver's class behind the core's
  ``DatabaseError`` wrapper (`error_type`: ``psycopg.errors.UniqueViolation``);
- the SQLSTATE (a code checked to be five digits or capitals) and its
  condition name (``unique_violation``), from psycopg's class for that code;
- the names the server reported in the diagnostic (``e.diag``): schema,
  table, column, constraint, data type: catalog names, not values. Left
  out for an error a PL/pgSQL ``RAISE`` made, whose fields are the
  function's own (``USING COLUMN = NEW.email`` is possible);
- the core's ``ValidationError`` fields: model, column, problem (the
  problem is fixed wording: the core never puts a value in it);
- for anything else, the first paragraph of the class's own docstring
  (``KeyError`` → ``Mapping key not found.``), which is code.

The message (``exception.message``; the status description is the raised
class's name, ``: ``, the message):

===========================  ================================================
database error               ``[23505] unique_violation (schema=app,
                             table=users, constraint=users_email_key)``
RAISE in a function/trigger  ``[P0001] raise_exception (raised by a database
                             function)``
driver error, no SQLSTATE    its class's summary (``The pool couldn't provide
                             a connection in acceptable time.``)
validation                   ``User.age contains a NUL byte (...)``
a core error quoting an      its summary, then ``(after IntegrityError: [23505]
earlier one                  unique_violation (...))``
anything else                its class's summary, or nothing
===========================  ================================================

`stacktrace` gives the frames of the exception and its causes (file, line,
function: no source lines, which may hold a literal) each closed by its
class and message as above. A cancellation (``asyncio.CancelledError``) is
not a failure of the operation (`is_cancellation`): spans record it as a
``cancelled`` event and leave the status unset.

The exception the caller receives is never touched.
"""

from __future__ import annotations

import asyncio
import re
import traceback
from dataclasses import dataclass, field
from typing import Any

from opentelemetry_instrumentation_data_bridge.attributes import SpanAttributes

try:  # psycopg comes with data_bridge_core, an optional dependency of this package
    from psycopg.errors import lookup as _psycopg_class
except ImportError:  # pragma: no cover - the core is always there when it is instrumented
    _psycopg_class = None  # type: ignore[assignment]

# A SQLSTATE: validated, not parsed (a user's exception may carry any `sqlstate`).
_SQLSTATE = re.compile(r"[0-9A-Z]{5}")
# A class name to its condition name: UniqueViolation -> unique_violation.
_WORD_START = re.compile(r"(?<!^)(?=[A-Z])")
_RAISED = "raised by a database function"

# The diagnostic fields that name schema objects, in the order the message names
# them, with the message's key and the span attribute (None: in the message only).
_NAMES: tuple[tuple[str, str, str | None], ...] = (
    ("schema_name", "schema", None),
    ("table_name", "table", SpanAttributes.DB_ERROR_TABLE_NAME),
    ("column_name", "column", SpanAttributes.DB_ERROR_COLUMN_NAME),
    ("constraint_name", "constraint", SpanAttributes.DB_ERROR_CONSTRAINT_NAME),
    ("datatype_name", "datatype", None),
)
_CORE = "data_bridge_core."
_DRIVERS = frozenset({"psycopg", "psycopg_pool"})  # top-level packages


@dataclass
class ErrorDescription:
    """What spans record about one exception."""

    type: str  # exception.type: the raised class, qualified
    message: str  # exception.message
    attributes: dict[str, Any] = field(default_factory=dict)  # error.type, SQLSTATE, names
    status: str = ""  # the status description: "<class name>: <message>"


def qualified_name(cls: type) -> str:
    """A class as the SDK writes ``exception.type``: ``module.QualName``, built-in
    classes unqualified (``KeyError``)."""
    module = cls.__module__
    if not module or module == "builtins":
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def is_cancellation(exc: BaseException) -> bool:
    """Whether ``exc`` cancelled the operation rather than failed it."""
    return isinstance(exc, asyncio.CancelledError)


def _from_driver(exc: BaseException) -> bool:
    return (type(exc).__module__ or "").partition(".")[0] in _DRIVERS


def _is_core_database_error(exc: BaseException) -> bool:
    """The core's DatabaseError (and subclasses): recognized by shape, since the
    core is an optional dependency of this package."""
    return type(exc).__module__.startswith(_CORE) and hasattr(exc, "sqlstate")


def driver_error(exc: BaseException) -> BaseException | None:
    """The driver's exception: ``exc`` itself, or the one behind a chain of core
    errors (a DatabaseError, or a MigrationFailedError wrapping one)."""
    current: BaseException | None = exc
    for _ in range(4):  # the core wraps at most a few times; never loop on a cycle
        if current is None:
            return None
        if _from_driver(current):
            return current
        if not type(current).__module__.startswith(_CORE):
            return None
        current = current.__cause__
    return None


def sqlstate_of(exc: BaseException) -> str | None:
    """The SQLSTATE of ``exc`` (or of the driver error it wraps), when it is one."""
    for candidate in (exc, driver_error(exc)):
        code = getattr(candidate, "sqlstate", None)
        if isinstance(code, str) and _SQLSTATE.fullmatch(code):
            return code
    return None


def _class_for(sqlstate: str, driver: BaseException | None) -> type | None:
    """psycopg's class for exactly this SQLSTATE (not a class-level fallback)."""
    cls: type | None = type(driver) if driver is not None else None
    if cls is None or getattr(cls, "sqlstate", None) != sqlstate:
        try:
            cls = _psycopg_class(sqlstate) if _psycopg_class is not None else None
        except KeyError:
            cls = None
    return cls if cls is not None and getattr(cls, "sqlstate", None) == sqlstate else None


def error_type(exc: BaseException) -> str:
    """``error.type`` of spans and metrics alike: the driver's class when the core
    wrapped one (``psycopg.errors.UniqueViolation``, ``psycopg_pool.PoolTimeout``);
    for a core DatabaseError with a SQLSTATE and no driver error behind it, psycopg's
    class for that SQLSTATE; otherwise the exception's own class."""
    driver = driver_error(exc)
    if driver is not None:
        return qualified_name(type(driver))
    if _is_core_database_error(exc) and (sqlstate := sqlstate_of(exc)) is not None:
        cls = _class_for(sqlstate, None)
        if cls is not None:
            return qualified_name(cls)
    return qualified_name(type(exc))


def error_facts(exc: BaseException) -> tuple[str, str | None]:
    """(``error.type``, SQLSTATE or None): the attributes of a failed operation's metrics."""
    return error_type(exc), sqlstate_of(exc)


def summary(cls: type) -> str:
    """The first paragraph of a class's own docstring, on one line ("" without one)."""
    doc = cls.__dict__.get("__doc__")
    if not isinstance(doc, str):
        return ""
    paragraph = doc.strip().split("\n\n", 1)[0]
    return " ".join(paragraph.split()).replace("``", "`")


def _raised_by_function(sqlstate: str, diag: Any) -> bool:
    """An error a PL/pgSQL ``RAISE`` made (class P0, or any SQLSTATE ``USING
    ERRCODE`` chose): its message and fields are the function's own."""
    if sqlstate.startswith("P0") or getattr(diag, "source_function", None) == "exec_stmt_raise":
        return True
    # Without the source fields: the innermost CONTEXT line names the raising statement.
    context = getattr(diag, "context", None)
    innermost = context.split("\n", 1)[0] if isinstance(context, str) else ""
    return innermost.rstrip().endswith(" at RAISE")


def _reported_names(diag: Any) -> list[tuple[str, str, str | None]]:
    """(message key, name, span attribute) of each name the server reported."""
    found = []
    for source, key, attribute in _NAMES:
        name = getattr(diag, source, None)
        if isinstance(name, str) and name:
            found.append((key, name, attribute))
    return found


def _database_message(
    sqlstate: str, driver: BaseException | None, attributes: dict[str, Any]
) -> str:
    cls = _class_for(sqlstate, driver)
    head = f"[{sqlstate}] {_WORD_START.sub('_', cls.__name__).lower()}" if cls else f"[{sqlstate}]"
    diag = getattr(driver, "diag", None)
    if diag is None:
        return head
    if _raised_by_function(sqlstate, diag):
        return f"{head} ({_RAISED})"
    names = _reported_names(diag)
    for _, name, attribute in names:
        if attribute is not None:
            attributes[attribute] = name
    if not names:
        return head
    return f"{head} ({', '.join(f'{key}={name}' for key, name, _ in names)})"


def _validation_fields(exc: BaseException) -> tuple[str, str, str] | None:
    """(model, column, problem) of the core's ValidationError (ColumnTypeError...)."""
    if not type(exc).__module__.startswith(_CORE):
        return None
    fields = tuple(getattr(exc, name, None) for name in ("model_name", "field", "problem"))
    if all(isinstance(f, str) for f in fields):
        return fields  # type: ignore[return-value]
    return None


def _carried_original(exc: BaseException) -> BaseException | None:
    """The earlier exception a core error reports (``PendingRollbackError.original``)."""
    original = getattr(exc, "original", None)
    if (
        isinstance(original, BaseException)
        and original is not exc
        and type(exc).__module__.startswith(_CORE)
    ):
        return original
    return None


def _message(exc: BaseException, attributes: dict[str, Any], depth: int = 0) -> str:
    sqlstate = sqlstate_of(exc)
    if sqlstate is not None:
        attributes[SpanAttributes.DB_RESPONSE_STATUS_CODE] = sqlstate
        return _database_message(sqlstate, driver_error(exc), attributes)
    if (fields := _validation_fields(exc)) is not None:
        model, column, problem = fields
        return f"{model}.{column} {problem}"
    driver = driver_error(exc)
    text = summary(type(driver if driver is not None else exc))
    original = _carried_original(exc)
    if original is not None and depth < 3:
        inner = _message(original, {}, depth + 1)  # its facts, not its attributes
        after = f"{type(original).__name__}: {inner}" if inner else type(original).__name__
        text = f"{text} (after {after})" if text else f"(after {after})"
    return text


def describe(exc: BaseException) -> ErrorDescription:
    """The value-free description of ``exc`` (see the module docstring)."""
    attributes: dict[str, Any] = {SpanAttributes.ERROR_TYPE: error_type(exc)}
    message = _message(exc, attributes)
    name = type(exc).__name__
    status = f"{name}: {message}" if message else name
    return ErrorDescription(qualified_name(type(exc)), message, attributes, status)


def message_of(exc: BaseException) -> str:
    """The value-free message of one exception (of a chain link, say)."""
    return _message(exc, {})


def stacktrace(exc: BaseException) -> str:
    """The traceback of ``exc`` and its causes, in Python's layout: frames as file,
    line and function (no source line), each exception as its class and value-free
    message."""
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
            frames = traceback.StackSummary.extract(
                traceback.walk_tb(error.__traceback__), lookup_lines=False
            )
            parts.extend(f'  File "{f.filename}", line {f.lineno}, in {f.name}\n' for f in frames)
        message = message_of(error)
        kind = qualified_name(type(error))
        parts.append(f"{kind}: {message}\n" if message else f"{kind}\n")
    return "".join(parts)

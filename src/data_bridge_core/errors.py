"""The exception hierarchy of data_bridge_core.

Every error the ORM raises on its own account derives from `DataBridgeError`.
Errors reported by PostgreSQL are wrapped in `DatabaseError` (or a subclass)
with the original psycopg exception as ``__cause__`` and its SQLSTATE kept.
Some classes also derive from the built-in exception a Python user would
expect (`TypeError` for a bad keyword argument, `ValueError` for an
unsupported operator), so both ``except`` styles work.
"""

from __future__ import annotations

from typing import Any


class DataBridgeError(Exception):
    """Base class of every error raised by data_bridge_core."""


class ModelDefinitionError(DataBridgeError, TypeError):
    """A model class is declared in a way the ORM cannot map."""


class UnknownFieldError(DataBridgeError, TypeError):
    """A field name that the model does not have."""

    def __init__(self, model: type | str, field: str, context: str = "") -> None:
        model_name = model if isinstance(model, str) else model.__name__
        where = f" in {context}" if context else ""
        super().__init__(f"{model_name} has no field {field!r}{where}")
        self.model_name = model_name
        self.field = field


class MissingFieldError(DataBridgeError, TypeError):
    """A required field (no default, NOT NULL) was not given."""

    def __init__(self, model_name: str, fields: list[str]) -> None:
        names = ", ".join(repr(f) for f in fields)
        super().__init__(f"{model_name}() missing required field(s): {names}")
        self.model_name = model_name
        self.fields = fields


class ValidationError(DataBridgeError, ValueError):
    """A value a column cannot store, refused before any SQL is sent.

    Raised the same way by the constructor, attribute assignment,
    ``Query.update(**values)`` and filter values. The message is
    ``"<model>.<column> <problem>"``, and its parts are attributes: ``model``
    (the model's name, ``model_name`` too), ``column`` (``field`` too; the
    columns an expression reads, comma-separated) and ``problem`` (fixed
    wording, never the value: values must not reach logs or spans, and the
    telemetry records these fields, not the text).
    """

    def __init__(self, model_name: str, field: str, problem: str) -> None:
        super().__init__(f"{model_name}.{field} {problem}")
        self.model_name = model_name
        self.field = field
        self.problem = problem

    @property
    def model(self) -> str:
        """The model's name (``"User"``; ``"$group"`` for an aggregate's output)."""
        return self.model_name

    @property
    def column(self) -> str:
        """The column's name (``"age"``), or the columns an expression reads."""
        return self.field


class StoredValueError(ValidationError):
    """A value read from the database that the field's type cannot hold.

    An ``int`` field over a ``numeric`` column holding ``1.5`` (or NaN): the
    read raises this rather than truncate. ``model``, ``column`` and
    ``problem`` as in `ValidationError` (never the value); the statement ran,
    and the transaction goes on.
    """


class ColumnTypeError(ValidationError, TypeError):
    """A value whose type does not fit the column it is meant for."""

    def __init__(self, model_name: str, field: str, expected: str, value: Any) -> None:
        super().__init__(model_name, field, f"expects {expected}, got {type(value).__name__}")
        self.expected = expected


class UnsupportedOperationError(DataBridgeError, ValueError):
    """An aggregate stage, operator or expression the ORM does not support."""


class SessionError(DataBridgeError):
    """Misuse of a session."""


class SessionClosedError(SessionError):
    """The session was closed and cannot be used any more."""

    def __init__(self, message: str = "this session is closed; open a new Session") -> None:
        super().__init__(message)


class NoSessionError(SessionError):
    """An operation needs a current session and there is none."""


class InvalidStateError(SessionError):
    """An object is in a state that does not allow the operation."""


class PendingRollbackError(SessionError):
    """A flush failed and rolled the transaction back; call ``session.rollback()`` first."""

    def __init__(self, original: BaseException) -> None:
        self.original = original
        super().__init__(
            "this session's transaction was rolled back after a failed flush "
            f"({type(original).__name__}: {original}); call `await session.rollback()` "
            "before using the session again"
        )


class RelationshipError(DataBridgeError):
    """A relationship cannot be resolved or loaded."""


class RaiseLoadError(RelationshipError):
    """A relationship configured with raiseload() was accessed before being loaded."""


class SchemaMismatchError(DataBridgeError):
    """An existing table does not match its model (``Engine.create_all``).

    ``table`` is the table's name; ``missing`` the model columns the table
    lacks; ``mismatched`` maps a column to ``(database type, model type)``.
    """

    def __init__(
        self,
        table: str,
        missing: list[str],
        mismatched: dict[str, tuple[str, str]] | None = None,
    ) -> None:
        mismatched = mismatched or {}
        problems = []
        if missing:
            problems.append("lacks column(s) " + ", ".join(repr(c) for c in missing))
        for column, (found, declared) in mismatched.items():
            problems.append(f"has column {column!r} of type {found}, the model declares {declared}")
        super().__init__(
            f"table {table!r} exists but does not match its model: {'; '.join(problems)} "
            "(create_all never alters a table: migrate it, or drop it in development)"
        )
        self.table = table
        self.missing = missing
        self.mismatched = mismatched


class DatabaseError(DataBridgeError):
    """PostgreSQL (or the connection to it) reported an error.

    The psycopg exception is the ``__cause__``; ``sqlstate`` is its SQLSTATE
    code (``None`` for connection-level failures).
    """

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class IntegrityError(DatabaseError):
    """A constraint was violated (SQLSTATE class 23)."""


def described(value: object) -> str:
    """An argument as an error message names it.

    The ORM's own objects (columns, relationships, expressions, options) are
    code and show as themselves; anything else shows as its type only, since it
    may be a user's value (a password, an e-mail) and messages end up in logs
    and spans.
    """
    if type(value).__module__.startswith("data_bridge_core."):
        return repr(value)
    return type(value).__name__


class PreparedStatementError(DatabaseError):
    """The server lost or already had a statement the driver prepared (42P05, 26000).

    The usual cause is a pooler in transaction mode (PgBouncer) between the
    application and PostgreSQL: consecutive transactions run on different
    server connections, which do not share prepared statements.
    """


# "already exists" and "does not exist", for a prepared statement.
_PREPARED_STATEMENT_STATES = frozenset({"42P05", "26000"})
# psycopg names the statements it prepares on its own _pg3_0, _pg3_1, ...
_DRIVER_PREPARED_NAME = '"_pg3_'


def wrap_database_error(exc: Exception) -> DatabaseError:
    """Build the DatabaseError for a psycopg exception (the caller raises it ``from exc``)."""
    sqlstate: str | None = getattr(exc, "sqlstate", None)
    message = str(exc).strip() or type(exc).__name__
    if sqlstate in _PREPARED_STATEMENT_STATES and _DRIVER_PREPARED_NAME in message:
        return PreparedStatementError(
            f"[{sqlstate}] {message}: the connection is probably pooled in transaction mode "
            "(PgBouncer), where consecutive transactions run on server connections that do "
            "not share prepared statements; create the engine with "
            "Engine(dsn, prepare_threshold=None), or use PgBouncer >= 1.21 with "
            "max_prepared_statements",
            sqlstate,
        )
    cls = IntegrityError if sqlstate is not None and sqlstate.startswith("23") else DatabaseError
    if sqlstate:
        message = f"[{sqlstate}] {message}"
    return cls(message, sqlstate)


__all__ = [
    "ColumnTypeError",
    "DataBridgeError",
    "DatabaseError",
    "IntegrityError",
    "InvalidStateError",
    "MissingFieldError",
    "ModelDefinitionError",
    "NoSessionError",
    "PreparedStatementError",
    "RaiseLoadError",
    "RelationshipError",
    "SchemaMismatchError",
    "SessionClosedError",
    "SessionError",
    "StoredValueError",
    "UnknownFieldError",
    "UnsupportedOperationError",
    "ValidationError",
    "described",
    "wrap_database_error",
]

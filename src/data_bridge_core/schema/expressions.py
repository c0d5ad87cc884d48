"""Filter and ordering expressions, compiled to SQL text with ``%s`` placeholders.

Identifiers come from the model (quoted once by psycopg.sql when the model is
finalized); every value is appended to the parameter list, never to the text.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from data_bridge_core.errors import ColumnTypeError, UnsupportedOperationError

if TYPE_CHECKING:
    from data_bridge_core.schema.column import ColumnInfo


class ColumnReference:
    """Base of `ColumnInfo`: lets an expression tell a column operand from a value."""

    quoted: str


class Expression:
    """A boolean SQL expression usable in ``filter()``; combine with ``& | ~``."""

    __slots__ = ()

    def compile(self, params: list[Any]) -> str:
        raise NotImplementedError

    def __and__(self, other: Expression) -> Expression:
        return BooleanClause("AND", (self, _expect_expression(other)))

    def __or__(self, other: Expression) -> Expression:
        return BooleanClause("OR", (self, _expect_expression(other)))

    def __invert__(self) -> Expression:
        return Not(self)

    def __bool__(self) -> bool:
        raise TypeError(
            "a filter expression has no truth value: combine expressions with & | ~, "
            "not with and / or / not"
        )


def _expect_expression(value: object) -> Expression:
    if not isinstance(value, Expression):
        raise TypeError(f"expected a filter expression, got {type(value).__name__}")
    return value


def _operand(column: ColumnInfo, value: Any, params: list[Any]) -> str:
    if isinstance(value, ColumnReference):
        return value.quoted
    params.append(column.bind(value))
    return "%s"


class Comparison(Expression):
    __slots__ = ("column", "op", "value")

    def __init__(self, column: ColumnInfo, op: str, value: Any) -> None:
        self.column = column
        self.op = op
        self.value = value

    def compile(self, params: list[Any]) -> str:
        return f"{self.column.quoted} {self.op} {_operand(self.column, self.value, params)}"


class InList(Expression):
    __slots__ = ("column", "negate", "values")

    def __init__(self, column: ColumnInfo, values: Iterable[Any], negate: bool) -> None:
        if isinstance(values, str | bytes):
            raise TypeError(f"{column!r}.in_() takes a list of values, not a single string")
        self.column = column
        self.values = list(values)
        self.negate = negate

    def compile(self, params: list[Any]) -> str:
        bind = self.column.bind
        params.append([bind(v) for v in self.values])
        # ANY/ALL with one array parameter keeps the statement text stable
        # whatever the number of values (good for prepared statements).
        if self.negate:
            return f"{self.column.quoted} <> ALL(%s)"
        return f"{self.column.quoted} = ANY(%s)"


class Like(Expression):
    __slots__ = ("column", "insensitive", "pattern")

    def __init__(self, column: ColumnInfo, pattern: str, insensitive: bool) -> None:
        if not isinstance(pattern, str):
            raise ColumnTypeError(column.owner.__name__, column.name, "a str pattern", pattern)
        self.column = column
        self.pattern = pattern
        self.insensitive = insensitive

    def compile(self, params: list[Any]) -> str:
        params.append(self.pattern)
        return f"{self.column.quoted} {'ILIKE' if self.insensitive else 'LIKE'} %s"


class IsNull(Expression):
    __slots__ = ("column", "negate")

    def __init__(self, column: ColumnInfo, negate: bool) -> None:
        self.column = column
        self.negate = negate

    def compile(self, params: list[Any]) -> str:
        return f"{self.column.quoted} IS {'NOT ' if self.negate else ''}NULL"


class Between(Expression):
    __slots__ = ("column", "high", "low")

    def __init__(self, column: ColumnInfo, low: Any, high: Any) -> None:
        self.column = column
        self.low = low
        self.high = high

    def compile(self, params: list[Any]) -> str:
        low = _operand(self.column, self.low, params)
        high = _operand(self.column, self.high, params)
        return f"{self.column.quoted} BETWEEN {low} AND {high}"


class BooleanClause(Expression):
    __slots__ = ("operands", "operator")

    def __init__(self, operator: str, operands: tuple[Expression, ...]) -> None:
        if operator not in ("AND", "OR"):
            raise UnsupportedOperationError(f"unsupported boolean operator {operator!r}")
        self.operator = operator
        self.operands = operands

    def compile(self, params: list[Any]) -> str:
        glue = f" {self.operator} "
        return "(" + glue.join(op.compile(params) for op in self.operands) + ")"


class Not(Expression):
    __slots__ = ("operand",)

    def __init__(self, operand: Expression) -> None:
        self.operand = operand

    def compile(self, params: list[Any]) -> str:
        return f"NOT ({self.operand.compile(params)})"


class OrderBy:
    """One ORDER BY item: ``User.age.desc()``."""

    __slots__ = ("column", "descending")

    def __init__(self, column: ColumnInfo, descending: bool) -> None:
        self.column = column
        self.descending = descending

    @property
    def sql(self) -> str:
        return f"{self.column.quoted} {'DESC' if self.descending else 'ASC'}"

    @property
    def text(self) -> str:
        """Human-readable form for telemetry: ``created_at DESC``."""
        return f"{self.column.name} {'DESC' if self.descending else 'ASC'}"


def compile_where(filters: tuple[Expression, ...], params: list[Any]) -> str:
    """`` WHERE a AND b`` for a tuple of filters, or an empty string."""
    if not filters:
        return ""
    return " WHERE " + " AND ".join(f.compile(params) for f in filters)

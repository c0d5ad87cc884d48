"""Filter, value and ordering expressions, compiled to SQL text with ``%s`` placeholders.

Identifiers come from the model (quoted once by psycopg.sql when the model is
finalized); every value is appended to the parameter list, never to the text.

Two kinds of expression: an `Operand` produces a value (a column, or column
arithmetic such as ``User.age * 2``) and offers the comparison operators; an
`Expression` is a boolean condition usable in ``filter()``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable, Iterable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Generic, NoReturn, Protocol, TypeVar, cast

from typing_extensions import TypeVar as DefaultTypeVar

from data_bridge_core.errors import ColumnTypeError, UnsupportedOperationError, ValidationError
from data_bridge_core.schema.types import InvalidValue, arithmetic_value, check_text

T = TypeVar("T")
# The model whose columns an expression reads: ``Article.slug == "x"`` is an
# ``Expression[Article]``, which only a query over (or joined to) Article takes.
O_co = DefaultTypeVar("O_co", covariant=True, default=Any)

_TRUTH_VALUE = (
    "a filter expression has no truth value: combine expressions with & | ~ "
    "(not and / or / not), and test membership with Model.column.in_([...]) "
    "(not Python's `in`)"
)


class Expression(Generic[O_co]):
    """A boolean SQL expression usable in ``filter()``; combine with ``& | ~``.

    For type checkers, ``O_co`` is the model whose columns it reads (``Any`` where
    that is not tracked: combinations, functions, the plain annotation style).
    """

    __slots__ = ()

    def compile(self, params: list[Any]) -> str:
        raise NotImplementedError

    def models(self) -> Iterator[type]:
        """The model classes whose columns this expression reads at its own level."""
        return iter(())

    def __and__(self, other: Expression) -> Expression:
        return BooleanClause("AND", (self, _expect_expression(other)))

    def __or__(self, other: Expression) -> Expression:
        return BooleanClause("OR", (self, _expect_expression(other)))

    def __invert__(self) -> Expression:
        return Not(self)

    def shape(self) -> Hashable:
        """What this expression's SQL text depends on, without its values (hashable):
        two expressions of one shape compile to the same text. Tools compare
        statements by it (N+1 detection's repeated queries)."""
        parts: list[Any] = [self.__class__]
        names: tuple[str, ...] = self.__slots__  # the concrete class's own slots
        for name in names:
            parts.append(_shape_part(getattr(self, name), name in _VALUE_SLOTS))
        return tuple(parts)

    def __bool__(self) -> bool:
        raise TypeError(_TRUTH_VALUE)


# Slots holding the user's values (bound as parameters, never in the SQL text).
_VALUE_SLOTS = frozenset({"value", "values", "pattern", "low", "high"})


def _shape_part(part: Any, is_value: bool) -> Hashable:
    if isinstance(part, Expression):
        return part.shape()
    if isinstance(part, Operand):
        return part.shape
    if is_value:
        return None  # a parameter: "%s" whatever the value
    if isinstance(part, tuple):
        return tuple([_shape_part(p, False) for p in part])
    hashable: Hashable = part  # an operator, a flag, fixed SQL of a relationship, a model
    return hashable


class Subquery(Protocol):
    """A query usable inside another: ``find(M).select(M.col)`` (a `RowQuery`)."""

    def subquery_sql(self, params: list[Any], what: str) -> str:
        """Its SELECT text (values appended to ``params``); ``what`` names the use."""
        ...

    @property
    def shape(self) -> Hashable:
        """What its SQL text depends on, without values (see `Expression.shape`)."""
        ...


def _is_subquery(value: object) -> bool:
    # Duck-typed: the row query is a layer above (it compiles expressions).
    return callable(getattr(value, "subquery_sql", None))


def _expect_expression(value: object) -> Expression:
    if not isinstance(value, Expression):
        raise TypeError(f"expected a filter expression, got {type(value).__name__}")
    return value


class Operand:
    """A value in SQL: a column, or arithmetic on columns. Comparing one gives an Expression."""

    __slots__ = ()

    def sql(self, params: list[Any]) -> str:
        """The operand's SQL text (values it holds are appended to ``params``)."""
        raise NotImplementedError

    def bind_operand(self, value: Any) -> Any:
        """Check a Python value compared with this operand; return the parameter to send."""
        raise NotImplementedError

    def models(self) -> Iterator[type]:
        raise NotImplementedError

    @property
    def label(self) -> str:
        """Human-readable form for errors: ``User.age``, ``(User.age * ?)``: the
        columns by name, each literal as ``?`` (it may be a user's value)."""
        raise NotImplementedError

    @property
    def shape(self) -> Hashable:
        """What the operand's SQL text depends on, without its values (see `Expression.shape`)."""
        raise NotImplementedError

    @property
    def text(self) -> str:
        """Short form for telemetry: ``age``, ``(age * 2)``."""
        raise NotImplementedError

    # -- comparisons ----------------------------------------------------------

    def __eq__(self, other: object) -> Expression:  # type: ignore[override]
        if other is None:
            return IsNull(self, negate=False)
        return Comparison(self, "=", other)

    def __ne__(self, other: object) -> Expression:  # type: ignore[override]
        if other is None:
            return IsNull(self, negate=True)
        return Comparison(self, "<>", other)

    def __lt__(self, other: Any) -> Expression:
        return Comparison(self, "<", other)

    def __le__(self, other: Any) -> Expression:
        return Comparison(self, "<=", other)

    def __gt__(self, other: Any) -> Expression:
        return Comparison(self, ">", other)

    def __ge__(self, other: Any) -> Expression:
        return Comparison(self, ">=", other)

    __hash__ = object.__hash__

    def __contains__(self, item: object) -> NoReturn:
        raise TypeError(
            f"`x in {self.label}` cannot become SQL: write {self.label}.in_([...]) to test "
            f"membership in a list, or {self.label}.like('%text%') to search in a string"
        )

    def in_(self, values: Iterable[Any] | Subquery) -> Expression:
        """``= ANY(%s)`` of a list of values, or ``IN (SELECT ...)`` of a one-column selection."""
        if _is_subquery(values):
            return InSubquery(self, cast(Subquery, values), negate=False)
        return InList(self, cast(Iterable[Any], values), negate=False)

    def not_in(self, values: Iterable[Any] | Subquery) -> Expression:
        if _is_subquery(values):
            return InSubquery(self, cast(Subquery, values), negate=True)
        return InList(self, cast(Iterable[Any], values), negate=True)

    def like(self, pattern: str) -> Expression:
        return Like(self, pattern, insensitive=False)

    def ilike(self, pattern: str) -> Expression:
        return Like(self, pattern, insensitive=True)

    def is_null(self) -> Expression:
        return IsNull(self, negate=False)

    def is_not_null(self) -> Expression:
        return IsNull(self, negate=True)

    def between(self, low: Any, high: Any) -> Expression:
        return Between(self, low, high)

    def asc(self) -> OrderBy:
        return OrderBy(self, descending=False)

    def named(self, name: str) -> Named[Any]:
        """This value under ``name`` in a column selection's rows (``row.name``)."""
        return Named(self, name)

    def desc(self) -> OrderBy:
        return OrderBy(self, descending=True)

    # -- arithmetic -----------------------------------------------------------

    def __add__(self, other: Any) -> Arithmetic:
        return Arithmetic(self, "+", other)

    def __radd__(self, other: Any) -> Arithmetic:
        return Arithmetic(other, "+", self)

    def __sub__(self, other: Any) -> Arithmetic:
        return Arithmetic(self, "-", other)

    def __rsub__(self, other: Any) -> Arithmetic:
        return Arithmetic(other, "-", self)

    def __mul__(self, other: Any) -> Arithmetic:
        return Arithmetic(self, "*", other)

    def __rmul__(self, other: Any) -> Arithmetic:
        return Arithmetic(other, "*", self)

    def __truediv__(self, other: Any) -> Arithmetic:
        return Arithmetic(self, "/", other)

    def __rtruediv__(self, other: Any) -> Arithmetic:
        return Arithmetic(other, "/", self)


# Values that may stand beside a column in arithmetic: numbers, and intervals for times.
_ARITHMETIC_VALUES = (int, float, Decimal, dt.timedelta)
# Column types PostgreSQL computes with (+ - * /); bool is not among them.
_ARITHMETIC_COLUMNS = (int, float, Decimal, dt.datetime, dt.date, dt.time, dt.timedelta)


def _python_type(operand: Any) -> type | None:
    """The Python type a column holds, or None for anything else (arithmetic, a value)."""
    column_type = getattr(operand, "column_type", None)  # columns only; read at compile time
    return None if column_type is None else column_type.python_type


class Arithmetic(Operand):
    """``User.age * 2``, ``Article.views + 1``: a value computed by PostgreSQL."""

    __slots__ = ("left", "op", "right")

    def __init__(self, left: Any, op: str, right: Any) -> None:
        for side in (left, right):
            if not isinstance(side, Operand) and (
                not isinstance(side, _ARITHMETIC_VALUES) or isinstance(side, bool)
            ):
                raise TypeError(
                    f"column arithmetic ({op}) takes columns, numbers or timedelta values, "
                    f"got {type(side).__name__}"
                )
        self.left = left
        self.op = op
        self.right = right

    def _side(self, side: Any, params: list[Any]) -> str:
        if isinstance(side, Operand):
            held = _python_type(side)
            if held is not None and held not in _ARITHMETIC_COLUMNS:
                raise UnsupportedOperationError(
                    f"column arithmetic ({self.op}) needs numbers, dates or times; "
                    f"{side.label} holds {held.__name__}"
                )
            return side.sql(params)
        params.append(self._number(side))
        return "%s"

    def _number(self, value: Any) -> Any:
        """A number beside the columns, as sent; ValidationError naming the first column."""
        columns: list[Any] = _columns(self)  # Column operands (owner, name)
        beside_float = any(_python_type(c) is float for c in columns)
        try:
            return arithmetic_value(value, beside_float)
        except InvalidValue as exc:
            column = columns[0]
            # The column's own names: an expression's text would show its literals.
            raise ValidationError(column.owner.__name__, column.name, exc.problem) from None

    def sql(self, params: list[Any]) -> str:
        return f"({self._side(self.left, params)} {self.op} {self._side(self.right, params)})"

    def bind_operand(self, value: Any) -> Any:
        if isinstance(value, int | Decimal) and not isinstance(value, bool):
            return self._number(value)
        if value is None or isinstance(value, (*_ARITHMETIC_VALUES, dt.date, dt.time)):
            return value
        anchor = self.left if isinstance(self.left, Operand) else self.right
        return anchor.bind_operand(value)

    def models(self) -> Iterator[type]:
        for side in (self.left, self.right):
            if isinstance(side, Operand):
                yield from side.models()

    @property
    def label(self) -> str:
        return f"({_label(self.left)} {self.op} {_label(self.right)})"

    @property
    def shape(self) -> Hashable:
        left = self.left.shape if isinstance(self.left, Operand) else None
        right = self.right.shape if isinstance(self.right, Operand) else None
        return (Arithmetic, left, self.op, right)

    @property
    def text(self) -> str:
        def short(side: Any) -> str:
            return side.text if isinstance(side, Operand) else "?"

        return f"({short(self.left)} {self.op} {short(self.right)})"

    def __repr__(self) -> str:
        return f"<expression {self.label}>"


def _label(side: Any) -> str:
    return side.label if isinstance(side, Operand) else "?"


def _columns(operand: Any) -> list[Operand]:
    """The columns an operand reads, left to right (an arithmetic's literals left out)."""
    if isinstance(operand, Arithmetic):
        return [*_columns(operand.left), *_columns(operand.right)]
    return [operand] if isinstance(operand, Operand) else []


def _model_and_columns(operand: Operand) -> tuple[str, str]:
    """Model and column(s) a `ValidationError` about ``operand`` names: ``("User",
    "age")`` for ``User.age`` and for ``(User.age + 1)``; a column of another model
    is named with its model (``"age, Team.size"``)."""
    labels = [column.label.partition(".") for column in _columns(operand)]
    if not labels:
        return "expression", operand.text
    model = labels[0][0]
    names = (name if owner == model else f"{owner}.{name}" for owner, _, name in labels)
    return model, ", ".join(names)


def _operand(left: Operand, value: Any, params: list[Any]) -> str:
    if isinstance(value, Operand):
        return value.sql(params)
    params.append(left.bind_operand(value))
    return "%s"


def _operand_models(*sides: Any) -> Iterator[type]:
    for side in sides:
        if isinstance(side, Operand):
            yield from side.models()


class Comparison(Expression):
    __slots__ = ("column", "op", "value")

    def __init__(self, column: Operand, op: str, value: Any) -> None:
        if isinstance(value, Expression):
            raise TypeError(f"cannot compare {column.label} with a filter expression")
        self.column = column
        self.op = op
        self.value = value

    def compile(self, params: list[Any]) -> str:
        return f"{self.column.sql(params)} {self.op} {_operand(self.column, self.value, params)}"

    def shape(self) -> Hashable:
        # `Expression.shape`, written out: the most common filter, compared per query.
        value = self.value
        right = value.shape if isinstance(value, Operand) else None
        return (Comparison, self.column.shape, self.op, right)

    def models(self) -> Iterator[type]:
        return _operand_models(self.column, self.value)


def _is_query(value: object) -> bool:
    # Duck-typed: importing Query here would make a cycle (query imports expressions).
    return hasattr(value, "to_list") and hasattr(value, "loader_options")


class InList(Expression):
    __slots__ = ("column", "negate", "values")

    def __init__(self, column: Operand, values: Iterable[Any], negate: bool) -> None:
        method = "not_in" if negate else "in_"
        if _is_query(values):
            raise UnsupportedOperationError(
                f"{column.label}.{method}() takes a list of values or a one-column selection, "
                f"not a query of objects: write {column.label}.{method}(query.select(Model.column))"
            )
        if isinstance(values, str | bytes):
            raise TypeError(
                f"{column.label}.{method}() takes a list of values, not a single string"
            )
        self.column = column
        self.values = list(values)
        self.negate = negate

    def compile(self, params: list[Any]) -> str:
        bind = self.column.bind_operand
        left = self.column.sql(params)
        params.append([bind(v) for v in self.values])
        # ANY/ALL with one array parameter keeps the statement text stable
        # whatever the number of values (good for prepared statements).
        if self.negate:
            return f"{left} <> ALL(%s)"
        return f"{left} = ANY(%s)"

    def models(self) -> Iterator[type]:
        return self.column.models()


class InSubquery(Expression):
    """``column IN (SELECT ...)``: the values of a one-column selection, read by PostgreSQL."""

    __slots__ = ("column", "negate", "query")

    def __init__(self, column: Operand, query: Subquery, negate: bool) -> None:
        self.column = column
        self.query = query
        self.negate = negate
        # Checked now, not when the outer query is sent: one column, no loader options.
        query.subquery_sql([], f"{column.label}.{'not_in' if negate else 'in_'}()")

    def compile(self, params: list[Any]) -> str:
        left = self.column.sql(params)
        inner = self.query.subquery_sql(params, "in_()")
        return f"{left} {'NOT IN' if self.negate else 'IN'} ({inner})"

    def shape(self) -> Hashable:
        return (InSubquery, self.column.shape, self.negate, self.query.shape)

    def models(self) -> Iterator[type]:
        return self.column.models()


class Like(Expression):
    __slots__ = ("column", "insensitive", "pattern")

    def __init__(self, column: Operand, pattern: str, insensitive: bool) -> None:
        if not isinstance(pattern, str):
            raise ColumnTypeError(*_model_and_columns(column), "a str pattern", pattern)
        self.column = column
        self.pattern = pattern
        self.insensitive = insensitive

    def compile(self, params: list[Any]) -> str:
        # Checked here, like every other operand: when the query is built for sending.
        held = _python_type(self.column)
        if held is not None and held is not str:
            label = self.column.label
            raise UnsupportedOperationError(
                f"{label}.{'ilike' if self.insensitive else 'like'}() needs a text column; "
                f"{label} holds {held.__name__}: compare it with ==, in_([...]) or between(...)"
            )
        problem = check_text(self.pattern)
        if problem is not None:
            raise ValidationError(*_model_and_columns(self.column), problem)
        left = self.column.sql(params)
        params.append(self.pattern)
        return f"{left} {'ILIKE' if self.insensitive else 'LIKE'} %s"

    def models(self) -> Iterator[type]:
        return self.column.models()


class IsNull(Expression):
    __slots__ = ("column", "negate")

    def __init__(self, column: Operand, negate: bool) -> None:
        self.column = column
        self.negate = negate

    def compile(self, params: list[Any]) -> str:
        return f"{self.column.sql(params)} IS {'NOT ' if self.negate else ''}NULL"

    def models(self) -> Iterator[type]:
        return self.column.models()


class Between(Expression):
    __slots__ = ("column", "high", "low")

    def __init__(self, column: Operand, low: Any, high: Any) -> None:
        self.column = column
        self.low = low
        self.high = high

    def compile(self, params: list[Any]) -> str:
        left = self.column.sql(params)
        low = _operand(self.column, self.low, params)
        high = _operand(self.column, self.high, params)
        return f"{left} BETWEEN {low} AND {high}"

    def models(self) -> Iterator[type]:
        return _operand_models(self.column, self.low, self.high)


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

    def models(self) -> Iterator[type]:
        for op in self.operands:
            yield from op.models()


class Not(Expression):
    __slots__ = ("operand",)

    def __init__(self, operand: Expression) -> None:
        self.operand = operand

    def compile(self, params: list[Any]) -> str:
        return f"NOT ({self.operand.compile(params)})"

    def models(self) -> Iterator[type]:
        return self.operand.models()


class Exists(Expression):
    """``EXISTS (SELECT 1 FROM <from_sql> WHERE <correlation> [AND <criteria>])``.

    Built by ``Rel.any()`` / ``Rel.has()``: ``from_sql`` and ``correlation``
    are fixed SQL of the relationship (identifiers only); ``criteria`` reads
    the target model's columns. ``owner`` is the model the subquery correlates
    with (the outer query must select from it).
    """

    __slots__ = ("correlation", "criteria", "from_sql", "owner")

    def __init__(
        self, owner: type, from_sql: str, correlation: str, criteria: Expression | None
    ) -> None:
        self.owner = owner
        self.from_sql = from_sql
        self.correlation = correlation
        self.criteria = criteria

    def compile(self, params: list[Any]) -> str:
        where = self.correlation
        if self.criteria is not None:
            where = f"{where} AND {self.criteria.compile(params)}"
        return f"EXISTS (SELECT 1 FROM {self.from_sql} WHERE {where})"

    def models(self) -> Iterator[type]:
        yield self.owner


class OrderBy:
    """One ORDER BY item: ``User.age.desc()``."""

    __slots__ = ("column", "descending")

    def __init__(self, column: Operand, descending: bool) -> None:
        self.column = column
        self.descending = descending

    def sql(self, params: list[Any]) -> str:
        return f"{self.column.sql(params)} {'DESC' if self.descending else 'ASC'}"

    @property
    def text(self) -> str:
        """Human-readable form for telemetry: ``created_at DESC``."""
        return f"{self.column.text} {'DESC' if self.descending else 'ASC'}"


def compile_where(filters: tuple[Expression, ...], params: list[Any]) -> str:
    """`` WHERE a AND b`` for a tuple of filters, or an empty string."""
    if not filters:
        return ""
    return " WHERE " + " AND ".join(f.compile(params) for f in filters)


class Named(Operand, Generic[T]):
    """A selected value under a name of the user's: ``func.count().named("articles")``.

    The name is the field of the rows a column selection returns; in SQL it is
    the column alias (``AS "articles"``); in ``order_by()``/``having()`` the
    value itself is repeated.
    """

    __slots__ = ("name", "operand")

    def __init__(self, operand: Operand, name: str) -> None:
        if not isinstance(name, str) or not name.isidentifier() or name.startswith("_"):
            raise ValueError(
                "named() takes a Python identifier not starting with '_' (it becomes a "
                "field of the returned rows)"
            )
        self.operand = operand
        self.name = name

    if TYPE_CHECKING:

        @property
        def selected_type(self) -> T: ...

    @property
    def aggregate(self) -> bool:
        return bool(getattr(self.operand, "aggregate", False))

    @property
    def shape(self) -> Hashable:
        return (Named, self.operand.shape, self.name)

    def sql(self, params: list[Any]) -> str:
        return self.operand.sql(params)

    def bind_operand(self, value: Any) -> Any:
        return self.operand.bind_operand(value)

    def models(self) -> Iterator[type]:
        return self.operand.models()

    @property
    def label(self) -> str:
        return self.operand.label

    @property
    def text(self) -> str:
        return self.operand.text

    def __repr__(self) -> str:
        return f"<expression {self.label} AS {self.name}>"

"""Aggregate functions for column selections: ``func.count()``, ``func.sum(Post.views)``.

A `Function` is an operand like a column: it can be selected, compared in
``having()`` and ordered by. `Selectable` is what a column selection's typing
reads: the Python type of the values a selected item returns.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Hashable, Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar, overload

from data_bridge_core.errors import UnsupportedOperationError, described
from data_bridge_core.schema.expressions import Named, Operand

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)


class Selectable(Protocol[T_co]):
    """For type checkers: an item of ``select(...)`` whose rows hold a ``T_co``.

    Typed-style columns (``Mapped[int]`` -> ``Selectable[int]``), `Function`
    and `Named` have it; the plain style's columns read as plain values, and a
    selection of them is typed ``tuple[Any, ...]``.
    """

    @property
    def selected_type(self) -> T_co: ...


# Columns whose sum is computed in numeric and given back as the column's type.
_SUM_AS = {int: "bigint", float: "double precision", Decimal: "numeric", dt.timedelta: "interval"}


def _column_type(operand: Operand) -> type | None:
    column_type = getattr(operand, "column_type", None)  # a column's; read when compiled
    return None if column_type is None else column_type.python_type


class Function(Operand, Generic[T]):
    """``count(*)``, ``count(DISTINCT x)``, ``sum(x)``, ``min(x)``, ``max(x)``, ``avg(x)``."""

    __slots__ = ("argument", "distinct", "name")

    aggregate = True

    def __init__(self, name: str, argument: Operand | None, distinct: bool = False) -> None:
        if argument is not None and not isinstance(argument, Operand):
            raise TypeError(
                f"func.{name}() takes a column or column arithmetic, got {described(argument)}"
            )
        if getattr(argument, "aggregate", False):
            raise UnsupportedOperationError(f"func.{name}() cannot take another aggregate")
        self.name = name
        self.argument = argument
        self.distinct = distinct

    if TYPE_CHECKING:

        @property
        def selected_type(self) -> T: ...

        def named(self, name: str) -> Named[T]: ...

    def sql(self, params: list[Any]) -> str:
        if self.argument is None:
            return "count(*)"
        inner = self.argument.sql(params)
        distinct = "DISTINCT " if self.distinct else ""
        if self.name == "count":
            return f"count({distinct}{inner})"
        held = _column_type(self.argument)
        if self.name in ("sum", "avg") and held is not None and held not in _SUM_AS:
            raise UnsupportedOperationError(
                f"func.{self.name}() needs a number or interval column; "
                f"{self.argument.label} holds {held.__name__}"
            )
        call = f"{self.name}({distinct}{inner})"
        if self.name == "sum" and held is not None:
            # sum(bigint) is numeric in PostgreSQL: given back as the column's type. An
            # int field over numeric sums in numeric (no bigint bound), read as an int.
            loaded = getattr(self.argument, "column_type", None)
            target = "numeric" if loaded is not None and loaded.load else _SUM_AS[held]
            return f"CAST({call} AS {target})"
        if self.name == "avg":
            return f"CAST({call} AS numeric)"
        return call

    @property
    def shape(self) -> Hashable:
        argument = None if self.argument is None else self.argument.shape
        return (Function, self.name, argument, self.distinct)

    def bind_operand(self, value: Any) -> Any:
        if self.name == "count" or self.argument is None:
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"func.count() is compared with an int, got {described(value)}")
            return value
        if self.name == "avg":
            return value
        return self.argument.bind_operand(value)

    def models(self) -> Iterator[type]:
        if self.argument is not None:
            yield from self.argument.models()

    @property
    def label(self) -> str:
        inner = "*" if self.argument is None else self.argument.label
        return f"func.{self.name}({inner})"

    @property
    def text(self) -> str:
        inner = "*" if self.argument is None else self.argument.text
        return f"{self.name}({inner})"

    def __repr__(self) -> str:
        return f"<expression {self.label}>"


class _Functions:
    """The aggregate functions: ``func.count()``, ``func.sum(Post.views)``..."""

    __slots__ = ()

    def count(self, column: Any = None, *, distinct: bool = False) -> Function[int]:
        """``count(*)``, or ``count(column)`` (rows where it is not NULL); never NULL."""
        if column is None and distinct:
            raise UnsupportedOperationError("func.count(distinct=True) needs a column")
        return Function("count", column, distinct)

    @overload
    def sum(self, column: Selectable[T]) -> Function[T | None]: ...
    @overload
    def sum(self, column: Any) -> Function[Any]: ...
    def sum(self, column: Any) -> Function[Any]:
        """``sum(column)`` as the column's type; NULL (None) over no rows."""
        return Function("sum", column)

    @overload
    def min(self, column: Selectable[T]) -> Function[T | None]: ...
    @overload
    def min(self, column: Any) -> Function[Any]: ...
    def min(self, column: Any) -> Function[Any]:
        return Function("min", column)

    @overload
    def max(self, column: Selectable[T]) -> Function[T | None]: ...
    @overload
    def max(self, column: Any) -> Function[Any]: ...
    def max(self, column: Any) -> Function[Any]:
        return Function("max", column)

    def avg(self, column: Any) -> Function[Decimal | None]:
        """``avg(column)`` as an exact ``Decimal``; None over no rows."""
        return Function("avg", column)


func = _Functions()

"""Computed values of a model: read-only SQL expressions loaded with its rows.

``favorites: ClassVar[Computed[int]] = computed(lambda: scalar(Favorite, func.count(),
Favorite.article_id == Article.id))`` declares a value PostgreSQL computes for
each row (here a correlated subquery). A query returning the model's objects
selects it beside the columns and sets it on each object; on the class it is
an operand (``order_by(Article.favorites.desc())``, ``select(...)``, filters).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable, Iterator
from typing import TYPE_CHECKING, Any, Generic, TypeVar, overload

from data_bridge_core.errors import InvalidStateError, UnsupportedOperationError, described
from data_bridge_core.schema.expressions import Expression, Operand, compile_where
from data_bridge_core.schema.table import Table, table_info

if TYPE_CHECKING:
    from data_bridge_core.schema.functions import Selectable

T = TypeVar("T")


class ScalarSubquery(Operand):
    """``(SELECT <value> FROM <model's table> WHERE <filters>)``: one value per outer row."""

    __slots__ = ("filters", "model", "value")

    def __init__(self, model: type[Table], value: Operand, filters: tuple[Expression, ...]) -> None:
        self.model = model
        self.value = value
        self.filters = filters

    def sql(self, params: list[Any]) -> str:
        info = table_info(self.model)
        value = self.value.sql(params)
        return f"(SELECT {value} FROM {info.quoted_name}{compile_where(self.filters, params)})"

    def bind_operand(self, value: Any) -> Any:
        return self.value.bind_operand(value)

    @property
    def shape(self) -> Hashable:
        filters = tuple([f.shape() for f in self.filters])
        return (ScalarSubquery, self.model, self.value.shape, filters)

    def models(self) -> Iterator[type]:
        """The outer models it correlates with."""
        model = self.model
        parts: tuple[Operand | Expression, ...] = (self.value, *self.filters)
        for part in parts:
            for owner in part.models():
                if owner is not model and not issubclass(model, owner):
                    yield owner

    @property
    def label(self) -> str:
        return f"scalar({self.model.__name__}, {self.value.label})"

    @property
    def text(self) -> str:
        return f"scalar({self.value.text})"


@overload
def scalar(
    model: type[Table], value: Selectable[T], *filters: Expression | bool
) -> Computable[T]: ...
@overload
def scalar(model: type[Table], value: Any, *filters: Expression | bool) -> Computable[Any]: ...
def scalar(model: type[Table], value: Any, *filters: Expression | bool) -> Computable[Any]:
    """A correlated scalar subquery: ``value`` (``func.count()``, a column) over the rows
    of ``model`` matching ``filters``, which may read the outer row's columns."""
    if not (isinstance(model, type) and issubclass(model, Table)):
        raise TypeError(f"scalar() takes a model class first, got {described(model)}")
    if not isinstance(value, Operand):
        raise TypeError(f"scalar() takes a column or func.*(...) value, got {described(value)}")
    for condition in filters:
        if not isinstance(condition, Expression):
            raise TypeError(f"scalar() takes filter expressions, got {described(condition)}")
    return Computable(ScalarSubquery(model, value, tuple(filters)))  # type: ignore[arg-type]


class Computable(Generic[T]):
    """What ``computed()`` takes: an operand with the Python type of its value."""

    __slots__ = ("operand",)

    def __init__(self, operand: Operand) -> None:
        self.operand = operand


class Computed(Operand, Generic[T]):
    """The class attribute ``computed()`` declares (see the module docstring)."""

    __slots__ = ("_factory", "_operand", "name", "owner")

    def __init__(self, factory: Callable[[], Computable[T]]) -> None:
        if not callable(factory):
            raise TypeError(
                "computed() takes a function returning the value, such as "
                "lambda: scalar(Favorite, func.count(), Favorite.article_id == Article.id)"
            )
        self._factory = factory
        self._operand: Operand | None = None
        self.name = ""
        self.owner: type | None = None

    def __set_name__(self, owner: type, name: str) -> None:
        self.owner = owner
        self.name = name
        _declared.pop(owner, None)

    @property
    def operand(self) -> Operand:
        """The expression, built on first use (once the models it names exist)."""
        operand = self._operand
        if operand is None:
            made = self._factory()
            if not isinstance(made, Computable):
                raise UnsupportedOperationError(
                    f"{self.label}: computed() needs a function returning scalar(...), "
                    f"got {described(made)}"
                )
            operand = self._operand = made.operand
        return operand

    if TYPE_CHECKING:

        @property
        def selected_type(self) -> T: ...

    @overload
    def __get__(self, instance: None, owner: Any) -> Computed[T]: ...
    @overload
    def __get__(self, instance: object, owner: Any) -> T: ...
    def __get__(self, instance: object | None, owner: Any) -> Any:
        if instance is None:
            return self
        # Set in the instance's __dict__ when loaded, which attribute lookup reads
        # first: reaching here means this object's query did not load it.
        raise InvalidStateError(
            f"{self.label} is computed by the queries that load {owner.__name__} objects "
            "(find(...).to_list(), first(), get()); this object was loaded otherwise "
            "(refresh(), stream(), from_sql(), a relationship) or is new"
        )

    def sql(self, params: list[Any]) -> str:
        return self.operand.sql(params)

    def bind_operand(self, value: Any) -> Any:
        return self.operand.bind_operand(value)

    @property
    def shape(self) -> Hashable:
        return (Computed, self.owner, self.name)

    def models(self) -> Iterator[type]:
        if self.owner is not None:
            yield self.owner

    @property
    def label(self) -> str:
        owner = self.owner.__name__ if self.owner is not None else "?"
        return f"{owner}.{self.name}"

    @property
    def text(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"<computed {self.label}>"


def computed(factory: Callable[[], Computable[T]]) -> Computed[T]:
    """Declare a computed value: ``x: ClassVar[Computed[int]] = computed(lambda: scalar(...))``."""
    return Computed(factory)


_declared: weakref.WeakKeyDictionary[type, tuple[Computed[Any], ...]] = weakref.WeakKeyDictionary()


def computed_values(model: type) -> tuple[Computed[Any], ...]:
    """The computed values of ``model`` (inherited ones included), in declaration order."""
    found = _declared.get(model)
    if found is None:
        seen: dict[str, Computed[Any]] = {}
        for cls in reversed(model.__mro__):
            for name, value in vars(cls).items():
                if isinstance(value, Computed):
                    seen[name] = value
        found = _declared[model] = tuple(seen.values())
    return found

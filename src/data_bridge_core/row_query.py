"""`RowQuery`: a column selection, ``session.find(User).select(User.id, User.name)``.

It returns named tuples built by psycopg from the statement's column
aliases, without hydrating objects or touching the identity map. It keeps the
query it was built from (its model, joins, filters, order and page) and adds
what only rows have: ``group_by()``, ``having()`` and ``distinct()``.
"""

from __future__ import annotations

import keyword
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, overload

from psycopg.rows import RowFactory, namedtuple_row
from typing_extensions import TypeVar as DefaultTypeVar

from data_bridge_core.computed import Computed, ScalarSubquery
from data_bridge_core.errors import UnsupportedOperationError, described
from data_bridge_core.schema.column import ColumnInfo, quote_ident
from data_bridge_core.schema.expressions import Expression, Named, Operand, compile_where
from data_bridge_core.schema.functions import Function

if TYPE_CHECKING:
    from data_bridge_core.query import Query
    from data_bridge_core.relationships import Relationship
    from data_bridge_core.session import Session

R = TypeVar("R")
J = TypeVar("J")
# The models whose columns filter() takes (see `Query`); a RowQuery written alone
# (``RowQuery[tuple[int, str]]``) takes any.
F = DefaultTypeVar("F", default=Any)


def _field_name(item: Operand) -> str:
    if isinstance(item, Named):
        return item.name
    if isinstance(item, ColumnInfo | Computed):
        return item.name
    name = getattr(item, "name", None)  # a Function: count, sum...
    if isinstance(name, str) and getattr(item, "aggregate", False):
        return name
    raise UnsupportedOperationError(
        f"select() needs a name for {item.label}: write {item.label}.named('...')"
    )


def _read_sql(item: Operand, params: list[Any]) -> str:
    """A selected item's SQL; a column is read as its type reads it (inet as its text)."""
    text = item.sql(params)
    column: Operand | None = item.operand if isinstance(item, Named) else item
    if isinstance(column, Function) and column.name in ("min", "max"):
        column = column.argument  # one of the column's values: read as the column is
    if isinstance(column, ColumnInfo):
        template = column.column_type.read_sql
        if template is not None:
            return str(template.format(text))
    return text


def read_load(item: Operand) -> Callable[[Any], Any] | None:
    """How a selected value is converted to its column's field type once read (an int
    field over numeric; its min, max and sum; a computed value reading one), or None:
    psycopg's value as it is."""
    value: Operand | None = item.operand if isinstance(item, Named) else item
    if isinstance(value, Computed):
        value = value.operand
    if isinstance(value, ScalarSubquery):
        value = value.value
    if isinstance(value, Function) and value.name in ("min", "max", "sum"):
        value = value.argument
    if isinstance(value, ColumnInfo) and value.column_type.load is not None:
        return value.load
    return None


def _loading_rows(loads: list[tuple[int, Callable[[Any], Any]]]) -> RowFactory[Any]:
    """`namedtuple_row` with the values at ``loads``' positions converted."""

    def row_factory(cursor: Any) -> Callable[[Sequence[Any]], Any]:
        make = namedtuple_row(cursor)

        def row(values: Sequence[Any]) -> Any:
            converted = list(values)
            for index, load in loads:
                converted[index] = load(converted[index])
            return make(converted)

        return row

    return row_factory


def _is_aggregate(item: Operand) -> bool:
    return bool(getattr(item, "aggregate", False))


class RowQuery(Generic[R, F]):
    """The rows of selected columns; ``R`` is the row's tuple type (``tuple[int, str]``)."""

    __slots__ = ("_base", "_distinct", "_group", "_having", "_items", "_names")

    def __init__(self, base: Query[Any], items: tuple[Any, ...]) -> None:
        if not items:
            raise ValueError("select() needs at least one column")
        names: list[str] = []
        for item in items:
            if not isinstance(item, Operand):
                raise TypeError(
                    "select() takes columns, func.count(...) etc. or .named(...) values, "
                    f"got {described(item)}"
                )
            base._check_models(item.models(), "select from")
            name = _field_name(item)
            if keyword.iskeyword(name) or name in names:
                reason = "is selected twice" if name in names else "is a Python keyword"
                raise UnsupportedOperationError(
                    f"select(): the row field {name!r} {reason}; name one with .named('...')"
                )
            names.append(name)
        self._base = base
        self._items: tuple[Operand, ...] = items
        self._names = tuple(names)
        self._group: tuple[Operand, ...] = ()
        self._having: tuple[Expression, ...] = ()
        self._distinct = False

    def _with(self, base: Query[Any] | None = None) -> RowQuery[R, F]:
        clone: RowQuery[R, F] = object.__new__(RowQuery)
        clone._base = self._base if base is None else base
        clone._items = self._items
        clone._names = self._names
        clone._group = self._group
        clone._having = self._having
        clone._distinct = self._distinct
        return clone

    # -- builders (those of the query delegate to it) ------------------------------

    def filter(self, *filters: Expression[F] | bool) -> RowQuery[R, F]:
        return self._with(self._base.filter(*filters))

    where = filter

    @overload
    def join(
        self, relationship: Relationship[Any, J], *, outer: bool = False
    ) -> RowQuery[R, F | J]: ...
    @overload
    def join(self, relationship: Any, *, outer: bool = False) -> RowQuery[R, Any]: ...
    def join(self, relationship: Any, *, outer: bool = False) -> RowQuery[R, Any]:
        return self._with(self._base.join(relationship, outer=outer))

    def order_by(self, *columns: Any) -> RowQuery[R, F]:
        return self._with(self._base.order_by(*columns))

    def limit(self, n: int) -> RowQuery[R, F]:
        return self._with(self._base.limit(n))

    def offset(self, n: int) -> RowQuery[R, F]:
        return self._with(self._base.offset(n))

    def distinct(self) -> RowQuery[R, F]:
        """``SELECT DISTINCT``: equal rows once."""
        clone = self._with()
        clone._distinct = True
        return clone

    def group_by(self, *columns: Any) -> RowQuery[R, F]:
        """``GROUP BY`` these columns: one row per group, aggregates computed per group."""
        for column in columns:
            if not isinstance(column, Operand) or _is_aggregate(column):
                raise TypeError(f"group_by() takes columns, got {described(column)}")
            self._base._check_models(column.models(), "group")
        clone = self._with()
        clone._group = self._group + columns
        return clone

    def having(self, *conditions: Expression | bool) -> RowQuery[R, F]:
        """Conditions on groups (``func.count() > 1``), AND-ed like ``filter()``'s."""
        for condition in conditions:
            if not isinstance(condition, Expression):
                raise TypeError(
                    f"having() takes expressions such as func.count() > 1, "
                    f"got {described(condition)}"
                )
            self._base._check_models(condition.models(), "filter groups of")
        clone = self._with()
        clone._having = self._having + cast(tuple[Expression, ...], conditions)
        return clone

    # -- read-only state (for instrumentation; the query's) ---------------------------

    @property
    def model(self) -> type[Any]:
        return self._base.model

    @property
    def table_name(self) -> str:
        return self._base.table_name

    @property
    def filters_count(self) -> int:
        return self._base.filters_count

    @property
    def limit_value(self) -> int | None:
        return self._base.limit_value

    @property
    def offset_value(self) -> int | None:
        return self._base.offset_value

    @property
    def order_by_text(self) -> str | None:
        return self._base.order_by_text

    @property
    def loader_options(self) -> tuple[Any, ...]:
        return ()

    @property
    def field_names(self) -> tuple[str, ...]:
        """The fields of each returned row, in order."""
        return self._names

    @property
    def session(self) -> Session:
        return self._base.session

    @property
    def facts(self) -> tuple[str, Session, int, int | None, int | None, str | None]:
        """The query's `Query.facts` (table, session, filters, limit, offset, order by)."""
        return self._base.facts

    @property
    def shape(self) -> tuple[Any, ...]:
        """What the SELECT text depends on, without values (see `Query.shape`)."""
        return (
            RowQuery,
            self._base.shape,
            tuple([i.shape for i in self._items]),
            self._names,
            tuple([g.shape for g in self._group]),
            tuple([h.shape() for h in self._having]),
            self._distinct,
        )

    @property
    def equality_filters(self) -> tuple[tuple[str, Any], ...]:
        """The query's (see `Query.equality_filters`)."""
        return self._base.equality_filters

    # -- SQL -------------------------------------------------------------------------

    def _check_grouping(self) -> None:
        grouped = self._group
        if not grouped and not any(_is_aggregate(i) for i in self._items):
            return
        keys = {id(c) for c in grouped}
        grouped_models = {c.owner for c in grouped if isinstance(c, ColumnInfo) and c.primary_key}
        for item in self._items:
            column = item.operand if isinstance(item, Named) else item
            if _is_aggregate(column) or id(column) in keys:
                continue
            # PostgreSQL accepts any column of a table grouped by its primary key
            # (and a computed value of it, which reads that row).
            if isinstance(column, ColumnInfo | Computed) and column.owner in grouped_models:
                continue
            raise UnsupportedOperationError(
                f"select(): {column.label} is neither grouped nor aggregated: add it to "
                f"group_by(...) or select func.max({column.label})"
            )

    def statement(self, params: list[Any]) -> str:
        """The SELECT text; values are appended to ``params``."""
        self._check_grouping()
        base = self._base
        columns = ", ".join(
            f"{_read_sql(item, params)} AS {quote_ident(name)}"
            for item, name in zip(self._items, self._names, strict=True)
        )
        head = "SELECT DISTINCT " if self._distinct else "SELECT "
        text = f"{head}{columns} FROM {base._from()}{compile_where(base._filters, params)}"
        if self._group:
            text += " GROUP BY " + ", ".join(c.sql(params) for c in self._group)
        if self._having:
            text += " HAVING " + " AND ".join(h.compile(params) for h in self._having)
        return text + base._tail(params)

    def subquery_sql(self, params: list[Any], what: str) -> str:
        """This selection inside another statement (``Model.col.in_(...)``): one column."""
        if len(self._items) != 1:
            raise UnsupportedOperationError(
                f"{what} takes a selection of one column, got {len(self._items)} "
                f"({', '.join(self._names)})"
            )
        return self.statement(params)

    # -- terminal seam ------------------------------------------------------------------

    async def to_list(self) -> list[R]:
        """Run the SELECT; one named tuple per row (``row.name``, or unpack it)."""
        session = self.session
        params: list[Any] = []
        statement = self.statement(params)
        # One operation of the session, as Query.to_list(): autoflush and the SELECT.
        async with session.operation_lock:
            await session.autoflush()
            loads = [(i, load) for i, item in enumerate(self._items) if (load := read_load(item))]
            result = await session.run_statement(
                statement,
                params,
                row_factory=_loading_rows(loads) if loads else namedtuple_row,
                read=True,
            )
        return cast(list[R], result.rows)

    async def first(self) -> R | None:
        """The first row (``to_list()`` of ``limit(1)``), or None."""
        rows = await self.limit(1).to_list()
        return rows[0] if rows else None

    def __repr__(self) -> str:
        return f"<RowQuery {self._base.model.__name__} ({', '.join(self._names)})>"

"""`Query`: a chainable, immutable description of a SELECT over one model.

Builder methods (`filter`, `order_by`, `limit`, `offset`, `options`) return
a new query. Terminal coroutines (`to_list`, `count`, `exists`, `aggregate`,
`update`, `delete`) are the seams an instrumentation wraps; `first` and
`Session.get` go through `to_list`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast, overload

from psycopg.rows import dict_row
from psycopg.types.numeric import Int8
from typing_extensions import TypeVar as DefaultTypeVar

from data_bridge_core.aggregate import compile_aggregate_loading
from data_bridge_core.computed import computed_values
from data_bridge_core.context import current_session
from data_bridge_core.errors import UnsupportedOperationError, described
from data_bridge_core.loading import JOINED, EagerLoad, LoaderOption, run_eager_loads
from data_bridge_core.relationships import Relationship
from data_bridge_core.row_query import RowQuery, read_load
from data_bridge_core.schema.column import ColumnInfo, quote_ident
from data_bridge_core.schema.expressions import (
    BooleanClause,
    Comparison,
    Expression,
    Operand,
    OrderBy,
    compile_where,
)
from data_bridge_core.schema.functions import Selectable
from data_bridge_core.schema.table import Table, TableInfo, install_query_factory, table_info
from data_bridge_core.schema.types import COUNT_MAX, count_problem, exact_int

if TYPE_CHECKING:
    from data_bridge_core.session import Session

M = TypeVar("M", bound=Table)
J = TypeVar("J")
# The models whose columns filter() takes: the queried model, widened by each
# join() (``Query[Article, Article | User]``). Written ``Query[Article]``.
F = DefaultTypeVar("F", default=M)
T1 = TypeVar("T1")
T2 = TypeVar("T2")
T3 = TypeVar("T3")
T4 = TypeVar("T4")
T5 = TypeVar("T5")
T6 = TypeVar("T6")


def _count(value: object, what: str, maximum: int = COUNT_MAX) -> int:
    problem = count_problem(value, maximum)
    if problem is not None:
        raise ValueError(f"{what} {problem}")
    # A plain int (an int subclass's own methods never run): it is sent as a bigint.
    return exact_int(value)  # type: ignore[arg-type]


_ONE = Int8(1)

# FETCH FORWARD takes an integer (32-bit) count.
_FETCH_MAX = 2**31 - 1


class Query(Generic[M, F]):
    __slots__ = (
        "_filters",
        "_info",
        "_joins",
        "_limit",
        "_model",
        "_offset",
        "_options",
        "_order",
        "_outer",
        "_session",
        "_statement",
    )

    def __init__(self, model: type[M], session: Session | None) -> None:
        if not (isinstance(model, type) and issubclass(model, Table)):
            raise TypeError(f"find() takes a model class, got {described(model)}")
        self._model = model
        self._info = table_info(model)
        self._session = session
        self._filters: tuple[Expression, ...] = ()
        self._order: tuple[OrderBy, ...] = ()
        self._limit: int | None = None
        self._offset: int | None = None
        self._options: tuple[LoaderOption, ...] = ()
        self._joins: tuple[Relationship, ...] = ()
        self._outer: tuple[Relationship, ...] = ()  # the joins that are LEFT JOINs
        # The SELECT of `Session.get`'s query, made once per model (None: compiled per run).
        self._statement: str | None = None

    def _copy(self) -> Query[M, F]:
        # Every slot written out: a loop over __slots__ with getattr/setattr cost
        # about 1 µs per builder call (bench/README.md). A test checks that each
        # slot is copied, so a new slot cannot be forgotten here.
        clone: Query[M, F] = _new_query_object(Query)
        clone._filters = self._filters
        clone._info = self._info
        clone._joins = self._joins
        clone._limit = self._limit
        clone._model = self._model
        clone._offset = self._offset
        clone._options = self._options
        clone._order = self._order
        clone._outer = self._outer
        clone._session = self._session
        # A builder changes what the text depends on: the copy compiles its own.
        clone._statement = None
        return clone

    def _by_key(self, pk: Any) -> Query[M, F]:
        """This query (just built, not yet shared) as `Session.get`'s on a single-column
        key: ``filter(pk == value).limit(1)`` without the builders' checks and copies
        (the condition is the model's own key comparison). Its statement is the same
        for every key of the model: made once, kept, and sent without compiling."""
        info = self._info
        self._filters = (Comparison(info.primary_key, "=", pk),)
        self._limit = 1
        statement = _KEY_SELECTS.get(self._model)
        if statement is None:
            statement = _key_select(self._model, info)
        self._statement = statement or None
        return self

    # -- builders --------------------------------------------------------------

    def filter(self, *filters: Expression[F] | bool) -> Query[M, F]:
        """AND the given expressions to the query's WHERE clause.

        (``bool`` is in the signature only because type checkers read
        ``User.age > 18`` as a bool; a real bool is rejected.)
        """
        model = self._model
        for f in filters:
            # The common filter, ``Model.column <op> value``, is the model's own without
            # asking models() (three generators deep).
            if (
                type(f) is Comparison
                and type(column := f.column) is ColumnInfo
                and column.owner is model
                and not isinstance(f.value, Operand)
            ):
                continue
            if not isinstance(f, Expression):
                raise TypeError(
                    f"filter() takes expressions such as {self._model.__name__}.id == 1, "
                    f"got {described(f)}"
                )
            self._check_models(f.models(), "filter")
        clone = self._copy()
        clone._filters = self._filters + cast(tuple[Expression, ...], filters)
        return clone

    where = filter

    def order_by(self, *columns: OrderBy | Operand | Any) -> Query[M, F]:
        items: list[OrderBy] = []
        for c in columns:
            if isinstance(c, Operand):
                c = c.asc()
            if not isinstance(c, OrderBy):
                raise TypeError(
                    f"order_by() takes columns or column.asc()/.desc(), got {described(c)}"
                )
            column = c.column
            if type(column) is not ColumnInfo or column.owner is not self._model:
                self._check_models(column.models(), "order")
            items.append(c)
        clone = self._copy()
        clone._order = self._order + tuple(items)
        return clone

    @overload
    def join(
        self, relationship: Relationship[Any, J], *, outer: bool = False
    ) -> Query[M, F | J]: ...
    @overload
    def join(self, relationship: Any, *, outer: bool = False) -> Query[M, Any]: ...
    def join(self, relationship: Any, *, outer: bool = False) -> Query[M, Any]:
        """Join the target of a relationship, to filter and order by its columns.

        ``session.find(Article).join(Article.author).filter(User.active == True)``.
        An inner join drops rows without a target; ``outer=True`` (a LEFT JOIN)
        keeps them, the target's columns reading NULL. A list relationship
        (one-to-many, many-to-many) may be joined too: the query still returns
        each object once (see `_objects_from`), while ``select(...)`` rows are
        one per joined pair.
        """
        if not isinstance(relationship, Relationship):
            raise TypeError(
                f"join() takes a relationship such as {self._model.__name__}.author, "
                f"got {described(relationship)}"
            )
        owner = relationship.owner
        if (
            owner is not self._model
            and not issubclass(self._model, owner)
            and not any(j.target is owner for j in self._joins)
        ):
            raise UnsupportedOperationError(
                f"{relationship!r} is not a relationship of {self._model.__name__}"
            )
        target = relationship.target
        association = relationship.association
        joins = self._joins
        if (
            target is self._model
            or any(j.target is target for j in joins)
            or (association is not None and any(j.association is association for j in joins))
        ):
            if any(j is relationship for j in joins) and (relationship in self._outer) == outer:
                return self
            raise UnsupportedOperationError(
                f"join({relationship!r}) would join {table_info(target).name!r} a second time "
                "(aliases are not supported); filter with .has(...)/.any(...) instead"
            )
        clone = self._copy()
        clone._joins = (*self._joins, relationship)
        if outer:
            clone._outer = (*self._outer, relationship)
        return clone

    @overload
    def select(self, c1: Selectable[T1], /) -> RowQuery[tuple[T1], F]: ...
    @overload
    def select(self, c1: Selectable[T1], c2: Selectable[T2], /) -> RowQuery[tuple[T1, T2], F]: ...
    @overload
    def select(
        self, c1: Selectable[T1], c2: Selectable[T2], c3: Selectable[T3], /
    ) -> RowQuery[tuple[T1, T2, T3], F]: ...
    @overload
    def select(
        self, c1: Selectable[T1], c2: Selectable[T2], c3: Selectable[T3], c4: Selectable[T4], /
    ) -> RowQuery[tuple[T1, T2, T3, T4], F]: ...
    @overload
    def select(
        self,
        c1: Selectable[T1],
        c2: Selectable[T2],
        c3: Selectable[T3],
        c4: Selectable[T4],
        c5: Selectable[T5],
        /,
    ) -> RowQuery[tuple[T1, T2, T3, T4, T5], F]: ...
    @overload
    def select(
        self,
        c1: Selectable[T1],
        c2: Selectable[T2],
        c3: Selectable[T3],
        c4: Selectable[T4],
        c5: Selectable[T5],
        c6: Selectable[T6],
        /,
    ) -> RowQuery[tuple[T1, T2, T3, T4, T5, T6], F]: ...
    @overload
    def select(self, *columns: Any) -> RowQuery[tuple[Any, ...], F]: ...

    def select(self, *columns: Any) -> RowQuery[Any]:
        """Rows of these columns (named tuples) instead of objects; see `RowQuery`.

        Typed-style columns give typed rows: ``select(User.id, User.name)`` is a
        ``RowQuery[tuple[int, str]]``.
        """
        if self._options:
            raise UnsupportedOperationError(
                "select() returns rows, not objects: remove options(...) (loader options "
                "load relationships of objects)"
            )
        return RowQuery(self, columns)

    def limit(self, n: int) -> Query[M, F]:
        clone = self._copy()
        clone._limit = _count(n, "limit()")
        return clone

    def offset(self, n: int) -> Query[M, F]:
        clone = self._copy()
        clone._offset = _count(n, "offset()")
        return clone

    def options(self, *options: LoaderOption) -> Query[M, F]:
        for opt in options:
            if not isinstance(opt, LoaderOption):
                raise TypeError(f"options() takes selectinload(...) etc., got {described(opt)}")
            owner = opt.relationship.owner
            if owner is not self._model and not issubclass(self._model, owner):
                raise UnsupportedOperationError(
                    f"{opt.relationship!r} is not a relationship of {self._model.__name__}"
                )
        clone = self._copy()
        clone._options = self._options + options
        return clone

    # -- read-only state (for instrumentation) ---------------------------------------

    @property
    def model(self) -> type[M]:
        return self._model

    @property
    def table_name(self) -> str:
        return self._info.name

    @property
    def filters_count(self) -> int:
        return len(self._filters)

    @property
    def limit_value(self) -> int | None:
        return self._limit

    @property
    def offset_value(self) -> int | None:
        return self._offset

    @property
    def order_by_text(self) -> str | None:
        if not self._order:
            return None
        return ", ".join(o.text for o in self._order)

    @property
    def loader_options(self) -> tuple[LoaderOption, ...]:
        return self._options

    @property
    def shape(self) -> tuple[Any, ...]:
        """What the query's SQL text depends on, without a bound value (hashable): two
        queries of one shape send the same statement, each with its own parameters.
        Tools compare statements by it (N+1 detection's repeated queries)."""
        # Empty parts (most queries have no order or options) are not iterated.
        filters, order, options = self._filters, self._order, self._options
        return (
            self._model,
            tuple([f.shape() for f in filters]) if filters else (),
            self._joins,
            self._outer,
            tuple([(o.column.shape, o.descending) for o in order]) if order else (),
            self._limit,
            self._offset,
            tuple([_option_shape(o) for o in options]) if options else (),
        )

    @property
    def equality_filters(self) -> tuple[tuple[str, Any], ...]:
        """The ``Model.column == value`` conditions among the filters AND-ed at the top
        level (those of ``get()`` included), as (column name, value) pairs in order:
        what pins the rows this query selects. Read it; do not keep the values."""
        found: list[tuple[str, Any]] = []
        pending = list(self._filters)
        while pending:
            condition = pending.pop(0)
            if isinstance(condition, BooleanClause) and condition.operator == "AND":
                pending[:0] = condition.operands
            elif (
                isinstance(condition, Comparison)
                and condition.op == "="
                and isinstance(condition.column, ColumnInfo)
                and not isinstance(condition.value, Operand)
                and (
                    condition.column.owner is self._model
                    or issubclass(self._model, condition.column.owner)
                )
            ):
                found.append((condition.column.name, condition.value))
        return tuple(found)

    @property
    def session(self) -> Session:
        if self._session is not None:
            return self._session
        return current_session()

    @property
    def facts(self) -> tuple[str, Session, int, int | None, int | None, str | None]:
        """(`table_name`, `session`, `filters_count`, `limit_value`, `offset_value`,
        `order_by_text`) in one read: what an instrumentation describes every query
        by, one call instead of six."""
        order = self._order
        return (
            self._info.name,
            self._session if self._session is not None else current_session(),
            len(self._filters),
            self._limit,
            self._offset,
            ", ".join(o.text for o in order) if order else None,
        )

    # -- SQL -----------------------------------------------------------------------------

    def _check_models(self, models: Any, what: str) -> None:
        model = self._model
        for owner in models:
            if owner is model or issubclass(model, owner):
                continue
            if any(j.target is owner for j in self._joins):
                continue
            hint = ""
            for rel in table_info(model).relationships.values():
                if rel.target is owner:
                    hint = (
                        f": join({model.__name__}.{rel.name}) first, or use "
                        f"{model.__name__}.{rel.name}."
                        f"{'any' if rel.uselist else 'has'}(...)"
                    )
                    break
            raise UnsupportedOperationError(
                f"cannot {what} {model.__name__} by a column of {owner.__name__}{hint}"
            )

    def _from(self) -> str:
        """The FROM clause: the model's table, then the joined ones (rows per joined pair)."""
        if not self._joins:
            return self._info.quoted_name
        outer = self._outer
        return self._info.quoted_name + "".join(j.sql.join_clause(j in outer) for j in self._joins)

    def _objects_from(self, params: list[Any]) -> tuple[str, str]:
        """(FROM list, `` WHERE ...``) of a query returning objects: each object once.

        With only to-one joins that is the joined FROM. A join along a list
        relationship would repeat the object once per related row, so the
        object's table is read once, its rows chosen by their key among the
        joined rows: ``WHERE key IN (SELECT key FROM <joins> WHERE <filters>)``;
        the to-one joins reachable without a list stay outside, for order_by().
        """
        joins = self._joins
        if not joins:
            return self._info.quoted_name, compile_where(self._filters, params)
        if not any(j.uselist for j in joins):
            return self._from(), compile_where(self._filters, params)
        single: list[Relationship] = []
        reached: set[type] = {self._model}
        for j in joins:
            if not j.uselist and j.owner in reached:
                single.append(j)
                reached.add(j.target)
        for item in self._order:
            for model in item.column.models():
                if model not in reached and not issubclass(self._model, model):
                    raise UnsupportedOperationError(
                        f"cannot order {self._model.__name__} objects by {item.column.label}: "
                        "it is read through a list relationship (several values per object); "
                        "order select(...) rows instead"
                    )
        info = self._info
        outer = self._outer
        head = info.quoted_name + "".join(j.sql.join_clause(j in outer) for j in single)
        keys = info.key_returning
        key = f"({keys})" if info.composite else keys
        where = compile_where(self._filters, params)
        return head, f" WHERE {key} IN (SELECT {keys} FROM {self._from()}{where})"

    def _pinned_by_key(self) -> bool:
        """A top-level filter ``Model.pk == value`` on the model's table alone: the query
        selects one row at most."""
        info = self._info
        if self._joins or info.composite:
            return False
        key = info.primary_key
        for f in self._filters:
            if (
                type(f) is Comparison
                and f.column is key
                and f.op == "="
                and not isinstance(f.value, Operand)
            ):
                return True
        return False

    def _tail(self, params: list[Any], one_row: bool = False) -> str:
        """ORDER BY, LIMIT and OFFSET; ``one_row``: the query's rows are at most one, so
        LIMIT 1 without OFFSET says nothing and is left out (one parameter less)."""
        parts = []
        order = self._order
        if order:
            # One item (the usual page) without a generator.
            items = (
                order[0].sql(params)
                if len(order) == 1
                else ", ".join([o.sql(params) for o in order])
            )
            parts.append(" ORDER BY " + items)
        # Bound as bigint parameters: every page of a list is one prepared statement.
        limit = self._limit
        if limit == 1 and one_row and self._offset is None:
            limit = None
        if limit is not None:
            parts.append(" LIMIT %s")
            # first() binds 1: one shared Int8 (its constructor is Python code).
            params.append(_ONE if limit == 1 else Int8(limit))
        if self._offset is not None:
            parts.append(" OFFSET %s")
            params.append(Int8(self._offset))
        return "".join(parts)

    def _select_sql(self, params: list[Any]) -> str:
        # Compiled per query: a statement cache keyed by the query's shape cost more
        # than the few joins on precomputed quoted names it saves (bench/README.md).
        # get()'s statement is the exception: one per model, made once (`_by_key`).
        info = self._info
        source, where = self._objects_from(params)
        # A key lookup's LIMIT 1 is dropped (first() of a key filter, get()).
        one_row = self._limit == 1 and self._pinned_by_key()
        return f"SELECT {info.select_list} FROM {source}{where}{self._tail(params, one_row)}"

    # -- terminal seams --------------------------------------------------------------------

    async def to_list(self) -> list[M]:
        """Run the query and return model instances (eager loads included)."""
        session = self._session
        if session is None:
            session = current_session()
        options = self._options
        if not options and session._quiet():
            # Nothing to autoflush and no operation running: the one SELECT is the whole
            # operation, and run_statement holds the session's lock for it (taking it
            # here as well would only nest it).
            statement = self._statement
            if statement is not None:  # get(): the model's key SELECT, made once
                key: Comparison = self._filters[0]  # type: ignore[assignment]
                param = key.column.bind_operand(key.value)
                return await session.load_rows(self._model, statement, [param])
            return await self._fetch(session)
        # One operation of the session: no other task's flush or commit falls in between.
        async with session.operation_lock:
            await session.autoflush()
            if options and any(isinstance(o, EagerLoad) and o.strategy == JOINED for o in options):
                objects, joined = await self._fetch_joined(session)
            else:
                objects = await self._fetch(session)
                joined = None
            if options:
                await run_eager_loads(session, list(objects), options, 0, joined)
            return objects

    def _fetch(self, session: Session) -> Coroutine[Any, Any, list[M]]:
        """The objects, by one SELECT (no joined eager load); not a coroutine itself."""
        model = self._model
        statement = self._statement
        if statement is not None:  # get(): the model's key SELECT, made once
            key: Comparison = self._filters[0]  # type: ignore[assignment]
            param = key.column.bind_operand(key.value)
            return session.load_rows(model, statement, [param])
        if computed_values(model):
            return self._fetch_computed(session)
        params: list[Any] = []
        return session.load_rows(model, self._select_sql(params), params)

    async def _fetch_computed(self, session: Session) -> list[M]:
        objects, _ = await self._fetch_joined(session)
        return objects

    async def _fetch_joined(
        self, session: Session
    ) -> tuple[list[M], dict[int, list[tuple[Any, ...] | None]]]:
        """The objects with their joined eager loads' rows and computed values."""
        info = self._info
        params: list[Any] = []
        # The computed values come last in the SELECT list, but their parameters
        # first: the SELECT list is compiled before the FROM and WHERE.
        computed = computed_values(self._model)
        computed_sql = [f"{c.sql(params)} AS {quote_ident(c.name)}" for c in computed]
        select = [info.select_list]
        joins = []
        slices: list[tuple[int, int, int, int]] = []  # option index, start, stop, pk offset
        width = len(info.field_names)
        for index, opt in enumerate(self._options):
            if not (isinstance(opt, EagerLoad) and opt.strategy == JOINED):
                continue
            rel = opt.relationship
            target = table_info(rel.target)
            alias = f'"_j{index}"'
            select.append(
                ", ".join(c.read_sql(f"{alias}.{c.ident}") for c in target.columns.values())
            )
            joins.append(
                f" LEFT OUTER JOIN {target.quoted_name} AS {alias} "
                f"ON {alias}.{target.primary_key.ident} = {rel.fk.quoted}"
            )
            slices.append((index, width, width + len(target.field_names), target.pk_index))
            width += len(target.field_names)
        select += computed_sql
        source, where = self._objects_from(params)
        statement = (
            f"SELECT {', '.join(select)} FROM {source}{''.join(joins)}{where}{self._tail(params)}"
        )
        result = await session.run_statement(statement, params, read=True)
        rows: list[tuple[Any, ...]] = result.rows
        hydrate = session.hydrator(self._model, len(rows))
        n = len(info.field_names)
        objects = [hydrate(row[:n]) for row in rows]
        if computed:
            k = len(computed)
            names = [c.name for c in computed]
            # A value reading an int field over numeric is read as an int.
            loads = [(i, load) for i, c in enumerate(computed) if (load := read_load(c))]
            for obj, row in zip(objects, rows, strict=True):
                values: Sequence[Any] = row[-k:]
                if loads:
                    values = list(values)
                    for i, load in loads:
                        values[i] = load(values[i])
                # Read-only values: set beside the columns, never tracked as changes.
                obj.__dict__.update(zip(names, values, strict=True))
        joined: dict[int, list[tuple[Any, ...] | None]] = {}
        for index, start, stop, pk_offset in slices:
            joined[index] = [
                None if row[start + pk_offset] is None else row[start:stop] for row in rows
            ]
        return objects, joined

    async def first(self) -> M | None:
        """The first result (``to_list()`` of ``limit(1)``), or None."""
        rows = await self.limit(1).to_list()
        return rows[0] if rows else None

    async def count(self) -> int:
        session = self.session
        params: list[Any] = []
        source, where = self._objects_from(params)
        if self._limit is None and self._offset is None:
            statement = f"SELECT count(*) FROM {source}{where}"
        else:
            statement = (
                f"SELECT count(*) FROM (SELECT 1 FROM {source}{where}{self._tail(params)}) AS q"
            )
        async with session.operation_lock:
            await session.autoflush()
            result = await session.run_statement(statement, params, read=True)
        return int(result.rows[0][0])

    async def exists(self) -> bool:
        session = self.session
        params: list[Any] = []
        source, where = self._objects_from(params)
        statement = f"SELECT EXISTS (SELECT 1 FROM {source}{where}{self._tail(params)})"
        async with session.operation_lock:
            await session.autoflush()
            result = await session.run_statement(statement, params, read=True)
        return bool(result.rows[0][0])

    async def aggregate(self, pipeline: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Run a MongoDB-style pipeline as one SQL statement; rows come back as dicts."""
        if self._limit is not None or self._offset is not None or self._order:
            raise UnsupportedOperationError(
                "aggregate() uses $sort/$limit/$skip stages, not order_by()/limit()/offset()"
            )
        if self._joins:
            raise UnsupportedOperationError(
                "aggregate() does not take join(); filter with .has(...)/.any(...) instead"
            )
        params: list[Any] = []
        where = compile_where(self._filters, params)
        statement, all_params, loads = compile_aggregate_loading(
            self._info, pipeline, where, params
        )
        session = self.session
        async with session.operation_lock:
            await session.autoflush()
            result = await session.run_statement(
                statement, all_params, row_factory=dict_row, read=True
            )
        rows: list[dict[str, Any]] = list(result.rows)
        for name, load in loads.items():  # an int field over numeric reads an int
            for row in rows:
                row[name] = load(row[name])
        return rows

    def _check_bulk(self, what: str) -> None:
        if self._limit is not None or self._offset is not None or self._order or self._options:
            raise UnsupportedOperationError(
                f"{what}() applies to every row matching the filters; remove "
                "limit()/offset()/order_by()/options()"
            )
        if self._joins:
            rel = self._joins[0]
            raise UnsupportedOperationError(
                f"{what}() does not take join(); filter across the relationship with "
                f"{rel.owner.__name__}.{rel.name}.has(...) instead"
            )

    async def update(self, **values: Any) -> int:
        """``UPDATE ... SET field = value WHERE <filters>``; returns the rows affected.

        A value may be column arithmetic (``views=Article.views + 1``), computed
        by PostgreSQL; the new values are read back with ``RETURNING``.
        """
        self._check_bulk("update")
        if not values:
            raise ValueError("update() needs at least one field=value")
        info = self._info
        params: list[Any] = []
        assignments = []
        for name, value in values.items():
            column = info.column(name, "update()")
            if column.primary_key:
                raise UnsupportedOperationError(f"update() cannot change the primary key {name!r}")
            if isinstance(value, Operand):  # computed by PostgreSQL, read back
                self._check_models(value.models(), "update")
                assignments.append(f"{column.ident} = {value.sql(params)}")
                continue
            # The assignment's check: ValidationError before any SQL, values normalised.
            value = values[name] = column.check(value)
            if value is None and not column.nullable:
                column.refuse_none_for_stored_row()
            assignments.append(f"{column.ident} = %s")
            params.append(column.bind(value))
        where = compile_where(self._filters, params)
        returning = ", ".join(
            info.column(name).read_sql(info.column(name).quoted) for name in values
        )
        statement = (
            f"UPDATE {info.quoted_name} SET {', '.join(assignments)}{where} "
            f"RETURNING {info.key_returning}, {returning}"
        )
        session = self.session
        async with session.operation_lock:
            await session.autoflush()
            # Through the unit of work: loaded objects show the new values, and the
            # transaction's log can put the old ones back on rollback.
            work = session.unit_of_work
            return await work.bulk_update(self._model, statement, params, tuple(values))

    async def delete(self) -> int:
        """``DELETE ... WHERE <filters>``; returns the rows affected."""
        self._check_bulk("delete")
        info = self._info
        params: list[Any] = []
        where = compile_where(self._filters, params)
        statement = f"DELETE FROM {info.quoted_name}{where} RETURNING {info.key_returning}"
        session = self.session
        async with session.operation_lock:
            await session.autoflush()
            return await session.unit_of_work.bulk_delete(self._model, statement, params)

    # -- streaming --------------------------------------------------------------------------

    async def stream(self, batch_size: int = 1000) -> AsyncIterator[M]:
        """Iterate over a large result with a server-side cursor, ``batch_size`` rows at a time."""
        if self._options:
            raise UnsupportedOperationError("stream() does not run loader options; use to_list()")
        _count(batch_size, "stream(batch_size)", _FETCH_MAX)
        session = self.session
        params: list[Any] = []
        rows = session.stream_rows(self._model, self._select_sql(params), params, batch_size)
        # Closing this iterator closes the cursor's at once, not when it is collected.
        async with contextlib.aclosing(rows):
            # The autoflush and the cursor's DECLARE (with its first batch) are one
            # operation: no other task of the session flushes or commits between them.
            async with session.operation_lock:
                await session.autoflush()
                first = await anext(rows, _END)
            if first is _END:
                return
            yield cast(M, first)
            async for obj in rows:
                yield obj

    def __aiter__(self) -> AsyncIterator[M]:
        return self.stream()

    def __repr__(self) -> str:
        return f"<Query {self._model.__name__} filters={len(self._filters)} limit={self._limit}>"


_new_query_object = object.__new__

# Session.get's SELECT per model ("": none shared, the model has computed values).
_KEY_SELECTS: dict[type[Table], str] = {}


def _key_select(model: type[Table], info: TableInfo) -> str:
    """The SELECT of one row by its (single-column) key: what `_select_sql` compiles for
    ``find(model).filter(pk == value).limit(1)``, the LIMIT left out (one row at most)."""
    # A model with computed values reads them in its SELECT (`_fetch_joined`).
    statement = _KEY_SELECTS[model] = (
        ""
        if computed_values(model)
        else f"SELECT {info.select_list} FROM {info.quoted_name} WHERE {info.key_where}"
    )
    return statement


_END: Any = object()  # the end of a stream, told apart from any row


def _option_shape(option: LoaderOption) -> tuple[Any, ...]:
    if isinstance(option, EagerLoad):
        children = tuple([_option_shape(c) for c in option.children])
        return (option.relationship, option.strategy, children)
    return (option.relationship, type(option), getattr(option, "strategy", None))


install_query_factory(Query)

"""Compile a MongoDB-style aggregation pipeline to one PostgreSQL statement.

`compile_aggregate` is a pure function: it validates the whole pipeline, then
returns SQL text with ``%s`` placeholders and its parameter list. Nothing is
sent to the database here; `Query.aggregate` runs the statement with
``dict_row``, so the output names below are the keys of the result dicts.

Supported subset
----------------
Stages (each a dict with exactly one key):

- ``{"$match": {field: value | {op: value, ...}, ...}}`` with the operators
  ``$eq $ne $gt $gte $lt $lte $in $nin``; several fields and several
  operators are AND-ed. Before ``$group`` it filters rows (``WHERE``, AND-ed
  with the query's own filters); after ``$group`` it filters groups
  (``HAVING``) and names the ``$group`` outputs (``_id``, ``count``...).
  NULL follows MongoDB: ``{f: None}`` / ``$eq: None`` match NULL, ``$ne`` and
  ``$nin`` also match rows whose field is NULL, ``$in: [None, ...]`` matches
  NULL; ``$gt``/``$gte``/``$lt``/``$lte`` need a non-None value.
- ``{"$group": {"_id": "$field" | None, name: {accumulator: operand}, ...}}``
  with ``{"$sum": number | "$field"}``, ``{"$avg": "$field"}``,
  ``{"$min": "$field"}``, ``{"$max": "$field"}``, ``{"$count": {}}``.
  ``$sum``/``$avg`` need a numeric field (int, float, Decimal). ``$sum`` of
  an int field is a bigint, ``$avg`` of an int or float field a float (of a
  Decimal field a Decimal), ``$sum`` over only NULLs is 0 as in MongoDB.
  ``_id: None`` is one group over all rows; like MongoDB it yields no group
  at all when no row matches. A compound ``_id`` (a dict) is rejected.
- ``{"$sort": {name: 1 | -1, ...}}``: NULL sorts first ascending and last
  descending, as in MongoDB.
- ``{"$limit": n}``, ``{"$skip": n}``: non-negative ints.
- ``{"$project": {name: 1 | 0, ...}}``: include or exclude fields (``_id``
  may be excluded in an inclusion); computed fields are rejected.
- ``{"$count": "name"}``: one document ``{name: number of rows}``.

Without ``$group`` the rows are the model's columns. Stages apply in order
as in MongoDB; when a stage cannot join the current SELECT (a ``$match``
after ``$limit``, a second ``$group``, ``$group`` after ``$skip``...) the
SELECT built so far becomes a subquery (``FROM (...) AS "_s1"``) and the
stage applies to its output, so any supported pipeline is one statement.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from psycopg.types.numeric import Int8

from data_bridge_core.errors import ColumnTypeError, UnknownFieldError, UnsupportedOperationError
from data_bridge_core.schema.column import quote_ident
from data_bridge_core.schema.table import TableInfo
from data_bridge_core.schema.types import COUNT_MAX, count_problem, exact_int

__all__ = ["compile_aggregate", "compile_aggregate_loading"]

_STAGES = frozenset({"$match", "$group", "$sort", "$limit", "$skip", "$project", "$count"})
_COMPARISONS = {"$eq": "=", "$ne": "<>", "$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_MATCH_OPERATORS = frozenset({*_COMPARISONS, "$in", "$nin"})
_ACCUMULATORS = frozenset({"$sum", "$avg", "$min", "$max", "$count"})
_NUMERIC_TYPES: tuple[type, ...] = (int, float, Decimal)
# PostgreSQL 15 has no min()/max() for these (bool uses bool_and/bool_or).
_NO_MIN_MAX: tuple[type, ...] = (uuid.UUID, bytes, dict, list, type(None))
_BOOL_MIN_MAX = {"$min": "bool_and", "$max": "bool_or"}
# PostgreSQL silently truncates longer identifiers, which would change result keys.
_MAX_IDENTIFIER_BYTES = 63

Check = Callable[[Any], Any]


@dataclass(slots=True)
class _Field:
    """One named value a stage can refer to, as an SQL expression of the current SELECT."""

    expr: str
    python_type: type
    # Validates a $match value and returns the parameter to send (may raise ColumnTypeError).
    check: Check
    nullable: bool
    params: tuple[Any, ...] = ()  # parameters of ``expr`` (a float $sum constant)
    plain: bool = False  # ``expr`` is a column reference already named like the field
    constant: bool = False  # the NULL ``_id`` of ``_id: None`` (ORDER BY cannot use it)
    # How the outermost SELECT reads a column's value ("abbrev({})": an inet as the
    # text find() gives); stages in between compare and sort the column's own type.
    read: str | None = None
    # How a value read is made the field's type (a column's `ColumnInfo.load`: an int
    # field over numeric); None: psycopg's value as it is.
    load: Check | None = None


def _numeric_check(name: str) -> Check:
    def check(value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, _NUMERIC_TYPES):
            raise ColumnTypeError("$group", name, "a number", value)
        return value

    return check


def _none_check(value: Any) -> Any:
    if value is not None:
        raise ColumnTypeError("$group", "_id", "None (the group _id is None)", value)
    return value


@dataclass
class _Select:
    """One SELECT under construction; ``fields`` is what the next stage sees."""

    source: str
    source_params: list[Any]
    fields: dict[str, _Field]
    # Who "has no field" in UnknownFieldError: the model, or "$group output"...
    label: type | str
    base_where: str = ""  # the query's own filters (first SELECT only)
    base_params: list[Any] = field(default_factory=list)
    where: list[str] = field(default_factory=list)
    where_params: list[Any] = field(default_factory=list)
    grouped: bool = False
    group_by: list[str] = field(default_factory=list)
    having: list[str] = field(default_factory=list)
    having_params: list[Any] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    order_params: list[Any] = field(default_factory=list)
    limit: int | None = None
    offset: int | None = None

    def lookup(self, name: object, stage: str) -> _Field:
        if not isinstance(name, str):
            raise UnsupportedOperationError(f"{stage}: field names are str, got {name!r}")
        found = self.fields.get(name)
        if found is None:
            raise UnknownFieldError(self.label, name, f"aggregate {stage}")
        return found

    def render(self, outermost: bool = False) -> tuple[str, list[Any]]:
        # Parameters are collected clause by clause in the order the text has them.
        params: list[Any] = []
        items = []
        for name, f in self.fields.items():
            params.extend(f.params)
            if outermost and f.read is not None:
                items.append(f"{f.read.format(f.expr)} AS {quote_ident(name)}")
            else:
                items.append(f.expr if f.plain else f"{f.expr} AS {quote_ident(name)}")
        text = "SELECT " + ", ".join(items) if items else "SELECT"
        text += f" FROM {self.source}"
        params.extend(self.source_params)
        conditions = list(self.where)
        if self.base_where:
            # Parenthesized only when combined, so a bare query keeps its own text.
            conditions.insert(0, f"({self.base_where})" if conditions else self.base_where)
            params.extend(self.base_params)
        if conditions:
            text += " WHERE " + " AND ".join(conditions)
            params.extend(self.where_params)
        if self.group_by:
            text += " GROUP BY " + ", ".join(self.group_by)
        if self.having:
            text += " HAVING " + " AND ".join(self.having)
            params.extend(self.having_params)
        if self.order:
            text += " ORDER BY " + ", ".join(self.order)
            params.extend(self.order_params)
        # Bound as bigint parameters, like Query's LIMIT/OFFSET.
        if self.limit is not None:
            text += " LIMIT %s"
            params.append(Int8(self.limit))
        if self.offset is not None:
            text += " OFFSET %s"
            params.append(Int8(self.offset))
        return text, params


def compile_aggregate(
    info: TableInfo,
    pipeline: Sequence[Mapping[str, Any]],
    where_sql: str,
    where_params: Sequence[Any],
) -> tuple[str, list[Any]]:
    """Compile ``pipeline`` over ``info``'s table to ``(statement, params)``.

    See `compile_aggregate_loading` for the arguments.
    """
    statement, params, _ = compile_aggregate_loading(info, pipeline, where_sql, where_params)
    return statement, params


def compile_aggregate_loading(
    info: TableInfo,
    pipeline: Sequence[Mapping[str, Any]],
    where_sql: str,
    where_params: Sequence[Any],
) -> tuple[str, list[Any], dict[str, Check]]:
    """`compile_aggregate`, and the output fields whose values are converted once read
    (an int field over numeric, its ``$min``, ``$max``, ``$sum``), each with its
    converter: empty for nearly every pipeline.

    ``where_sql`` is ``""`` or ``" WHERE ..."`` (the query's filters, with
    ``where_params``); pipeline ``$match`` conditions before ``$group`` are
    AND-ed to it. Raises `UnsupportedOperationError`, `UnknownFieldError` or
    `ColumnTypeError` for a pipeline outside the supported subset.
    """
    stages = _check_stages(pipeline)
    if where_sql and not where_sql.startswith(" WHERE "):
        raise ValueError(f"where_sql must be empty or start with ' WHERE ', got {where_sql!r}")
    fields = {
        name: _Field(
            expr=column.quoted,
            python_type=column.column_type.python_type,
            check=column.bind_operand,
            nullable=column.nullable,
            plain=True,
            read=column.column_type.read_sql,
            load=column.load if column.column_type.load is not None else None,
        )
        for name, column in info.columns.items()
    }
    current = _Select(
        source=info.quoted_name,
        source_params=[],
        fields=fields,
        label=info.model,
        base_where=where_sql[len(" WHERE ") :],
        base_params=list(where_params),
    )
    compiler = _Compiler(current)
    for name, spec in stages:
        compiler.apply(name, spec)
    text, params = compiler.current.render(outermost=True)
    loads = {name: f.load for name, f in compiler.current.fields.items() if f.load is not None}
    return text, params, loads


def _check_stages(pipeline: object) -> list[tuple[str, Any]]:
    """The (stage name, spec) pairs, after checking the pipeline's shape."""
    if isinstance(pipeline, str | bytes | Mapping) or not isinstance(pipeline, Sequence):
        raise UnsupportedOperationError(
            f"aggregate() takes a list of stages, got {type(pipeline).__name__}"
        )
    stages: list[tuple[str, Any]] = []
    for index, stage in enumerate(pipeline):
        if not isinstance(stage, Mapping):
            raise UnsupportedOperationError(
                f"pipeline[{index}] must be a dict with one key such as {{'$match': ...}}, "
                f"got {type(stage).__name__}"
            )
        if len(stage) != 1:
            raise UnsupportedOperationError(
                f"pipeline[{index}] must have exactly one key (one stage per dict), "
                f"got {list(stage)!r}"
            )
        ((name, spec),) = stage.items()
        if name not in _STAGES:
            raise UnsupportedOperationError(f"unsupported aggregate stage {name!r}")
        stages.append((name, spec))
    return stages


class _Compiler:
    def __init__(self, current: _Select) -> None:
        self.current = current
        self.subqueries = 0

    def apply(self, name: str, spec: Any) -> None:
        if name == "$match":
            self.match(spec)
        elif name == "$group":
            self.group(spec)
        elif name == "$sort":
            self.sort(spec)
        elif name == "$limit":
            self.limit(spec)
        elif name == "$skip":
            self.skip(spec)
        elif name == "$project":
            self.project(spec)
        else:  # "$count": a one-group $group whose only output is the row count
            out = _output_name(spec, "$count")
            self.group({"_id": None, out: {"$sum": 1}})
            self.project({"_id": 0})

    def wrap(self) -> _Select:
        """Make the SELECT so far a subquery; later stages apply to its output."""
        self.subqueries += 1
        text, params = self.current.render()
        alias = quote_ident(f"_s{self.subqueries}")
        fields = {
            name: _Field(
                expr=f"{alias}.{quote_ident(name)}",
                python_type=f.python_type,
                check=f.check,
                nullable=f.nullable,
                plain=True,
                read=f.read,
                load=f.load,
            )
            for name, f in self.current.fields.items()
        }
        self.current = _Select(f"({text}) AS {alias}", params, fields, self.current.label)
        return self.current

    # -- $match -------------------------------------------------------------------

    def match(self, spec: Any) -> None:
        if not isinstance(spec, Mapping):
            raise UnsupportedOperationError(f"$match takes a dict, got {type(spec).__name__}")
        select = self.current
        # A filter after $limit/$skip applies to the rows they kept: needs a subquery.
        if select.limit is not None or select.offset is not None:
            select = self.wrap()
        conditions: list[str] = []
        params: list[Any] = []
        for name, condition in spec.items():
            if isinstance(name, str) and name.startswith("$"):
                raise UnsupportedOperationError(f"unsupported $match operator {name!r}")
            target = select.lookup(name, "$match")
            if _is_operator_dict(condition, name):
                for op, value in condition.items():
                    conditions.append(_condition(target, name, op, value, params))
            else:
                conditions.append(_condition(target, name, "$eq", condition, params))
        if select.grouped:
            select.having.extend(conditions)
            select.having_params.extend(params)
        else:
            select.where.extend(conditions)
            select.where_params.extend(params)

    # -- $group -------------------------------------------------------------------

    def group(self, spec: Any) -> None:
        if not isinstance(spec, Mapping):
            raise UnsupportedOperationError(f"$group takes a dict, got {type(spec).__name__}")
        if "_id" not in spec:
            raise UnsupportedOperationError("$group needs an '_id' (a '$field' or None)")
        select = self.current
        if select.grouped or select.limit is not None or select.offset is not None:
            select = self.wrap()
        key = spec["_id"]
        outputs: dict[str, _Field] = {}
        group_by: list[str] = []
        having: list[str] = []
        if key is None:
            outputs["_id"] = _Field("NULL", type(None), _none_check, True, constant=True)
            # Without GROUP BY, PostgreSQL returns one row even for no input rows;
            # MongoDB returns no group then.
            having.append("count(*) > 0")
        elif isinstance(key, str):
            source = select.lookup(_reference(key, "$group _id"), "$group")
            outputs["_id"] = _Field(
                source.expr,
                source.python_type,
                source.check,
                source.nullable,
                read=source.read,
                load=source.load,
            )
            group_by.append(source.expr)
        elif isinstance(key, Mapping):
            raise UnsupportedOperationError(
                f"compound $group _id {dict(key)!r} is not supported: group by one "
                "'$field' or None (a dict key would come back through JSON and lose "
                "the column types)"
            )
        else:
            raise UnsupportedOperationError(
                f"$group _id must be a '$field' reference or None, got {key!r}"
            )
        for out, accumulator in spec.items():
            if out == "_id":
                continue
            out = _output_name(out, "$group")
            outputs[out] = self._accumulator(select, out, accumulator)
        select.fields = outputs
        select.group_by = group_by
        select.having = having
        select.grouped = True
        select.label = "$group output"
        # Row order does not change $sum/$avg/$min/$max/$count, and grouped
        # output has no order of its own: a $sort before $group is dropped.
        select.order = []
        select.order_params = []

    def _accumulator(self, select: _Select, out: str, accumulator: Any) -> _Field:
        if not isinstance(accumulator, Mapping) or len(accumulator) != 1:
            raise UnsupportedOperationError(
                f"$group output {out!r} must be one accumulator such as "
                f"{{'$sum': 1}}, got {accumulator!r}"
            )
        ((op, operand),) = accumulator.items()
        if op not in _ACCUMULATORS:
            raise UnsupportedOperationError(f"unsupported $group accumulator {op!r} for {out!r}")
        if op == "$count":
            if operand != {}:
                raise UnsupportedOperationError(
                    f"$count for {out!r} takes an empty dict ({{'$count': {{}}}}), got {operand!r}"
                )
            return _Field("count(*)", int, _numeric_check(out), False)
        if op == "$sum" and not isinstance(operand, str):
            return _sum_constant(out, operand)
        source = select.lookup(_reference(operand, f"{op} for {out!r}"), "$group")
        ptype = source.python_type
        if op in ("$sum", "$avg"):
            if not issubclass(ptype, _NUMERIC_TYPES) or issubclass(ptype, bool):
                raise UnsupportedOperationError(
                    f"{op} for {out!r} needs a numeric field, {operand!r} is {ptype.__name__}"
                )
            if op == "$sum":
                # sum(bigint) is numeric in PostgreSQL: cast back so ints stay ints;
                # MongoDB's $sum over only NULLs is 0, not null. An int field over
                # numeric sums in numeric (no bigint bound) and is read as an int.
                cast = "::bigint" if ptype is int and source.load is None else ""
                return _Field(
                    f"coalesce(sum({source.expr}), 0){cast}",
                    ptype,
                    _numeric_check(out),
                    False,
                    load=source.load,
                )
            # avg(bigint) is numeric (Decimal): the average of ints is a float.
            # A Decimal column keeps its exact type.
            exact = ptype is Decimal
            return _Field(
                f"avg({source.expr})" if exact else f"avg({source.expr})::float8",
                Decimal if exact else float,
                _numeric_check(out),
                source.nullable,
            )
        # $min / $max
        if issubclass(ptype, _NO_MIN_MAX):
            raise UnsupportedOperationError(
                f"{op} for {out!r} is not supported on {ptype.__name__} field {operand!r}"
            )
        # PostgreSQL has no min(boolean): false < true, so min is bool_and, max bool_or.
        function = _BOOL_MIN_MAX[op] if ptype is bool else op[1:]
        return _Field(
            f"{function}({source.expr})",
            ptype,
            source.check,
            source.nullable,
            read=source.read,
            load=source.load,
        )

    # -- $sort, $limit, $skip -----------------------------------------------------------

    def sort(self, spec: Any) -> None:
        if not isinstance(spec, Mapping) or not spec:
            raise UnsupportedOperationError(
                f"$sort takes a non-empty dict {{field: 1 | -1}}, got {spec!r}"
            )
        select = self.current
        if select.limit is not None or select.offset is not None:
            select = self.wrap()
        order: list[str] = []
        params: list[Any] = []
        for name, direction in spec.items():
            target = select.lookup(name, "$sort")
            if isinstance(direction, bool) or direction not in (1, -1):
                raise UnsupportedOperationError(
                    f"$sort direction for {name!r} must be 1 or -1, got {direction!r}"
                )
            if target.constant:
                continue  # every row has the same value; ORDER BY NULL is an error
            descending = direction == -1
            text = f"{target.expr} {'DESC' if descending else 'ASC'}"
            if target.nullable:
                # MongoDB orders null before any value.
                text += " NULLS LAST" if descending else " NULLS FIRST"
            order.append(text)
            params.extend(target.params)
        # A later $sort re-sorts every row: it replaces the earlier order.
        select.order = order
        select.order_params = params

    def limit(self, spec: Any) -> None:
        n = _count_arg(spec, "$limit")
        select = self.current
        select.limit = n if select.limit is None else min(select.limit, n)

    def skip(self, spec: Any) -> None:
        n = _count_arg(spec, "$skip")
        select = self.current
        # Skipping after a limit keeps the limit's window: shrink it, no subquery.
        if select.limit is not None:
            select.limit = max(select.limit - n, 0)
        offset = n if select.offset is None else select.offset + n
        if offset > COUNT_MAX:
            raise UnsupportedOperationError(
                f"$skip stages add up to more than {COUNT_MAX} rows (bigint's range)"
            )
        select.offset = offset

    # -- $project -----------------------------------------------------------------

    def project(self, spec: Any) -> None:
        if not isinstance(spec, Mapping) or not spec:
            raise UnsupportedOperationError(
                f"$project takes a non-empty dict {{field: 1 | 0}}, got {spec!r}"
            )
        select = self.current
        flags: dict[str, bool] = {}
        for name, value in spec.items():
            if not isinstance(name, str):
                raise UnsupportedOperationError(f"$project: field names are str, got {name!r}")
            if value not in (0, 1) or not isinstance(value, int):
                raise UnsupportedOperationError(
                    f"$project supports only 1 (include) or 0 (exclude); "
                    f"{name!r}: {value!r} is not supported"
                )
            if name in select.fields:
                flags[name] = bool(value)
            elif name != "_id" or value:  # excluding an absent _id is harmless
                select.lookup(name, "$project")
        include = {name for name, keep in flags.items() if keep and name != "_id"}
        exclude = {name for name, keep in flags.items() if not keep and name != "_id"}
        if include and exclude:
            raise UnsupportedOperationError(
                "$project cannot mix inclusion (1) and exclusion (0), except for _id"
            )
        if include or flags.get("_id") is True:
            # Inclusion: the named fields, and _id unless excluded (as in MongoDB).
            include |= {"_id"} if flags.get("_id", True) and "_id" in select.fields else set()
            kept = {n: f for n, f in select.fields.items() if n in include}
        else:
            dropped = exclude | ({"_id"} if flags.get("_id") is False else set())
            kept = {n: f for n, f in select.fields.items() if n not in dropped}
        select.fields = kept
        select.label = "$project output"


def _is_operator_dict(condition: Any, name: str) -> bool:
    """True for ``{"$gt": 1, ...}``; a dict without ``$`` keys is a value (JSON columns)."""
    if not isinstance(condition, Mapping) or not condition:
        return False
    dollar = [isinstance(k, str) and k.startswith("$") for k in condition]
    if all(dollar):
        return True
    if any(dollar):
        raise UnsupportedOperationError(
            # The keys only: the values are data, kept out of messages (and logs).
            f"$match on field {name!r} mixes operators and plain keys: {list(condition)!r}"
        )
    return False


def _condition(target: _Field, name: str, op: str, value: Any, params: list[Any]) -> str:
    """One SQL condition for ``name op value``; appends its parameters to ``params``."""
    if op not in _MATCH_OPERATORS:
        raise UnsupportedOperationError(f"unsupported $match operator {op!r} on field {name!r}")
    expr = target.expr
    if op in ("$in", "$nin"):
        if isinstance(value, str | bytes | Mapping) or not isinstance(
            value, list | tuple | set | frozenset
        ):
            raise UnsupportedOperationError(
                f"$match operator {op!r} on field {name!r} takes a list, got {type(value).__name__}"
            )
        values = [target.check(v) for v in value if v is not None]
        has_none = any(v is None for v in value)
        params.extend(target.params)
        params.append(values)
        # One array parameter: the text does not depend on the number of values.
        if op == "$in":
            if has_none and target.nullable:
                params.extend(target.params)
                return f"({expr} = ANY(%s) OR {expr} IS NULL)"
            return f"{expr} = ANY(%s)"
        if not has_none and target.nullable:
            # MongoDB's $nin also matches documents whose field is null.
            params.extend(target.params)
            return f"({expr} <> ALL(%s) OR {expr} IS NULL)"
        return f"{expr} <> ALL(%s)"
    params.extend(target.params)
    if value is None:
        if op == "$eq":
            return f"{expr} IS NULL"
        if op == "$ne":
            return f"{expr} IS NOT NULL"
        raise UnsupportedOperationError(
            f"$match operator {op!r} on field {name!r} needs a value, not None"
        )
    params.append(target.check(value))
    if op == "$ne" and target.nullable:
        # MongoDB's $ne matches null too; "<>" would drop NULL rows.
        return f"{expr} IS DISTINCT FROM %s"
    return f"{expr} {_COMPARISONS[op]} %s"


def _sum_constant(out: str, operand: Any) -> _Field:
    if isinstance(operand, bool) or not isinstance(operand, int | float):
        raise UnsupportedOperationError(
            f"$sum for {out!r} takes a number or a '$field' reference, got {operand!r}"
        )
    if isinstance(operand, int):
        if not -COUNT_MAX - 1 <= operand <= COUNT_MAX:
            raise UnsupportedOperationError(
                f"$sum for {out!r} takes an int within bigint's range; this one is out of it"
            )
        # Written as a literal: the plain int's text is only digits and '-'.
        number = exact_int(operand)
        text = "count(*)" if number == 1 else f"count(*) * {number}"
        return _Field(text, int, _numeric_check(out), False)
    return _Field("count(*) * %s", float, _numeric_check(out), False, params=(operand,))


def _reference(value: Any, what: str) -> str:
    """The field name of a ``"$field"`` reference."""
    if not isinstance(value, str) or not value.startswith("$") or len(value) < 2:
        raise UnsupportedOperationError(
            f"{what} must be a field reference such as '$age' (with '$'), got {value!r}"
        )
    if value.startswith("$$"):
        raise UnsupportedOperationError(f"{what}: variables such as {value!r} are not supported")
    return value[1:]


def _output_name(name: Any, stage: str) -> str:
    if not isinstance(name, str) or not name or name.startswith("$") or "." in name:
        raise UnsupportedOperationError(
            f"{stage} output name must be a non-empty str without a leading '$' "
            f"or a '.', got {name!r}"
        )
    if "\x00" in name or len(name.encode()) > _MAX_IDENTIFIER_BYTES:
        raise UnsupportedOperationError(
            f"{stage} output name {name!r} is not a valid PostgreSQL column name "
            f"(at most {_MAX_IDENTIFIER_BYTES} bytes, no NUL)"
        )
    return name


def _count_arg(value: Any, stage: str) -> int:
    problem = count_problem(value)
    if problem is not None:
        raise UnsupportedOperationError(f"{stage} {problem}")
    return exact_int(value)  # a plain int: an int subclass's own methods never run

"""Python type -> PostgreSQL type, and value checks for each column type."""

from __future__ import annotations

import datetime as dt
import math
import re
import sys
import types
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from psycopg.types.json import Jsonb

from data_bridge_core.errors import ModelDefinitionError


class InvalidValue(Exception):
    """Raised by a `ColumnType.coerce` for a value the column cannot store.

    ``problem`` completes "<Model>.<column> ..." and never contains the value;
    ``wrong_type`` marks a value of the wrong Python type (a ColumnTypeError).
    """

    def __init__(self, problem: str, wrong_type: bool = False) -> None:
        super().__init__(problem)
        self.problem = problem
        self.wrong_type = wrong_type


@dataclass(frozen=True, slots=True)
class ColumnType:
    """How one Python type is stored: its SQL type and the checks for a value.

    ``accepts`` is the fast test run on every write: True means the value is
    stored as given. When it says False, ``coerce`` returns the value to store
    (a naive datetime made aware) or raises `InvalidValue` naming the problem.
    ``coerce_operand`` does the same for a filter operand, which is compared,
    not stored (an int past the column's range is a fine operand).
    """

    python_type: type
    sql_type: str
    accepts: Callable[[Any], bool]
    description: str
    # Wraps a Python value for psycopg when the default adaptation is not the right one.
    adapt: Callable[[Any], Any] | None = None
    coerce: Callable[[Any], Any] = field(default=lambda v: v)
    coerce_operand: Callable[[Any], Any] | None = None


def exact_int(value: int) -> int:
    """The plain ``int`` of an int (or int subclass) value, for SQL text.

    ``int.__int__`` is called on the class itself, so a subclass's own
    ``__format__``/``__str__``/``__int__`` never decide what is written.
    """
    return int.__int__(value)


# -- str ---------------------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")
_NUL_PROBLEM = "contains a NUL byte (PostgreSQL text cannot store \\x00)"
_SURROGATE_PROBLEM = "contains a lone surrogate (not encodable as UTF-8)"


def _clean_str(value: str) -> bool:
    # isascii() is a fast scan; only non-ASCII text is searched for surrogates.
    return "\x00" not in value and (value.isascii() or _SURROGATE.search(value) is None)


def _str_accepts(value: Any) -> bool:
    # _clean_str inlined: this runs per text value of every object built (W4).
    return (
        isinstance(value, str)
        and "\x00" not in value
        and (value.isascii() or _SURROGATE.search(value) is None)
    )


def _str_coerce(value: Any) -> Any:
    if not isinstance(value, str):
        raise InvalidValue("str", wrong_type=True)
    if "\x00" in value:
        raise InvalidValue(_NUL_PROBLEM)
    if not value.isascii() and _SURROGATE.search(value) is not None:
        raise InvalidValue(_SURROGATE_PROBLEM)
    return value


def check_text(value: str) -> str | None:
    """The problem of a str PostgreSQL cannot take as text (a LIKE pattern), or None."""
    if "\x00" in value:
        return _NUL_PROBLEM
    if not value.isascii() and _SURROGATE.search(value) is not None:
        return _SURROGATE_PROBLEM
    return None


_LENGTH = re.compile(r"^\s*(?:character varying|varchar|character|char)\s*\(\s*(\d+)\s*\)\s*$")


def _str_type(sql_type: str) -> ColumnType:
    match = _LENGTH.match(sql_type.lower())
    if match is None:
        return ColumnType(str, sql_type, _str_accepts, "str", coerce=_str_coerce)
    limit = int(match.group(1))

    def accepts(value: Any) -> bool:
        return isinstance(value, str) and len(value) <= limit and _clean_str(value)

    def coerce(value: Any) -> Any:
        _str_coerce(value)
        if len(value) > limit:
            raise InvalidValue(f"is longer than the {limit} characters of {sql_type}")
        return value

    return ColumnType(str, sql_type, accepts, "str", coerce=coerce, coerce_operand=_str_coerce)


# -- numbers -------------------------------------------------------------------------

_INT_RANGES = {
    "smallint": 16,
    "int2": 16,
    "smallserial": 16,
    "integer": 32,
    "int": 32,
    "int4": 32,
    "serial": 32,
    "bigint": 64,
    "int8": 64,
    "bigserial": 64,
}


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int_type(sql_type: str) -> ColumnType:
    bits = _INT_RANGES.get(sql_type.strip().lower())
    if bits is None:  # numeric or another type chosen by the model: PostgreSQL checks
        return ColumnType(int, sql_type, _is_int, "int", coerce=_wrong_type("int"))
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    name = {16: "smallint", 32: "integer", 64: "bigint"}[bits]

    def accepts(value: Any) -> bool:
        # A plain int (the usual case) passes with one identity compare.
        if value.__class__ is not int and (not isinstance(value, int) or isinstance(value, bool)):
            return False
        return bool(low <= value <= high)

    def coerce(value: Any) -> Any:
        if not _is_int(value):
            raise InvalidValue("int", wrong_type=True)
        raise InvalidValue(f"is out of range for {name} ({low}..{high})")

    return ColumnType(
        int, sql_type, accepts, "int", coerce=coerce, coerce_operand=_operand(_is_int, "int")
    )


_FLOAT_RANGES = {"real": 3.4028234663852886e38, "float4": 3.4028234663852886e38}
_DOUBLE_MAX = sys.float_info.max


def _float_type(sql_type: str) -> ColumnType:
    key = sql_type.strip().lower()
    limit = _FLOAT_RANGES.get(key, _DOUBLE_MAX)
    name = "real" if key in _FLOAT_RANGES else "double precision"

    def accepts(value: Any) -> bool:
        # NaN and Infinity are valid floats in PostgreSQL; only finite overflow is refused.
        if isinstance(value, float):
            return limit is _DOUBLE_MAX or not (limit < abs(value) < math.inf)
        return _is_int(value) and -limit <= value <= limit

    def coerce(value: Any) -> Any:
        if not _number(value):
            raise InvalidValue("float", wrong_type=True)
        raise InvalidValue(f"is out of range for {name}")

    return ColumnType(
        float, sql_type, accepts, "float", coerce=coerce, coerce_operand=_operand(_number, "float")
    )


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _decimal(value: Any) -> bool:
    return isinstance(value, Decimal | int) and not isinstance(value, bool)


_PRECISION = re.compile(r"^\s*(?:numeric|decimal)\s*\(\s*(\d+)\s*(?:,\s*(-?\d+)\s*)?\)\s*$")
# PostgreSQL's numeric: up to 131072 digits before the point, 16383 after.
_NUMERIC_INT_BITS = 435_000  # 10**131072 has about 435411 bits
_NUMERIC_PROBLEM = "is out of range for numeric (131072 digits before the point, 16383 after)"


def _decimal_type(sql_type: str) -> ColumnType:
    match = _PRECISION.match(sql_type.lower())
    if match is None:

        def fits(value: Decimal | int) -> bool:
            if isinstance(value, int):
                return value.bit_length() <= _NUMERIC_INT_BITS
            if not value.is_finite():
                return True  # NaN and ±Infinity are numeric values
            exponent = value.as_tuple().exponent
            return value.adjusted() < 131072 and isinstance(exponent, int) and exponent >= -16383

        problem = _NUMERIC_PROBLEM
    else:
        precision, scale = int(match.group(1)), int(match.group(2) or 0)
        # The value must round (half away from zero) to less than 10**(precision - scale).
        bound = Decimal(10) ** (precision - scale) - Decimal(5).scaleb(-scale - 1)
        problem = (
            f"is out of range for {sql_type} (it must round to less than 10^{precision - scale})"
        )

        def fits(value: Decimal | int) -> bool:
            if isinstance(value, int):
                return abs(value) < bound
            return value.is_nan() or abs(value) < bound

    def accepts(value: Any) -> bool:
        return _decimal(value) and fits(value)

    def coerce(value: Any) -> Any:
        if not _decimal(value):
            raise InvalidValue("Decimal", wrong_type=True)
        raise InvalidValue(problem)

    return ColumnType(
        Decimal,
        sql_type,
        accepts,
        "Decimal",
        coerce=coerce,
        coerce_operand=_operand(_decimal, "Decimal"),
    )


def _wrong_type(description: str) -> Callable[[Any], Any]:
    def coerce(value: Any) -> Any:
        raise InvalidValue(description, wrong_type=True)

    return coerce


def _operand(accepts: Callable[[Any], bool], description: str) -> Callable[[Any], Any]:
    def coerce(value: Any) -> Any:
        if not accepts(value):
            raise InvalidValue(description, wrong_type=True)
        return value

    return coerce


# -- dates and times -----------------------------------------------------------------


def _aware_datetime(value: Any) -> bool:
    return isinstance(value, dt.datetime) and value.tzinfo is not None


# The local zone of each wall-clock minute already converted (see _datetime_coerce),
# keyed by the first 6 bytes of the datetime's pickle state: year to minute, and
# the fold bit.
_LOCAL_OFFSETS: dict[bytes, dt.tzinfo] = {}


def _datetime_coerce(value: Any) -> Any:
    if not isinstance(value, dt.datetime):
        raise InvalidValue("datetime", wrong_type=True)
    # timestamptz stores an instant: a naive datetime is read as local time
    # (what datetime.now() returns), the rule of datetime.astimezone().
    # astimezone() asks the C library each time; offsets change only on whole
    # minutes, so the zone of a minute is kept and reused: with pickle's own
    # constructor, datetime(state, tzinfo), this costs a quarter of astimezone()
    # (it matters for `default_factory=datetime.now`). Ambiguous times
    # (fold=1) and times in a gap always take the exact path. (A process that
    # changes its time zone at run time, time.tzset(), should clear _LOCAL_OFFSETS.)
    # Protocol 4: the state keeps the fold bit (protocol 2 drops it).
    state: bytes = value.__reduce_ex__(4)[1][0]  # type: ignore[assignment]
    zone = _LOCAL_OFFSETS.get(state[:6])
    if zone is not None:
        return dt.datetime(state, zone)  # type: ignore[arg-type, call-arg]
    try:
        aware = value.astimezone()
    except (OverflowError, ValueError, OSError):
        raise InvalidValue("is a naive datetime that has no local-time instant") from None
    if value.fold == 0 and value.year >= 1970 and aware.replace(tzinfo=None) == value:
        if len(_LOCAL_OFFSETS) >= 4096:
            _LOCAL_OFFSETS.clear()
        _LOCAL_OFFSETS[state[:6]] = aware.tzinfo  # type: ignore[assignment]
    return aware


def _date_only(value: Any) -> bool:
    return isinstance(value, dt.date) and not isinstance(value, dt.datetime)


def _naive_time(value: Any) -> bool:
    return isinstance(value, dt.time) and value.tzinfo is None


def _time_coerce(value: Any) -> Any:
    if not isinstance(value, dt.time):
        raise InvalidValue("time", wrong_type=True)
    raise InvalidValue("has a time zone: a time column stores none (pass a naive time)")


# -- JSON ----------------------------------------------------------------------------

_JSON_SCALARS = (str, int, float, bool, type(None))


def json_problem(value: Any) -> str | None:
    """Why ``value`` cannot be stored as jsonb, or None when it can."""
    try:
        return _json_walk(value, set())
    except RecursionError:
        return "is not JSON-serialisable: it is nested too deeply"


def _json_walk(value: Any, path: set[int]) -> str | None:
    if isinstance(value, str):
        if "\x00" in value:
            return "holds a NUL character (jsonb cannot store \\u0000)"
        if not value.isascii() and _SURROGATE.search(value) is not None:
            return "holds a lone surrogate (not encodable as UTF-8)"
        return None
    if isinstance(value, float):
        if math.isfinite(value):
            return None
        return "holds NaN or Infinity, which JSON cannot represent"
    if isinstance(value, _JSON_SCALARS):
        return None
    if isinstance(value, dict | list | tuple):
        if id(value) in path:
            return "is not JSON-serialisable: it contains itself"
        path.add(id(value))
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, _JSON_SCALARS):
                    return f"is not JSON-serialisable: it has a {type(key).__name__} key"
                problem = _json_walk(key, path) or _json_walk(item, path)
                if problem:
                    return problem
        else:
            for item in value:
                problem = _json_walk(item, path)
                if problem:
                    return problem
        path.discard(id(value))
        return None
    return f"is not JSON-serialisable: it holds a {type(value).__name__}"


def _json_accepts(value: Any) -> bool:
    return isinstance(value, dict | list) and json_problem(value) is None


def _json_coerce(value: Any) -> Any:
    if not isinstance(value, dict | list):
        raise InvalidValue("dict or list (JSON)", wrong_type=True)
    problem = json_problem(value)
    if problem:
        raise InvalidValue(problem)
    return value


def _simple(python_type: type, sql_type: str, description: str) -> ColumnType:
    def accepts(value: Any) -> bool:
        return isinstance(value, python_type)

    return ColumnType(python_type, sql_type, accepts, description, coerce=_wrong_type(description))


def column_type_for(python_type: type, sql_type: str | None = None) -> ColumnType | None:
    """The ColumnType of a Python type, its checks fitted to ``sql_type`` when one is chosen.

    None for an unsupported Python type.
    """
    default = _SQL_TYPES.get(python_type)
    if default is None:
        return None
    sql_type = sql_type or default
    if python_type is int:
        return _int_type(sql_type)
    if python_type is str:
        return _str_type(sql_type)
    if python_type is float:
        return _float_type(sql_type)
    if python_type is bool:
        return _simple(bool, sql_type, "bool")
    if python_type is Decimal:
        return _decimal_type(sql_type)
    if python_type is dt.datetime:
        return ColumnType(
            dt.datetime,
            sql_type,
            _aware_datetime,
            "datetime",
            coerce=_datetime_coerce,
        )
    if python_type is dt.date:
        return ColumnType(dt.date, sql_type, _date_only, "date", coerce=_wrong_type("date"))
    if python_type is dt.time:
        return ColumnType(dt.time, sql_type, _naive_time, "time", coerce=_time_coerce)
    if python_type is dt.timedelta:
        return _simple(dt.timedelta, sql_type, "timedelta")
    if python_type is uuid.UUID:
        return _simple(uuid.UUID, sql_type, "UUID")
    if python_type is bytes:
        return ColumnType(
            bytes,
            sql_type,
            lambda v: isinstance(v, bytes | bytearray | memoryview),
            "bytes",
            coerce=_wrong_type("bytes"),
        )
    # dict / list: jsonb
    return ColumnType(
        python_type, sql_type, _json_accepts, "dict or list (JSON)", Jsonb, coerce=_json_coerce
    )


_SQL_TYPES: dict[type, str] = {
    int: "bigint",
    str: "text",
    bool: "boolean",
    float: "double precision",
    Decimal: "numeric",
    dt.datetime: "timestamptz",
    dt.date: "date",
    dt.time: "time",
    dt.timedelta: "interval",
    uuid.UUID: "uuid",
    bytes: "bytea",
    dict: "jsonb",
    list: "jsonb",
}
_TYPES: dict[type, ColumnType] = {t: c for t in _SQL_TYPES if (c := column_type_for(t)) is not None}


def resolve_annotation(annotation: Any, owner: str, field: str) -> tuple[ColumnType, bool]:
    """Map an evaluated annotation to (column type, nullable-by-annotation).

    ``X | None`` and ``Optional[X]`` are nullable; ``dict[str, Any]`` and
    ``list[int]`` are stored as jsonb.
    """
    nullable = False
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        members = [a for a in typing.get_args(annotation) if a is not type(None)]
        nullable = len(members) < len(typing.get_args(annotation))
        if len(members) != 1:
            raise ModelDefinitionError(
                f"{owner}.{field}: a column has one type (optionally `| None`), got {annotation!r}"
            )
        annotation = members[0]
        origin = typing.get_origin(annotation)
    if origin is not None:
        annotation = origin  # dict[str, Any] -> dict, list[int] -> list
    column_type = _TYPES.get(annotation)
    if column_type is None:
        names = ", ".join(sorted(t.__name__ for t in _TYPES))
        raise ModelDefinitionError(
            f"{owner}.{field}: unsupported column type {annotation!r} (supported: {names})"
        )
    return column_type, nullable

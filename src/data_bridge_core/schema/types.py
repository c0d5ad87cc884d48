"""Python type -> PostgreSQL type, and value checks for each column type."""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
import struct
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
from data_bridge_core.schema.inet_text import address_text


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
    # How the column is read back, around its reference ("abbrev({})" for an inet
    # held as str): the text the column type prints, not psycopg's own Python type.
    read_sql: str | None = None
    # For a statement of the user's own (from_sql), which reads the column without
    # ``read_sql``: psycopg's value for the column made into what ``read_sql`` reads.
    from_loaded: Callable[[Any], Any] | None = None
    # For every read (a SELECT, RETURNING, from_sql): psycopg's value made into the
    # field's Python type, or `InvalidValue` for one it cannot be. None (nearly every
    # type): psycopg's value is the field's, and reads pay nothing. An int field over
    # numeric is the one user: psycopg loads a Decimal.
    load: Callable[[Any], Any] | None = None
    # The common accepted case, for the generated constructors (schema/constructor.py):
    # ("text",) a plain str, ("int", low, high) an int in range, ("timestamptz",),
    # ("naive",) a datetime, ("exact", T) any value of class T. None: call ``accepts``.
    # Whatever the inline test does not take still goes through ``accepts``/``coerce``.
    fast: tuple[Any, ...] | None = None


def exact_int(value: int) -> int:
    """The plain ``int`` of an int (or int subclass) value, for SQL text.

    ``int.__int__`` is called on the class itself, so a subclass's own
    ``__format__``/``__str__``/``__int__`` never decide what is written.
    """
    return int.__int__(value)


COUNT_MAX = 2**63 - 1  # LIMIT and OFFSET are bigint


def count_problem(value: object, maximum: int = COUNT_MAX) -> str | None:
    """Why ``value`` is not a count from 0 to ``maximum`` (never naming the value), or None."""
    if not isinstance(value, int) or isinstance(value, bool):
        return f"takes an int from 0 to {maximum}, got {type(value).__name__}"
    if not 0 <= value <= maximum:
        return f"takes an int from 0 to {maximum}; this one is out of range"
    return None


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


# -- inet / cidr held as str -----------------------------------------------------------


def _inet_type(sql_type: str, network: bool) -> ColumnType:
    """inet or cidr held as str: the text PostgreSQL prints, checked with ipaddress.

    A value is converted on entry to that text (``10.0.0.1/32`` becomes
    ``10.0.0.1``), so the object shows what a read gives back; text Python's
    ipaddress cannot read (PostgreSQL's ``10.1/16`` shorthand, a zone index) is
    refused before SQL.
    """
    problem = (
        "is not a network address with its host bits zero (cidr)"
        if network
        else "is not an IP address with an optional /prefix (inet)"
    )

    def accepts(value: Any) -> bool:
        return isinstance(value, str) and address_text(value, network) == value

    def coerce(value: Any) -> Any:
        _str_coerce(value)
        text = address_text(value, network)
        if text is None:
            raise InvalidValue(problem)
        return text

    return ColumnType(
        str,
        sql_type,
        accepts,
        "str",
        coerce=coerce,
        read_sql="{}::text" if network else "abbrev({})",
        from_loaded=lambda loaded: _loaded_address_text(loaded, network),
    )


def _loaded_address_text(loaded: Any, network: bool) -> Any:
    """An inet/cidr psycopg loaded as an ipaddress object, as the text PostgreSQL prints."""
    if loaded is None or isinstance(loaded, str):
        return loaded  # already text (the statement wrote abbrev(...) itself)
    return address_text(str(loaded), network)


def _str_type(sql_type: str) -> ColumnType:
    kind = sql_type.strip().lower()
    if kind in ("inet", "cidr"):
        return _inet_type(sql_type, network=kind == "cidr")
    match = _LENGTH.match(sql_type.lower())
    if match is None:
        return ColumnType(str, sql_type, _str_accepts, "str", coerce=_str_coerce, fast=("text",))
    limit = int(match.group(1))
    # char(n) pads with spaces and gives the padded text back: the object holds it padded.
    padded = "varying" not in kind and not kind.startswith("varchar")

    def accepts(value: Any) -> bool:
        if not isinstance(value, str):
            return False
        size = len(value)
        return (size == limit if padded else size <= limit) and _clean_str(value)

    def coerce(value: Any) -> Any:
        _str_coerce(value)
        if len(value) > limit:
            raise InvalidValue(f"is longer than the {limit} characters of {sql_type}")
        return value.ljust(limit) if padded else value

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


_INT8_MIN, _INT8_MAX = -(2**63), 2**63 - 1
_POWERS_OF_TEN: dict[int, int] = {}


def int_text_problem(value: int) -> str | None:
    """Why psycopg cannot send ``value`` (an int past bigint goes as numeric text), or None.

    Python refuses to write an int of more than ``sys.get_int_max_str_digits()``
    digits as text (a raw ValueError at send time), and PostgreSQL's numeric
    holds at most 131072 digits.
    """
    if _INT8_MIN <= value <= _INT8_MAX:
        return None  # sent as a binary bigint
    limit = sys.get_int_max_str_digits()
    if limit:
        bound = _POWERS_OF_TEN.get(limit)
        if bound is None:
            bound = _POWERS_OF_TEN[limit] = 10**limit
        if abs(value) >= bound:
            return (
                f"is an int of more than {limit} digits, which Python will not write as "
                "text (sys.set_int_max_str_digits)"
            )
    if value.bit_length() > _NUMERIC_INT_BITS:
        return _NUMERIC_PROBLEM
    return None


def _int_operand(value: Any) -> Any:
    """An int to compare with: past bigint it goes as an exact Decimal (psycopg would
    write the int as text, which Python refuses past 4300 digits)."""
    if not _is_int(value):
        raise InvalidValue("int", wrong_type=True)
    if _INT8_MIN <= value <= _INT8_MAX:
        return value
    if value.bit_length() > _NUMERIC_INT_BITS:
        raise InvalidValue(_NUMERIC_PROBLEM)
    return Decimal(value)


_NOT_AN_INTEGER = (
    "holds a stored value that is not an integer (the int field cannot show it: "
    "declare the field Decimal)"
)


def _loaded_int(value: Any) -> Any:
    """An int field's value as read: a Decimal (numeric) made the exact int it equals
    (a float too, from a column_type such as double precision).

    A fraction, NaN or ±Infinity is refused, never truncated. Any other value
    (None, or an int from a type psycopg loads as int) is the field's already.
    """
    if value.__class__ is Decimal:
        if value.is_finite():
            whole = int(value)
            if whole == value:  # exact: int and Decimal compare without rounding
                return whole
        raise InvalidValue(_NOT_AN_INTEGER)
    if value.__class__ is float:
        if value.is_integer():
            return int(value)
        raise InvalidValue(_NOT_AN_INTEGER)
    return value


def mapping_problem(python_type: type, sql_type: str) -> str | None:
    """Why a field of ``python_type`` cannot map to a column of ``sql_type``, or None."""
    if python_type is int:
        match = _PRECISION.match(sql_type.lower())
        if match is not None and int(match.group(2) or 0) > 0:
            return (
                f"an int field over {sql_type} (a scale above 0) would read back "
                "fractions; declare the field Decimal, or the column with scale 0"
            )
    return None


def _int_type(sql_type: str) -> ColumnType:
    bits = _INT_RANGES.get(sql_type.strip().lower())
    if bits is None:  # numeric or another type chosen by the model: PostgreSQL checks

        def sendable(value: Any) -> bool:
            return _is_int(value) and int_text_problem(value) is None

        def refuse(value: Any) -> Any:
            # A stored value stays an int (the object shows what a read gives back):
            # one psycopg cannot send is refused, not turned into a Decimal.
            if not _is_int(value):
                raise InvalidValue("int", wrong_type=True)
            raise InvalidValue(int_text_problem(value) or _NUMERIC_PROBLEM)

        return ColumnType(
            int,
            sql_type,
            sendable,
            "int",
            coerce=refuse,
            coerce_operand=_int_operand,
            load=_loaded_int,
        )
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    name = {16: "smallint", 32: "integer", 64: "bigint"}[bits]

    def accepts(value: Any) -> bool:
        # A plain int (the usual case) passes with one identity compare.
        if value.__class__ is not int and (not isinstance(value, int) or isinstance(value, bool)):
            return False
        return low <= value <= high  # type: ignore[no-any-return]

    def coerce(value: Any) -> Any:
        if not _is_int(value):
            raise InvalidValue("int", wrong_type=True)
        raise InvalidValue(f"is out of range for {name} ({low}..{high})")

    return ColumnType(
        int,
        sql_type,
        accepts,
        "int",
        coerce=coerce,
        coerce_operand=_int_operand,
        fast=("int", low, high),
    )


_REAL_TYPES = frozenset({"real", "float4"})
_PACK_REAL = struct.Struct("f")


def _as_real(value: float) -> float:
    """``value`` rounded to real (float4) as PostgreSQL's cast rounds it.

    A finite value past real's range gives ±inf (or OverflowError, depending
    on the Python version), a non-zero one that underflows 0.0: PostgreSQL
    refuses both.
    """
    return float(_PACK_REAL.unpack(_PACK_REAL.pack(value))[0])


def _float_type(sql_type: str) -> ColumnType:
    """double precision, or real: the object holds the float the column stores.

    An int becomes the float PostgreSQL's cast makes of it (2**53 + 1 becomes
    9007199254740992.0), and a float for a real column is rounded to real's
    precision at once, so what the object shows after a flush is what a read
    gives back. NaN, ±Infinity and -0.0 are stored as they are.
    """
    real = sql_type.strip().lower() in _REAL_TYPES
    name = "real" if real else "double precision"
    out_of_range = f"is out of range for {name}"

    def to_double(value: Any) -> float:
        if not _number(value):
            raise InvalidValue("float", wrong_type=True)
        try:
            return float(value)
        except OverflowError:
            raise InvalidValue(out_of_range) from None

    if not real:

        def accepts(value: Any) -> bool:
            return isinstance(value, float)

        def coerce(value: Any) -> Any:
            return to_double(value)

    else:

        def accepts(value: Any) -> bool:
            if not isinstance(value, float):
                return False
            try:
                # A NaN takes coerce(): real keeps fewer payload bits than double.
                return _as_real(value) == value
            except OverflowError:
                return False

        def coerce(value: Any) -> Any:
            number = to_double(value)
            try:
                rounded = _as_real(number)
            except OverflowError:
                rounded = math.inf
            if math.isinf(rounded) and not math.isinf(number):
                raise InvalidValue(out_of_range)
            if rounded == 0.0 and number != 0.0:
                raise InvalidValue("is too close to zero for real (it would underflow)")
            return rounded

    def operand(value: Any) -> Any:
        # Compared, not stored: an int stays exact, but must have a double value.
        if _is_int(value):
            to_double(value)
            return value
        if not isinstance(value, float):
            raise InvalidValue("float", wrong_type=True)
        return value

    return ColumnType(
        float,
        sql_type,
        accepts,
        "float",
        coerce=coerce,
        coerce_operand=operand,
        fast=None if real else ("exact", float),
    )


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


_PRECISION = re.compile(r"^\s*(?:numeric|decimal)\s*\(\s*(\d+)\s*(?:,\s*(-?\d+)\s*)?\)\s*$")
# PostgreSQL's numeric: up to 131072 digits before the point, 16383 after.
_NUMERIC_INT_BITS = 435_000  # 10**131072 has about 435411 bits
_NUMERIC_PROBLEM = "is out of range for numeric (131072 digits before the point, 16383 after)"


# The one NaN PostgreSQL's numeric has: quiet, unsigned, no payload.
_PLAIN_NAN = Decimal("NaN").as_tuple()
_NAN_PROBLEM = (
    "is a signed, signaling or payload NaN (PostgreSQL's numeric has one NaN: Decimal('NaN'))"
)
# Wide enough for any numeric's digits: quantize() must not round on its own.
_EXACT = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)


def arithmetic_value(value: Any, beside_float: bool) -> Any:
    """A number written beside columns in arithmetic (or compared with it), as sent.

    ``beside_float``: a float column takes part, so PostgreSQL computes in
    double precision and an int must have a double value. Raises `InvalidValue`.
    """
    if isinstance(value, Decimal):
        if value.is_nan() and value.as_tuple() != _PLAIN_NAN:
            raise InvalidValue(_NAN_PROBLEM)
        return value
    if _is_int(value) and not _INT8_MIN <= value <= _INT8_MAX:
        if beside_float:
            try:
                float(value)
            except OverflowError:
                raise InvalidValue("is out of range for double precision") from None
        return _int_operand(value)
    return value


def _decimal_type(sql_type: str) -> ColumnType:
    match = _PRECISION.match(sql_type.lower())
    if match is None:

        def problem_of(value: Decimal) -> str | None:
            if not value.is_finite():
                # NaN and ±Infinity are numeric values; only NaN's plain form exists.
                return _NAN_PROBLEM if value.is_nan() and value.as_tuple() != _PLAIN_NAN else None
            exponent = value.as_tuple().exponent
            if value.adjusted() < 131072 and isinstance(exponent, int) and exponent >= -16383:
                return None
            return _NUMERIC_PROBLEM

    else:
        precision, scale = int(match.group(1)), int(match.group(2) or 0)
        # The value must round (half away from zero) to less than 10**(precision - scale).
        bound = Decimal(10) ** (precision - scale) - Decimal(5).scaleb(-scale - 1)
        quantum = Decimal(1).scaleb(-scale)
        out_of_range = (
            f"is out of range for {sql_type} (it must round to less than 10^{precision - scale})"
        )
        too_precise = (
            f"has digits past the scale of {sql_type} (PostgreSQL would round it; round it first)"
        )

        def problem_of(value: Decimal) -> str | None:
            if value.is_nan():
                return _NAN_PROBLEM if value.as_tuple() != _PLAIN_NAN else None
            if not abs(value) < bound:
                return out_of_range
            exponent = value.as_tuple().exponent
            if isinstance(exponent, int) and exponent < -scale:
                if value.quantize(quantum, context=_EXACT) != value:
                    return too_precise
            elif scale < 0 and value.quantize(quantum, context=_EXACT) != value:
                return too_precise
            return None

    def accepts(value: Any) -> bool:
        # A subclass takes coerce(): psycopg writes a Decimal as its str(), which a
        # subclass may define otherwise (the bulk INSERT sends the digits instead).
        return value.__class__ is Decimal and problem_of(value) is None

    def coerce(value: Any) -> Any:
        # An int becomes the Decimal the column gives back (exact, whatever its length),
        # and so does a Decimal subclass (Decimal() copies its digits, not its str()).
        if _is_int(value) or isinstance(value, Decimal):
            value = Decimal(value)
        else:
            raise InvalidValue("Decimal", wrong_type=True)
        problem = problem_of(value)
        if problem:
            raise InvalidValue(problem)
        return value

    def operand(value: Any) -> Any:
        if _is_int(value):
            return _int_operand(value)
        if not isinstance(value, Decimal):
            raise InvalidValue("Decimal", wrong_type=True)
        if value.is_nan() and value.as_tuple() != _PLAIN_NAN:
            raise InvalidValue(_NAN_PROBLEM)
        return Decimal(value)  # a subclass as its digits (see accepts)

    return ColumnType(Decimal, sql_type, accepts, "Decimal", coerce=coerce, coerce_operand=operand)


def _wrong_type(description: str) -> Callable[[Any], Any]:
    def coerce(value: Any) -> Any:
        raise InvalidValue(description, wrong_type=True)

    return coerce


# -- dates and times -----------------------------------------------------------------


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


_UTC = dt.UTC
_TIMESTAMPTZ_RANGE = (
    "is outside the years 1 to 9999 once converted to UTC (PostgreSQL would store it, "
    "but no read could give it back as a datetime)"
)


def _in_utc_range(value: dt.datetime) -> bool:
    """True when the instant of an aware datetime is a datetime in UTC too.

    Only years 1 and 9999 can leave the range (offsets are under a day), so
    every other value costs one compare.
    """
    if 1 < value.year < 9999:
        return True
    try:
        value.astimezone(_UTC)
    except OverflowError:
        return False
    return True


def _timestamptz_accepts(value: Any) -> bool:
    # The year compare of _in_utc_range inlined: this runs per object built (W4).
    return (
        isinstance(value, dt.datetime)
        and value.tzinfo is not None
        and (1 < value.year < 9999 or _in_utc_range(value))
    )


def _timestamptz_coerce(value: Any) -> Any:
    aware = value if isinstance(value, dt.datetime) and value.tzinfo else _datetime_coerce(value)
    if not _in_utc_range(aware):
        raise InvalidValue(_TIMESTAMPTZ_RANGE)
    return aware


def _timestamptz_operand(value: Any) -> Any:
    # Compared, not stored: any instant PostgreSQL can parse is a fine operand.
    return value if isinstance(value, dt.datetime) and value.tzinfo else _datetime_coerce(value)


_NAIVE_TYPES = frozenset({"timestamp", "timestamp without time zone"})


def _naive_datetime(value: Any) -> bool:
    return isinstance(value, dt.datetime) and value.tzinfo is None


def _naive_datetime_coerce(value: Any) -> Any:
    if not isinstance(value, dt.datetime):
        raise InvalidValue("datetime", wrong_type=True)
    raise InvalidValue(
        "has a time zone: a timestamp column stores wall-clock time "
        "(pass a naive datetime, or declare the column timestamptz)"
    )


def _date_only(value: Any) -> bool:
    return isinstance(value, dt.date) and not isinstance(value, dt.datetime)


def _naive_time(value: Any) -> bool:
    return isinstance(value, dt.time) and value.tzinfo is None


def _time_coerce(value: Any) -> Any:
    if not isinstance(value, dt.time):
        raise InvalidValue("time", wrong_type=True)
    raise InvalidValue("has a time zone: a time column stores none (pass a naive time)")


# -- JSON ----------------------------------------------------------------------------

# jsonb keeps numbers as numeric: a float of 1e16 or more (repr "1e+16") comes
# back without a fraction, so json.loads makes it an int. Below, repr keeps a
# ".0" or an exponent under 16, and the float comes back the same.
_JSON_FLOAT_LIMIT = 1e16


def json_problem(value: Any) -> str | None:
    """Why ``value`` cannot be stored as jsonb and read back equal, or None when it can."""
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
        if not math.isfinite(value):
            return "holds NaN or Infinity, which JSON cannot represent"
        if abs(value) >= _JSON_FLOAT_LIMIT:
            return (
                "holds a float of 1e16 or more, which jsonb gives back as an int "
                "(store it as a str, or as an int)"
            )
        return None
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        if int_text_problem(value) is None:
            return None
        return (
            "holds an int too long for Python to write as text and read back "
            "(sys.get_int_max_str_digits)"
        )
    if isinstance(value, dict | list):
        if id(value) in path:
            return "is not JSON-serialisable: it contains itself"
        path.add(id(value))
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    return (
                        f"has a key of type {type(key).__name__}: JSON object keys are str, and "
                        "json.dumps would turn it into one (it would not come back as written)"
                    )
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
    if isinstance(value, tuple):
        return "holds a tuple, which JSON gives back as a list (pass a list)"
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


def _bytes_accepts(value: Any) -> bool:
    return value.__class__ is bytes


def _bytes_coerce(value: Any) -> Any:
    # A bytearray or memoryview is copied into bytes on entry: the type a read gives
    # back, and a change to the caller's buffer after the write no longer changes
    # what the object shows (unseen by change tracking, and not what was stored).
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise InvalidValue("bytes", wrong_type=True)


def _simple(python_type: type, sql_type: str, description: str) -> ColumnType:
    def accepts(value: Any) -> bool:
        return isinstance(value, python_type)

    return ColumnType(
        python_type,
        sql_type,
        accepts,
        description,
        coerce=_wrong_type(description),
        fast=("exact", python_type),
    )


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
        if sql_type.strip().lower() in _NAIVE_TYPES:
            return ColumnType(
                dt.datetime,
                sql_type,
                _naive_datetime,
                "datetime",
                coerce=_naive_datetime_coerce,
                fast=("naive",),
            )
        return ColumnType(
            dt.datetime,
            sql_type,
            _timestamptz_accepts,
            "datetime",
            coerce=_timestamptz_coerce,
            coerce_operand=_timestamptz_operand,
            fast=("timestamptz",),
        )
    if python_type is dt.date:
        return ColumnType(
            dt.date,
            sql_type,
            _date_only,
            "date",
            coerce=_wrong_type("date"),
            fast=("exact", dt.date),
        )
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
            _bytes_accepts,
            "bytes",
            coerce=_bytes_coerce,
            fast=("exact", bytes),
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

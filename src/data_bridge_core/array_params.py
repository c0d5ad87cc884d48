"""The column arrays of a bulk INSERT, in PostgreSQL's binary array format.

The flush sends 1,000 new rows as one ``INSERT ... SELECT FROM unnest(%b::text[],
...)``. psycopg dumps a list parameter element by element in Python (about
2,500 instructions per value); a column of one of the types below is
encoded here instead with a few C-level passes over the whole column
(``map``, ``struct``, ``bytes.join``), which is what the bulk INSERT costs
most on the client.

Each value class declares its array type (the statement casts to the same
type) and encodes exactly what psycopg's binary dumper of the element type
sends: text in the connection's encoding, integers and floats big-endian, a
timestamp as microseconds since 2000-01-01, a date as days since then, a
uuid as its 16 bytes. A column holding None (or anything the C-level pass
refuses) is encoded value by value instead; a value no element type takes
raises ``psycopg.DataError`` before the statement is sent.
"""

from __future__ import annotations

import datetime as dt
import struct
import uuid
from itertools import repeat
from operator import attrgetter, floordiv, sub
from typing import Any, ClassVar

import psycopg
from psycopg.abc import AdaptContext
from psycopg.adapt import Dumper
from psycopg.pq import Format

_I32 = struct.Struct(">i")
_HEAD = struct.Struct(">iiiii")  # dimensions, has nulls, element oid, length, lower bound
_NULL = _I32.pack(-1)
_EPOCH_TZ = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
_EPOCH = dt.datetime(2000, 1, 1)
_EPOCH_DATE = dt.date(2000, 1, 1)
_MICROSECOND = dt.timedelta(microseconds=1)
# Failures of the C-level pass that the value-by-value pass explains (None, a bad value).
_REFUSED = (TypeError, ValueError, OverflowError, AttributeError, IndexError, struct.error)
# Struct objects of "length, value" pairs, by (value code, count): a flush reuses them.
_PAIRS: dict[tuple[str, int], struct.Struct] = {}
# The 4-byte length before an element of fewer than 128 bytes, as ASCII text.
_SHORT_LENGTHS = [_I32.pack(n).decode("ascii") for n in range(128)]


def _pairs(code: str, count: int) -> struct.Struct:
    key = (code, count)
    packer = _PAIRS.get(key)
    if packer is None:
        if len(_PAIRS) >= 64:
            _PAIRS.clear()
        packer = _PAIRS[key] = struct.Struct(">" + f"i{code}" * count)
    return packer


def _interleave(first: Any, second: list[Any]) -> list[Any]:
    """[first[0], second[0], first[1], ...]: two slice assignments, no step per item."""
    both: list[Any] = [None] * (2 * len(second))
    both[::2] = first
    both[1::2] = second
    return both


class ColumnArray:
    """The values of one column, sent as one binary array parameter."""

    __slots__ = ("values",)

    oid: ClassVar[int]  # the array type
    element_oid: ClassVar[int]

    def __init__(self, values: list[Any]) -> None:
        self.values = values

    def encode(self, encoding: str) -> bytes:
        values = self.values
        try:
            body = self.encode_all(values, encoding)
        except _REFUSED:
            return self._encode_each(encoding)
        return _HEAD.pack(1, 0, self.element_oid, len(values), 1) + body

    def encode_all(self, values: list[Any], encoding: str) -> bytes:
        """The elements (length, then data, each), in C-level passes; raises for a None."""
        raise NotImplementedError

    def encode_one(self, value: Any, encoding: str) -> bytes:
        """One element's data."""
        raise NotImplementedError

    def _encode_each(self, encoding: str) -> bytes:
        parts: list[bytes] = []
        nulls = 0
        for value in self.values:
            if value is None:
                parts.append(_NULL)
                nulls = 1
                continue
            try:
                data = self.encode_one(value, encoding)
            except _REFUSED as exc:
                raise psycopg.DataError(
                    f"cannot send a {type(value).__name__} in a {type(self).__name__}: {exc}"
                ) from None
            parts.append(_I32.pack(len(data)))
            parts.append(data)
        return _HEAD.pack(1, nulls, self.element_oid, len(self.values), 1) + b"".join(parts)


class _Fixed(ColumnArray):
    """Elements of one struct code (a fixed size)."""

    __slots__ = ()
    code: ClassVar[str]
    size: ClassVar[int]

    def items(self, values: list[Any]) -> list[Any]:
        """What the struct code packs, for each value."""
        return values

    def encode_all(self, values: list[Any], encoding: str) -> bytes:
        count = len(values)
        return _pairs(self.code, count).pack(
            *_interleave(repeat(self.size, count), self.items(values))
        )

    def encode_one(self, value: Any, encoding: str) -> bytes:
        return struct.pack(">" + self.code, *self.items([value]))


class Int8Array(_Fixed):
    __slots__ = ()
    oid, element_oid, code, size = 1016, 20, "q", 8


class Int4Array(_Fixed):
    __slots__ = ()
    oid, element_oid, code, size = 1007, 23, "i", 4


class Int2Array(_Fixed):
    __slots__ = ()
    oid, element_oid, code, size = 1005, 21, "h", 2


class Float8Array(_Fixed):
    __slots__ = ()
    oid, element_oid, code, size = 1022, 701, "d", 8


def _once_each(values: list[Any], convert: Any) -> list[Any]:
    """``list(convert(values))``, converting each object once when most are the same
    object (a batch built with one ``now``): a conversion costs more than a lookup.

    By identity, not equality: two datetimes of one zone that differ only in
    ``fold`` are equal, but are different instants.
    """
    by_id = dict(zip(map(id, values), values, strict=True))
    if len(by_id) * 4 > len(values):
        return list(convert(values))
    converted = dict(zip(by_id, convert(list(by_id.values())), strict=True))
    return list(map(converted.__getitem__, map(id, values)))


class TimestamptzArray(_Fixed):
    __slots__ = ()
    oid, element_oid, code, size = 1185, 1184, "q", 8
    epoch: ClassVar[dt.datetime] = _EPOCH_TZ

    def _micros(self, values: list[Any]) -> Any:
        # Microseconds since the epoch: timedelta // timedelta, in C.
        return map(floordiv, map(sub, values, repeat(self.epoch)), repeat(_MICROSECOND))

    def items(self, values: list[Any]) -> list[Any]:
        return _once_each(values, self._micros)


class TimestampArray(TimestamptzArray):
    __slots__ = ()
    oid, element_oid = 1115, 1114
    epoch = _EPOCH


_days = attrgetter("days")


class DateArray(_Fixed):
    __slots__ = ()
    oid, element_oid, code, size = 1182, 1082, "i", 4

    @staticmethod
    def _days(values: list[Any]) -> Any:
        return map(_days, map(sub, values, repeat(_EPOCH_DATE)))

    def items(self, values: list[Any]) -> list[Any]:
        return _once_each(values, self._days)


_BOOL_ELEMENTS = {True: b"\x00\x00\x00\x01\x01", False: b"\x00\x00\x00\x01\x00"}


class BoolArray(ColumnArray):
    __slots__ = ()
    oid, element_oid = 1000, 16

    def encode_all(self, values: list[Any], encoding: str) -> bytes:
        if not all(map(isinstance, values, repeat(bool))):
            raise TypeError("not a bool")  # 1 and 0 would be found in the table below
        return b"".join(map(_BOOL_ELEMENTS.__getitem__, values))

    def encode_one(self, value: Any, encoding: str) -> bytes:
        if not isinstance(value, bool):
            raise TypeError("not a bool")
        return b"\x01" if value else b"\x00"


class TextArray(ColumnArray):
    __slots__ = ()
    oid, element_oid = 1009, 25

    def encode_all(self, values: list[Any], encoding: str) -> bytes:
        try:
            # ASCII text of fewer than 128 characters (the usual case) is its own
            # encoding in every client encoding, and so are its lengths' 4 bytes:
            # the whole array is joined as text and encoded once.
            lengths = map(_SHORT_LENGTHS.__getitem__, map(str.__len__, values))
            return "".join(_interleave(lengths, values)).encode("ascii")
        except (IndexError, UnicodeEncodeError):
            pass
        encoded = list(map(str.encode, values, repeat(encoding)))
        return b"".join(_interleave(map(_I32.pack, map(len, encoded)), encoded))

    def encode_one(self, value: Any, encoding: str) -> bytes:
        return str.encode(value, encoding)


_uuid_bytes = attrgetter("bytes")
_SIXTEEN = _I32.pack(16)


class UuidArray(ColumnArray):
    __slots__ = ()
    oid, element_oid = 2951, 2950

    def encode_all(self, values: list[Any], encoding: str) -> bytes:
        if not all(map(isinstance, values, repeat(uuid.UUID))):
            raise TypeError("not a UUID")
        return b"".join(_interleave(repeat(_SIXTEEN, len(values)), list(map(_uuid_bytes, values))))

    def encode_one(self, value: Any, encoding: str) -> bytes:
        if not isinstance(value, uuid.UUID):
            raise TypeError("not a UUID")
        return value.bytes


class _ColumnArrayDumper(Dumper):
    format = Format.BINARY

    def __init__(self, cls: type, context: AdaptContext | None = None) -> None:
        super().__init__(cls, context)
        self.oid = cls.oid  # type: ignore[attr-defined]
        conn = self.connection
        # psycopg's own text dumpers encode in the connection's client encoding.
        self.encoding = conn.info.encoding if conn is not None else "utf-8"

    def dump(self, obj: ColumnArray) -> bytes:
        return obj.encode(self.encoding)


_TYPES: dict[tuple[type, str], type[ColumnArray]] = {}
for _python_type, _names, _array in (
    (int, ("bigint", "int8", "bigserial"), Int8Array),
    (int, ("integer", "int", "int4", "serial"), Int4Array),
    (int, ("smallint", "int2", "smallserial"), Int2Array),
    (bool, ("boolean", "bool"), BoolArray),
    (float, ("double precision", "float8"), Float8Array),
    (str, ("text",), TextArray),
    (dt.datetime, ("timestamptz", "timestamp with time zone"), TimestamptzArray),
    (dt.datetime, ("timestamp", "timestamp without time zone"), TimestampArray),
    (dt.date, ("date",), DateArray),
    (uuid.UUID, ("uuid",), UuidArray),
):
    for _name in _names:
        _TYPES[(_python_type, _name)] = _array
    psycopg.adapters.register_dumper(_array, _ColumnArrayDumper)


def array_class(python_type: type, sql_type: str) -> type[ColumnArray] | None:
    """The class sending a column of this type as an array, or None (psycopg's own)."""
    return _TYPES.get((python_type, " ".join(sql_type.lower().split())))

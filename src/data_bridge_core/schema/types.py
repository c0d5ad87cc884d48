"""Python type -> PostgreSQL type, and value checks for each column type."""

from __future__ import annotations

import datetime as dt
import types
import typing
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from psycopg.types.json import Jsonb

from data_bridge_core.errors import ModelDefinitionError


@dataclass(frozen=True, slots=True)
class ColumnType:
    """How one Python type is stored: its SQL type and the check for a value."""

    python_type: type
    sql_type: str
    accepts: Callable[[Any], bool]
    description: str
    # Wraps a Python value for psycopg when the default adaptation is not the right one.
    adapt: Callable[[Any], Any] | None = None


def _exact_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _decimal(value: Any) -> bool:
    return isinstance(value, Decimal | int) and not isinstance(value, bool)


def _date_only(value: Any) -> bool:
    return isinstance(value, dt.date) and not isinstance(value, dt.datetime)


def _json(value: Any) -> bool:
    return isinstance(value, dict | list)


_TYPES: dict[type, ColumnType] = {
    int: ColumnType(int, "bigint", _exact_int, "int"),
    str: ColumnType(str, "text", lambda v: isinstance(v, str), "str"),
    bool: ColumnType(bool, "boolean", lambda v: isinstance(v, bool), "bool"),
    float: ColumnType(float, "double precision", _number, "float"),
    Decimal: ColumnType(Decimal, "numeric", _decimal, "Decimal"),
    dt.datetime: ColumnType(
        dt.datetime, "timestamptz", lambda v: isinstance(v, dt.datetime), "datetime"
    ),
    dt.date: ColumnType(dt.date, "date", _date_only, "date"),
    dt.time: ColumnType(dt.time, "time", lambda v: isinstance(v, dt.time), "time"),
    dt.timedelta: ColumnType(
        dt.timedelta, "interval", lambda v: isinstance(v, dt.timedelta), "timedelta"
    ),
    uuid.UUID: ColumnType(uuid.UUID, "uuid", lambda v: isinstance(v, uuid.UUID), "UUID"),
    bytes: ColumnType(
        bytes, "bytea", lambda v: isinstance(v, bytes | bytearray | memoryview), "bytes"
    ),
    dict: ColumnType(dict, "jsonb", _json, "dict or list (JSON)", Jsonb),
    list: ColumnType(list, "jsonb", _json, "dict or list (JSON)", Jsonb),
}


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

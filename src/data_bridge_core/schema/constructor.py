"""The constructor of each model, generated once from its columns.

``User(name=..., age=...)`` runs once per new object, and a batch insert
builds thousands. The generic ``Table.__init__`` looks every keyword up in a
dict and calls the column type's ``accepts`` per value; the constructor made
here binds the keywords as parameters (in C) and writes each column's common
case inline: an exact ``int`` in the column's range, an exact ``str`` without
NUL that is ASCII, an aware ``datetime`` away from the year edges. Anything
else (None, a subclass, non-ASCII text, a value to normalise, a wrong type)
takes the column's full check, `ColumnInfo.check`, exactly as before: the
inline test only decides that a value is certainly accepted as given.
"""

from __future__ import annotations

import datetime as dt
import decimal
import uuid
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from data_bridge_core.errors import MissingFieldError, UnknownFieldError
from data_bridge_core.schema.column import MISSING, ColumnInfo
from data_bridge_core.state import STATE_KEY, InstanceState

if TYPE_CHECKING:
    from data_bridge_core.relationships import Relationship

# Marks a constructor this module made (or ``Table.__init__``, which stands in for
# one until the model is finalized): a subclass gets its own, never its parent's.
GENERATED = "_db_generated_init"

# Defaults of these types cannot change once built: checked once, then shared.
_IMMUTABLE = frozenset(
    {
        int,
        str,
        bool,
        float,
        type(None),
        decimal.Decimal,
        dt.date,
        dt.datetime,
        dt.time,
        dt.timedelta,
        uuid.UUID,
        bytes,
    }
)


def value_test(column: ColumnInfo, var: str, accepts: str) -> str:
    """A Python condition true when ``var`` needs the full check of ``column``.

    False only for a value the column's ``accepts`` takes as given; ``accepts``
    names the global holding that function, for types without an inline test.
    """
    fast = column.column_type.fast
    if fast is None:
        return f"{var} is None or not {accepts}({var})"
    kind = fast[0]
    if kind == "text":
        return f"{var}.__class__ is not _str or '\\x00' in {var} or not {var}.isascii()"
    if kind == "int":
        low, high = fast[1], fast[2]
        return f"{var}.__class__ is not _int or not {low} <= {var} <= {high}"
    if kind == "timestamptz":
        return (
            f"{var}.__class__ is not _datetime or {var}.tzinfo is None or not 1 < {var}.year < 9999"
        )
    if kind == "naive":
        return f"{var}.__class__ is not _datetime or {var}.tzinfo is not None"
    # ("exact", T): the column accepts T itself as given (subclasses take the full check).
    return f"{var}.__class__ is not {accepts}_type"


def _constant_default(column: ColumnInfo) -> tuple[bool, Any]:
    """(True, value) when the column's default can be checked once and shared."""
    if column.default_factory is not None or column.default is MISSING:
        return False, None
    default = column.default
    if type(default) not in _IMMUTABLE:
        return False, None
    try:
        checked = column.check(default)
    except Exception:
        return False, None  # refused at each construction, as the generic path does
    return checked is default, default


def build_constructor(
    model: type,
    columns: Iterable[ColumnInfo],
    relationships: dict[str, Relationship],
    required: Iterable[str],
    generic: Callable[..., None],
) -> Callable[..., None]:
    """The ``__init__`` of ``model`` (see the module docstring)."""
    cols = list(columns)
    required_names = set(required)
    namespace: dict[str, Any] = {
        "_model": model,
        "_M": MISSING,
        "_KEY": STATE_KEY,
        "_State": InstanceState,
        "_str": str,
        "_int": int,
        "_datetime": dt.datetime,
        "_relations": _relations_of(model, relationships),
        "_missing": _missing,
        "_delegate": _delegate,
        "_generic": generic,
        "_setattr": setattr,
    }
    # Column names are identifiers not starting with "_": every name of the code's
    # own starts with one, so no parameter can shadow it.
    params = ", ".join(f"{c.name}=_M" for c in cols)
    given = ", ".join(f"{c.name!r}: {c.name}" for c in cols)
    body = [
        "    if _self.__class__ is not _model:",
        "        # A subclass's instance: its own columns, through the generic path.",
        f"        return _delegate(_generic, _self, {{{given}}}, _extra)",
        "    _d = _self.__dict__",
        "    _d[_KEY] = _State(None, None, False)",
        "    if _extra:",
        "        _relations(_extra)",
    ]
    for i, column in enumerate(cols):
        name = column.name
        namespace[f"_check{i}"] = column.check
        namespace[f"_accepts{i}"] = column.column_type.accepts
        fast = column.column_type.fast
        if fast is not None and fast[0] == "exact":
            namespace[f"_accepts{i}_type"] = fast[1]
        body += [
            f"    if {name} is not _M:",
            f"        if {value_test(column, name, f'_accepts{i}')}:",
            f"            {name} = _check{i}({name})",
            f"        _d[{name!r}] = {name}",
        ]
    for i, column in enumerate(cols):
        name = column.name
        body.append(f"    if {name} is _M:")
        if not column.has_default:
            body.append(f"        _d[{name!r}] = None")
            continue
        constant, value = _constant_default(column)
        if constant:
            namespace[f"_default{i}"] = value
            body.append(f"        _d[{name!r}] = _default{i}")
            continue
        namespace[f"_make{i}"] = column.make_default
        body += [
            f"        {name} = _make{i}()",
            f"        if {value_test(column, name, f'_accepts{i}')}:",
            f"            {name} = _check{i}({name})",
            f"        _d[{name!r}] = {name}",
        ]
    needed = [c.name for c in cols if c.name in required_names]
    if needed:
        test = " or ".join(f"{n} is _M" for n in needed)
        pairs = ", ".join(f"({n!r}, {n})" for n in needed)
        body += [f"    if {test}:", f"        raise _missing(_model, ({pairs},))"]
    body += [
        "    if _extra:",
        "        for _name, _value in _extra.items():",
        "            _setattr(_self, _name, _value)",
    ]
    star = f"*, {params}, " if params else ""
    source = "\n".join([f"def __init__(_self, /, {star}**_extra):", *body])
    exec(compile(source, f"<{model.__name__}.__init__>", "exec"), namespace)
    init: Callable[..., None] = namespace["__init__"]
    init.__qualname__ = f"{model.__qualname__}.__init__"
    init.__code__ = init.__code__.replace(co_qualname=init.__qualname__)  # for tracebacks
    init.__module__ = model.__module__
    init.__doc__ = f"Build a new {model.__name__} (keyword arguments: its fields)."
    setattr(init, GENERATED, True)
    return init


def _relations_of(model: type, relationships: dict[str, Relationship]) -> Callable[..., None]:
    def check_names(extra: dict[str, Any]) -> None:
        for key in extra:
            if key not in relationships:
                raise UnknownFieldError(model, key, f"{model.__name__}()")

    return check_names


def _missing(model: type, pairs: tuple[tuple[str, Any], ...]) -> MissingFieldError:
    return MissingFieldError(model.__name__, [name for name, value in pairs if value is MISSING])


def _delegate(
    generic: Callable[..., None], obj: Any, given: dict[str, Any], extra: dict[str, Any]
) -> None:
    values = {name: value for name, value in given.items() if value is not MISSING}
    values.update(extra)
    generic(obj, **values)

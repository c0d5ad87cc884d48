"""Property: a row of every column type reads back as the object showed it, on every path.

test_value_properties.py checks one column type at a time through the
constructor, assignment, ``update()`` and ``upsert()``. Here one generated
row holds a value for every column type at once and is written through each
write path of the unit of work:

- ``add()`` + flush (a single-row INSERT),
- ``add_all()`` of several (the bulk ``INSERT ... SELECT FROM unnest(...)`` with
  binary column arrays, array_params.py), with an all-NULL row among them
  (the value-by-value encoding),
- assignment on a loaded object + flush (UPDATE),
- ``upsert()`` of a new key (insert) and of an existing one (conflict update),
- ``find(...).update(**values)`` (one UPDATE ... RETURNING),

and read back in a new session through ``get()``, ``refresh()``,
``find().to_list()``, ``from_sql()`` and a column selection (``select()``).
A result of 1,000 rows or more hydrates differently (hydration.py,
``COMPACT_FROM_ROWS``): a second property writes such a result in one bulk
INSERT and reads it back with ``find().to_list()`` and ``stream()``.

Every comparison is exact: the same type, and for floats the same bits
(-0.0 and NaN payloads included). Runs are reproducible (``derandomize=True``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import itertools
import struct
import uuid
from collections.abc import Callable, Coroutine, Iterator
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from data_bridge_core import Column, Engine, Session, Table, ValidationError, table_info
from scratch_schema import engine_on_loop

# The columns of `Wide`, and the SQL types they declare (None: the Python type's).
COLUMNS: dict[str, tuple[Any, str | None]] = {
    "text_": (str, None),
    "varchar_": (str, "varchar(5)"),
    "char_": (str, "char(3)"),
    "int2_": (int, "smallint"),
    "int4_": (int, "integer"),
    "int8_": (int, None),
    "real_": (float, "real"),
    "double_": (float, None),
    "numeric_": (Decimal, None),
    "numeric62_": (Decimal, "numeric(6,2)"),
    "bool_": (bool, None),
    "date_": (dt.date, None),
    "time_": (dt.time, None),
    "timestamp_": (dt.datetime, "timestamp"),
    "timestamptz_": (dt.datetime, None),
    "interval_": (dt.timedelta, None),
    "uuid_": (uuid.UUID, None),
    "bytea_": (bytes, None),
    "jsonb_": (dict, None),
    "jsonb_list_": (list, None),
    "inet_": (str, "inet"),
    "cidr_": (str, "cidr"),
}


def _wide_model() -> type[Table]:
    annotations: dict[str, Any] = {"id": int}
    namespace: dict[str, Any] = {"id": Column(primary_key=True)}
    for name, (python_type, sql_type) in COLUMNS.items():
        annotations[name] = python_type | None
        namespace[name] = Column(default=None, column_type=sql_type)
    namespace.update(
        __annotations__=annotations,
        __module__=__name__,
        Settings=type("Settings", (), {"table_name": "wide"}),
    )
    model: type[Table] = type("RoundTripWide", (Table,), namespace)
    return model


Wide: Any = _wide_model()

TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=("Cs",)))
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(min_value=-1e15, max_value=1e15)  # jsonb gives 1e16 back as an int
    | TEXT
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)
OFFSETS = st.sampled_from(
    [dt.UTC, dt.timezone(dt.timedelta(hours=13, minutes=45)), dt.timezone(-dt.timedelta(hours=9))]
)
NETWORKS = st.builds(
    lambda address, prefix: str(
        ipaddress.ip_network(f"{address}/{prefix % (address.max_prefixlen + 1)}", strict=False)
    ),
    st.ip_addresses(),
    st.integers(min_value=0, max_value=128),
)
BYTES = st.binary(max_size=20)
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "text_": TEXT | st.text(min_size=130, max_size=200),  # past the bulk path's short text
    "varchar_": st.text(
        st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=5
    ),
    "char_": st.text(
        st.characters(exclude_characters="\x00", exclude_categories=("Cs",)), max_size=3
    ),
    "int2_": st.integers(min_value=-(2**15), max_value=2**15 - 1),
    "int4_": st.integers(min_value=-(2**31), max_value=2**31 - 1),
    "int8_": st.integers(min_value=-(2**63), max_value=2**63 - 1),
    # Any float32 (NaN, ±inf, -0.0, subnormals) and doubles that round to one.
    "real_": st.floats(width=32) | st.sampled_from([0.1, 1 / 3, 3.4028234e38]),
    "double_": st.floats() | st.sampled_from([-0.0, 5e-324, float("-nan")]),
    "numeric_": st.decimals(allow_nan=False)
    | st.sampled_from([Decimal("NaN"), Decimal("-0.000"), Decimal("1E+40"), Decimal("1E-40")]),
    "numeric62_": st.decimals(min_value=Decimal("-9999.99"), max_value=Decimal("9999.99"), places=2)
    | st.just(Decimal("NaN")),
    "bool_": st.booleans(),
    "date_": st.dates(),
    "time_": st.times(),
    "timestamp_": st.datetimes(),
    "timestamptz_": st.datetimes(
        min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30), timezones=OFFSETS
    )
    | st.datetimes(timezones=st.timezones())  # zones with DST: gaps and folds
    | st.sampled_from(
        [
            dt.datetime(1, 1, 1, tzinfo=dt.UTC),
            dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
        ]
    ),
    "interval_": st.timedeltas(),
    "uuid_": st.uuids(),
    # bytearray and memoryview are stored as the bytes they hold.
    "bytea_": BYTES | BYTES.map(bytearray) | BYTES.map(memoryview),
    "jsonb_": st.dictionaries(TEXT, JSON, max_size=4),
    "jsonb_list_": st.lists(JSON, max_size=4),
    "inet_": st.ip_addresses().map(str)
    | st.builds("{}/{}".format, st.ip_addresses(v=4), st.integers(0, 32)),
    "cidr_": NETWORKS,
}


def _storable(values: dict[str, Any]) -> dict[str, Any]:
    """The generated row, a column whose value the model refuses left out (None).

    Refusals are test_value_properties.py's subject; a few generated values
    (a datetime of a zone that leaves the UTC years, a Decimal past numeric)
    are refused, and the rest of the row is still written.
    """
    columns = table_info(Wide).columns
    kept = {}
    for name, value in values.items():
        try:
            columns[name].check(value)
        except ValidationError:
            continue
        kept[name] = value
    return kept


ROWS = st.fixed_dictionaries(VALUES).map(_storable)


def same(shown: Any, read: Any) -> bool:
    """Equal and of the same type, at every level; floats bit for bit."""
    if type(shown) is not type(read):
        return False
    if isinstance(shown, float):
        return struct.pack(">d", shown) == struct.pack(">d", read)
    if isinstance(shown, Decimal) and shown.is_nan():
        return read.is_nan()
    if isinstance(shown, dt.datetime):
        # An aware datetime reads back as the same instant in the connection's zone:
        # compared in UTC (== between zones says False for a time in a fold or gap).
        if shown.tzinfo is None:
            return read.tzinfo is None and shown == read
        return read.tzinfo is not None and shown.astimezone(dt.UTC) == read.astimezone(dt.UTC)
    if isinstance(shown, dict):
        return shown.keys() == read.keys() and all(same(shown[k], read[k]) for k in shown)
    if isinstance(shown, list):
        return len(shown) == len(read) and all(map(same, shown, read))
    return bool(shown == read)


def test_same_compares_type_and_float_bits() -> None:
    # Positive and negative twins of `same`, which both properties rely on.
    assert same(float("nan"), float("nan")) and same(-0.0, -0.0) and same({"a": [1]}, {"a": [1]})
    assert not same(-0.0, 0.0) and not same(1.0, 1) and not same(True, 1)
    assert not same(float("nan"), -float("nan")) and not same({"a": 1}, {"a": 1.0})
    assert not same(b"a", bytearray(b"a")) and not same(
        dt.datetime(2000, 1, 1), dt.date(2000, 1, 1)
    )
    later = dt.datetime(2000, 1, 1, 1, tzinfo=dt.UTC)
    assert same(later, later.astimezone(dt.timezone(dt.timedelta(hours=3))))
    assert not same(later, later.replace(tzinfo=None))


def _shown(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in COLUMNS}


def _differences(expected: dict[str, Any], obj: Any, where: str) -> list[str]:
    return [
        f"{where}: {name} shown {expected[name]!r}, got {getattr(obj, name)!r}"
        for name in COLUMNS
        if not same(expected[name], getattr(obj, name))
    ]


async def _write_and_read(engine: Engine, base: int, values: dict[str, Any]) -> None:
    keys = {
        "add": base,
        "add_all": base + 1,  # + 2 and + 3 are its copies, + 4 an all-NULL row
        "assign": base + 5,
        "upsert insert": base + 6,
        "upsert update": base + 7,
        "query update": base + 8,
    }
    async with Session(engine) as session:
        session.add_all([Wide(id=keys[k]) for k in ("assign", "upsert update", "query update")])
        await session.commit()
    shown: dict[str, dict[str, Any]] = {}
    async with Session(engine) as session:
        single = Wide(id=keys["add"], **values)
        session.add(single)
        await session.flush()
        shown["add"] = _shown(single)
        many = [Wide(id=keys["add_all"] + i, **values) for i in range(3)] + [
            Wide(id=keys["add_all"] + 3)
        ]
        session.add_all(many)
        await session.flush()
        assert session.last_flush_batch_size == 4  # one bulk INSERT
        shown["add_all"] = _shown(many[0])
        loaded = await session.get(Wide, keys["assign"])
        for name, value in values.items():
            setattr(loaded, name, value)
        await session.flush()
        shown["assign"] = _shown(loaded)
        new = Wide(id=keys["upsert insert"], **values)
        assert await session.upsert([new], on=["id"], update=list(COLUMNS)) == 1
        shown["upsert insert"] = _shown(new)
        existing = Wide(id=keys["upsert update"], **values)
        assert await session.upsert([existing], on=["id"], update=list(COLUMNS)) == 1
        shown["upsert update"] = _shown(existing)
        updated = session.find(Wide).filter(Wide.id == keys["query update"])
        assert await updated.update(**values) == 1
        shown["query update"] = _shown(await session.get(Wide, keys["query update"]))
        await session.commit()
    expected = shown["add"]
    problems = [
        f"{path}: {name} shown {row[name]!r}, {expected[name]!r} after add()"
        for path, row in shown.items()
        for name in COLUMNS
        if not same(expected[name], row[name])
    ]
    everyone = sorted(keys.values())
    copies = [keys["add_all"] + 1, keys["add_all"] + 2]
    async with Session(engine) as session:
        for path, key in keys.items():
            obj = await session.get(Wide, key)
            problems += _differences(shown[path], obj, f"get() after {path}")
            await session.refresh(obj)
            problems += _differences(shown[path], obj, f"refresh() after {path}")
        empty = await session.get(Wide, keys["add_all"] + 3)
        assert all(getattr(empty, name) is None for name in COLUMNS)
    async with Session(engine) as session:
        page = await session.find(Wide).filter(Wide.id.in_(everyone + copies)).to_list()
        assert len(page) == len(everyone) + 2
        problems += [p for obj in page for p in _differences(expected, obj, f"find() {obj.id}")]
    async with Session(engine) as session:
        rows = await session.from_sql(Wide, "SELECT * FROM wide WHERE id = ANY(%s)", (everyone,))
        assert len(rows) == len(everyone)
        problems += [p for obj in rows for p in _differences(expected, obj, f"from_sql {obj.id}")]
    async with Session(engine) as session:
        selected = (
            await session.find(Wide)
            .filter(Wide.id.in_(everyone))
            .select(*(getattr(Wide, name) for name in COLUMNS))
            .to_list()
        )
        assert len(selected) == len(everyone)
        problems += [
            f"select(): {name} shown {expected[name]!r}, got {value!r}"
            for row in selected
            for name, value in zip(COLUMNS, row, strict=True)
            if not same(expected[name], value)
        ]
    assert not problems, "\n".join(problems[:20])


def _run_property(
    examples: int,
    strategy: st.SearchStrategy[Any],
    check: Callable[[Engine, int, Any], Coroutine[Any, Any, None]],
) -> None:
    """Runs ``check(engine, first key, example)`` for each example, on a fresh schema."""
    keys: Iterator[int] = itertools.count(10_000, 10_000)
    with engine_on_loop("dbrt", Wide) as (loop, engine):

        @settings(
            max_examples=examples,
            deadline=None,
            derandomize=True,
            database=None,
            # No shrinking: a failing row is printed as generated, and a run stays short.
            phases=(Phase.explicit, Phase.generate),
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(strategy)
        def run(example: Any) -> None:
            loop.run_until_complete(asyncio.wait_for(check(engine, next(keys), example), 60))

        run()


def test_a_row_of_every_column_type_reads_back_as_shown_on_every_write_and_read_path() -> None:
    _run_property(15, ROWS, _write_and_read)


# 1,000 rows: a result this size hydrates into compact objects (hydration.py).
LARGE = 1000


async def _large_result(engine: Engine, base: int, rows: list[dict[str, Any]]) -> None:
    async with Session(engine) as session:
        written = [Wide(id=base + i, **rows[i % len(rows)]) for i in range(LARGE)]
        session.add_all(written)
        await session.commit()
        expected = [_shown(obj) for obj in written]
    problems: list[str] = []
    between = Wide.id.between(base, base + LARGE - 1)
    async with Session(engine) as session:
        found = await session.find(Wide).filter(between).order_by(Wide.id).to_list()
        assert [obj.id for obj in found] == [base + i for i in range(LARGE)]
        for obj, shown in zip(found, expected, strict=True):
            problems += _differences(shown, obj, f"find() of {LARGE}, row {obj.id}")
    async with Session(engine) as session:
        streamed = [
            obj async for obj in session.find(Wide).filter(between).order_by(Wide.id).stream()
        ]
        assert len(streamed) == LARGE
        for obj, shown in zip(streamed, expected, strict=True):
            problems += _differences(shown, obj, f"stream(), row {obj.id}")
    assert not problems, "\n".join(problems[:20])


def test_a_result_of_a_thousand_rows_reads_back_as_written() -> None:
    _run_property(3, st.lists(ROWS, min_size=1, max_size=8), _large_result)

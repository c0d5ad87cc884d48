"""Property: every value round-trips or is refused before any SQL, on every path (issue 20).

For each column type, hypothesis generates values (edge cases included) and
writes each through the constructor, attribute assignment, ``update()`` and
``upsert()``, then uses it in a filter. A value is either refused on every
path with a `ValidationError` before any statement is sent (the transaction
goes on and commits the other writes), or read back in a new session equal to
what the object showed after the write. Any other exception fails the test.

Runs are reproducible: ``derandomize=True`` (examples come from the test's
name), and each case writes to a fresh schema.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import math
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_bridge_core import Column, Engine, Session, Table, ValidationError
from scratch_schema import engine_on_loop

EXAMPLES = 12  # per column type: the whole module stays within a few seconds


@dataclass(frozen=True)
class Case:
    python_type: Any
    column_type: str | None
    values: st.SearchStrategy[Any]
    # How a value read back is compared with what the object showed (== by default).
    same: Callable[[Any, Any], bool] | None = None


def _floats_same(shown: Any, read: Any) -> bool:
    return type(read) is float and repr(shown) == repr(read)  # NaN, -0.0 and exact bits


def _decimal_same(shown: Any, read: Any) -> bool:
    if isinstance(shown, Decimal) and shown.is_nan():
        return isinstance(read, Decimal) and read.is_nan()
    return isinstance(read, Decimal) and read == shown


def _json_same(shown: Any, read: Any) -> bool:
    """Equal, and the same JSON type at every level (an int is not a float here)."""
    if isinstance(shown, dict):
        return (
            isinstance(read, dict)
            and shown.keys() == read.keys()
            and all(_json_same(shown[k], read[k]) for k in shown)
        )
    if isinstance(shown, list):
        return (
            isinstance(read, list)
            and len(shown) == len(read)
            and all(_json_same(a, b) for a, b in zip(shown, read, strict=True))
        )
    return type(shown) is type(read) and shown == read


def _aware_same(shown: Any, read: Any) -> bool:
    return read.tzinfo is not None and shown == read


def _naive_same(shown: Any, read: Any) -> bool:
    return read.tzinfo is None and shown == read


# 10**5000: built, not listed (hypothesis's repr of a strategy would write it as text).
HUGE_INT = st.builds(pow, st.just(10), st.just(5000))
OFFSETS = st.sampled_from(
    [dt.UTC, dt.timezone(dt.timedelta(hours=5)), dt.timezone(dt.timedelta(hours=-5, minutes=-30))]
)
TEXT = st.text(max_size=12) | st.sampled_from(["a\x00b", "x\ud800y", "é", "100%", "'\"\\"])
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(width=64)
    | st.sampled_from([1e16, -2.5e300, 1e-7, 5e-324, -0.0, 2**53 + 1])
    | HUGE_INT
    | TEXT
)
JSON_KEYS = TEXT | st.integers(-3, 3) | st.none() | st.booleans() | st.floats(0, 2)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(JSON_KEYS, inner, max_size=3)
        | st.tuples(inner)
    ),
    max_leaves=6,
)
INT_EDGES = HUGE_INT | st.sampled_from(
    [2**15 - 1, 2**15, -(2**15) - 1, 2**31 - 1, 2**31, 2**63 - 1, 2**63, -(2**63) - 1]
)
INTS = st.integers(min_value=-(2**70), max_value=2**70) | INT_EDGES
FLOATS = (
    st.floats(width=64)
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([2**53 + 1, 10**400, 1e-50, 3.5e38, 3.4028234663852886e38, 1e-45, -0.0])
)
DECIMALS = (
    st.decimals(allow_nan=True, allow_infinity=True)
    | st.decimals(min_value=-10000, max_value=10000, places=3)
    | st.integers(min_value=-(10**8), max_value=10**8)
    | st.sampled_from(
        [Decimal("-NaN"), Decimal("sNaN"), Decimal("NaN"), Decimal("9999.99"), Decimal("1E+3")]
    )
)
DATETIMES = st.datetimes(timezones=st.none() | OFFSETS) | st.sampled_from(
    [
        dt.datetime(9999, 12, 31, 23, tzinfo=dt.timezone(dt.timedelta(hours=-5))),
        dt.datetime(1, 1, 1, 1, tzinfo=dt.timezone(dt.timedelta(hours=5))),
        dt.datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
        dt.datetime(1, 1, 1, tzinfo=dt.UTC),
    ]
)

ADDRESSES = st.ip_addresses().map(str) | st.builds(
    "{}/{}".format, st.ip_addresses(v=4), st.integers(min_value=0, max_value=32)
)
INET_TEXT = (
    ADDRESSES
    | st.builds("{}/{}".format, st.ip_addresses(v=6), st.integers(min_value=0, max_value=128))
    | st.sampled_from(["10.1/16", "fe80::1%eth0", "::ffff:1.2.3.4", "10.0.0.1/32", "::1.2.3.4"])
    | TEXT
)

CASES: dict[str, Case] = {
    "text": Case(str, None, TEXT),
    "varchar": Case(str, "varchar(5)", TEXT),
    "char": Case(str, "char(3)", TEXT),
    "int2": Case(int, "smallint", INTS),
    "int4": Case(int, "integer", INTS),
    "int8": Case(int, None, INTS),
    # An int field over numeric: the object keeps an int, and a read gives the int
    # (psycopg's Decimal converted, exactly; test_int_over_numeric.py).
    "int-numeric": Case(
        int, "numeric", INTS, lambda shown, read: type(shown) is type(read) is int and read == shown
    ),
    "float4": Case(float, "real", FLOATS, _floats_same),
    "float8": Case(float, None, FLOATS, _floats_same),
    "numeric": Case(Decimal, None, DECIMALS, _decimal_same),
    "numeric(6,2)": Case(Decimal, "numeric(6,2)", DECIMALS, _decimal_same),
    "bool": Case(bool, None, st.booleans()),
    "date": Case(dt.date, None, st.dates()),
    "time": Case(dt.time, None, st.times(timezones=st.none() | st.just(dt.UTC))),
    "timestamp": Case(dt.datetime, "timestamp", DATETIMES, _naive_same),
    "timestamptz": Case(dt.datetime, None, DATETIMES, _aware_same),
    "interval": Case(dt.timedelta, None, st.timedeltas()),
    "uuid": Case(uuid.UUID, None, st.uuids()),
    "bytea": Case(bytes, None, st.binary(max_size=16) | st.just(b"\x00\xff")),
    "jsonb": Case(dict, None, st.dictionaries(JSON_KEYS, JSON, max_size=3), _json_same),
    "array": Case(list, None, st.lists(JSON, max_size=3), _json_same),
    # column_type= overrides: str columns read back as the text the type prints.
    "inet": Case(str, "inet", INET_TEXT),
    "cidr": Case(
        str, "cidr", INET_TEXT | st.ip_addresses().map(lambda a: f"{a}/{a.max_prefixlen}")
    ),
}

REFUSED = object()


def _probe_model(name: str, case: Case) -> type[Table]:
    label = "".join(c for c in name.title() if c.isalnum())  # numeric(6,2) -> Numeric62
    namespace = {
        "__annotations__": {"id": int, "v": case.python_type | None},
        "__module__": __name__,
        "id": Column(primary_key=True),
        "v": Column(default=None, column_type=case.column_type),
        "Settings": type("Settings", (), {"table_name": "probe"}),
    }
    model: type[Table] = type(f"ValueProbe{label}", (Table,), namespace)
    return model


class Statements:
    """Counts the statements sessions send (wraps Session.run_statement)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        original = Session.run_statement

        async def counted(session: Session, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await original(session, *args, **kwargs)

        monkeypatch.setattr(Session, "run_statement", counted)


async def _attempt(statements: Statements, write: Callable[[], Any]) -> Any:
    """What ``write`` returns, or REFUSED when it raised ValidationError before any SQL."""
    sent = statements.count
    try:
        result = write()
        if asyncio.iscoroutine(result):
            result = await result
    except ValidationError:
        assert statements.count == sent, "refused after a statement was sent"
        return REFUSED
    return result


async def _check_value(
    engine: Engine, model: Any, case: Case, statements: Statements, keys: Iterator[int], value: Any
) -> None:
    key = next(keys) * 10
    same = case.same or (lambda shown, read: type(read) is type(shown) and shown == read)
    async with Session(engine) as session:
        session.add_all([model(id=key + 1), model(id=key + 2)])
        await session.commit()
    async with Session(engine) as session:
        # Constructor.
        built = await _attempt(statements, lambda: model(id=key, v=value))
        shown = REFUSED if built is REFUSED else built.v
        if built is not REFUSED:
            session.add(built)
        # Assignment on a loaded row.
        row = await session.get(model, key + 1)

        def assign() -> Any:
            row.v = value
            return row.v

        assigned = await _attempt(statements, assign)
        # update(): the value the object shows is the one checked.
        updated = await _attempt(
            statements, lambda: session.find(model).filter(model.id == key + 2).update(v=value)
        )
        # upsert(): a new object for an existing key (ON CONFLICT DO UPDATE).
        upserted = await _attempt(statements, lambda: model(id=key + 2, v=value))
        if upserted is not REFUSED:
            await session.upsert([upserted], on=["id"], update=["v"])
        await session.commit()  # the transaction is unaffected by any refusal
    outcomes = [shown, assigned, updated, upserted]
    if shown is REFUSED:
        assert all(o is REFUSED for o in outcomes), "refused on one path but not another"
    else:
        assert all(o is not REFUSED for o in outcomes), "refused on one path but not another"
        assert same(shown, assigned)
    async with Session(engine) as session:
        rows = {r.id: r.v for r in await session.find(model).filter(model.id >= key).to_list()}
        if shown is REFUSED:
            assert rows == {key + 1: None, key + 2: None}
        else:
            assert set(rows) == {key, key + 1, key + 2}
            for written in rows.values():
                assert same(shown, written), (shown, written)
    async with Session(engine) as session:
        # As a filter operand: refused before SQL, or a query that runs.
        await _attempt(statements, lambda: session.find(model).filter(model.v == value).to_list())
        if shown is not REFUSED:
            found = await session.find(model).filter(model.v == shown, model.id == key).to_list()
            assert [r.id for r in found] == [key]


@pytest.mark.parametrize("name", list(CASES))
def test_every_value_round_trips_or_is_refused_before_any_sql(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    case = CASES[name]
    model = _probe_model(name, case)
    statements = Statements(monkeypatch)
    keys = itertools.count(1)
    with engine_on_loop("dbv", model) as (loop, engine):

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(case.values)
        def check(value: Any) -> None:
            loop.run_until_complete(
                asyncio.wait_for(_check_value(engine, model, case, statements, keys, value), 30)
            )

        check()


def test_the_float_comparison_sees_nan_and_negative_zero() -> None:
    # Positive twin of _floats_same, which the property above relies on.
    assert _floats_same(float("nan"), float("nan")) and _floats_same(-0.0, -0.0)
    assert not _floats_same(-0.0, 0.0) and not _floats_same(1.0, 1)
    assert not math.isnan(0.0)

"""Bad values are refused by the ORM, before any SQL, the same way on every path (issue 8, #7)."""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from typing import Any

import pytest
from core_fixtures import DSN, StatementLog, fetch

from data_bridge_core import (
    Column,
    ColumnTypeError,
    DataBridgeError,
    Engine,
    Session,
    Table,
    ValidationError,
)
from data_bridge_core.schema import types


class Sample(Table):
    id: int = Column(primary_key=True)
    name: str
    note: str | None = None
    small: int = Column(default=0, column_type="integer")
    big: int = 0
    ratio: float = 0.0
    at: dt.datetime | None = None
    clock: dt.time | None = None
    data: dict[str, Any] = Column(default_factory=dict)
    price: Decimal = Column(default=Decimal(0), column_type="numeric(5,2)")
    amount: Decimal = Decimal(0)

    class Settings:
        table_name = "samples"


@pytest.fixture
async def sample_engine(schema: str) -> AsyncIterator[Engine]:
    eng = Engine(DSN, min_size=0, max_size=2, options=f"-c search_path={schema}")
    await eng.create_all(Sample)
    async with Session(eng) as session:
        session.add(Sample(name="kept", data={"k": 1}))
        await session.commit()
    try:
        yield eng
    finally:
        await eng.dispose()


class _Secret:
    """A value whose repr must never show up in an error message."""

    def __repr__(self) -> str:
        return "SECRET-REPR"


# (column, bad value, what the message says, text of the value that must not be echoed)
BAD_VALUES = [
    ("name", "pass\x00word", r"contains a NUL byte \(PostgreSQL text cannot store \\x00\)", "pass"),
    ("name", "pass\ud800word", r"contains a lone surrogate", "pass"),
    ("name", None, r"is NOT NULL", None),
    ("small", 2**31 + 7, r"out of range for integer", "2147483655"),
    ("big", -(2**63) - 1, r"out of range for bigint", "9223372036854775809"),
    ("ratio", 10**400, r"out of range for double precision", "1000000"),
    ("data", {"a": {1, 2}}, r"not JSON-serialisable: it holds a set", "{1, 2}"),
    ("data", {"a": _Secret()}, r"not JSON-serialisable: it holds a _Secret", "SECRET"),
    ("data", {"a": [float("nan")]}, r"holds NaN or Infinity, which JSON cannot represent", "nan"),
    ("data", {"pass\x00word": 1}, r"holds a NUL character \(jsonb cannot store \\u0000\)", "pass"),
    ("data", ["pass\udc00word"], r"holds a lone surrogate", "pass"),
    ("clock", dt.time(1, 2, tzinfo=dt.UTC), r"time zone", None),
    ("price", Decimal("999.995"), r"out of range for numeric\(5,2\) .*less than 10\^3", "999"),
    ("price", Decimal("-Infinity"), r"out of range for numeric\(5,2\)", "Infinity"),
    ("amount", Decimal("1e-16384"), r"out of range for numeric \(", "16384"),
]
IDS = [
    "nul",
    "surrogate",
    "none-for-not-null",
    "int4-range",
    "int8-range",
    "float-range",
    "json-set",
    "json-object",
    "json-nan",
    "json-nul",
    "json-surrogate",
    "aware-time",
    "numeric-precision",
    "numeric-infinity",
    "numeric-range",
]


def check_message(exc: ValidationError, column: str, pattern: str, secret: str | None) -> None:
    message = str(exc)
    assert message.startswith(f"Sample.{column} "), message
    assert exc.model_name == "Sample"
    assert exc.field == column
    assert re.search(pattern, message), message
    if secret is not None:
        assert secret not in message, message


async def committed(schema: str) -> list[tuple[Any, ...]]:
    return await fetch(schema, "SELECT id, name, small, big, data FROM samples ORDER BY id")


@pytest.mark.parametrize(("column", "value", "pattern", "secret"), BAD_VALUES, ids=IDS)
def test_the_constructor_refuses_a_bad_value_with_a_validation_error(
    column: str, value: Any, pattern: str, secret: str | None
) -> None:
    with pytest.raises(ValidationError) as info:
        Sample(**{"name": "ok", column: value})
    check_message(info.value, column, pattern, secret)
    assert isinstance(info.value, DataBridgeError)
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(("column", "value", "pattern", "secret"), BAD_VALUES, ids=IDS)
async def test_assignment_refuses_a_bad_value_and_the_row_is_unchanged(
    sample_engine: Engine,
    schema: str,
    sql: StatementLog,
    column: str,
    value: Any,
    pattern: str,
    secret: str | None,
) -> None:
    before = await committed(schema)
    async with Session(sample_engine) as session:
        obj = await session.find(Sample).first()
        assert obj is not None
        kept = getattr(obj, column)
        sql.clear()
        with pytest.raises(ValidationError) as info:
            setattr(obj, column, value)
        check_message(info.value, column, pattern, secret)
        assert getattr(obj, column) == kept
        obj.note = "changed"  # positive twin: the session still writes good values
        await session.commit()
    assert sql.statements[0].startswith('UPDATE "samples" SET "note" = %s')
    assert await committed(schema) == before
    assert await fetch(schema, "SELECT note FROM samples") == [("changed",)]


@pytest.mark.parametrize(("column", "value", "pattern", "secret"), BAD_VALUES, ids=IDS)
async def test_query_update_refuses_a_bad_value_before_any_sql(
    sample_engine: Engine,
    schema: str,
    sql: StatementLog,
    column: str,
    value: Any,
    pattern: str,
    secret: str | None,
) -> None:
    before = await committed(schema)
    async with Session(sample_engine) as session:
        sql.clear()
        with pytest.raises(ValidationError) as info:
            await session.find(Sample).filter(Sample.name == "kept").update(**{column: value})
        check_message(info.value, column, pattern, secret)
        assert sql.statements == []
        assert await session.find(Sample).filter(Sample.name == "kept").update(note="x") == 1
        await session.commit()
    assert await committed(schema) == before
    assert await fetch(schema, "SELECT note FROM samples") == [("x",)]


async def test_a_flush_of_new_objects_with_bad_values_never_starts(
    sample_engine: Engine, schema: str
) -> None:
    before = await committed(schema)
    async with Session(sample_engine) as session:
        session.add(Sample(name="good"))
        with pytest.raises(ValidationError, match=r"Sample\.name contains a NUL byte"):
            session.add(Sample(name="bad\x00"))
        await session.commit()  # the good one only
    assert len(await committed(schema)) == len(before) + 1


async def test_naive_and_aware_datetimes_in_one_flush_are_stored_as_the_instants_they_mean(
    sample_engine: Engine, schema: str
) -> None:
    naive = dt.datetime(2026, 1, 2, 3, 4, 5)
    aware = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    async with Session(sample_engine) as session:
        first, second = Sample(name="naive", at=naive), Sample(name="aware", at=aware)
        # A naive datetime means local time (what datetime.now() returns): made aware at once.
        assert first.at == naive.astimezone()
        assert first.at is not None and first.at.tzinfo is not None
        session.add_all([first, second])
        await session.commit()
        loaded = await session.find(Sample).filter(Sample.at == naive).to_list()
        assert [s.name for s in loaded] == ["naive"]
        both = session.find(Sample).filter(Sample.at.in_([naive, aware])).order_by(Sample.id)
        assert [s.name for s in await both.to_list()] == ["naive", "aware"]
        obj = loaded[0]
        obj.at = dt.datetime(2027, 1, 1)
        assert obj.at == dt.datetime(2027, 1, 1).astimezone()
        await session.commit()
        assert (
            await session.find(Sample).filter(Sample.at == aware).update(at=dt.datetime(2028, 1, 1))
            == 1
        )
        await session.commit()
    stored = dict(await fetch(schema, "SELECT name, at FROM samples WHERE at IS NOT NULL"))
    assert stored == {
        "naive": dt.datetime(2027, 1, 1).astimezone(),
        "aware": dt.datetime(2028, 1, 1).astimezone(),
    }


async def test_filter_values_are_checked_before_the_query_is_sent(
    sample_engine: Engine, sql: StatementLog
) -> None:
    async with Session(sample_engine) as session:
        sql.clear()
        bad = [
            Sample.name == "x\x00",
            Sample.name.in_(["ok", "y\ud800"]),
            Sample.name.like("%\x00%"),
            Sample.note.between("a", "b\x00"),
        ]
        for expression in bad:
            with pytest.raises(ValidationError, match=r"Sample\.(name|note) contains a"):
                await session.find(Sample).filter(expression).to_list()
        with pytest.raises(ValidationError, match=r"Sample\.name contains a NUL byte"):
            await session.find(Sample).aggregate([{"$match": {"name": "z\x00"}}])
        assert sql.statements == []
        # A filter compares, it does not store: an int past bigint is a fine operand.
        assert await session.find(Sample).filter(Sample.big < 2**70).count() == 1
        assert await session.find(Sample).filter(Sample.name.like("kep%")).count() == 1


def test_a_wrong_type_is_a_column_type_error_that_does_not_echo_the_value() -> None:
    with pytest.raises(ColumnTypeError) as info:
        Sample(name="ok", big="secret-text")
    assert str(info.value) == "Sample.big expects int, got str"
    assert isinstance(info.value, ValidationError)
    assert isinstance(info.value, TypeError)


async def test_values_at_the_edges_of_each_range_are_stored(
    sample_engine: Engine, schema: str
) -> None:
    obj = Sample(name="edges", ratio=float("nan"), small=2**31 - 1, big=-(2**63))
    obj.ratio = float("inf")
    obj.price = Decimal("999.99")  # the largest numeric(5,2); 999.994 is refused (issue 20)
    obj.amount = Decimal("NaN")
    assert (obj.small, obj.big, obj.ratio) == (2**31 - 1, -(2**63), float("inf"))
    async with Session(sample_engine) as session:
        session.add(obj)
        await session.commit()
    row = await fetch(
        schema, "SELECT small, big, ratio, price, amount::text FROM samples WHERE name = 'edges'"
    )
    assert row == [(2**31 - 1, -(2**63), float("inf"), Decimal("999.99"), "NaN")]


async def test_aggregate_shape_errors_name_the_field_but_not_the_value(
    sample_engine: Engine,
) -> None:
    async with Session(sample_engine) as session:
        query = session.find(Sample)
        with pytest.raises(ValueError, match=r"'\$in' on field 'name' takes a list, got str$"):
            await query.aggregate([{"$match": {"name": {"$in": "secret-text"}}}])
        with pytest.raises(ValueError, match=r"plain keys: \['\$eq', 'k'\]$"):
            await query.aggregate([{"$match": {"data": {"$eq": {}, "k": "secret-text"}}}])
        rows = await query.aggregate([{"$match": {"name": {"$in": ["kept"]}}}])
        assert [r["name"] for r in rows] == ["kept"]


@pytest.fixture
def berlin_time(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    types._LOCAL_OFFSETS.clear()
    yield
    monkeypatch.undo()
    time.tzset()
    types._LOCAL_OFFSETS.clear()


@pytest.mark.usefixtures("berlin_time")
def test_naive_datetimes_around_daylight_saving_changes_get_the_offset_astimezone_gives() -> None:
    converted = 0
    for day in (dt.datetime(2026, 3, 29), dt.datetime(2026, 10, 25)):
        for minute in range(0, 4 * 60):
            for fold in (0, 1):
                for second in (0, 59):
                    naive = (day + dt.timedelta(minutes=minute, seconds=second)).replace(fold=fold)
                    stored = Sample(name="t", at=naive).at
                    expected = naive.astimezone()
                    assert stored is not None
                    assert (stored, stored.utcoffset()) == (expected, expected.utcoffset())
                    converted += 1
    assert converted == 2 * 4 * 60 * 2 * 2
    summer, winter = dt.datetime(2026, 7, 1, 12), dt.datetime(2026, 1, 1, 12)
    assert Sample(name="s", at=summer).at == dt.datetime(2026, 7, 1, 10, tzinfo=dt.UTC)
    assert Sample(name="w", at=winter).at == dt.datetime(2026, 1, 1, 11, tzinfo=dt.UTC)

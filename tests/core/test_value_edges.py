"""Values at the edges: each comes back as written or is refused before any SQL (issue 20, 3-7)."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from core_fixtures import DSN, StatementLog, fetch

from data_bridge_core import Column, Engine, Session, Table, ValidationError


class Edge(Table):
    id: int = Column(primary_key=True)
    label: str = "x"
    data: dict[str, Any] | None = None
    items: list[Any] | None = None
    at: dt.datetime | None = None
    wall: dt.datetime | None = Column(default=None, column_type="timestamp")
    amount: Decimal | None = None
    price: Decimal | None = Column(default=None, column_type="numeric(5,2)")
    ratio: float | None = None
    small_ratio: float | None = Column(default=None, column_type="real")
    count: int | None = None
    whole: int | None = Column(default=None, column_type="numeric")
    ip: str | None = Column(default=None, column_type="inet")

    class Settings:
        table_name = "edges"


@pytest.fixture
async def edge_engine(schema: str) -> AsyncIterator[Engine]:
    eng = Engine(DSN, min_size=0, max_size=2, options=f"-c search_path={schema}")
    await eng.create_all(Edge)
    async with Session(eng) as session:
        session.add(Edge())  # id 1, from the identity
        await session.commit()
    try:
        yield eng
    finally:
        await eng.dispose()


async def refused_everywhere(
    engine: Engine, sql: StatementLog, column: str, value: Any, problem: str
) -> None:
    """``value`` for ``column`` is refused by the constructor, assignment and update(),
    with no statement sent, and the session still writes a good value afterwards."""
    with pytest.raises(ValidationError, match=problem) as info:
        Edge(id=2, **{column: value})
    assert str(info.value).startswith(f"Edge.{column} ")
    async with Session(engine) as session:
        row = await session.get(Edge, 1)
        assert row is not None
        sql.clear()
        with pytest.raises(ValidationError, match=problem):
            setattr(row, column, value)
        with pytest.raises(ValidationError, match=problem):
            await session.find(Edge).filter(Edge.id == 1).update(**{column: value})
        assert sql.statements == []
        row.label = "still writable"  # positive twin: the transaction is unaffected
        await session.commit()
    assert await fetch_label() == "still writable"


_schema_of_test: list[str] = []


@pytest.fixture(autouse=True)
def _remember_schema(schema: str) -> None:
    _schema_of_test[:] = [schema]


async def fetch_label() -> str:
    rows = await fetch(_schema_of_test[0], "SELECT label FROM edges WHERE id = 1")
    return str(rows[0][0])


async def round_trip(engine: Engine, column: str, value: Any) -> tuple[Any, Any]:
    """(what the object shows, what a new session reads) after writing ``value``."""
    async with Session(engine) as session:
        obj = Edge(**{column: value})
        shown = getattr(obj, column)
        session.add(obj)
        await session.commit()
        key = obj.id
    async with Session(engine) as session:
        again = await session.get(Edge, key)
        assert again is not None
        return shown, getattr(again, column)


# -- 3. JSON ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [{1: "a", "1": "b"}, {None: 1, True: 2}, {"nested": {2.5: "x"}}],
    ids=["int-key-colliding", "none-and-bool-keys", "nested-float-key"],
)
async def test_a_json_key_that_is_not_a_str_is_refused_before_any_sql(
    edge_engine: Engine, sql: StatementLog, value: dict[Any, Any]
) -> None:
    await refused_everywhere(edge_engine, sql, "data", value, r"has a key of type \w+: JSON")


async def test_a_json_float_that_jsonb_gives_back_as_an_int_is_refused(
    edge_engine: Engine, sql: StatementLog
) -> None:
    await refused_everywhere(edge_engine, sql, "data", {"f": 1e16}, r"float of 1e16 or more")
    await refused_everywhere(edge_engine, sql, "items", [-2.5e300], r"float of 1e16 or more")
    # Positive twin: floats below 1e16 (and tiny ones) come back as the same floats.
    value = {"a": 9999999999999998.0, "b": 1e-7, "c": 5e-324, "d": 1.0, "e": 2**70}
    shown, read = await round_trip(edge_engine, "data", value)
    assert shown == read == value
    assert type(read["d"]) is float and type(read["e"]) is int


async def test_a_json_int_too_long_for_python_text_is_refused_not_a_raw_value_error(
    edge_engine: Engine, sql: StatementLog
) -> None:
    await refused_everywhere(edge_engine, sql, "data", {"n": 10**5000}, r"int too long")
    await refused_everywhere(edge_engine, sql, "items", [(1, 2)], r"tuple")


# -- 4. datetimes -------------------------------------------------------------------------

MINUS_5 = dt.timezone(dt.timedelta(hours=-5))
PLUS_5 = dt.timezone(dt.timedelta(hours=5))


@pytest.mark.parametrize(
    "value",
    [dt.datetime(9999, 12, 31, 23, 0, tzinfo=MINUS_5), dt.datetime(1, 1, 1, 1, 0, tzinfo=PLUS_5)],
    ids=["after-9999-in-utc", "before-year-1-in-utc"],
)
async def test_a_datetime_no_read_could_give_back_is_refused_before_any_sql(
    edge_engine: Engine, sql: StatementLog, value: dt.datetime
) -> None:
    await refused_everywhere(edge_engine, sql, "at", value, r"outside the years 1 to 9999")


async def test_datetimes_at_the_edges_of_the_utc_years_come_back_as_written(
    edge_engine: Engine,
) -> None:
    for value in (
        dt.datetime(9999, 12, 31, 18, 59, 59, 999999, tzinfo=MINUS_5),
        dt.datetime(1, 1, 1, 5, 0, tzinfo=PLUS_5),
        dt.datetime(1, 1, 1, tzinfo=dt.UTC),
    ):
        shown, read = await round_trip(edge_engine, "at", value)
        assert shown == read == value
    async with Session(edge_engine) as session:  # an out-of-range instant is a fine operand
        late = dt.datetime(9999, 12, 31, 23, 0, tzinfo=MINUS_5)
        assert len(await session.find(Edge).filter(Edge.at < late).to_list()) == 3


async def test_a_timestamp_column_stores_naive_wall_clock_time_and_refuses_aware_values(
    edge_engine: Engine, sql: StatementLog
) -> None:
    for value in (dt.datetime(1, 1, 1), dt.datetime(9999, 12, 31, 23, 59, 59, 999999)):
        shown, read = await round_trip(edge_engine, "wall", value)
        assert shown == read == value and read.tzinfo is None
    aware = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    await refused_everywhere(edge_engine, sql, "wall", aware, r"has a time zone")


BIGINT_MAX = 2**63 - 1

# -- 5. counts ------------------------------------------------------------------------------


@pytest.mark.parametrize("count", [2**63, 10**5000, -1], ids=["2**63", "10**5000", "negative"])
async def test_limit_and_offset_out_of_bigint_are_refused_before_any_sql(
    edge_engine: Engine, sql: StatementLog, count: int
) -> None:
    async with Session(edge_engine) as session:
        sql.clear()
        with pytest.raises(ValueError, match=rf"limit\(\) takes an int from 0 to {BIGINT_MAX}"):
            session.find(Edge).limit(count)
        with pytest.raises(ValueError, match=rf"offset\(\) takes an int from 0 to {BIGINT_MAX}"):
            session.find(Edge).offset(count)
        for stage in ("$limit", "$skip"):
            with pytest.raises(ValueError, match=rf"\{stage} takes an int from 0 to"):
                await session.find(Edge).aggregate([{stage: count}])
        with pytest.raises(ValueError, match=r"batch_size\) takes an int from 0 to 2147483647"):
            async for _ in session.find(Edge).stream(batch_size=count if count < 0 else 2**31):
                pass
        assert sql.statements == []
        # Positive twin: the largest counts are valid, in the same transaction.
        biggest = 2**63 - 1
        assert len(await session.find(Edge).limit(biggest).offset(0).to_list()) == 1
        assert await session.find(Edge).offset(biggest).to_list() == []
        assert len(await session.find(Edge).aggregate([{"$limit": biggest}, {"$skip": 0}])) == 1
        assert [e.id async for e in session.find(Edge).stream(batch_size=2**31 - 1)] == [1]


async def test_skip_stages_that_add_up_past_bigint_are_refused(edge_engine: Engine) -> None:
    async with Session(edge_engine) as session:
        with pytest.raises(ValueError, match=r"\$skip stages add up to more than"):
            await session.find(Edge).aggregate([{"$skip": 2**62}, {"$skip": 2**62}])
        assert await session.find(Edge).aggregate([{"$skip": 2**62}, {"$skip": 2**62 - 1}]) == []


async def test_a_sum_constant_past_bigint_is_refused_not_a_raw_value_error(
    edge_engine: Engine,
) -> None:
    async with Session(edge_engine) as session:
        for constant in (2**63, 10**5000):
            with pytest.raises(ValueError, match=r"\$sum for 'n' takes an int within bigint"):
                await session.find(Edge).aggregate(
                    [{"$group": {"_id": None, "n": {"$sum": constant}}}]
                )
        rows = await session.find(Edge).aggregate([{"$group": {"_id": None, "n": {"$sum": 2**62}}}])
        assert rows == [{"_id": None, "n": 2**62}]


async def test_every_page_of_a_list_is_the_same_statement_with_bound_limit_and_offset(
    edge_engine: Engine, sql: StatementLog
) -> None:
    async with Session(edge_engine) as session:
        session.add_all([Edge() for _ in range(2, 12)])
        await session.commit()
        sql.clear()
        pages = []
        for offset in range(0, 10, 2):
            page = session.find(Edge).order_by(Edge.id).limit(2).offset(offset)
            pages.append([e.id for e in await page.to_list()])
        assert pages == [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10]]
        assert len(set(sql.statements)) == 1
        assert sql.statements[0].endswith('ORDER BY "edges"."id" ASC LIMIT %s OFFSET %s')
        # psycopg prepares a statement run 5 times: one server-side statement for all pages.
        for offset in range(5):
            await session.find(Edge).order_by(Edge.id).limit(2).offset(offset).to_list()
        prepared = await session.execute(
            "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE %s",
            ("%LIMIT $1 OFFSET $2",),
        )
        assert prepared.rows == [(1,)]
        aggregate = [{"$sort": {"id": 1}}, {"$skip": 1}, {"$limit": 1}]
        sql.clear()
        for skip in (1, 2):
            aggregate[1] = {"$skip": skip}
            await session.find(Edge).aggregate(aggregate)
        assert len(set(sql.statements)) == 1 and sql.statements[0].endswith("LIMIT %s OFFSET %s")


# -- 6. numerics ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value", [Decimal("-NaN"), Decimal("sNaN"), Decimal("NaN123")], ids=["-NaN", "sNaN", "payload"]
)
async def test_a_nan_numeric_does_not_store_is_refused_as_value_and_operand(
    edge_engine: Engine, sql: StatementLog, value: Decimal
) -> None:
    await refused_everywhere(edge_engine, sql, "amount", value, r"NaN \(PostgreSQL's numeric has")
    await refused_everywhere(edge_engine, sql, "price", value, r"NaN \(PostgreSQL's numeric has")
    async with Session(edge_engine) as session:
        with pytest.raises(ValidationError, match=r"Edge\.amount is a signed, signaling"):
            await session.find(Edge).filter(Edge.amount == value).to_list()
        shown, read = await round_trip(edge_engine, "amount", Decimal("NaN"))
        assert shown.is_nan() and read.is_nan()


async def test_numbers_past_what_the_server_compares_are_refused_as_operands_before_any_sql(
    edge_engine: Engine, sql: StatementLog
) -> None:
    async with Session(edge_engine) as session:
        sql.clear()
        for column in (Edge.amount, Edge.count):
            with pytest.raises(ValidationError, match=r"is out of range for numeric \("):
                await session.find(Edge).filter(column == 10**132000).to_list()
        for column in (Edge.ratio, Edge.small_ratio):
            with pytest.raises(ValidationError, match=r"out of range for (double precision|real)"):
                await session.find(Edge).filter(column < 10**400).to_list()
        assert sql.statements == []
        # Positive twins: ints past bigint (past 4300 digits too) compare exactly.
        assert len(await session.find(Edge).filter(Edge.id < 2**70).to_list()) == 1
        assert await session.find(Edge).filter(Edge.count == 10**5000).to_list() == []
        assert await session.find(Edge).filter(Edge.amount == 10**5000).to_list() == []
        assert await session.find(Edge).filter(Edge.small_ratio > 10**300).to_list() == []


async def test_numbers_in_column_arithmetic_are_checked_like_operands_before_any_sql(
    edge_engine: Engine, sql: StatementLog
) -> None:
    async with Session(edge_engine) as session:
        sql.clear()
        with pytest.raises(ValidationError, match=r"^Edge\.ratio is out of range for double"):
            await session.find(Edge).filter((Edge.ratio * 10**400) > 1).to_list()
        with pytest.raises(ValidationError, match=r"^Edge\.ratio is out of range for double"):
            await session.find(Edge).filter((Edge.ratio + 1) < 10**400).to_list()
        with pytest.raises(ValidationError, match=r"^Edge\.amount is a signed, signaling"):
            await session.find(Edge).filter((Edge.amount + Decimal("-NaN")) > 0).to_list()
        with pytest.raises(ValidationError, match=r"^Edge\.count is a signed, signaling"):
            await session.find(Edge).filter((Edge.count + 1) == Decimal("sNaN")).to_list()
        with pytest.raises(ValidationError, match=r"^Edge\.ratio is out of range for double"):
            await session.find(Edge).filter(Edge.id == 1).update(ratio=Edge.ratio * 10**400)
        assert sql.statements == []
        # Positive twins: exact big ints and plain NaN compute.
        await session.find(Edge).filter(Edge.id == 1).update(count=5, amount=Decimal(2))
        big = await session.find(Edge).filter((Edge.count + 10**5000) > 10**4999).to_list()
        assert [e.id for e in big] == [1]
        assert await session.find(Edge).filter((Edge.amount + 1) == 10**5000).to_list() == []
        nan = await session.find(Edge).filter((Edge.amount + Decimal("NaN")) > 0).to_list()
        assert [e.id for e in nan] == [1]  # NaN sorts above every number in PostgreSQL


async def test_an_int_for_a_numeric_column_becomes_the_decimal_the_column_gives_back(
    edge_engine: Engine,
) -> None:
    for value in (7, 10**5000):  # 10**5000 was a raw ValueError (int written as text)
        shown, read = await round_trip(edge_engine, "amount", value)
        assert type(shown) is Decimal and shown == read == value


async def test_an_int_field_over_numeric_keeps_an_int_or_refuses_one_psycopg_cannot_send(
    edge_engine: Engine, sql: StatementLog
) -> None:
    # 10**5000 was stored in the int field as a Decimal (the operand conversion).
    await refused_everywhere(edge_engine, sql, "whole", 10**5000, r"int of more than 4300 digits")
    shown, read = await round_trip(edge_engine, "whole", 2**70)
    assert type(shown) is type(read) is int and shown == read == 2**70


async def test_a_numeric_with_digits_past_its_scale_is_refused_not_rounded(
    edge_engine: Engine, sql: StatementLog
) -> None:
    await refused_everywhere(edge_engine, sql, "price", Decimal("1.005"), r"digits past the scale")
    shown, read = await round_trip(edge_engine, "price", Decimal("1.500"))
    assert shown == read == Decimal("1.5")


async def test_a_float_column_holds_the_float_the_database_stores(edge_engine: Engine) -> None:
    shown, read = await round_trip(edge_engine, "ratio", 2**53 + 1)
    assert shown == read == 9007199254740992.0
    assert type(shown) is float
    shown, read = await round_trip(edge_engine, "small_ratio", 0.1)
    assert shown == read == 0.10000000149011612
    for value in (-0.0, float("inf"), 3.4028234663852886e38, 1e-45):
        shown, read = await round_trip(edge_engine, "small_ratio", value)
        assert shown == read and str(shown) == str(read)


async def test_a_float_real_cannot_hold_is_refused_before_any_sql(
    edge_engine: Engine, sql: StatementLog
) -> None:
    await refused_everywhere(edge_engine, sql, "small_ratio", 1e-50, r"underflow")
    await refused_everywhere(edge_engine, sql, "small_ratio", 3.5e38, r"out of range for real")
    await refused_everywhere(edge_engine, sql, "ratio", 10**400, r"out of range for double")


# -- column_type= overrides held as str ----------------------------------------------------


async def test_an_inet_held_as_str_reads_back_as_the_text_postgresql_prints(
    edge_engine: Engine, sql: StatementLog
) -> None:
    for written, text in [
        ("10.0.0.1/32", "10.0.0.1"),
        ("10.0.0.1/24", "10.0.0.1/24"),
        ("2001:0db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("::ffff:1.2.3.4", "::ffff:1.2.3.4"),
    ]:
        shown, read = await round_trip(edge_engine, "ip", written)
        assert shown == read == text and type(read) is str
    async with Session(edge_engine) as session:
        loaded = await session.get(Edge, 1)
        assert await session.find(Edge).filter(Edge.id == 1).update(ip="fe80::1/64") == 1
        assert loaded is not None and loaded.ip == "fe80::1/64"  # RETURNING gives the text
        found = await session.find(Edge).filter(Edge.ip == "fe80::1/64").to_list()
        assert [e.id for e in found] == [1]
        await session.commit()
    await refused_everywhere(edge_engine, sql, "ip", '10.0.0.1" password=hunter2', r"\(inet\)$")
    await refused_everywhere(edge_engine, sql, "ip", "10.1/16", r"is not an IP address")


# -- 7. raw SQL ---------------------------------------------------------------------------------


async def test_raw_sql_without_parameters_is_sent_as_written(edge_engine: Engine) -> None:
    async with Session(edge_engine) as session:
        assert (await session.execute("SELECT '100%'")).rows == [("100%",)]
        assert (await session.execute("SELECT '%s%%'")).rows == [("%s%%",)]
        # With parameters, %% is a literal % as psycopg defines it.
        assert (await session.execute("SELECT %s || '%%'", ("100",))).rows == [("100%",)]
        found = await session.from_sql(Edge, "SELECT * FROM edges WHERE label LIKE 'x%'")
        assert [e.id for e in found] == [1]

"""An int field over a numeric column reads back as an int on every read path.

psycopg loads numeric as ``Decimal``; the field says ``int``. Every path that
puts a read value on an object or in a row gives the exact ``int`` (numeric(40,0)
values past bigint included): the row maker of find()/get()/stream(),
from_sql(), refresh(), select(), the RETURNING of flush, update() and upsert().
A stored value that is not an integer (1.5 in a plain numeric) is an error
naming the model and the column, never truncated; an int field over a numeric
with a scale is refused when the model is mapped.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from core_fixtures import DSN, fetch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_bridge_core import (
    Column,
    Computed,
    Engine,
    ModelDefinitionError,
    Session,
    StoredValueError,
    Table,
    ValidationError,
    computed,
    func,
    scalar,
)
from data_bridge_core.schema.table import table_info
from scratch_schema import engine_on_loop


class Ledger(Table):
    id: int = Column(primary_key=True)
    total: int = Column(default=0, column_type="numeric(40,0)")
    amount: int | None = Column(default=None, column_type="numeric")
    # Filled by the server: read back by the INSERT's RETURNING.
    bonus: int = Column(server_default="7", column_type="numeric")
    code: int | None = Column(default=None, unique=True, column_type="decimal(40)")

    class Settings:
        table_name = "ledgers"


class Account(Table):
    """A key over numeric(40,0): the identity map's key is the int too."""

    number: int = Column(primary_key=True, column_type="numeric(40,0)", server_default="0")
    name: str = ""

    class Settings:
        table_name = "accounts"


class Branch(Table):
    """Computed values reading an int field over numeric."""

    id: int = Column(primary_key=True)
    ledger_id: int = 0
    ledger_total: ClassVar[Computed[int]] = computed(
        lambda: scalar(Ledger, Ledger.total, Ledger.id == Branch.ledger_id)
    )
    all_totals: ClassVar[Computed[int]] = computed(lambda: scalar(Ledger, func.sum(Ledger.total)))

    class Settings:
        table_name = "branches"


BIG = 10**39 - 1  # the largest numeric(40,0) holds... well past bigint


@pytest.fixture
async def ledger_engine(schema: str) -> AsyncIterator[Engine]:
    eng = Engine(DSN, min_size=0, max_size=2, options=f"-c search_path={schema}")
    await eng.create_all(Ledger, Account, Branch)
    try:
        yield eng
    finally:
        await eng.dispose()


def _ints(obj: Ledger) -> list[Any]:
    return [obj.total, obj.amount, obj.bonus]


def _assert_ints(values: list[Any], expected: list[Any]) -> None:
    assert values == expected
    assert [type(v) for v in values] == [type(e) for e in expected]


# -- every read path ----------------------------------------------------------------------


async def _read_on_every_path(engine: Engine, key: int, total: int, amount: int) -> None:
    """Writes one row, then reads it back on each path; each gives exact ints."""
    async with Session(engine) as session:
        row = Ledger(id=key, total=total, amount=amount)
        session.add(row)
        await session.flush()
        # The flush's RETURNING of the server default.
        _assert_ints(_ints(row), [total, amount, 7])
        await session.commit()
    async with Session(engine) as session:
        got = await session.get(Ledger, key)
        assert got is not None
        _assert_ints(_ints(got), [total, amount, 7])
    async with Session(engine) as session:
        (found,) = await session.find(Ledger).filter(Ledger.id == key).to_list()
        _assert_ints(_ints(found), [total, amount, 7])
    async with Session(engine) as session:
        (raw,) = await session.from_sql(Ledger, "SELECT * FROM ledgers WHERE id = %s", [key])
        _assert_ints(_ints(raw), [total, amount, 7])
        # refresh(): the row changed behind the session's back.
        await session.execute("UPDATE ledgers SET bonus = 8 WHERE id = %s", [key])
        await session.refresh(raw)
        _assert_ints(_ints(raw), [total, amount, 8])
        # update(): the new values read back by its RETURNING.
        await (
            session.find(Ledger)
            .filter(Ledger.id == key)
            .update(amount=Ledger.amount - 1, bonus=Ledger.bonus + 1)
        )
        _assert_ints(_ints(raw), [total, amount - 1, 9])
        await session.commit()
    async with Session(engine) as session:
        streamed = [r async for r in session.find(Ledger).filter(Ledger.id == key).stream()]
        _assert_ints(_ints(streamed[0]), [total, amount - 1, 9])
    async with Session(engine) as session:
        selected = (
            await session.find(Ledger)
            .filter(Ledger.id == key)
            .select(Ledger.total, Ledger.amount.named("a"), func.max(Ledger.bonus))
            .group_by(Ledger.id)
            .to_list()
        )
        _assert_ints(list(selected[0]), [total, amount - 1, 9])
        summed = (
            await session.find(Ledger)
            .filter(Ledger.id == key)
            .select(func.sum(Ledger.total), func.min(Ledger.amount))
            .to_list()
        )
        _assert_ints(list(summed[0]), [total, amount - 1])
    async with Session(engine) as session:
        # aggregate(): the columns, and the group outputs computed from them.
        base = session.find(Ledger).filter(Ledger.id == key)
        (doc,) = await base.aggregate([{"$project": {"total": 1, "amount": 1}}])
        _assert_ints([doc["total"], doc["amount"]], [total, amount - 1])
        (group,) = await base.aggregate(
            [
                {
                    "$group": {
                        "_id": "$amount",
                        "low": {"$min": "$total"},
                        "high": {"$max": "$bonus"},
                        "sum": {"$sum": "$total"},
                    }
                },
                {"$match": {"sum": {"$gte": -(10**40)}}},
            ]
        )
        _assert_ints(
            [group["_id"], group["low"], group["high"], group["sum"]],
            [amount - 1, total, 9, total],
        )
    async with Session(engine) as session:
        # upsert(): the RETURNING of the row it updated.
        again = Ledger(id=key, total=total, amount=amount)
        assert await session.upsert([again], on=("id",), update=("amount",)) == 1
        _assert_ints(_ints(again), [total, amount, 9])
        await session.commit()


async def test_an_int_field_over_numeric_reads_back_an_int_on_every_path(
    ledger_engine: Engine,
) -> None:
    for key, (total, amount) in enumerate(
        [(0, 1), (2**63, -(2**63) - 1), (BIG, -BIG), (-(10**20), 10**30)], start=1
    ):
        await _read_on_every_path(ledger_engine, key, total, amount)


@st.composite
def _int_pairs(draw: st.DrawFn) -> tuple[int, int]:
    edges = st.sampled_from([0, -1, 2**63 - 1, 2**63, -(2**63) - 1, BIG, -BIG])
    number = st.integers(min_value=-BIG, max_value=BIG) | edges
    return draw(number), draw(number)


def test_property_every_int_a_numeric_40_holds_reads_back_exactly() -> None:
    keys = itertools.count(1)
    with engine_on_loop("dbn", Ledger, Account) as (loop, engine):

        @settings(
            max_examples=15,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(_int_pairs())
        def check(pair: tuple[int, int]) -> None:
            total, amount = pair
            loop.run_until_complete(_read_on_every_path(engine, next(keys), total, amount))

        check()


async def test_a_key_over_numeric_is_an_int_in_the_object_and_the_identity_map(
    ledger_engine: Engine,
) -> None:
    async with Session(ledger_engine) as session:
        session.add_all([Account(number=BIG, name="big"), Account(number=5, name="five")])
        await session.commit()
    async with Session(ledger_engine) as session:
        rows = await session.find(Account).order_by(Account.number).to_list()
        assert [(type(a.number), a.number) for a in rows] == [(int, 5), (int, BIG)]
        assert await session.get(Account, BIG) is rows[1]
        held = session.held_objects(Account)
        assert sorted(type(k).__name__ for k in session._identity.by_model[Account]) == [
            "int",
            "int",
        ]
        assert len(held) == 2
        # upsert(on the key) of a held row: merged into the held object.
        copy = Account(number=BIG, name="renamed")
        assert await session.upsert([copy], on=("number",), update=("name",)) == 1
        assert (type(copy.number), rows[1].name) == (int, "renamed")


async def test_many_objects_flushed_at_once_read_their_generated_numeric_as_int(
    ledger_engine: Engine,
) -> None:
    async with Session(ledger_engine) as session:
        rows = [Ledger(total=BIG - i, amount=i) for i in range(30)]
        session.add_all(rows)
        await session.flush()
        assert [type(r.bonus) for r in rows] == [int] * 30
        assert [(r.total, r.amount, r.bonus) for r in rows] == [(BIG - i, i, 7) for i in range(30)]
        # Keys given (the other bulk plan), with a generated numeric.
        accounts = [Account(number=10**30 + i) for i in range(10)]
        session.add_all(accounts)
        await session.commit()
    async with Session(ledger_engine) as session:
        page = await session.find(Ledger).order_by(Ledger.id).to_list()
        assert [(type(r.total), type(r.amount)) for r in page] == [(int, int)] * 30
        # A result large enough for the compact row store (hydration.COMPACT_FROM_ROWS).
        await session.execute(
            "INSERT INTO accounts (number, name) SELECT g, 'x' FROM generate_series(1, 1200) g"
        )
        many = await session.find(Account).to_list()
        assert len(many) == 1210 and {type(a.number) for a in many} == {int}


# -- a stored value that is not an integer --------------------------------------------------


async def test_a_stored_fraction_is_an_error_naming_model_and_column_never_truncated(
    ledger_engine: Engine, schema: str
) -> None:
    await fetch(
        schema,
        "INSERT INTO ledgers (id, total, amount) VALUES (1, 1, 1.5), (2, 2, 2.0), (3, 3, 'NaN') "
        "RETURNING id",
    )
    message = (
        r"^Ledger\.amount holds a stored value that is not an integer "
        r"\(the int field cannot show it: declare the field Decimal\)$"
    )

    def fails(caught: pytest.ExceptionInfo[StoredValueError]) -> None:
        error = caught.value
        assert (error.model, error.column) == ("Ledger", "amount")
        assert "1.5" not in str(error) and "NaN" not in str(error)  # never the value
        assert isinstance(error, ValidationError) and isinstance(error, ValueError)

    async with Session(ledger_engine) as session:
        two = await session.get(Ledger, 2)  # 2.0 is an integer: read as 2
        assert two is not None and (type(two.amount), two.amount) == (int, 2)
        for key in (1, 3):
            with pytest.raises(StoredValueError, match=message) as caught:
                await session.get(Ledger, key)
            fails(caught)
        with pytest.raises(StoredValueError, match=message) as caught:
            await session.find(Ledger).order_by(Ledger.id).to_list()
        fails(caught)
        with pytest.raises(StoredValueError, match=message):
            await session.from_sql(Ledger, "SELECT * FROM ledgers WHERE id = 1")
        with pytest.raises(StoredValueError, match=message):
            await session.find(Ledger).filter(Ledger.id == 1).select(Ledger.amount).to_list()
        with pytest.raises(StoredValueError, match=message):
            await session.find(Ledger).filter(Ledger.id == 2).update(amount=Ledger.amount / 4)
        # The transaction goes on: the failed read sent nothing wrong.
        await session.execute("UPDATE ledgers SET amount = 5.0 WHERE id = 2")
        await session.refresh(two)
        assert (type(two.amount), two.amount) == (int, 5)
        await session.execute("UPDATE ledgers SET amount = 5.25 WHERE id = 2")
        with pytest.raises(StoredValueError, match=message):
            await session.refresh(two)
        assert two.amount == 5  # left as it was
        await session.commit()


def test_an_int_field_over_numeric_with_a_scale_is_refused_when_mapped() -> None:
    class ScaledPrice(Table):
        id: int = Column(primary_key=True)
        cents: int = Column(column_type="numeric(10,2)")

    refused = r"^ScaledPrice\.cents: an int field over numeric\(10,2\) \(a scale above 0\)"
    with pytest.raises(ModelDefinitionError, match=refused):
        table_info(ScaledPrice)

    class WholeNumbers(Table):
        id: int = Column(primary_key=True)
        a: int = Column(column_type="numeric(10, 0)")
        b: int = Column(column_type="NUMERIC(12)")
        c: int = Column(column_type="decimal")

    assert [c.column_type.sql_type for c in table_info(WholeNumbers).columns.values()][1:] == [
        "numeric(10, 0)",
        "NUMERIC(12)",
        "decimal",
    ]


def test_a_model_without_such_a_column_has_no_conversion() -> None:
    # Its row maker and its read paths do exactly what they did (no per-row step).
    class PlainAmounts(Table):
        id: int = Column(primary_key=True)
        amount: Decimal = Column(default=Decimal(0))
        big: int = Column(default=0, column_type="bigint")

    assert table_info(PlainAmounts).loaders == ()
    converted = [name for _, name, _ in table_info(Ledger).loaders]
    assert converted == ["total", "amount", "bonus", "code"]


async def test_computed_values_reading_such_a_column_are_ints(ledger_engine: Engine) -> None:
    async with Session(ledger_engine) as session:
        session.add_all([Ledger(id=1, total=BIG), Ledger(id=2, total=2**64), Branch(ledger_id=1)])
        await session.commit()
    async with Session(ledger_engine) as session:
        (branch,) = await session.find(Branch).to_list()
        shown = [branch.ledger_total, branch.all_totals]
        _assert_ints(shown, [BIG, BIG + 2**64])
        rows = await session.find(Branch).select(Branch.ledger_total, Branch.all_totals).to_list()
        _assert_ints(list(rows[0]), [BIG, BIG + 2**64])


def test_the_conversion_is_exact_and_refuses_what_is_not_an_integer() -> None:
    column = table_info(Ledger).columns["amount"]
    assert [column.load(v) for v in (Decimal("1E+40"), Decimal("-7.000"), 3.0, None, 5)] == [
        10**40,
        -7,
        3,
        None,
        5,
    ]
    assert type(column.load(Decimal("2"))) is int
    for stored in (Decimal("0.5"), Decimal("-Infinity"), Decimal("sNaN"), 2.5, float("nan")):
        with pytest.raises(StoredValueError, match=r"^Ledger\.amount holds a stored value"):
            column.load(stored)

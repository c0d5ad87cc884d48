"""Values that read back other than the object showed them, found by the round-trip
properties (test_value_roundtrips_paths.py), one test each, and values refused
with the model, the column and the problem named."""

from __future__ import annotations

import enum
import struct
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from core_fixtures import DSN

from data_bridge_core import (
    Column,
    Engine,
    ModelDefinitionError,
    PendingRollbackError,
    Session,
    Table,
    ValidationError,
    func,
)
from scratch_schema import fresh_schema


class Reading(Table):
    id: int = Column(primary_key=True)
    level: float | None = Column(default=None, column_type="real")
    exact: Decimal | None = Column(default=None)
    cents: Decimal | None = Column(default=None, column_type="numeric(8,2)")
    blob: bytes | None = Column(default=None)
    address: str | None = Column(default=None, column_type="inet")
    network: str | None = Column(default=None, column_type="cidr")
    meta: dict[str, Any] | None = Column(default=None)
    code: str | None = Column(default=None)
    rank: int | None = Column(default=None)

    class Settings:
        table_name = "readings"


class Counter(Table):
    id: int = Column(primary_key=True)
    hits: int = Column(server_default="5")  # NOT NULL, filled by PostgreSQL

    class Settings:
        table_name = "counters"


class Sample(Table):
    # A uuid key the database generates: several new rows go through the batched
    # per-row INSERT ... RETURNING (executemany), not the bulk unnest INSERT.
    id: uuid.UUID = Column(primary_key=True, server_default="gen_random_uuid()")
    level: float = Column(column_type="real", server_default="0.1")
    note: str = ""

    class Settings:
        table_name = "samples"


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    async with fresh_schema("dbrd") as name:
        eng = Engine(DSN, min_size=0, max_size=2, options=f"-c search_path={name}")
        await eng.create_all(Reading, Sample, Counter)
        try:
            yield eng
        finally:
            await eng.dispose()


def bits(value: float) -> str:
    return struct.pack(">d", value).hex()


async def test_a_real_reads_back_as_the_same_double_through_stream(engine: Engine) -> None:
    # The server-side cursor read rows as text: real's text "0.1" is another
    # double (0.1) than the binary value find() reads (0.10000000149011612).
    async with Session(engine) as session:
        shown = Reading(id=1, level=0.1)
        session.add(shown)
        await session.commit()
    assert shown.level == 0.10000000149011612
    async with Session(engine) as session:
        streamed = [r async for r in session.find(Reading).stream()]
    async with Session(engine) as session:
        found = await session.find(Reading).to_list()
    assert (
        [bits(r.level) for r in streamed] == [bits(r.level) for r in found] == [bits(shown.level)]
    )


async def test_a_real_server_default_of_a_batched_insert_reads_back_in_binary(
    engine: Engine,
) -> None:
    # executemany(returning=True) read its RETURNING rows as text (see above).
    async with Session(engine) as session:
        samples = [Sample(note="a"), Sample(note="b")]
        session.add_all(samples)
        await session.commit()
    assert [s.level for s in samples] == [0.10000000149011612, 0.10000000149011612]
    async with Session(engine) as session:
        found = await session.find(Sample).to_list()
    assert sorted(bits(s.level) for s in found) == [bits(0.10000000149011612)] * 2


async def test_a_nan_for_a_real_holds_the_nan_the_column_stores(engine: Engine) -> None:
    payload = struct.unpack(">d", bytes.fromhex("7ff8000000000123"))[0]
    negative = struct.unpack(">d", bytes.fromhex("fff8000000000000"))[0]
    async with Session(engine) as session:
        written = [Reading(id=1, level=payload), Reading(id=2, level=negative)]
        session.add_all(written)
        await session.commit()
    # real keeps 23 bits of a NaN's payload: the object shows what a read gives back.
    assert [bits(r.level) for r in written] == ["7ff8000000000000", "fff8000000000000"]
    async with Session(engine) as session:
        found = await session.find(Reading).order_by(Reading.id).to_list()
    assert [bits(r.level) for r in found] == ["7ff8000000000000", "fff8000000000000"]


class Shown(Decimal):
    """A Decimal subclass whose str() is not its digits (a display wrapper)."""

    def __str__(self) -> str:
        return "1"


async def test_a_decimal_subclass_is_stored_as_its_digits_on_every_path(engine: Engine) -> None:
    # psycopg writes a Decimal as str(value): a single-row INSERT, an UPDATE and an
    # upsert stored 1 for Shown("2.5"), the bulk INSERT 2.5.
    async with Session(engine) as session:
        one = Reading(id=1, exact=Shown("2.5"), cents=Shown("2.5"))
        session.add(one)
        session.add_all([Reading(id=2, exact=Shown("2.5")), Reading(id=3, exact=Shown("2.5"))])
        await session.flush()
        assert type(one.exact) is Decimal and type(one.cents) is Decimal
        later = Reading(id=4)
        session.add(later)
        await session.flush()
        later.exact = Shown("2.5")
        await session.upsert([Reading(id=5, exact=Shown("2.5"))], on=["id"], update=["exact"])
        await session.find(Reading).filter(Reading.id == 6).update(exact=Shown("2.5"))
        session.add(Reading(id=6))
        await session.commit()
        await session.find(Reading).filter(Reading.id == 6).update(exact=Shown("2.5"))
        await session.commit()
    async with Session(engine) as session:
        found = await session.find(Reading).order_by(Reading.id).to_list()
        assert [(r.id, r.exact) for r in found] == [(i, Decimal("2.5")) for i in range(1, 7)]
        assert found[0].cents == Decimal("2.50")
        matched = await session.find(Reading).filter(Reading.exact == Shown("2.5")).count()
        assert matched == 6


async def test_bytes_like_values_are_copied_into_bytes_on_entry(engine: Engine) -> None:
    buffer = bytearray(b"ab")
    async with Session(engine) as session:
        first = Reading(id=1, blob=buffer)
        second = Reading(id=2, blob=memoryview(buffer))
        session.add_all([first, second])
        await session.flush()
        buffer[:] = b"zz"  # the caller's buffer changes after the write
        assert (first.blob, second.blob) == (b"ab", b"ab")
        assert type(first.blob) is bytes and type(second.blob) is bytes
        first.blob = bytearray(b"cd")
        assert type(first.blob) is bytes
        await session.commit()
    async with Session(engine) as session:
        found = await session.find(Reading).order_by(Reading.id).to_list()
        assert [r.blob for r in found] == [b"cd", b"ab"]
        assert await session.find(Reading).filter(Reading.blob == bytearray(b"ab")).count() == 1


def test_a_mutable_default_is_refused_naming_the_model_and_field() -> None:
    # One dict would be every object's value: a change to one showed on all.
    with pytest.raises(ModelDefinitionError, match=r"Profile\.tags: a mutable default \(list\)"):

        class Profile(Table):
            id: int = Column(primary_key=True)
            tags: list[str] = Column(default=[])

    with pytest.raises(ModelDefinitionError, match=r"Badge\.meta: .*default_factory=dict"):

        class Badge(Table):
            id: int = Column(primary_key=True)
            meta: dict[str, Any] = {}  # the shorthand default too

    class Card(Table):
        id: int = Column(primary_key=True)
        tags: list[str] = Column(default_factory=list)

    first, second = Card(id=1), Card(id=2)
    first.tags.append("x")
    assert (first.tags, second.tags) == (["x"], [])


async def test_min_and_max_of_an_inet_column_select_the_text_the_column_reads(
    engine: Engine,
) -> None:
    async with Session(engine) as session:
        session.add_all(
            [
                Reading(id=1, address="10.0.0.1", network="10.0.0.0/8"),
                Reading(id=2, address="::1", network="192.168.0.0/16"),
            ]
        )
        await session.commit()
    async with Session(engine) as session:
        rows = (
            await session.find(Reading)
            .select(
                func.min(Reading.address).named("low"),
                func.max(Reading.address).named("high"),
                func.max(Reading.network).named("network"),
            )
            .to_list()
        )
    assert [tuple(r) for r in rows] == [("10.0.0.1", "::1", "192.168.0.0/16")]


async def test_a_json_value_changed_in_place_is_refused_at_flush_naming_the_column(
    engine: Engine,
) -> None:
    # Changed in place after its check: json.dumps raised a bare TypeError (a set),
    # or PostgreSQL a DataError (NaN); nothing named the model or the column.
    for bad in ({1, 2}, float("nan")):
        async with Session(engine) as session:
            meta: dict[str, Any] = {"a": 1}
            session.add(Reading(id=1))
            many = [Reading(id=2, meta=meta), Reading(id=3, meta={"b": 2})]
            session.add_all(many)
            meta["bad"] = bad
            with pytest.raises(ValidationError) as refused:
                await session.flush()
            assert (refused.value.model, refused.value.column) == ("Reading", "meta")
            assert "changed in place" in refused.value.problem
            with pytest.raises(PendingRollbackError):
                await session.flush()
            await session.rollback()
        async with Session(engine) as session:
            assert await session.find(Reading).count() == 0  # nothing written
    async with Session(engine) as session:
        upserted = Reading(id=4, meta={"a": 1})
        assert upserted.meta is not None
        upserted.meta["bad"] = {1}
        with pytest.raises(ValidationError, match=r"Reading\.meta .*changed in place"):
            await session.upsert([upserted], on=["id"], update=["meta"])
        await session.rollback()
        assert await session.find(Reading).count() == 0


class Level(enum.IntEnum):
    LOW = 1


class Colour(enum.StrEnum):
    RED = "red"


async def test_enum_members_are_stored_as_their_values(engine: Engine) -> None:
    # An IntEnum or StrEnum member is an int or str: stored as its value, on the
    # bulk and single-row paths alike, and read back as the plain int or str.
    async with Session(engine) as session:
        session.add(Reading(id=1, rank=Level.LOW, code=Colour.RED))
        session.add_all([Reading(id=i, rank=Level.LOW, code=Colour.RED) for i in (2, 3)])
        await session.commit()
    async with Session(engine) as session:
        found = await session.find(Reading).filter(Reading.code == Colour.RED).to_list()
        assert sorted((r.id, r.rank, r.code) for r in found) == [
            (1, 1, "red"),
            (2, 1, "red"),
            (3, 1, "red"),
        ]
        assert {(type(r.rank), type(r.code)) for r in found} == {(int, str)}


async def test_an_aggregate_reads_an_inet_column_as_the_text_find_gives(engine: Engine) -> None:
    # aggregate() read the column itself: psycopg made IPv4Address objects of it.
    async with Session(engine) as session:
        session.add_all(
            [
                Reading(id=1, address="10.0.0.1", network="10.0.0.0/8"),
                Reading(id=2, address="::1", network="10.0.0.0/8"),
            ]
        )
        await session.commit()
    async with Session(engine) as session:
        query = session.find(Reading)
        projected = await query.aggregate([{"$project": {"address": 1}}, {"$sort": {"address": 1}}])
        grouped = await query.aggregate(
            [
                {"$group": {"_id": "$network", "low": {"$min": "$address"}, "n": {"$count": {}}}},
                {"$sort": {"_id": 1}},
            ]
        )
    assert projected == [{"address": "10.0.0.1"}, {"address": "::1"}]
    assert grouped == [{"_id": "10.0.0.0/8", "low": "10.0.0.1", "n": 2}]


async def test_none_for_a_not_null_server_default_column_of_a_stored_row_is_refused(
    engine: Engine,
) -> None:
    # None lets PostgreSQL fill a new row; on a stored row it was written as NULL:
    # an IntegrityError after the UPDATE was sent, not a ValidationError before.
    async with Session(engine) as session:
        new = Counter(id=1, hits=None)
        session.add(new)
        await session.commit()
        assert new.hits == 5
        with pytest.raises(ValidationError) as assigned:
            new.hits = None
        assert (assigned.value.model, assigned.value.column) == ("Counter", "hits")
        assert "server default fills only a new row" in assigned.value.problem
        assert new.hits == 5 and not session.has_changes
        with pytest.raises(ValidationError, match=r"Counter\.hits is NOT NULL"):
            await session.find(Counter).filter(Counter.id == 1).update(hits=None)
        new.hits = 6
        await session.commit()
    async with Session(engine) as session:
        assert [(c.id, c.hits) for c in await session.find(Counter).to_list()] == [(1, 6)]

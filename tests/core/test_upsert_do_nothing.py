"""upsert(..., update=()): a row that already exists wins, and the object passed shows it.

``ON CONFLICT DO NOTHING`` returns no row for a conflict; the objects it
skipped are read back by a second statement (sent only when one was skipped):
each gets the existing row's key and values and is persistent, joining the
session, or, when the session already holds that row, becomes a detached copy
of it (as with ``DO UPDATE``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import pytest
from core_fixtures import DSN, StatementLog, fetch

from data_bridge_core import Column, Engine, InvalidStateError, Session, Table, inspect


class Member(Table):
    id: int = Column(primary_key=True)
    email: str = Column(unique=True)
    name: str = ""
    # Filled by the server, never written by the upsert's insert.
    joined: str = Column(server_default="'long ago'")

    class Settings:
        table_name = "members"


class Gate(Table):
    code: str = Column(primary_key=True, column_type="char(4)")
    terminal: int = 0

    class Settings:
        table_name = "gates"


class Fee(Table):
    id: int = Column(primary_key=True)
    amount: Decimal = Column(unique=True, column_type="numeric(10,2)")
    # An int field over numeric: read back as an int on this path too.
    units: int = Column(default=0, column_type="numeric(40,0)")

    class Settings:
        table_name = "fees"


class Seat(Table):
    row: int = Column(primary_key=True)
    letter: str = Column(primary_key=True)
    holder: str = ""

    class Settings:
        table_name = "seats"


@pytest.fixture
async def upsert_engine(schema: str) -> AsyncIterator[Engine]:
    engine = Engine(DSN, min_size=0, max_size=2, options=f"-c search_path={schema}")
    await engine.create_all(Member, Gate, Fee, Seat)
    try:
        yield engine
    finally:
        await engine.dispose()


async def test_a_skipped_object_gets_the_existing_rows_key_and_values_and_joins_the_session(
    upsert_engine: Engine, schema: str, sql: StatementLog
) -> None:
    async with Session(upsert_engine) as session:
        session.add(Member(email="a@x.org", name="Old"))
        await session.commit()
    async with Session(upsert_engine) as session:
        taken = Member(email="a@x.org", name="Ann")
        new = Member(email="c@x.org", name="Cy")
        sql.clear()
        assert await session.upsert([taken, new], on=("email",), update=()) == 1
        assert len(sql.statements) == 2
        assert sql.statements[1] == (
            'SELECT "members"."id", "members"."email", "members"."name", "members"."joined", '
            'v.ord FROM "members" JOIN (VALUES (%s::text, 1)) AS v (c0, ord) '
            'ON "members"."email" = v.c0 ORDER BY v.ord'
        )
        # The existing row wins: the object shows it, key and server values included.
        shown = (taken.id, taken.email, taken.name, taken.joined)
        assert shown == (1, "a@x.org", "Old", "long ago")
        assert inspect(taken).persistent and taken in session
        assert await session.get(Member, 1) is taken
        assert (new.id, new.name, new.joined) == (3, "Cy", "long ago") and new in session
        # The persistent object it now is: a change is an UPDATE of that row.
        taken.name = "Renamed"
        await session.commit()
    assert await fetch(schema, "SELECT id, email, name FROM members ORDER BY id") == [
        (1, "a@x.org", "Renamed"),
        (3, "c@x.org", "Cy"),
    ]


async def test_nothing_skipped_sends_no_second_statement(
    upsert_engine: Engine, sql: StatementLog
) -> None:
    async with Session(upsert_engine) as session:
        sql.clear()
        rows = [Member(email=f"{i}@x.org") for i in range(3)]
        assert await session.upsert(rows, on=("email",), update=()) == 3
        assert len(sql.statements) == 1
        assert [m.id for m in rows] == [1, 2, 3]


async def test_a_skipped_row_the_session_holds_leaves_the_held_object_and_gives_a_copy(
    upsert_engine: Engine, schema: str
) -> None:
    async with Session(upsert_engine) as session:
        session.add(Member(email="a@x.org", name="Old"))
        await session.commit()
        held = await session.get(Member, 1)
        assert held is not None
        copy = Member(email="a@x.org", name="Other")
        assert await session.upsert([copy], on=("email",), update=()) == 0
        assert (copy.id, copy.name) == (1, "Old") and inspect(copy).persistent
        assert copy not in session and await session.get(Member, 1) is held
        assert held.name == "Old"
        with pytest.raises(InvalidStateError, match="another object with the identity"):
            session.add(copy)
        await session.commit()
    assert await fetch(schema, "SELECT id, name FROM members") == [(1, "Old")]


async def test_a_rollback_sends_a_skipped_object_out_of_the_session_as_a_written_one(
    upsert_engine: Engine,
) -> None:
    async with Session(upsert_engine) as session:
        session.add(Member(email="a@x.org", name="Old"))
        await session.commit()
    async with Session(upsert_engine) as session:
        taken = Member(email="a@x.org", name="Ann")
        await session.upsert([taken], on=("email",), update=())
        assert taken.id == 1 and taken in session
        await session.rollback()
        assert not inspect(taken).persistent and taken not in session
        assert await session.get(Member, 1) is not taken


async def test_keys_the_column_normalises_and_composite_keys_find_their_existing_rows(
    upsert_engine: Engine,
) -> None:
    async with Session(upsert_engine) as session:
        session.add_all(
            [
                Gate(code="LHR", terminal=5),
                Fee(amount=Decimal("1.01"), units=10**30),
                Seat(row=7, letter="C", holder="Ann"),
            ]
        )
        await session.commit()
    async with Session(upsert_engine) as session:
        gate = Gate(code="LHR", terminal=1)  # stored as "LHR " (char(4) pads)
        fee = Fee(amount=Decimal("1.01"), units=1)
        seat = Seat(row=7, letter="C", holder="Bob")
        assert await session.upsert([gate], on=("code",), update=()) == 0
        assert await session.upsert([fee], on=("amount",), update=()) == 0
        assert await session.upsert([seat], on=("row", "letter"), update=()) == 0
        assert (gate.code, gate.terminal) == ("LHR ", 5)
        assert (fee.id, fee.units, type(fee.units)) == (1, 10**30, int)
        assert seat.holder == "Ann"
        assert await session.get(Gate, "LHR ") is gate
        assert await session.get(Seat, (7, "C")) is seat


async def test_a_skipped_and_a_written_object_in_many_rows_each_show_their_row(
    upsert_engine: Engine, schema: str
) -> None:
    async with Session(upsert_engine) as session:
        session.add_all([Member(email=f"{i}@x.org", name=f"old{i}") for i in range(0, 20, 2)])
        await session.commit()
    async with Session(upsert_engine) as session:
        objects = [Member(email=f"{i}@x.org", name=f"new{i}") for i in range(20)]
        assert await session.upsert(objects, on=("email",), update=()) == 10
        names = [m.name for m in objects]
        assert names == [f"old{i}" if i % 2 == 0 else f"new{i}" for i in range(20)]
        assert all(inspect(m).persistent and m in session for m in objects)
        assert sorted(m.id for m in objects[::2]) == list(range(1, 11))
        await session.commit()
    assert await fetch(schema, "SELECT count(*) FROM members") == [(20,)]

"""Savepoints (``session.begin_nested()``) and ``session.refresh(obj)``, as in API.md."""

from __future__ import annotations

import pytest
from core_fixtures import StatementLog, User, fetch

from data_bridge_core import (
    Engine,
    IntegrityError,
    InvalidStateError,
    PendingRollbackError,
    Session,
    inspect,
)


async def _with_taken_email(engine: Engine) -> None:
    async with Session(engine) as session:
        session.add(User(name="Owner", email="taken@x.org", age=50))
        await session.commit()


async def test_a_failing_savepoint_rolls_back_to_its_start_and_the_outer_transaction_goes_on(
    engine: Engine, schema: str, sql: StatementLog
) -> None:
    await _with_taken_email(engine)
    async with Session(engine) as session:
        ann = User(name="Ann", email="ann@x.org")
        session.add(ann)
        with pytest.raises(IntegrityError):
            async with session.begin_nested():  # SAVEPOINT
                session.add(User(name="Bob", email="taken@x.org"))
        assert ann.id is not None  # flushed before the savepoint: kept
        session.add(User(name="Cy", email="cy@x.org"))
        await session.commit()
    kinds = [s.split(" data_bridge_sp_")[0] for s in sql.statements if "SAVEPOINT" in s]
    assert kinds == ["SAVEPOINT", "ROLLBACK TO SAVEPOINT", "RELEASE SAVEPOINT"]
    assert await fetch(schema, "SELECT name FROM users ORDER BY id") == [
        ("Owner",),
        ("Ann",),
        ("Cy",),
    ]


async def test_objects_changed_inside_a_failed_savepoint_get_their_values_back(
    engine: Engine, schema: str
) -> None:
    await _with_taken_email(engine)
    async with Session(engine) as session:
        owner = await session.find(User).first()
        assert owner is not None
        newcomer = User(name="New", email="new@x.org")

        async def change_then_fail() -> None:
            async with session.begin_nested():
                owner.age = 51
                owner.name = "Renamed"
                session.add(newcomer)
                await session.flush()
                assert newcomer.id is not None
                raise RuntimeError("changed my mind")

        with pytest.raises(RuntimeError, match="changed my mind"):
            await change_then_fail()
        assert (owner.name, owner.age) == ("Owner", 50)
        assert inspect(owner).modified == frozenset()
        assert newcomer.id is None
        assert newcomer not in session
        assert await session.find(User).count() == 1
        owner.age = 52  # the outer transaction is usable
        await session.commit()
    assert await fetch(schema, "SELECT name, age FROM users") == [("Owner", 52)]


async def test_a_released_savepoint_keeps_its_changes_until_the_outer_rollback(
    engine: Engine, schema: str, sql: StatementLog
) -> None:
    await _with_taken_email(engine)
    async with Session(engine) as session:
        owner = await session.find(User).first()
        assert owner is not None
        inner = User(name="Inner", email="inner@x.org")
        async with session.begin_nested():
            owner.age = 60
            session.add(inner)
        assert any(s.startswith("RELEASE SAVEPOINT") for s in sql.statements)
        assert inner.id is not None and owner.age == 60
        assert await session.find(User).count() == 2
        await session.rollback()
        assert owner.age == 50
        assert inner.id is None and inner not in session
    assert await fetch(schema, "SELECT name, age FROM users") == [("Owner", 50)]


async def test_nested_savepoints_roll_back_only_the_inner_one(engine: Engine, schema: str) -> None:
    await _with_taken_email(engine)
    async with Session(engine) as session:
        owner = await session.find(User).first()
        assert owner is not None

        async def inner() -> None:
            async with session.begin_nested():
                owner.age = 70
                session.add(User(name="Bob", email="taken@x.org"))

        async with session.begin_nested():
            owner.name = "Outer"
            with pytest.raises(IntegrityError):
                await inner()
            assert (owner.name, owner.age) == ("Outer", 50)
            owner.country = "NL"
        await session.commit()
    assert await fetch(schema, "SELECT name, age, country FROM users") == [("Outer", 50, "NL")]


async def test_a_flush_error_caught_inside_a_savepoint_is_reported_when_the_block_ends(
    engine: Engine, schema: str
) -> None:
    await _with_taken_email(engine)
    async with Session(engine) as session:

        async def catch_the_flush_error() -> None:
            async with session.begin_nested():
                session.add(User(name="Bob", email="taken@x.org"))
                with pytest.raises(IntegrityError):
                    await session.flush()
                with pytest.raises(PendingRollbackError):
                    await session.find(User).count()

        with pytest.raises(PendingRollbackError) as ended:
            await catch_the_flush_error()
        assert isinstance(ended.value.original, IntegrityError)
        assert await session.find(User).count() == 1  # rolled back to the savepoint: usable
        session.add(User(name="Cy", email="cy@x.org"))
        await session.commit()
    assert await fetch(schema, "SELECT name FROM users ORDER BY id") == [("Owner",), ("Cy",)]


async def test_refresh_reloads_an_objects_columns_from_the_database(
    engine: Engine, schema: str
) -> None:
    await _with_taken_email(engine)
    async with Session(engine) as session:
        user = await session.find(User).first()
        assert user is not None
        await session.execute("UPDATE users SET name = %s, age = %s", ["Raw", 33])
        assert (user.name, user.age) == ("Owner", 50)  # the identity map keeps its copy
        await session.refresh(user)  # reload one object's columns from the database
        assert (user.name, user.age) == ("Raw", 33)
        assert inspect(user).modified == frozenset()
        await session.rollback()
        assert (user.name, user.age) == ("Owner", 50)
    assert await fetch(schema, "SELECT name, age FROM users") == [("Owner", 50)]


async def test_refresh_takes_only_persistent_objects_of_the_session(engine: Engine) -> None:
    await _with_taken_email(engine)
    async with Session(engine) as session:
        new = User(name="New", email="new@x.org")
        session.add(new)
        with pytest.raises(InvalidStateError, match="persistent object of this session"):
            await session.refresh(new)
        await session.flush()
        await session.refresh(new)  # positive twin: once inserted it can be refreshed
        assert new.name == "New" and new.id is not None
        await session.find(User).filter(User.id == new.id).delete()
        with pytest.raises(InvalidStateError):
            await session.refresh(new)


async def test_rollback_inside_a_savepoint_block_ends_the_whole_transaction(
    engine: Engine, schema: str
) -> None:
    await _with_taken_email(engine)
    async with Session(engine) as session:
        owner = await session.find(User).first()
        assert owner is not None
        owner.age = 1
        await session.flush()
        async with session.begin_nested():
            owner.age = 2
            await session.rollback()
        assert owner.age == 50
        assert not session.in_transaction
        owner.age = 3  # a new transaction
        await session.commit()
    assert await fetch(schema, "SELECT age FROM users") == [(3,)]


async def test_commit_inside_a_savepoint_block_commits_the_whole_transaction(
    engine: Engine, schema: str
) -> None:
    await _with_taken_email(engine)
    async with Session(engine) as session:
        session.add(User(name="Before", email="before@x.org"))
        async with session.begin_nested():
            session.add(User(name="Inside", email="inside@x.org"))
            await session.commit()
        assert not session.in_transaction
    assert await fetch(schema, "SELECT name FROM users ORDER BY id") == [
        ("Owner",),
        ("Before",),
        ("Inside",),
    ]

"""After a rollback the session's objects show what the database holds (issue 8, defect 1).

``Query.update()`` and ``.delete()`` go through the unit of work: loaded objects
follow them at once, and the transaction's one log undoes them on rollback.
"""

from __future__ import annotations

from core_fixtures import User, fetch, seed

from data_bridge_core import Engine, Session, inspect


async def test_rollback_after_a_bulk_update_restores_the_loaded_object_and_find_reads_the_database(
    engine: Engine, schema: str
) -> None:
    await seed(engine, users=1, posts=0)
    async with Session(engine) as session:
        user = await session.get(User, 1)
        assert user is not None and user.age == 10
        assert await session.find(User).filter(User.id == user.id).update(age=77) == 1
        assert user.age == 77  # the loaded object shows the new value at once
        await session.rollback()
        assert user.age == 10
        again = await session.find(User).filter(User.id == 1).first()
        assert again is user
        assert again.age == 10
    assert await fetch(schema, "SELECT age FROM users") == [(10,)]


async def test_rows_loaded_after_a_bulk_update_are_not_kept_stale_by_a_rollback(
    engine: Engine,
) -> None:
    await seed(engine, users=3, posts=0)
    async with Session(engine) as session:
        assert await session.find(User).update(age=55) == 3
        loaded = await session.find(User).order_by(User.id).to_list()
        assert [u.age for u in loaded] == [55, 55, 55]
        await session.rollback()
        fresh = await session.find(User).order_by(User.id).to_list()
        assert [u.age for u in fresh] == [10, 20, 30]
        assert all(u not in session for u in loaded)


async def test_a_bulk_delete_removes_matching_loaded_objects_and_rollback_brings_them_back(
    engine: Engine, schema: str
) -> None:
    await seed(engine, users=2, posts=0)
    async with Session(engine) as session:
        first, second = await session.find(User).order_by(User.id).to_list()
        assert await session.find(User).filter(User.age < 15).delete() == 1
        assert first not in session
        assert inspect(first).deleted
        assert second in session  # not matched: stays
        assert await session.get(User, first.id) is None
        await session.rollback()
        assert first in session
        assert not inspect(first).deleted
        assert await session.get(User, first.id) is first
        assert await session.find(User).count() == 2
    assert await fetch(schema, "SELECT count(*) FROM users") == [(2,)]


async def test_one_rollback_undoes_flushed_changes_and_bulk_updates_together(
    engine: Engine, schema: str
) -> None:
    await seed(engine, users=1, posts=0)
    async with Session(engine) as session:
        user = await session.get(User, 1)
        assert user is not None
        user.name = "renamed"
        await session.flush()
        await session.find(User).filter(User.id == 1).update(age=99, country="IT")
        assert (user.name, user.age, user.country) == ("renamed", 99, "IT")
        await session.rollback()
        assert (user.name, user.age, user.country) == ("u0", 10, "DE")
        assert inspect(user).modified == frozenset()
        assert session.dirty_count == 0
    assert await fetch(schema, "SELECT name, age, country FROM users") == [("u0", 10, "DE")]


async def test_a_committed_bulk_update_stays_on_the_loaded_object(
    engine: Engine, schema: str
) -> None:
    await seed(engine, users=1, posts=0)
    async with Session(engine) as session:
        user = await session.get(User, 1)
        assert user is not None
        await session.find(User).filter(User.id == 1).update(age=77)
        await session.commit()
        assert user.age == 77
        await session.rollback()  # nothing left to undo
        assert user.age == 77
    assert await fetch(schema, "SELECT age FROM users") == [(77,)]


async def test_objects_deleted_by_a_flush_leave_the_session_at_commit(
    engine: Engine, schema: str
) -> None:
    await seed(engine, users=2, posts=0)
    async with Session(engine) as session:
        first, second = await session.find(User).order_by(User.id).to_list()
        await session.delete(first)
        await session.flush()
        assert first not in session
        assert inspect(first).session is session  # until the transaction ends
        await session.commit()
        assert inspect(first).session is None
        assert second in session and inspect(second).session is session
    assert await fetch(schema, "SELECT name FROM users") == [("u1",)]

"""A failed flush rolls the transaction back, and the session says so (issue 8, defect 2).

Until ``await session.rollback()``, ``flush()``, ``commit()`` and queries raise
`PendingRollbackError` naming the original error: a following ``commit()``
can never return normally having written nothing.
"""

from __future__ import annotations

import pytest
from core_fixtures import User, fetch, seed

from data_bridge_core import (
    DataBridgeError,
    Engine,
    IntegrityError,
    PendingRollbackError,
    Session,
    inspect,
)


async def test_after_a_failed_flush_commit_flush_and_queries_raise_pending_rollback(
    engine: Engine, schema: str
) -> None:
    await seed(engine, users=1, posts=0)
    async with Session(engine) as session:
        ann = User(name="Ann", email="ann@x.org")
        session.add(ann)
        await session.flush()
        assert ann.id is not None
        session.add(User(name="Dup", email="u0@x.org"))
        with pytest.raises(IntegrityError) as failed:
            await session.flush()
        with pytest.raises(PendingRollbackError) as refused:
            await session.commit()
        assert refused.value.original is failed.value
        assert "IntegrityError" in str(refused.value)
        assert "u0@x.org" in str(refused.value) or "users_email_key" in str(refused.value)
        assert isinstance(refused.value, DataBridgeError)
        with pytest.raises(PendingRollbackError):
            await session.flush()
        with pytest.raises(PendingRollbackError):
            await session.find(User).to_list()
        with pytest.raises(PendingRollbackError):
            await session.find(User).count()
        with pytest.raises(PendingRollbackError):
            await session.get(User, 1)
        with pytest.raises(PendingRollbackError):
            await session.execute("SELECT 1")
    assert await fetch(schema, "SELECT name FROM users ORDER BY id") == [("u0",)]


async def test_objects_the_failed_transaction_inserted_leave_the_session_without_their_keys(
    engine: Engine,
) -> None:
    await seed(engine, users=1, posts=0)
    async with Session(engine) as session:
        ann = User(name="Ann", email="ann@x.org")
        session.add(ann)
        await session.flush()
        session.add(User(name="Dup", email="u0@x.org"))
        with pytest.raises(IntegrityError):
            await session.flush()
        assert ann.id is None
        assert ann not in session
        assert inspect(ann).session is None
        assert not inspect(ann).persistent


async def test_after_rollback_the_session_works_again_and_commits_what_is_added(
    engine: Engine, schema: str
) -> None:
    await seed(engine, users=1, posts=0)
    async with Session(engine) as session:
        loaded = await session.get(User, 1)
        assert loaded is not None
        loaded.name = "changed"
        session.add(User(name="Dup", email="u0@x.org"))
        with pytest.raises(IntegrityError):
            await session.commit()
        assert loaded.name == "u0"  # back to what the database holds
        await session.rollback()
        session.add(User(name="Cy", email="cy@x.org"))
        await session.commit()
        assert await session.find(User).count() == 2
    assert await fetch(schema, "SELECT name FROM users ORDER BY id") == [("u0",), ("Cy",)]


async def test_leaving_the_session_block_with_the_flush_error_rolls_back_and_closes(
    engine: Engine, schema: str
) -> None:
    await seed(engine, users=1, posts=0)
    session = Session(engine)

    async def request() -> None:
        async with session:
            session.add(User(name="Dup", email="u0@x.org"))
            await session.commit()

    with pytest.raises(IntegrityError):
        await request()
    assert session.closed
    async with Session(engine) as fresh:
        fresh.add(User(name="Ok", email="ok@x.org"))
        await fresh.commit()
    assert await fetch(schema, "SELECT count(*) FROM users") == [(2,)]


async def test_a_lazy_load_after_a_failed_flush_raises_pending_rollback_until_rollback(
    engine: Engine,
) -> None:
    await seed(engine, users=1, posts=1)
    async with Session(engine) as session:
        user = await session.get(User, 1)
        assert user is not None
        session.add(User(name="Dup", email="u0@x.org"))
        with pytest.raises(IntegrityError):
            await session.flush()
        with pytest.raises(PendingRollbackError):
            await user.posts
        await session.rollback()
        assert [p.title for p in await user.posts] == ["p0.0"]  # positive twin

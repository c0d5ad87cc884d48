"""One session shared by several tasks; connections given back whatever is cancelled (issue 19)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from core_fixtures import DSN, User, fetch

from data_bridge_core import Engine, Session

# -- whole operations are serialized (item 2) -------------------------------------------------


def _flush_and_count(s: Session) -> list[Awaitable[Any]]:
    return [s.flush(), s.find(User).count()]


def _count_and_flush(s: Session) -> list[Awaitable[Any]]:
    return [s.find(User).count(), s.flush()]


def _two_flushes(s: Session) -> list[Awaitable[Any]]:
    return [s.flush(), s.flush()]


def _commit_and_list(s: Session) -> list[Awaitable[Any]]:
    return [s.commit(), s.find(User).to_list()]


def _exists_get_and_flush(s: Session) -> list[Awaitable[Any]]:
    return [s.find(User).exists(), s.get(User, 1), s.flush(), s.find(User).count()]


def _raw_sql_and_flush(s: Session) -> list[Awaitable[Any]]:
    return [
        s.execute("SELECT count(*) FROM users"),
        s.flush(),
        s.from_sql(User, "SELECT * FROM users"),
    ]


@pytest.mark.parametrize(
    "operations",
    [
        _flush_and_count,
        _count_and_flush,
        _two_flushes,
        _commit_and_list,
        _exists_get_and_flush,
        _raw_sql_and_flush,
    ],
)
async def test_an_object_added_once_is_inserted_once_whatever_operations_gather_on_the_session(
    engine: Engine, schema: str, operations: Callable[[Session], list[Awaitable[Any]]]
) -> None:
    async with Session(engine) as session:
        user = User(name="once", email="once@x.org")
        session.add(user)
        async with asyncio.timeout(30):
            await asyncio.gather(*operations(session))
        assert session.pending_count == 0
        assert user.id == 1
        await session.commit()
    assert await fetch(schema, "SELECT id, name FROM users") == [(1, "once")]


async def test_a_count_gathered_with_a_flush_sees_the_flushed_row(engine: Engine) -> None:
    async with Session(engine) as session:
        session.add(User(name="seen", email="seen@x.org"))
        _, count = await asyncio.gather(session.flush(), session.find(User).count())
        assert count == 1
        await session.rollback()


async def test_many_tasks_adding_and_flushing_on_one_session_write_each_object_once(
    engine: Engine, schema: str
) -> None:
    async def one(session: Session, n: int) -> None:
        session.add(User(name=f"t{n}", email=f"t{n}@x.org"))
        if n % 3 == 0:
            await session.flush()
        elif n % 3 == 1:
            assert await session.find(User).count() >= 1
        else:
            await session.find(User).filter(User.name == f"t{n}").to_list()

    async with Session(engine) as session:
        async with asyncio.timeout(60):
            await asyncio.gather(*(one(session, n) for n in range(30)))
        await session.commit()
    rows = await fetch(schema, "SELECT count(*), count(DISTINCT email) FROM users")
    assert rows == [(30, 30)]


# -- closing while another task commits (item 5) ------------------------------------------------


def _pool_stats(engine: Engine) -> dict[str, int]:
    assert engine.pool is not None
    return engine.pool.get_stats()


async def test_closing_a_session_while_another_task_commits_reports_the_commit_and_frees_it(
    schema: str,
) -> None:
    small = Engine(DSN, min_size=0, max_size=2, timeout=5, options=f"-c search_path={schema}")
    await small.create_all(User)
    try:
        for n in range(3):  # more events than connections: a leak would starve the third
            session = Session(small)
            session.add(User(name=f"c{n}", email=f"c{n}@x.org"))
            commit = asyncio.create_task(session.commit())
            await asyncio.sleep(0)
            async with asyncio.timeout(30):
                await session.close()
                await commit  # the commit's true outcome: it committed
            assert session.closed
        async with Session(small) as later:
            assert await later.find(User).count() == 3
        stats = _pool_stats(small)
        assert stats["pool_available"] == stats["pool_size"]
    finally:
        await small.dispose()
    names = sorted(name for (name,) in await fetch(schema, "SELECT name FROM users"))
    assert names == ["c0", "c1", "c2"]


async def test_a_commit_that_outlives_a_failed_gather_inside_async_with_reports_its_outcome(
    schema: str,
) -> None:
    small = Engine(DSN, min_size=0, max_size=2, timeout=5, options=f"-c search_path={schema}")
    await small.create_all(User)

    async def fails() -> None:
        await asyncio.sleep(0)
        raise LookupError("another task of the request failed")

    outcomes: list[str] = []
    try:
        for n in range(4):
            started: list[asyncio.Task[None]] = []

            async def request(n: int = n, started: list[asyncio.Task[None]] = started) -> None:
                async with Session(small) as session:
                    session.add(User(name=f"g{n}", email=f"g{n}@x.org"))
                    started.append(asyncio.create_task(session.commit()))
                    await asyncio.gather(started[0], fails())

            with pytest.raises(LookupError):
                await request()
            [commit] = started
            async with asyncio.timeout(30):
                try:
                    await commit
                except Exception as exc:
                    outcomes.append(type(exc).__name__)
                else:
                    outcomes.append("committed")
        async with Session(small) as later:  # both connections are back
            assert await later.find(User).count() == outcomes.count("committed")
        stats = _pool_stats(small)
        assert stats["pool_available"] == stats["pool_size"]
    finally:
        await small.dispose()
    committed = {f"g{n}" for n, outcome in enumerate(outcomes) if outcome == "committed"}
    assert {name for (name,) in await fetch(schema, "SELECT name FROM users")} == committed
    assert outcomes == ["committed"] * 4


# -- cancellation while a connection goes back (item 6) -----------------------------------------


async def test_requests_cancelled_by_tiny_deadlines_never_lose_a_pool_connection(
    schema: str,
) -> None:
    size = 4
    application = f"db_deadlines_{schema}"  # this test's backends only: the server is shared
    small = Engine(
        DSN,
        min_size=0,
        max_size=size,
        timeout=10,
        options=f"-c search_path={schema}",
        application_name=application,
    )
    await small.create_all(User)
    rng = random.Random(19)

    async def request(n: int) -> None:
        async with Session(small) as session:
            await session.execute("SELECT 1")
            if n % 2:  # half the requests write and commit, half end with the rollback
                session.add(User(name=f"r{n}", email=f"r{n}@x.org"))
                await session.commit()

    async def bounded(n: int, deadline: float) -> None:
        try:
            async with asyncio.timeout(deadline):
                await request(n)
        except TimeoutError:
            pass

    try:
        for round_ in range(120):
            deadlines = [rng.uniform(0.0002, 0.01) for _ in range(8)]
            async with asyncio.timeout(60):
                await asyncio.gather(*(bounded(round_ * 8 + i, d) for i, d in enumerate(deadlines)))
        held = []
        async with asyncio.timeout(30):  # every connection can be taken at once
            for _ in range(size):
                held.append(await small.acquire())
        for conn in held:
            await small.release(conn)
        stats = _pool_stats(small)
        assert stats["pool_available"] == stats["pool_size"] == size
    finally:
        await small.dispose()
    no_backend_left = await fetch(
        schema,
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE state LIKE 'idle in transaction%%' AND application_name = %s",
        application,
    )
    assert no_backend_left == [(0,)]


async def test_a_change_made_while_another_task_flushes_is_written_by_the_next_flush(
    engine: Engine, schema: str
) -> None:
    async with Session(engine) as session:
        session.add_all([User(name=f"m{i}", email=f"m{i}@x.org") for i in range(2)])
        await session.commit()
        first, second = await session.find(User).order_by(User.id.asc()).to_list()
        first.age = 1
        second.age = 1
        doomed = User(name="doomed", email="doomed@x.org")
        session.add(doomed)
        await session.flush()
        await session.delete(doomed)

        async def meanwhile() -> None:
            await asyncio.sleep(0)  # the flush has sent its first statement
            first.age = 2
            await session.delete(second)

        await asyncio.gather(session.flush(), meanwhile())
        await session.commit()
    assert await fetch(schema, "SELECT name, age FROM users ORDER BY id") == [("m0", 2)]


async def test_a_streams_autoflush_and_its_cursor_are_one_operation(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with Session(engine) as session:
        session.add(User(name="new", email="new@x.org"))
        flush = Session.autoflush

        async def autoflush_then_yield(self: Session) -> None:
            await flush(self)
            await asyncio.sleep(0.01)  # another task's turn, between the flush and the cursor

        monkeypatch.setattr(Session, "autoflush", autoflush_then_yield)

        async def names() -> list[str]:
            return [u.name async for u in session.find(User).stream()]

        reading = asyncio.create_task(names())
        await asyncio.sleep(0)  # the stream's autoflush is running
        async with asyncio.timeout(10):
            # waits for the stream's cursor and first batch, which hold the flushed row
            await session.execute("DELETE FROM users")
            assert await reading == ["new"]
            assert await session.find(User).count() == 0

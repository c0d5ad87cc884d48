"""A connection lost inside a transaction: every driver error is a DatabaseError (issue 19, item 7).

The backends killed belong to a PostgreSQL of this module's own (`own_server`).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import psycopg
import pytest
from core_fixtures import User

from data_bridge_core import DatabaseError, Engine, PendingRollbackError, Session
from own_server import OwnServer

pytestmark = pytest.mark.slow


@pytest.fixture
async def own_engine(own_server: OwnServer) -> AsyncIterator[Engine]:
    engine = Engine(own_server.dsn, min_size=0, max_size=2, timeout=10)
    await engine.drop_all(User)
    await engine.create_all(User)
    try:
        yield engine
    finally:
        await engine.dispose()


async def _backend(session: Session) -> int:
    pid: int = (await session.execute("SELECT pg_backend_pid()")).rows[0][0]
    return pid


async def _every_connection_can_be_taken(engine: Engine) -> None:
    """None was lost: a discarded one is replaced (in the background, hence the wait)."""
    held = []
    async with asyncio.timeout(30):
        for _ in range(engine.max_size):
            held.append(await engine.acquire())
    for conn in held:
        await engine.release(conn)


def _assert_database_error(exc: BaseException) -> None:
    assert type(exc) is not psycopg.OperationalError
    assert isinstance(exc, DatabaseError)
    assert isinstance(exc.__cause__, psycopg.Error)


async def test_every_statement_after_the_connection_was_lost_raises_database_error(
    own_server: OwnServer, own_engine: Engine
) -> None:
    async with asyncio.timeout(60):
        async with Session(own_engine) as session:
            await own_server.terminate(await _backend(session))
            for _ in range(3):  # the first finds the connection gone, the others a closed one
                with pytest.raises(DatabaseError) as caught:
                    await session.execute("SELECT 1")
                _assert_database_error(caught.value)
            with pytest.raises(DatabaseError) as streamed:
                await anext(aiter(session.find(User)))  # a stream's DECLARE
            _assert_database_error(streamed.value)
            session.add(User(name="lost", email="lost@x.org"))
            with pytest.raises(DatabaseError) as flushed:
                await session.commit()
            _assert_database_error(flushed.value)
            await session.rollback()
            session.add(User(name="after", email="after@x.org"))
            await session.commit()
        async with Session(own_engine) as session:
            assert [u.name for u in await session.find(User).to_list()] == ["after"]
    await _every_connection_can_be_taken(own_engine)


async def test_a_server_lost_inside_begin_nested_raises_the_database_error_of_the_block(
    own_server: OwnServer, own_engine: Engine
) -> None:
    async with asyncio.timeout(60):
        async with Session(own_engine) as session:
            session.add(User(name="outer", email="outer@x.org"))
            await session.flush()

            async def block_losing_the_server() -> None:
                async with session.begin_nested():
                    session.add(User(name="inner", email="inner@x.org"))
                    await own_server.terminate(await _backend(session))
                    await session.execute("SELECT 1")

            with pytest.raises(DatabaseError) as caught:
                await block_losing_the_server()
            _assert_database_error(caught.value)
            with pytest.raises((DatabaseError, PendingRollbackError)) as refused:
                await session.commit()
            assert isinstance(refused.value, DatabaseError | PendingRollbackError)
            await session.rollback()
        async with Session(own_engine) as session:
            assert await session.find(User).count() == 0  # the transaction died with the backend
    await _every_connection_can_be_taken(own_engine)


async def test_a_connection_lost_before_commit_reports_a_database_error_and_writes_nothing(
    own_server: OwnServer, own_engine: Engine
) -> None:
    async with asyncio.timeout(60):
        async with Session(own_engine) as session:
            session.add(User(name="gone", email="gone@x.org"))
            await session.flush()
            await own_server.terminate(await _backend(session))
            with pytest.raises(DatabaseError) as caught:
                await session.commit()
            _assert_database_error(caught.value)
        async with Session(own_engine) as session:
            assert await session.find(User).count() == 0
    await _every_connection_can_be_taken(own_engine)

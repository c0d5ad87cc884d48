"""Reads run in the session's transaction, like writes (issue 25, the read path).

Issue 25 asked whether a session that has only read could skip BEGIN and
ROLLBACK (two round trips per read-only session), since under READ
COMMITTED each statement takes its own snapshot anyway. Decided: no. These
tests pin what skipping them would change for a user:

- the isolation level is the server's (a role, database or connection
  default of REPEATABLE READ or SERIALIZABLE is set outside the ORM, and
  PostgreSQL does not report it to the client): under it, every read of a
  session sees one snapshot, which reads outside a transaction would not;
- ``in_transaction`` and ``transaction_started_ns`` (which the documented
  ``db.session.transaction.duration`` metric reads) say a read opened the
  transaction (docs/usage.md, "Autobegin").
"""

from __future__ import annotations

import pytest
from core_fixtures import DSN, User, fetch

from data_bridge_core import Engine, Session


async def _add_user_elsewhere(schema: str, name: str) -> None:
    """Commit one user through another connection (autocommit)."""
    await fetch(
        schema,
        "INSERT INTO users (name, email, age, active, created_at) "
        "VALUES (%s, %s, 1, true, now()) RETURNING id",
        name,
        f"{name}@x.org",
    )


@pytest.fixture
async def users_table(schema: str) -> str:
    eng = Engine(DSN, min_size=0, max_size=1, options=f"-c search_path={schema}")
    try:
        await eng.create_all(User)
    finally:
        await eng.dispose()
    await _add_user_elsewhere(schema, "ann")
    return schema


@pytest.mark.parametrize("level", ["repeatable\\ read", "serializable"])
async def test_under_a_stricter_default_isolation_every_read_of_a_session_sees_one_snapshot(
    users_table: str, level: str
) -> None:
    schema = users_table
    engine = Engine(
        DSN,
        min_size=0,
        max_size=2,
        options=f"-c search_path={schema} -c default_transaction_isolation={level}",
    )
    try:
        async with Session(engine) as reader:
            assert await reader.find(User).count() == 1
            await _add_user_elsewhere(schema, "bob")  # committed between two reads
            assert await reader.find(User).count() == 1
            names = [u.name for u in await reader.find(User).order_by(User.id).to_list()]
            assert names == ["ann"]
        async with Session(engine) as later:  # a new transaction, a new snapshot
            assert await later.find(User).count() == 2
    finally:
        await engine.dispose()


async def test_under_read_committed_each_read_sees_what_was_committed_before_it(
    users_table: str,
) -> None:
    schema = users_table
    engine = Engine(DSN, min_size=0, max_size=2, options=f"-c search_path={schema}")
    try:
        async with Session(engine) as reader:
            assert await reader.find(User).count() == 1
            await _add_user_elsewhere(schema, "bob")
            assert await reader.find(User).count() == 2
    finally:
        await engine.dispose()


async def test_a_read_opens_the_transaction_and_commit_or_close_ends_it(users_table: str) -> None:
    engine = Engine(DSN, min_size=0, max_size=2, options=f"-c search_path={users_table}")
    try:
        async with Session(engine) as session:
            assert not session.in_transaction and session.transaction_started_ns is None
            assert [u.name for u in await session.find(User).to_list()] == ["ann"]
            assert session.in_transaction and session.transaction_started_ns is not None
            started = session.transaction_started_ns
            assert await session.get(User, 1) is not None  # the same transaction
            assert session.transaction_started_ns == started
            await session.commit()
            assert not session.in_transaction and session.transaction_started_ns is None
            await session.find(User).count()
            assert session.in_transaction
        assert not session.in_transaction
    finally:
        await engine.dispose()

"""data_bridge_core.query_plans.generic_plan: plans without values, without running anything."""

from __future__ import annotations

import pytest
from core_fixtures import StatementLog, User, seed

from data_bridge_core import DatabaseError, Engine, Session
from data_bridge_core.query_plans import generic_plan, is_read, numbered_placeholders

SECRET_EMAIL = "s3cret-7f1e@example.org"
SECRET_AGE = 987654321
FIND = 'SELECT "id", "name" FROM users WHERE "email" = %s AND "age" > %s LIMIT %s'


async def test_a_generic_plan_shows_placeholders_and_never_the_values_used(engine: Engine) -> None:
    await seed(engine)
    async with Session(engine) as session:
        rows = (await session.execute(FIND, (SECRET_EMAIL, SECRET_AGE, 5))).rows
        assert rows == []
        plan = await generic_plan(session, FIND)
    assert plan is not None
    assert "on users" in plan
    assert "$1" in plan and "$2" in plan
    assert SECRET_EMAIL not in plan and str(SECRET_AGE) not in plan


async def test_the_plan_leaves_the_transaction_its_setting_and_prepared_statements_as_they_were(
    engine: Engine, sql: StatementLog
) -> None:
    async with Session(engine) as session:
        session.add(User(name="u", email="u@x.org"))
        await session.flush()
        sql.clear()
        assert await generic_plan(session, FIND) is not None
        assert await generic_plan(session, "SELECT * FROM no_such_table WHERE id = %s") is None
        assert sql.statements == []  # not through the run_statement seam
        mode = (await session.execute("SHOW plan_cache_mode")).rows
        prepared = (
            await session.execute(
                "SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'data_bridge_plan%'"
            )
        ).rows
        assert mode == [("auto",)]
        assert prepared == [(0,)]
        # The unflushed work is still there: the transaction stayed healthy.
        assert await session.find(User).count() == 1


async def test_no_plan_for_writes_named_placeholders_or_a_session_without_transaction(
    engine: Engine,
) -> None:
    async with Session(engine) as session:
        assert await generic_plan(session, FIND) is None  # no transaction open yet
        await session.execute("SELECT 1")
        assert await generic_plan(session, "UPDATE users SET age = %s") is None
        assert await generic_plan(session, "SELECT * FROM users WHERE id = %(id)s") is None
        assert await generic_plan(session, "SELECT 1") is not None


async def test_no_plan_in_an_aborted_transaction_and_it_stays_as_it_was(engine: Engine) -> None:
    async with Session(engine) as session:
        await session.execute("SELECT 1")
        with pytest.raises(DatabaseError):
            await session.execute("SELECT * FROM no_such_table")
        assert await generic_plan(session, "SELECT 1") is None
        with pytest.raises(DatabaseError, match="aborted"):
            await session.execute("SELECT 1")


def test_reads_are_selects_and_with_queries_that_change_nothing() -> None:
    assert is_read("  select 1")
    assert is_read('SELECT * FROM "t" FOR UPDATE')
    assert is_read("WITH x AS (SELECT 1) SELECT * FROM x")
    assert not is_read("WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x")
    assert not is_read("INSERT INTO t SELECT 1")
    assert not is_read("EXPLAIN ANALYZE SELECT 1")


def test_percent_placeholders_become_numbered_ones() -> None:
    assert numbered_placeholders("a = %s AND b LIKE '10%%' AND c = %b") == (
        "a = $1 AND b LIKE '10%' AND c = $2",
        2,
    )
    assert numbered_placeholders("a = %(name)s") is None

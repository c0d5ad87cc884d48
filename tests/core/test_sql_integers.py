"""Integers written into SQL text are plain ints, whatever their class says (issue 8, #10)."""

from __future__ import annotations

from typing import Any

from core_fixtures import StatementLog, User, seed

from data_bridge_core import Engine, Session

INJECTED = "1 UNION SELECT usename FROM pg_user"


class SneakyInt(int):
    """An int whose text forms are SQL: only int.__int__ sees its real value."""

    def __format__(self, spec: str) -> str:
        return INJECTED

    def __str__(self) -> str:
        return INJECTED

    def __repr__(self) -> str:
        return INJECTED

    def __int__(self) -> int:
        return 10**6

    def __index__(self) -> int:
        return 10**6


def no_injection(statements: list[str]) -> None:
    assert statements
    assert not any("UNION" in s or "pg_user" in s or "1000000" in s for s in statements)


async def test_limit_and_offset_of_an_int_subclass_are_rendered_as_plain_ints(
    engine: Engine, sql: StatementLog
) -> None:
    await seed(engine, users=4, posts=0)
    async with Session(engine) as session:
        sql.clear()
        query = session.find(User).order_by(User.age.asc()).limit(SneakyInt(2)).offset(SneakyInt(1))
        assert [u.name for u in await query.to_list()] == ["u1", "u2"]
        assert await query.count() == 2
        assert await query.exists() is True
        assert (query.limit_value, query.offset_value) == (2, 1)
        assert type(query.limit_value) is int
        assert sql.statements[0].endswith(' ORDER BY "users"."age" ASC LIMIT %s OFFSET %s')
        no_injection(sql.statements)


async def test_aggregate_limit_skip_and_sum_constants_are_rendered_as_plain_ints(
    engine: Engine, sql: StatementLog
) -> None:
    await seed(engine, users=4, posts=0)
    async with Session(engine) as session:
        sql.clear()
        pipeline: list[dict[str, Any]] = [
            {"$sort": {"age": 1}},
            {"$skip": SneakyInt(1)},
            {"$limit": SneakyInt(2)},
            {"$project": {"name": 1, "_id": 0}},
        ]
        rows = await session.find(User).aggregate(pipeline)
        assert rows == [{"name": "u1"}, {"name": "u2"}]
        totals = await session.find(User).aggregate(
            [{"$group": {"_id": None, "three_each": {"$sum": SneakyInt(3)}}}]
        )
        assert totals == [{"_id": None, "three_each": 12}]
        assert "LIMIT %s OFFSET %s" in sql.statements[0]
        assert "count(*) * 3" in sql.statements[1]
        no_injection(sql.statements)

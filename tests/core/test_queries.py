"""Queries: every operator, ordering, paging, terminals, bulk writes, streaming."""

from __future__ import annotations

import pytest
from core_fixtures import StatementLog, User, fetch, seed

from data_bridge_core import (
    ColumnTypeError,
    Engine,
    Session,
    UnknownFieldError,
    UnsupportedOperationError,
)


async def names(engine: Engine, *filters: object) -> list[str]:
    async with Session(engine) as session:
        users = await session.find(User).filter(*filters).order_by(User.id.asc()).to_list()
        return [u.name for u in users]


async def test_every_operator(engine: Engine) -> None:
    await seed(engine, users=5, posts=0)  # ages 10..50, countries DE FR None DE FR
    assert await names(engine, User.age == 20) == ["u1"]
    assert await names(engine, User.age != 20) == ["u0", "u2", "u3", "u4"]
    assert await names(engine, User.age < 30, User.age >= 20) == ["u1"]
    assert await names(engine, User.age <= 20) == ["u0", "u1"]
    assert await names(engine, User.age > 40) == ["u4"]
    assert await names(engine, User.name.in_(["u1", "u3", "zz"])) == ["u1", "u3"]
    assert await names(engine, User.name.not_in(["u1", "u3"])) == ["u0", "u2", "u4"]
    assert await names(engine, User.email.like("u1@%")) == ["u1"]
    assert await names(engine, User.email.ilike("U2@%")) == ["u2"]
    assert await names(engine, User.country.is_null()) == ["u2"]
    assert await names(engine, User.country == None) == ["u2"]  # noqa: E711
    assert await names(engine, User.country.is_not_null(), User.country != "DE") == ["u1", "u4"]
    assert await names(engine, User.age.between(20, 40)) == ["u1", "u2", "u3"]
    assert await names(engine, (User.age < 20) | (User.age > 40)) == ["u0", "u4"]
    assert await names(engine, ~(User.age < 40) & (User.country == "DE")) == ["u3"]


async def test_order_limit_offset_and_terminals(engine: Engine) -> None:
    await seed(engine, users=5, posts=0)
    async with Session(engine) as session:
        q = session.find(User).filter(User.age > 10).order_by(User.age.desc()).limit(2).offset(1)
        assert [u.name for u in await q.to_list()] == ["u3", "u2"]
        assert q.order_by_text == "age DESC"
        assert (q.filters_count, q.limit_value, q.offset_value) == (1, 2, 1)
        # The same facts in one read (the instrumentation's).
        assert q.facts == ("users", session, 1, 2, 1, "age DESC")
        assert session.find(User).facts == ("users", session, 0, None, None, None)
        assert await q.count() == 2
        assert await session.find(User).count() == 5
        assert await session.find(User).filter(User.age > 100).first() is None
        first = await session.find(User).order_by(User.age.desc()).first()
        assert first is not None
        assert first.name == "u4"
        assert await session.find(User).filter(User.name == "u3").exists() is True
        assert await session.find(User).filter(User.name == "zz").exists() is False
        assert await session.get(User, 999) is None


async def test_bulk_update_and_delete(engine: Engine, schema: str) -> None:
    await seed(engine, users=4, posts=0)
    async with Session(engine) as session:
        u0 = await session.get(User, 1)
        assert u0 is not None
        changed = await session.find(User).filter(User.age < 30).update(age=0, active=False)
        assert changed == 2
        assert (u0.age, u0.active) == (0, False)  # objects in the session follow
        removed = await session.find(User).filter(User.active == False).delete()  # noqa: E712
        assert removed == 2
        assert await session.get(User, 1) is None
        await session.commit()
    assert await fetch(schema, "SELECT name FROM users ORDER BY id") == [("u2",), ("u3",)]


async def test_bad_input_is_rejected_before_any_sql(engine: Engine, sql: StatementLog) -> None:
    async with Session(engine) as session:
        sql.clear()
        with pytest.raises(UnknownFieldError, match="User has no field 'nope'"):
            await session.find(User).update(nope=1)
        with pytest.raises(ColumnTypeError, match=r"User\.age expects int"):
            await session.find(User).filter(User.age == "ten").to_list()
        with pytest.raises(UnsupportedOperationError, match=r"\$lookup"):
            await session.find(User).aggregate([{"$lookup": {}}])
        with pytest.raises(UnknownFieldError):
            await session.find(User).aggregate([{"$group": {"_id": "$nope"}}])
        with pytest.raises(ValueError, match="limit"):
            session.find(User).limit(-1)
        with pytest.raises(TypeError, match="filter"):
            session.find(User).filter("age > 1")  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="no truth value"):
            bool(User.age > 1)
        assert sql.statements == []


async def test_values_are_bound_never_inlined(engine: Engine, sql: StatementLog) -> None:
    await seed(engine, users=1, posts=0)
    async with Session(engine) as session:
        evil = "x'; DROP TABLE users; --"
        assert await session.find(User).filter(User.name == evil).to_list() == []
        assert await session.find(User).filter(User.name.in_([evil])).count() == 0
    assert all(evil not in s for s in sql.statements)
    assert any('"users"."name" = %s' in s for s in sql.statements)


async def test_aggregate_example_of_the_api(engine: Engine) -> None:
    await seed(engine, users=6, posts=0)  # countries DE FR None DE FR None; ages 10..60
    async with Session(engine) as session:
        rows = await session.find(User).aggregate(
            [
                {"$match": {"active": True}},
                {"$group": {"_id": "$country", "count": {"$sum": 1}, "avg_age": {"$avg": "$age"}}},
                {"$sort": {"count": -1}},
                {"$limit": 5},
            ]
        )
    assert sorted(rows, key=lambda r: str(r["_id"])) == [
        {"_id": "DE", "count": 2, "avg_age": 25.0},
        {"_id": "FR", "count": 2, "avg_age": 35.0},
        {"_id": None, "count": 2, "avg_age": 45.0},
    ]


async def test_streaming_with_a_server_side_cursor(engine: Engine) -> None:
    async with Session(engine) as session:
        session.add_all([User(name=f"s{i:04d}", email=f"s{i}@x") for i in range(2500)])
        await session.commit()
        seen = [u.name async for u in session.find(User).order_by(User.id)]
        assert len(seen) == 2500
        assert seen[0] == "s0000"
        assert seen[-1] == "s2499"

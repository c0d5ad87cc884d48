"""Unit of work, identity map, transactions, the current session."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from core_fixtures import Post, StatementLog, User, fetch, seed

from data_bridge_core import (
    Column,
    DatabaseError,
    Engine,
    IntegrityError,
    InvalidStateError,
    NoSessionError,
    Session,
    SessionClosedError,
    Table,
    inspect,
)


async def test_new_user_and_post_in_one_flush(engine: Engine, schema: str) -> None:
    async with Session(engine) as session:
        user = User(name="Ann", email="ann@x.org")
        post = Post(title="Hello", author=user)
        session.add(post)  # the user goes in with it
        assert session.pending_count == 1
        await session.flush()
        assert user.id is not None
        assert post.author_id == user.id
        await session.commit()
    assert await fetch(
        schema, "SELECT u.name, p.title FROM posts p JOIN users u ON u.id = p.author_id"
    ) == [("Ann", "Hello")]


async def test_identity_map_and_dirty_tracking(
    engine: Engine, schema: str, sql: StatementLog
) -> None:
    await seed(engine, users=2, posts=0)
    async with Session(engine) as session:
        sql.clear()
        first = await session.get(User, 1)
        again = await session.get(User, 1)
        assert first is again
        assert len(sql.statements) == 1
        assert first is not None
        assert session.dirty_count == 0
        first.age = 77
        first.age = 77
        assert session.dirty_count == 1
        assert inspect(first).modified == {"age"}
        sql.clear()
        await session.commit()
        assert sql.statements == ['UPDATE "users" SET "age" = %s WHERE "id" = %s RETURNING "id"']
    assert await fetch(schema, "SELECT name, age FROM users ORDER BY id") == [
        ("u0", 77),
        ("u1", 20),
    ]


async def test_delete_in_reverse_fk_order(engine: Engine, schema: str) -> None:
    await seed(engine, users=1, posts=1, comments=2)
    async with Session(engine) as session:
        post = await session.get(Post, 1)
        assert post is not None
        comments = await post.comments
        user = await post.author
        for obj in (user, post, *comments):
            await session.delete(obj)
        assert session.deleted_count == 4
        await session.commit()
    for table in ("users", "posts", "comments"):
        assert await fetch(schema, f"SELECT count(*) FROM {table}") == [(0,)]


async def test_failed_flush_writes_nothing_and_session_stays_usable(
    engine: Engine, schema: str
) -> None:
    await seed(engine, users=1, posts=0)
    async with Session(engine) as session:
        session.add_all(
            [
                User(name="a", email="a@x"),
                User(name="b", email="b@x"),
                User(name="dup", email="u0@x.org"),
            ]
        )
        with pytest.raises(IntegrityError) as caught:
            await session.commit()
        assert caught.value.sqlstate == "23505"
        assert isinstance(caught.value, DatabaseError)
        assert type(caught.value.__cause__).__name__ == "UniqueViolation"
        assert await fetch(schema, "SELECT count(*) FROM users") == [(1,)]
        await session.rollback()
        session.add(User(name="c", email="c@x"))
        await session.commit()
    assert await fetch(schema, "SELECT name FROM users ORDER BY id") == [("u0",), ("c",)]


async def test_rollback_restores_objects(engine: Engine) -> None:
    await seed(engine, users=1, posts=0)
    async with Session(engine) as session:
        user = await session.get(User, 1)
        assert user is not None
        user.name = "changed"
        fresh = User(name="new", email="new@x")
        session.add(fresh)
        await session.flush()
        assert fresh.id is not None
        await session.rollback()
        assert user.name == "u0"
        assert fresh.id is None
        assert inspect(fresh).session is None
        assert await session.find(User).count() == 1


async def test_async_with_rolls_back_on_error_and_on_exit(engine: Engine, schema: str) -> None:
    async def failing_request() -> None:
        async with Session(engine) as session:
            session.add(User(name="x", email="x@x"))
            await session.flush()
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        await failing_request()
    async with Session(engine) as session:
        session.add(User(name="y", email="y@x"))
        await session.flush()  # never committed
    assert await fetch(schema, "SELECT count(*) FROM users") == [(0,)]


async def test_current_session_per_task(engine: Engine) -> None:
    await seed(engine, users=3, posts=0)
    with pytest.raises(NoSessionError):
        await User.get(1)

    async def worker(pk: int) -> tuple[str, bool]:
        async with Session(engine) as session:
            user = await User.get(pk)
            found = await User.find(User.id == pk).to_list()
            assert user is not None
            return user.name, found[0] is user and inspect(user).session is session

    assert await asyncio.gather(worker(1), worker(2), worker(3)) == [
        ("u0", True),
        ("u1", True),
        ("u2", True),
    ]
    with pytest.raises(NoSessionError):
        User.find().session  # noqa: B018


async def test_closed_session_raises(engine: Engine) -> None:
    session = Session(engine)
    await session.close()
    with pytest.raises(SessionClosedError):
        session.find(User)
    with pytest.raises(SessionClosedError):
        await session.get(User, 1)
    with pytest.raises(SessionClosedError):
        session.add(User(name="a", email="b"))


async def test_batched_insert_of_many_rows(engine: Engine, sql: StatementLog) -> None:
    async with Session(engine) as session:
        session.add_all([User(name=f"n{i}", email=f"n{i}@x") for i in range(50)])
        sql.clear()
        await session.commit()
        assert len(sql.statements) == 1
        assert sql.statements[0].startswith('INSERT INTO "users"')
        assert "unnest(" in sql.statements[0]
        ids = [u.id for u in await session.find(User).order_by(User.id).to_list()]
        assert ids == list(range(1, 51))


class Tagged(Table):
    """Client-chosen keys, a server default, jsonb and nullable columns."""

    code: int = Column(primary_key=True)
    label: str | None = None
    meta: dict[str, Any] | None = None
    stamp: str = Column(server_default="'srv-' || md5(random()::text)")

    class Settings:
        table_name = "tagged"


class Ticket(Table):
    """A key generated by a uuid server default: not sortable, so rows go one by one."""

    id: uuid.UUID = Column(primary_key=True, server_default="gen_random_uuid()")
    title: str

    class Settings:
        table_name = "tickets"


async def test_bulk_insert_matches_returned_rows_to_their_objects(
    engine: Engine, schema: str, sql: StatementLog
) -> None:
    await engine.create_all(Tagged, Ticket)
    codes = [17, 3, 250, 8, 99, 42]  # out of order on purpose
    async with Session(engine) as session:
        tags = [
            Tagged(code=c, label=None if c % 2 else f"l{c}", meta={"c": c} if c > 40 else None)
            for c in codes
        ]
        session.add_all(tags)
        users = [User(name=f"b{i}", email=f"b{i}@x") for i in range(30)]
        session.add_all(users)
        sql.clear()
        await session.commit()
        assert len(sql.statements) == 2  # one statement per table
    stored = dict(await fetch(schema, "SELECT code, stamp FROM tagged"))
    assert {t.code: t.stamp for t in tags} == stored  # server defaults read back per row
    assert [t.code for t in tags] == codes  # the client keys are untouched
    rows = await fetch(schema, "SELECT id, email FROM users ORDER BY id")
    assert [(u.id, u.email) for u in users] == rows
    meta = dict(await fetch(schema, "SELECT code, meta FROM tagged WHERE meta IS NOT NULL"))
    assert meta == {42: {"c": 42}, 99: {"c": 99}, 250: {"c": 250}}

    async with Session(engine) as session:
        tickets = [Ticket(title=f"t{i}") for i in range(4)]
        session.add_all(tickets)
        sql.clear()
        await session.commit()
        assert "unnest(" not in sql.statements[0]
    by_id = dict(await fetch(schema, "SELECT id, title FROM tickets"))
    assert {t.id: t.title for t in tickets} == by_id


async def test_bulk_insert_rollback_clears_generated_keys_only(engine: Engine, schema: str) -> None:
    await engine.create_all(Tagged)
    async with Session(engine) as session:
        tags = [Tagged(code=c) for c in (5, 6, 7)]
        users = [User(name=f"r{i}", email=f"r{i}@x") for i in range(3)]
        session.add_all([*tags, *users])
        await session.flush()
        assert all(u.id is not None for u in users)
        await session.rollback()
        assert [u.id for u in users] == [None, None, None]
        assert [t.code for t in tags] == [5, 6, 7]
        assert [t.stamp for t in tags] == [None, None, None]
    assert await fetch(schema, "SELECT count(*) FROM tagged") == [(0,)]


async def test_bulk_insert_failure_writes_nothing(engine: Engine, schema: str) -> None:
    async with Session(engine) as session:
        session.add_all([User(name=f"d{i}", email="same@x") for i in range(5)])
        with pytest.raises(IntegrityError):
            await session.commit()
    assert await fetch(schema, "SELECT count(*) FROM users") == [(0,)]


async def test_rows_of_one_result_keep_separate_state(
    engine: Engine, schema: str, sql: StatementLog
) -> None:
    await seed(engine, users=3, posts=0, comments=0)
    async with Session(engine) as session:
        users = await session.find(User).order_by(User.id).to_list()
        assert [inspect(u).session for u in users] == [session] * 3
        assert [inspect(u).result_size for u in users] == [3, 3, 3]
        users[1].age = 99
        assert [inspect(u).modified for u in users] == [
            frozenset(),
            frozenset({"age"}),
            frozenset(),
        ]
        sql.clear()
        await session.commit()
        assert len(sql.statements) == 1 and sql.statements[0].startswith('UPDATE "users"')
        assert await session.find(User, User.age == 99).count() == 1
    # Closing detaches every row, whether or not it ever needed its own state.
    assert [inspect(u).session for u in users] == [None, None, None]
    async with Session(engine) as session:
        fresh = await session.find(User).to_list()  # never inspected while open
    assert [inspect(u).session for u in fresh] == [None, None, None]
    with pytest.raises(InvalidStateError, match="not attached to a session"):
        await fresh[0].posts
    # A detached row (never given its own state) can join a new session and be saved.
    async with Session(engine) as session:
        session.add(fresh[2])
        fresh[2].age = 77
        await session.commit()
    assert await fetch(schema, "SELECT count(*) FROM users WHERE age = 77") == [(1,)]
